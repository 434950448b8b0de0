"""Ensembles of ``k`` ensim networks trained at once, as scikit-learn estimators.

:class:`StackedMLPRegressor` and :class:`StackedMLPClassifier` train ``k`` members
of one architecture in a :class:`~ensim.nn.StackedNetwork` and average them. Four
kinds of member:

* ``"independent"``: every member on all the training data, from its own initial
  weights and batch order; no dropout unless asked (``keep_prob`` defaults to 1).
* ``"bagged"``: as independent, each member on its own bootstrap sample (``n``
  rows drawn with replacement); no dropout unless asked.
* ``"fixed_mask"``: each member one fixed thinned sub-network of the dropout
  architecture (``keep_prob`` 0.5 by default), its mask drawn once at ``fit`` and
  used in training and prediction.
* ``"dropout"``: each member trained with dropout (fresh masks every step,
  ``keep_prob`` 0.5 by default) and predicting with its weight-scaled full network;
  its thinned sub-networks remain available (:meth:`predict_thinned`).

Member ``i`` has the seed ``s_i = child_seed(random_state, i)`` and, from it, the
streams a :class:`~ensim.nn.DropoutMLPRegressor` with ``random_state=s_i`` would
use: initial weights ``child_seed(s_i, 0)``, training (shuffling, masks,
augmentation) ``child_seed(s_i, 1)``, validation split ``child_seed(s_i, 2)``; and
its fixed mask ``child_seed(s_i, 3)``, its bootstrap sample ``child_seed(s_i, 4)``.
So an independent member of a regressor is exactly that ``DropoutMLPRegressor``
fitted alone, and no member's numbers depend on ``k`` or on how the members are
split into stacks.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted, column_or_1d

from .._backend import get_namespace, to_numpy
from .._random import as_seed_sequence, child_seed, numpy_generator
from .._validation import check_choice, check_int
from .estimators import _validate_data, encode_labels, training_config
from .network import ThinnedPredictions, build_mlp
from .settings import DEFAULTS, ESTIMATOR_SETTINGS, check_settings
from .stacked import StackedNetwork, train_stacked
from .training import _check_batch_norm_batches, check_trained

__all__ = ["KINDS", "StackedMLPClassifier", "StackedMLPRegressor"]

#: The kinds of member, and the settings each changes from :data:`DEFAULTS`.
KINDS = {"independent": {"keep_prob": 1.0}, "bagged": {"keep_prob": 1.0},
         "fixed_mask": {}, "dropout": {}}

#: Settings a member cannot take: the ensemble's own seed seeds the members.
_MEMBER_SETTINGS = tuple(name for name in ESTIMATOR_SETTINGS if name != "random_state")


class _StackedMLP(BaseEstimator):
    """Shared logic of the two public classes."""

    _task: str

    def __init__(self, kind="independent", n_members=10, *, member_params=None,
                 random_state=None, max_bytes=None, n_jobs=None):
        self.kind = kind
        self.n_members = n_members
        self.member_params = member_params
        self.random_state = random_state
        self.max_bytes = max_bytes
        self.n_jobs = n_jobs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags

    # ---------------------------------------------------------------- checks
    def _check_params(self):
        """Validate every parameter before any work; return ``(k, settings, seed)``."""
        owner = type(self).__name__
        check_choice(self.kind, "kind", tuple(KINDS), owner=owner)
        k = check_int(self.n_members, "n_members", low=1, owner=owner)
        given = {} if self.member_params is None else self.member_params
        if not isinstance(given, dict):
            raise TypeError(f"The 'member_params' parameter of {owner} must be a dict of member "
                            f"settings or None; got {type(given).__name__}.")
        settings = {**DEFAULTS, **KINDS[self.kind]}
        settings = {name: settings[name] for name in ESTIMATOR_SETTINGS}
        settings.update(check_settings(given, f"{owner} (member_params)", names=_MEMBER_SETTINGS))
        settings = check_settings(settings, owner, names=ESTIMATOR_SETTINGS)
        if self.kind == "fixed_mask" and settings["keep_prob"] == 1 \
                and settings["input_keep_prob"] == 1:
            raise ValueError(f"The 'kind' parameter of {owner} is 'fixed_mask', whose members are "
                             "thinned sub-networks: it needs keep_prob < 1 or input_keep_prob < 1 "
                             "in member_params; got keep_prob=1 and input_keep_prob=1.")
        if settings["dropout"] != "bernoulli":
            raise ValueError(f"The 'dropout' member setting of {owner} must be 'bernoulli': "
                             "stacked networks train Bernoulli dropout only; got "
                             f"{settings['dropout']!r} (DropoutMLPRegressor and "
                             "DropoutMLPClassifier offer 'gaussian').")
        config = training_config(settings)
        if settings["batch_norm"]:
            _check_batch_norm_batches(config.batch_size, None, owner=owner,
                                      condition="batch_norm=True")
        if self.max_bytes is not None:
            check_int(self.max_bytes, "max_bytes", low=1, owner=owner)
        if self.n_jobs is not None:
            check_int(self.n_jobs, "n_jobs", low=1, owner=owner)
        seed = as_seed_sequence(self.random_state)
        get_namespace(settings["backend"])
        return k, settings, config, seed

    # --------------------------------------------------------------- fitting
    def fit(self, X, y):
        """Fit the ``k`` members; a bad parameter raises before any work."""
        k, settings, config, seed = self._check_params()
        X, targets, n_outputs, labels, fitted = self._prepare_targets(X, y)
        stack, histories = self._fit_members(X, targets, n_outputs, labels, k, settings, config,
                                             seed)
        for name, value in fitted.items():
            setattr(self, name, value)
        self.stack_, self.histories_ = stack, histories
        self.n_iter_ = np.array([h.n_epochs for h in histories])
        return self

    def _member_rows(self, n, labels, k, settings, config, seed):
        """Each member's training rows and validation rows (or None)."""
        owner = type(self).__name__
        members = [child_seed(seed, i) for i in range(k)]
        if self.kind == "bagged":
            rows = [numpy_generator(child_seed(s, 4)).integers(0, n, size=n) for s in members]
        else:
            rows = [np.arange(n)] * k
        stopper = config.early_stopping
        if stopper is None or not stopper.monitor.startswith("val_"):
            return np.stack(rows), None
        n_val = int(np.floor(settings["validation_fraction"] * n))
        train_rows, val_rows = [], []
        for s, r in zip(members, rows):
            stratify = None if labels is None else labels[r]
            n_needed = 1 if stratify is None else len(np.unique(stratify))
            if n_val < n_needed or n - n_val < n_needed:
                raise ValueError(
                    f"The 'validation_fraction' parameter of {owner} leaves {n_val} validation "
                    f"and {n - n_val} training examples out of n_samples={n}; early stopping "
                    f"needs at least {n_needed} in each"
                    + (" (one per class)." if stratify is not None else "."))
            train, val = train_test_split(np.arange(n), test_size=n_val, stratify=stratify,
                                          random_state=int(child_seed(s, 2).generate_state(1)[0]))
            train_rows.append(r[train])
            val_rows.append(r[val])
        return np.stack(train_rows), np.stack(val_rows)

    def _fit_members(self, X, targets, n_outputs, labels, k, settings, config, seed):
        owner = type(self).__name__
        n = X.shape[0]
        rows, val_rows = self._member_rows(n, labels, k, settings, config, seed)
        if settings["batch_norm"]:
            _check_batch_norm_batches(config.batch_size, rows.shape[1], owner=owner,
                                      condition="batch_norm=True")
        xp = get_namespace(settings["backend"])
        dtype = np.dtype(settings["dtype"])
        build = dict(task=self._task, activation=settings["activation"],
                     keep_prob=settings["keep_prob"], input_keep_prob=settings["input_keep_prob"],
                     batch_norm=settings["batch_norm"],
                     batch_norm_convention=settings["batch_norm_convention"], dtype=dtype,
                     backend=settings["backend"])
        networks = [build_mlp(X.shape[1], settings["hidden_layer_sizes"], n_outputs,
                              rng=child_seed(seed, i, 0), **build) for i in range(k)]
        masks = None
        if self.kind == "fixed_mask":
            drawn = [net.sample_masks(1, child_seed(seed, i, 3)) for i, net in enumerate(networks)]
            masks = [xp.concatenate([d[j] for d in drawn]) for j in range(len(drawn[0]))]
        stack = StackedNetwork(networks, masks=masks)
        del networks
        target_dtype = dtype if self._task == "regression" else None
        X_fit = xp.asarray(X, dtype=dtype)
        targets = xp.asarray(targets, dtype=target_dtype)
        same_rows = self.kind != "bagged" and val_rows is None
        histories = train_stacked(
            stack, X_fit, targets, config, rng=seed, rows=None if same_rows else rows,
            validation_data=None if val_rows is None else (X_fit, targets),
            validation_rows=val_rows, max_bytes=self.max_bytes, n_jobs=self.n_jobs)
        check_trained(stack._flat_params, type(self).__name__, config.learning_rate)
        return stack, histories

    # ------------------------------------------------------------ prediction
    def _member_outputs(self, X):
        """Every member's head output on ``X``, ``(k, n, n_outputs)`` (NumPy)."""
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return to_numpy(self.stack_.predict(X, max_bytes=self.max_bytes))

    def sample_masks(self, m, rng=None):
        """``m`` thinned sub-networks of every member; see :meth:`StackedNetwork.sample_masks`."""
        check_is_fitted(self)
        return self.stack_.sample_masks(m, rng)

    def predict_thinned(self, X, masks, *, chunk_size=None):
        """Thinned sub-networks of every member: ``members`` ``(k, m, n, ...)``, ``full``
        ``(k, n, ...)``, in the estimator's output space; see
        :meth:`StackedNetwork.predict_thinned`."""
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        result = self.stack_.predict_thinned(X, masks, chunk_size=chunk_size)
        members, full = to_numpy(result.members), to_numpy(result.full)
        if getattr(self, "_y_1d_", False):
            members, full = members[..., 0], full[..., 0]
        return ThinnedPredictions(members=members, full=full)


