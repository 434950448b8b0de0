"""scikit-learn estimators around :func:`~ensim.nn.build_mlp` and :func:`~ensim.nn.train`.

:class:`DropoutMLPRegressor` and :class:`DropoutMLPClassifier` follow scikit-learn's
conventions (``__init__`` stores its arguments, ``fit`` validates them and returns
``self``, learned state ends in ``_``), so they can be cloned, bagged
(``BaggingRegressor``), cross-validated and put in pipelines.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .._backend import get_namespace, to_numpy
from .._random import as_seed_sequence, child_seed
from .network import build_mlp
from .settings import DEFAULTS as _D
from .settings import ESTIMATOR_SETTINGS, check_settings, settings_doc
from .training import (
    EarlyStopping,
    TrainingConfig,
    _check_batch_norm_batches,
    check_trained,
    train,
)

__all__ = ["DropoutMLPClassifier", "DropoutMLPRegressor"]

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn
    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)

_DOC_PARAMETERS = """
    Parameters
    ----------
""" + settings_doc() + """
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


def training_config(settings):
    """The :class:`TrainingConfig` (with its :class:`EarlyStopping`) of validated settings."""
    stopper = None
    if settings.get("early_stopping", _D["early_stopping"]):
        get = lambda name: settings.get(name, _D[name])  # noqa: E731
        stopper = EarlyStopping(get("monitor"), min_delta=get("min_delta"),
                                patience=get("patience"), baseline=get("baseline"),
                                restore_best_weights=get("restore_best_weights"),
                                start_from_epoch=get("start_from_epoch"))
    fields = {f.name for f in dataclasses.fields(TrainingConfig)} - {"early_stopping"}
    config = TrainingConfig(early_stopping=stopper,
                            **{name: value for name, value in settings.items() if name in fields})
    config.validate()
    return config


class _DropoutMLP(BaseEstimator):
    """Shared fitting logic; see the two public subclasses."""

    _task: str

    def __init__(self, hidden_layer_sizes=_D["hidden_layer_sizes"], *, activation=_D["activation"],
                 keep_prob=_D["keep_prob"], input_keep_prob=_D["input_keep_prob"],
                 dropout=_D["dropout"], batch_norm=_D["batch_norm"], batch_norm_convention=_D["batch_norm_convention"],
                 optimizer=_D["optimizer"], learning_rate=_D["learning_rate"],
                 momentum=_D["momentum"], nesterov=_D["nesterov"], batch_size=_D["batch_size"],
                 max_epochs=_D["max_epochs"], schedule=_D["schedule"], step_size=_D["step_size"],
                 gamma=_D["gamma"], l1=_D["l1"], l2=_D["l2"], max_norm=_D["max_norm"],
                 early_stopping=_D["early_stopping"],
                 validation_fraction=_D["validation_fraction"], monitor=_D["monitor"],
                 patience=_D["patience"], min_delta=_D["min_delta"],
                 restore_best_weights=_D["restore_best_weights"],
                 start_from_epoch=_D["start_from_epoch"], baseline=_D["baseline"],
                 augment=_D["augment"], dtype=_D["dtype"], backend=_D["backend"],
                 random_state=_D["random_state"], verbose=_D["verbose"]):
        # Every default is the one declared in ensim.nn.settings (a test checks that
        # this signature lists exactly the estimator settings with those defaults).
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.keep_prob = keep_prob
        self.input_keep_prob = input_keep_prob
        self.dropout = dropout
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
    def _settings(self):
        """Every parameter, validated against :data:`ensim.nn.settings.SETTINGS`."""
        return check_settings(self.get_params(deep=False), type(self).__name__,
                              names=ESTIMATOR_SETTINGS)

    def _check_params(self):
        """Validate every parameter; return ``(hidden, config, seed)``. Changes nothing."""
        owner = type(self).__name__
        settings = self._settings()
        config = training_config(settings)
        if settings["batch_norm"]:
            _check_batch_norm_batches(config.batch_size, None, owner=owner,
                                      condition="batch_norm=True")
        seed = as_seed_sequence(self.random_state)
        get_namespace(self.backend)
        return settings["hidden_layer_sizes"], config, seed

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
            rng=child_seed(seed, 0), dtype=dtype, backend=self.backend, dropout=self.dropout)
        target_dtype = dtype if self._task == "regression" else None
        if validation is not None:
            validation = (xp.asarray(validation[0], dtype=dtype),
                          xp.asarray(validation[1], dtype=target_dtype))
        targets = xp.asarray(targets, dtype=target_dtype)
        history = train(network, xp.asarray(X, dtype=dtype), targets, config,
                        validation_data=validation, rng=child_seed(seed, 1))
        check_trained(network._flat[0], owner, config.learning_rate)
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
        """Inference output of the head (regression values or class probabilities), as
        float64 whatever the network computes in (as scikit-learn's estimators return)."""
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        xp = self.network_.xp
        out = to_numpy(self.network_.predict(xp.asarray(X, dtype=self.network_.dtype)))
        return out.astype(np.float64, copy=False)

    # -------------------------------------------------------- thinned networks
    def sample_masks(self, m, rng=None):
        """Draw ``m`` thinned sub-networks; see :meth:`ensim.nn.Network.sample_masks`."""
        check_is_fitted(self)
        self._check_has_dropout("sample_masks")
        return self.network_.sample_masks(m, rng)

    def _check_has_dropout(self, method):
        if not self.network_.dropout_layers:
            why = ("dropout='gaussian' has no thinned sub-networks (its noise is not a mask)"
                   if self.dropout == "gaussian" and min(self.keep_prob, self.input_keep_prob) < 1
                   else "keep_prob=1 and input_keep_prob=1 built none")
            raise ValueError(
                f"{type(self).__name__}.{method} needs a Bernoulli Dropout layer, but {why}: "
                "the only sub-network is the full network (predict).")

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
        encoder, labels = encode_labels(y, type(self).__name__)  # (n,) in [0, n_classes)
        n_classes = len(encoder.classes_)
        return X, labels, n_classes, labels, {"classes_": encoder.classes_}

    def predict_proba(self, X):
        """Class probabilities of the full network at inference, ``(n, n_classes)``, as
        float64 (renormalised after the cast when the network computes in float32, so that
        each row sums to one in float64)."""
        proba = self._output(X)
        if np.dtype(self.network_.dtype) != np.float64:
            proba /= proba.sum(axis=1, keepdims=True)
        return proba

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The most probable class of each row."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def encode_labels(y, owner):
    """``(encoder, labels)``: class labels as ``0 .. n_classes - 1``, at least two classes.

    A classifier cannot learn from one class (scikit-learn's classifiers refuse it
    too), so ``y`` with fewer than two distinct labels is a ``ValueError``.
    """
    check_classification_targets(y)
    encoder = LabelEncoder().fit(y)
    if len(encoder.classes_) < 2:
        raise ValueError(f"The 'y' parameter of {owner} must hold at least 2 classes; got "
                         f"only the class {encoder.classes_[0].tolist()!r}: a classifier can't train "
                         "when only one class is present.")
    return encoder, encoder.transform(y)
