"""scikit-learn estimators around :func:`~ensim.nn.build_mlp` and :func:`~ensim.nn.train`.

:class:`DropoutMLPRegressor` and :class:`DropoutMLPClassifier` follow scikit-learn's
conventions (``__init__`` stores its arguments, ``fit`` validates them and returns
``self``, learned state ends in ``_``), so they can be cloned, bagged
(``BaggingRegressor``), cross-validated and put in pipelines.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .._backend import get_namespace, to_numpy
from .._random import as_seed_sequence, child_seed
from .._validation import check_choice, check_int, check_real
from .network import build_mlp
from .training import EarlyStopping, TrainingConfig, _check_batch_norm_batches, train

__all__ = ["DropoutMLPClassifier", "DropoutMLPRegressor"]

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

_DOC_PARAMETERS = """
    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default (100,)
        Width of each hidden layer.
    activation : {"relu", "tanh", "sigmoid"}, default "relu"
    keep_prob : float in (0, 1], default 0.5
        Keep probability of the dropout layer after each hidden layer (1: none).
    input_keep_prob : float in (0, 1], default 1.0
        Keep probability of a dropout layer on the input (1: none).
    batch_norm : bool, default False
        Batch normalization between each hidden affine map and its activation.
    batch_norm_convention : {"pytorch", "keras"}, default "pytorch"
        How running statistics are kept; see :class:`~ensim.nn.BatchNorm`.
    optimizer : {"adam", "sgd"}, default "adam"
    learning_rate : float > 0, default 1e-3
    momentum : float in [0, 1), default 0.9
        SGD momentum.
    nesterov : bool, default False
    batch_size : int >= 1, default 128
        At least 2 with ``batch_norm=True`` (batch statistics need two rows).
    max_epochs : int >= 1, default 200
    schedule : {"constant", "step", "exponential"}, default "constant"
    step_size : int, default 10
        Epochs between decays of the step schedule.
    gamma : float in (0, 1], default 0.1
        Decay factor of the step and exponential schedules.
    l1, l2 : float >= 0, default 0
        Penalties ``l1 * sum|W| + l2 * sum W**2`` on the weight matrices, added to
        the loss.
    max_norm : float > 0 or None, default None
        Bound on the norm of each unit's incoming weight vector.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the training data (stratified for
        classifiers) and stop as :class:`~ensim.nn.EarlyStopping` says.
    validation_fraction : float in (0, 1), default 0.1
    monitor : str, default "val_loss"
    patience : int >= 0, default 10
    min_delta : float >= 0, default 0
    restore_best_weights : bool, default True
    start_from_epoch : int >= 0, default 0
    baseline : float or None, default None
    augment : callable or None, default None
        ``augment(X_batch, rng) -> X_batch`` applied to every training batch, for
        example :class:`ensim.data.ImageAugmenter` or :class:`ensim.data.GaussianNoise`.
    dtype : {"float64", "float32"}, default "float64"
    backend : {"numpy", "cupy"}, default "numpy"
    random_state : None, int, SeedSequence or Generator, default None
        Seeds the initial weights, the shuffling, the dropout masks, the
        augmentation and the validation split, each from its own stream.
    verbose : bool, default False
        Show a progress bar over epochs.

    Attributes
    ----------
    network_ : ensim.nn.Network
        The trained network.
    history_ : ensim.nn.History
        Losses and metrics per epoch, and where early stopping stopped.
    n_iter_ : int
        Epochs run.
    n_features_in_ : int

    Notes
    -----
    ``fit`` validates every parameter before it changes anything, so a bad one
    leaves the estimator as it was; a fit that fails after that (on the data, or
    in training) leaves it unfitted, a previous fit forgotten.
