"""A from-scratch multilayer perceptron in NumPy/CuPy whose dropout masks are visible.

Layers with explicit ``forward``/``backward`` (:class:`Dense`, :class:`ReLU`,
:class:`Tanh`, :class:`Sigmoid`, :class:`Dropout`, :class:`GaussianDropout`,
:class:`BatchNorm`), output
heads with their losses, optimizers and schedules, a training loop with
Keras-style early stopping, the evaluation of thinned sub-networks, stacks of
``k`` networks trained at once with batched products, and scikit-learn estimators
built on them.
"""

from .ensemble import StackedMLPClassifier, StackedMLPRegressor
from .exact import ExactEnsemble, LogisticEnsemble, exact_ensemble, logistic_unit_ensemble
from .estimators import DropoutMLPClassifier, DropoutMLPRegressor
from .layers import BatchNorm, Dense, Dropout, GaussianDropout, Layer, ReLU, Sigmoid, Tanh
from .losses import MSELoss, SoftmaxCrossEntropy
from .network import Network, ThinnedPredictions, build_mlp
from .optim import SGD, Adam, ConstantLR, ExponentialLR, StepLR
from .stacked import StackedNetwork, build_stacked_mlp, stacked_training_bytes, train_stacked
from .training import EarlyStopping, History, TrainingConfig, evaluation_loss, train

__all__ = [
    "SGD",
    "Adam",
    "BatchNorm",
    "ConstantLR",
    "Dense",
    "Dropout",
    "DropoutMLPClassifier",
    "DropoutMLPRegressor",
    "EarlyStopping",
    "ExactEnsemble",
    "GaussianDropout",
    "ExponentialLR",
    "History",
    "LogisticEnsemble",
    "Layer",
    "MSELoss",
    "Network",
    "ReLU",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "StackedMLPClassifier",
    "StackedMLPRegressor",
    "StackedNetwork",
    "StepLR",
    "Tanh",
    "ThinnedPredictions",
    "TrainingConfig",
    "build_mlp",
    "build_stacked_mlp",
    "evaluation_loss",
    "exact_ensemble",
    "logistic_unit_ensemble",
    "stacked_training_bytes",
    "train",
    "train_stacked",
]