class StackedMLPRegressor(RegressorMixin, _StackedMLP):
    """An ensemble of ``k`` ensim MLP regressors trained at once; predicts their mean.

    Parameters
    ----------
    kind : {"independent", "bagged", "fixed_mask", "dropout"}, default "independent"
        What makes the members differ; see :mod:`ensim.nn.ensemble`.
    n_members : int >= 1, default 10
        Members ``k``.
    member_params : dict, optional
        Settings of every member, any of :data:`ensim.nn.settings.SETTINGS` that
        :class:`~ensim.nn.DropoutMLPRegressor` takes but ``random_state`` (e.g.
        ``{"hidden_layer_sizes": (64, 64), "max_epochs": 50}``). Defaults are the
        estimators', except ``keep_prob = 1`` for the independent and bagged kinds.
        An unknown setting is an error that lists the valid ones.
    random_state : None, int or SeedSequence
        The root seed of the members' streams.
    max_bytes : int, optional
        Working-memory budget of one stack in training and prediction (default
        2**23 bytes); see :func:`ensim.nn.stacked_training_bytes`.
    n_jobs : int, optional
        Stacks trained at the same time, in threads (see
        :func:`ensim.nn.train_stacked`); the results do not depend on it.

    Attributes
    ----------
    stack_ : StackedNetwork
        The trained members.
    histories_ : list of History
        One per member.
    n_iter_ : ndarray of int, shape (k,)
        Epochs each member ran.
    n_features_in_, n_outputs_ : int

    Notes
    -----
    With ``early_stopping=True``, a bagged member holds out its validation rows from
    its own bootstrap sample, as the member fitted alone on that sample would: a
    row drawn twice may fall on both sides.

    Examples
    --------
    >>> from ensim.data import load_dataset
    >>> from ensim.nn import StackedMLPRegressor
    >>> data = load_dataset("friedman1", rng=0)
    >>> model = StackedMLPRegressor("bagged", 5, random_state=0,
    ...                             member_params={"hidden_layer_sizes": (32,), "max_epochs": 30})
    >>> model.fit(data.X_train, data.y_train).member_predictions(data.X_test).shape
    (5, 400)
    """

    _task = "regression"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _prepare_targets(self, X, y):
        X, y = _validate_data(self, X, y, multi_output=True, y_numeric=True,
                              dtype=[np.float64, np.float32])
        targets = y.reshape(len(y), -1)  # (n, n_outputs)
        return X, targets, targets.shape[1], None, {"n_outputs_": targets.shape[1],
                                                    "_y_1d_": y.ndim == 1}

    def member_predictions(self, X):
        """Every member's prediction, ``(k, n)`` (or ``(k, n, n_outputs)`` for a 2-D target)."""
        out = self._member_outputs(X)
        return out[..., 0] if self._y_1d_ else out

    def predict(self, X):
        """The mean of the members' predictions."""
        return self.member_predictions(X).mean(axis=0)