"""


class _DropoutMLP(BaseEstimator):
    """Shared fitting logic; see the two public subclasses."""

    _task: str

    def __init__(self, hidden_layer_sizes=(100,), *, activation="relu", keep_prob=0.5,
                 input_keep_prob=1.0, batch_norm=False, batch_norm_convention="pytorch",
                 optimizer="adam", learning_rate=1e-3, momentum=0.9, nesterov=False,
                 batch_size=128, max_epochs=200, schedule="constant", step_size=10, gamma=0.1,
                 l1=0.0, l2=0.0, max_norm=None, early_stopping=False, validation_fraction=0.1,
                 monitor="val_loss", patience=10, min_delta=0.0, restore_best_weights=True,
                 start_from_epoch=0, baseline=None, augment=None, dtype="float64",
                 backend="numpy", random_state=None, verbose=False):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.keep_prob = keep_prob
        self.input_keep_prob = input_keep_prob
        self.batch_norm = batch_norm
        self.batch_norm_convention = batch_norm_convention
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.schedule = schedule
        self.step_size = step_size
        self.gamma = gamma
        self.l1 = l1
        self.l2 = l2
        self.max_norm = max_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.monitor = monitor
        self.patience = patience
        self.min_delta = min_delta
        self.restore_best_weights = restore_best_weights
        self.start_from_epoch = start_from_epoch
        self.baseline = baseline
        self.augment = augment
        self.dtype = dtype
        self.backend = backend
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags

    # --------------------------------------------------------------- fitting
    def _training_config(self):
        owner = type(self).__name__
        stopper = None
        if self.early_stopping:
            check_real(self.validation_fraction, "validation_fraction", low=0.0, high=1.0,
                       low_inclusive=False, high_inclusive=False, owner=owner)
            stopper = EarlyStopping(self.monitor, min_delta=self.min_delta, patience=self.patience,
                                    baseline=self.baseline,
                                    restore_best_weights=self.restore_best_weights,
                                    start_from_epoch=self.start_from_epoch)
        config = TrainingConfig(
            max_epochs=self.max_epochs, batch_size=self.batch_size, optimizer=self.optimizer,
            learning_rate=self.learning_rate, momentum=self.momentum, nesterov=self.nesterov,
            schedule=self.schedule, step_size=self.step_size, gamma=self.gamma, l1=self.l1,
            l2=self.l2, max_norm=self.max_norm, early_stopping=stopper, augment=self.augment,
            verbose=self.verbose)
        config.validate()
        return config

    def _check_params(self):
        """Validate every parameter; return ``(hidden, config, seed)``. Changes nothing."""
        owner = type(self).__name__
        check_choice(self.dtype, "dtype", ("float64", "float32"), owner=owner)
        check_choice(self.backend, "backend", ("numpy", "cupy"), owner=owner)
        check_choice(self.activation, "activation", ("relu", "tanh", "sigmoid"), owner=owner)
        check_choice(self.batch_norm_convention, "batch_norm_convention", ("pytorch", "keras"),
                     owner=owner)
        if isinstance(self.hidden_layer_sizes, (int, np.integer)):
            hidden = (self.hidden_layer_sizes,)
        else:
            hidden = tuple(self.hidden_layer_sizes)
        for width in hidden:
            check_int(width, "hidden_layer_sizes", low=1, owner=owner)
        for name in ("keep_prob", "input_keep_prob"):
            check_real(getattr(self, name), name, low=0.0, high=1.0, low_inclusive=False,
                       owner=owner)
        config = self._training_config()
        if self.batch_norm:
            _check_batch_norm_batches(config.batch_size, None, owner=owner,
                                      condition="batch_norm=True")
        seed = as_seed_sequence(self.random_state)
        get_namespace(self.backend)
        return hidden, config, seed

    def _fit_or_forget(self, X, y):
        """Fit, assigning the fitted attributes only once training has finished.

        Parameters are validated first, so a bad one raises with the estimator as it
        was (a previous fit included). A failure after that (in the data, or in
        training) leaves the estimator unfitted: a previous fit is forgotten whole
        rather than mixed with the new data's ``n_features_in_``.
        """
        hidden, config, seed = self._check_params()
        try:
            X, targets, n_outputs, stratify, fitted = self._prepare_targets(X, y)
            network, history = self._train_network(X, targets, n_outputs, stratify, hidden,
                                                   config, seed)
        except BaseException:
            self._forget_fit()
            raise
        for name, value in fitted.items():
            setattr(self, name, value)
        self.network_, self.history_, self.n_iter_ = network, history, history.n_epochs
        return self

    def _forget_fit(self):
        """Delete every fitted attribute (the names ending in ``_``)."""
        for name in [name for name in vars(self) if name.endswith("_") and not name.startswith("__")]:
            delattr(self, name)

    def _train_network(self, X, targets, n_outputs, stratify, hidden, config, seed):
        """Build and train the network; return it and its history."""
        owner = type(self).__name__
        validation = None
        if config.early_stopping is not None and config.early_stopping.monitor.startswith("val_"):
            X, targets, validation = self._split_validation(X, targets, stratify,
                                                            child_seed(seed, 2))
        if self.batch_norm:
            _check_batch_norm_batches(config.batch_size, X.shape[0], owner=owner,
                                      condition="batch_norm=True")
        xp = get_namespace(self.backend)
        dtype = np.dtype(self.dtype)
        network = build_mlp(
            X.shape[1], hidden, n_outputs, task=self._task, activation=self.activation,
            keep_prob=self.keep_prob, input_keep_prob=self.input_keep_prob,
            batch_norm=self.batch_norm, batch_norm_convention=self.batch_norm_convention,
            rng=child_seed(seed, 0), dtype=dtype, backend=self.backend)
        target_dtype = dtype if self._task == "regression" else None
        if validation is not None:
            validation = (xp.asarray(validation[0], dtype=dtype),
                          xp.asarray(validation[1], dtype=target_dtype))
        targets = xp.asarray(targets, dtype=target_dtype)
        history = train(network, xp.asarray(X, dtype=dtype), targets, config,
                        validation_data=validation, rng=child_seed(seed, 1))
        return network, history

    def _split_validation(self, X, targets, stratify, seed):
        owner = type(self).__name__
        n = X.shape[0]
        n_val = int(np.floor(self.validation_fraction * n))
        n_needed = 1 if stratify is None else len(np.unique(stratify))
        if n_val < n_needed or n - n_val < n_needed:
            raise ValueError(
                f"The 'validation_fraction' parameter of {owner} leaves {n_val} validation and "
                f"{n - n_val} training examples out of n_samples={n}; early stopping needs at least "
                f"{n_needed} in each" + (" (one per class)." if stratify is not None else "."))
        X_train, X_val, y_train, y_val = train_test_split(
            X, targets, test_size=n_val, stratify=stratify,
            random_state=int(seed.generate_state(1)[0]))
        return X_train, y_train, (X_val, y_val)

    def _output(self, X):
        """Inference output of the head (regression values or class probabilities)."""
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        xp = self.network_.xp
        return to_numpy(self.network_.predict(xp.asarray(X, dtype=self.network_.dtype)))

    # -------------------------------------------------------- thinned networks
    def sample_masks(self, m, rng=None):
        """Draw ``m`` thinned sub-networks; see :meth:`ensim.nn.Network.sample_masks`."""
        check_is_fitted(self)
        self._check_has_dropout("sample_masks")
        return self.network_.sample_masks(m, rng)

    def _check_has_dropout(self, method):
        if not self.network_.dropout_layers:
            raise ValueError(
                f"{type(self).__name__}.{method} needs a Dropout layer, but keep_prob=1 and "
                "input_keep_prob=1 built none: the only sub-network is the full network "
                "(predict).")

    def predict_thinned(self, X, masks, *, chunk_size=None):
        """Predictions of the thinned sub-networks given by ``masks`` and of the full network.

        See :meth:`ensim.nn.Network.predict_thinned`. Returns a
        :class:`~ensim.nn.ThinnedPredictions` of NumPy arrays, in the estimator's
        output space (``(m, n_test)`` and ``(n_test,)`` for a regressor fitted on a
        1-D target; class probabilities for a classifier).
        """
        from .network import ThinnedPredictions

        check_is_fitted(self)
        self._check_has_dropout("predict_thinned")
        X = _validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        xp = self.network_.xp
        result = self.network_.predict_thinned(xp.asarray(X, dtype=self.network_.dtype), masks,
                                               chunk_size=chunk_size)
        members, full = to_numpy(result.members), to_numpy(result.full)
        if getattr(self, "_y_1d_", False):
            members, full = members[..., 0], full[..., 0]
        return ThinnedPredictions(members=members, full=full)


class DropoutMLPRegressor(RegressorMixin, _DropoutMLP):
    __doc__ = """Multilayer perceptron regressor with inverted dropout, trained on squared error.

    The network is ``input -> [Dropout] -> (Dense -> [BatchNorm] -> activation ->
    [Dropout]) * n_hidden -> Dense``, trained on the mean squared error plus the
    penalties; see :func:`ensim.nn.build_mlp` and :func:`ensim.nn.train`. Targets
    are used as given: standardise them (``ensim.data`` does) for the default
    learning rate to suit.
    """ + _DOC_PARAMETERS + """    n_outputs_ : int

    Examples
    --------
    >>> from ensim.data import load_dataset
    >>> from ensim.nn import DropoutMLPRegressor
    >>> data = load_dataset("friedman1", rng=0)
    >>> model = DropoutMLPRegressor((64, 64), keep_prob=0.8, max_epochs=50, random_state=0)
    >>> model.fit(data.X_train, data.y_train).score(data.X_test, data.y_test) > 0.7
    True
    """

    _task = "regression"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def fit(self, X, y):
        """Fit the network to ``X`` of shape ``(n, n_features)`` and ``y`` ``(n,)`` or ``(n, k)``.

        A bad parameter raises before anything changes; any later failure leaves
        the estimator unfitted.
        """
        return self._fit_or_forget(X, y)

    def _prepare_targets(self, X, y):
        X, y = _validate_data(self, X, y, multi_output=True, y_numeric=True,
                              dtype=[np.float64, np.float32])
        targets = y.reshape(len(y), -1)  # (n, n_outputs)
        fitted = {"n_outputs_": targets.shape[1], "_y_1d_": y.ndim == 1}
        return X, targets, targets.shape[1], None, fitted

    def predict(self, X):
        """The full network's prediction at inference, ``(n,)`` or ``(n, k)``."""
        out = self._output(X)
        return out[:, 0] if self._y_1d_ else out


