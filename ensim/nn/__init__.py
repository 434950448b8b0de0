"""A from-scratch multilayer perceptron in NumPy/CuPy whose dropout masks are visible.

Layers with explicit ``forward``/``backward`` (:class:`Dense`, :class:`ReLU`,
:class:`Tanh`, :class:`Sigmoid`, :class:`Dropout`, :class:`BatchNorm`), output
heads with their losses, optimizers and schedules, a training loop with
Keras-style early stopping, the evaluation of thinned sub-networks, and
scikit-learn estimators built on them.
"""

from .estimators import DropoutMLPClassifier, DropoutMLPRegressor
from .layers import BatchNorm, Dense, Dropout, Layer, ReLU, Sigmoid, Tanh
from .losses import MSELoss, SoftmaxCrossEntropy
from .network import Network, ThinnedPredictions, build_mlp
from .optim import SGD, Adam, ConstantLR, ExponentialLR, StepLR
from .training import EarlyStopping, History, TrainingConfig, train

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
    "ExponentialLR",
    "History",
    "Layer",
    "MSELoss",
    "Network",
    "ReLU",
    "Sigmoid",
    "SoftmaxCrossEntropy",
    "StepLR",
    "Tanh",
    "ThinnedPredictions",
    "TrainingConfig",
    "build_mlp",
    "train",
]