class StackedMLPClassifier(ClassifierMixin, _StackedMLP):
    """An ensemble of ``k`` ensim MLP classifiers trained at once; averages their probabilities.

    Parameters and attributes as :class:`StackedMLPRegressor`, with ``classes_``
    instead of ``n_outputs_``.
    """

    _task = "classification"

    def _prepare_targets(self, X, y):
        X, y = _validate_data(self, X, y, dtype=[np.float64, np.float32])
        y = column_or_1d(y, warn=True)
        encoder, labels = encode_labels(y, type(self).__name__)  # (n,) in [0, n_classes)
        return X, labels, len(encoder.classes_), labels, {"classes_": encoder.classes_}

    def member_predictions(self, X):
        """Every member's class probabilities, ``(k, n, n_classes)``."""
        return self._member_outputs(X)

    def predict_proba(self, X):
        """The mean of the members' class probabilities, ``(n, n_classes)``."""
        return self.member_predictions(X).mean(axis=0)

    def predict_log_proba(self, X):
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X):
        """The class of largest mean probability."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


#: make_ensemble's kind names of the stacked ensembles, and their member kinds.
ENSEMBLE_KINDS = {"independent_mlp": "independent", "bagged_mlp": "bagged",
                  "fixed_mask_mlp": "fixed_mask", "dropout_mlp": "dropout"}


def make_mlp_ensemble(kind, n_members, *, seed, member_params=None, task="regression",
                      **params):
    """The unfitted stacked ensemble :func:`ensim.ensembles.make_ensemble` returns for an
    MLP ``kind``; ``params`` are further estimator parameters (``max_bytes``,
    ``n_jobs``)."""
    owner = "make_ensemble"
    check_choice(task, "task", ("regression", "classification"), owner=owner)
    unknown = [name for name in params if name not in ("max_bytes", "n_jobs")]
    if unknown:
        raise TypeError(f"make_ensemble got unexpected parameter{'s' if len(unknown) > 1 else ''} "
                        f"{', '.join(map(repr, unknown))} for kind {kind!r}; the MLP ensembles "
                        "take member_params, task and max_bytes.")
    Estimator = StackedMLPRegressor if task == "regression" else StackedMLPClassifier
    estimator = Estimator(ENSEMBLE_KINDS[kind], n_members, member_params=member_params,
                          random_state=seed, **params)
    estimator._check_params()  # a bad member setting is refused here, before any fit
    return estimator