class DropoutMLPClassifier(ClassifierMixin, _DropoutMLP):
    __doc__ = """Multilayer perceptron classifier with inverted dropout and a softmax output.

    Trained on the cross-entropy plus the penalties; see :func:`ensim.nn.build_mlp`
    and :func:`ensim.nn.train`.
    """ + _DOC_PARAMETERS + """    classes_ : ndarray of shape (n_classes,)

    Examples
    --------
    >>> from ensim.data import load_dataset
    >>> from ensim.nn import DropoutMLPClassifier
    >>> data = load_dataset("digits", rng=0)
    >>> model = DropoutMLPClassifier((128,), keep_prob=0.8, max_epochs=30, random_state=0)
    >>> model.fit(data.X_train, data.y_train).score(data.X_test, data.y_test) > 0.9
    True
    """

    _task = "classification"

    def fit(self, X, y):
        """Fit the network to ``X`` of shape ``(n, n_features)`` and labels ``y`` ``(n,)``.

        A bad parameter raises before anything changes; any later failure leaves
        the estimator unfitted.
        """
        return self._fit_or_forget(X, y)

    def _prepare_targets(self, X, y):
        X, y = _validate_data(self, X, y, dtype=[np.float64, np.float32])
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        labels = encoder.transform(y)  # (n,) in [0, n_classes)
        n_classes = len(encoder.classes_)
        return X, labels, n_classes, labels, {"classes_": encoder.classes_}

    def predict_proba(self, X):
        """Class probabilities of the full network at inference, ``(n, n_classes)``."""
        return self._output(X)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each row."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
