"""Real ensembles, their training sets, and their members' predictions.

The measurements of :mod:`ensim.decompose` need member predictions in the layouts
``(k, n_test)`` (one trained ensemble) and ``(n_repeats, k, n_test)`` (the same
ensemble retrained). This module builds the ensembles (scikit-learn's bagged
trees, random forests and extra trees; ensembles of ensim networks trained at
once, independent, bagged, fixed-mask or dropout, from :mod:`ensim.nn.ensemble`),
trains them on repeated training sets (drawn, for instance, by
:class:`ensim.data.KnownTruth` or :func:`ensim.data.resample`), and collects the
predictions of their members.

Every stochastic function takes one ``rng`` argument (``None``, an int, a
:class:`numpy.random.SeedSequence` or a :class:`numpy.random.Generator`). Repeat
``r`` draws its training set and its ensemble seed from children of ``rng``
addressed by ``r``, so a repeat's numbers do not depend on how many repeats are
run.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ._random import as_seed_sequence, child_seed
from ._validation import check_array, check_bool, check_choice, check_int
from .data import Sample

__all__ = [
    "ENSEMBLES",
    "fit_repeats",
    "make_ensemble",
    "member_predictions",
    "random_state",
]

#: The ensemble kinds :func:`make_ensemble` builds.
ENSEMBLES = ("bagged_trees", "random_forest", "extra_trees", "bagged_mlp", "independent_mlp",
             "fixed_mask_mlp", "dropout_mlp")


def random_state(rng) -> int:
    """A scikit-learn ``random_state`` (an int in ``[0, 2**32)``) drawn from ``rng``."""
    return int(as_seed_sequence(rng).generate_state(1, np.uint32)[0])


# ---------------------------------------------------------------------------------
# Ensembles
# ---------------------------------------------------------------------------------

def make_ensemble(kind: str, n_estimators: int = 100, *, rng=None, member_params=None,
                  task: str = "regression", **params):
    """An unfitted scikit-learn ensemble of ``n_estimators`` members.

    Parameters
    ----------
    kind : {"bagged_trees", "random_forest", "extra_trees", "bagged_mlp", \
"independent_mlp", "fixed_mask_mlp", "dropout_mlp"}
        ``bagged_trees``: :class:`~sklearn.ensemble.BaggingRegressor` of
        :class:`~sklearn.tree.DecisionTreeRegressor`; ``random_forest`` and
        ``extra_trees``: :class:`~sklearn.ensemble.RandomForestRegressor` and
        :class:`~sklearn.ensemble.ExtraTreesRegressor` (pass ``max_features`` to
        sweep the number of features tried at each split). The ``*_mlp`` kinds are
        :class:`~ensim.nn.StackedMLPRegressor` (or ``StackedMLPClassifier``) of
        ensim networks trained at once: ``independent_mlp``, members from
        independent initialisations on the same data; ``bagged_mlp``, each on its
        own bootstrap sample; ``fixed_mask_mlp``, each a fixed thinned
        sub-network; ``dropout_mlp``, each trained with dropout (see
        :mod:`ensim.nn.ensemble`).
    n_estimators : int, default=100
        Members ``k``.
    rng : None, int, SeedSequence or Generator
        Seeds the ensemble (for the MLP kinds, member ``i`` from its child ``i``).
    member_params : dict, optional
        Parameters of each member, e.g. ``{"min_samples_leaf": 5}`` for trees (for the
        forests they are passed to the forest); for the MLP kinds, settings of
        :data:`ensim.nn.settings.SETTINGS` (``{"hidden_layer_sizes": (32,),
        "max_epochs": 50}``), an unknown one being an error that lists them.
    task : {"regression", "classification"}, default "regression"
        Classification is offered by the MLP kinds.
    **params
        Parameters of the ensemble itself, e.g. ``max_samples`` or ``max_features``
        (``max_bytes`` for the MLP kinds). ``weights`` is refused: the members are
        averaged with equal weight, as ``MSE_ens = V/k + (k-1)/k C`` and
        :mod:`ensim.decompose` assume.

    Returns
    -------
    estimator
        An unfitted scikit-learn estimator; :func:`member_predictions` reads its
        members once fitted.

    Raises
    ------
    TypeError
        When ``weights`` is passed.
    ValueError
        For a bad ``kind``, ``n_estimators``, ``task`` or MLP member setting, before
        anything is fitted.
    """
    from sklearn.ensemble import BaggingRegressor, ExtraTreesRegressor, RandomForestRegressor
    from sklearn.tree import DecisionTreeRegressor

    check_choice(kind, "kind", ENSEMBLES, owner="make_ensemble")
    if "weights" in params:
        raise TypeError("The 'weights' parameter of make_ensemble is not accepted: members "
                        "are averaged with equal weight, as the decompositions assume; got "
                        f"weights={params['weights']!r}.")
    n_estimators = check_int(n_estimators, "n_estimators", low=1, owner="make_ensemble")
    if member_params is not None and not isinstance(member_params, dict):
        raise TypeError("The 'member_params' parameter of make_ensemble must be a dict of "
                        f"member settings or None; got {member_params!r}.")
    member_params = dict(member_params or {})
    seed = as_seed_sequence(rng)
    if kind.endswith("_mlp"):
        from .nn.ensemble import make_mlp_ensemble
        return make_mlp_ensemble(kind, n_estimators, seed=seed, member_params=member_params,
                                 task=task, **params)
    if task != "regression":
        raise ValueError(f"The 'task' parameter of make_ensemble must be 'regression' for kind "
                         f"{kind!r} (classification is offered by the MLP kinds); got {task!r}.")
    if kind in ("random_forest", "extra_trees"):
        forest = RandomForestRegressor if kind == "random_forest" else ExtraTreesRegressor
        return forest(n_estimators=n_estimators, random_state=random_state(seed),
                      **member_params, **params)
    return BaggingRegressor(DecisionTreeRegressor(**member_params), n_estimators=n_estimators,
                            random_state=random_state(seed), **params)


def member_predictions(estimator, X) -> np.ndarray:
    """The predictions of each member of a fitted ensemble: shape ``(k, n_test)``.

    Only ensembles that predict the plain average of their members' predictions
    are accepted, so that the mean over members is the ensemble's own prediction:
    the stacked ensim ensembles (:class:`~ensim.nn.StackedMLPRegressor`, whose
    members' predictions are ``(k, n_test)``, or ``(k, n_test, n_outputs)`` for a
    2-D target; :class:`~ensim.nn.StackedMLPClassifier`, whose members' class
    probabilities are ``(k, n_test, n_classes)``),
    :class:`~sklearn.ensemble.BaggingRegressor`,
    :class:`~sklearn.ensemble.RandomForestRegressor`,
    :class:`~sklearn.ensemble.ExtraTreesRegressor` and
    :class:`~sklearn.ensemble.VotingRegressor` without ``weights``. Members that
    were trained on a subset of the features (``BaggingRegressor`` with
    ``max_features < 1``, listed in ``estimators_features_``) see the same subset
    here.

    Parameters
    ----------
    estimator : fitted averaging regressor
        One of the classes above (or a subclass), fitted.
    X : array-like, shape (n_test, n_features)

    Returns
    -------
    ndarray, shape (k, n_test)
        Member ``i``'s prediction at test point ``t``, as float64 (for the stacked
        ensembles, in their dtype and with the shapes above).

    Raises
    ------
    sklearn.exceptions.NotFittedError
        When ``estimator`` is not fitted.
    TypeError
        When ``estimator`` is not one of the averaging regressors above: boosting
        (:class:`~sklearn.ensemble.AdaBoostRegressor`, gradient boosting) and
        stacking do not average their members, and a classifier's members predict
        encoded class indices.
    ValueError
        When it is a weighted ``VotingRegressor`` or has no members.
    """
    from sklearn.ensemble import (BaggingRegressor, ExtraTreesRegressor,
                                  RandomForestRegressor, VotingRegressor)
    from sklearn.utils import check_array as sk_check_array
    from sklearn.utils.validation import check_is_fitted

    from .nn.ensemble import StackedMLPClassifier, StackedMLPRegressor

    owner = "member_predictions"
    if isinstance(estimator, (StackedMLPRegressor, StackedMLPClassifier)):
        return np.asarray(estimator.member_predictions(X), dtype=np.float64)
    averaging = (BaggingRegressor, RandomForestRegressor, ExtraTreesRegressor, VotingRegressor)
    if not isinstance(estimator, averaging):
        names = ", ".join(cls.__name__ for cls in (StackedMLPRegressor, StackedMLPClassifier)
                          + averaging)
        raise TypeError(f"The 'estimator' parameter of {owner} must be an ensemble that "
                        f"averages its members' predictions ({names}); "
                        f"got {type(estimator).__name__}.")
    if isinstance(estimator, VotingRegressor) and estimator.weights is not None:
        raise ValueError(f"The 'estimator' parameter of {owner} must average its members "
                         "with equal weight; got a VotingRegressor with "
                         f"weights={estimator.weights!r} (valid: None).")
    check_is_fitted(estimator)
    members = estimator.estimators_
    if len(members) == 0:
        raise ValueError(f"The 'estimator' parameter of {owner} must have at least one "
                         f"member; {type(estimator).__name__}.estimators_ is empty.")
    X = sk_check_array(X)
    features = getattr(estimator, "estimators_features_", None)
    if features is None:
        features = [slice(None)] * len(members)
    out = np.empty((len(members), X.shape[0]))                 # (k, n_test)
    for i, (member, columns) in enumerate(zip(members, features)):
        out[i] = member.predict(X[:, columns])
    return out


# ---------------------------------------------------------------------------------
# Repeats
# ---------------------------------------------------------------------------------

def fit_repeats(make_estimator: Callable, draw_training_set: Callable, X_test,
                n_repeats: int, *, rng=None, fixed_training_set: bool = False) -> np.ndarray:
    """Train an ensemble ``n_repeats`` times and collect its members' predictions.

    Parameters
    ----------
    make_estimator : callable
        ``make_estimator(seed) -> estimator``: an unfitted ensemble seeded from the
        ``SeedSequence`` ``seed`` (e.g. ``lambda s: make_ensemble("random_forest",
        50, rng=s)``).
    draw_training_set : callable
        ``draw_training_set(seed) -> Sample`` (or ``(X, y)``): a training set drawn
        from the ``SeedSequence`` ``seed``.
    X_test : array-like, shape (n_test, n_features)
    n_repeats : int
        ``n_repeats >= 1``.
    rng : None, int, SeedSequence or Generator
        Repeat ``r``'s training set comes from child ``(r, 0)`` and its ensemble
        seed from child ``(r, 1)``.
    fixed_training_set : bool, default=False
        Draw one training set (child ``(0, 0)``) and redraw only the ensemble's
        randomness, for the ``"ensemble_randomness"`` view of covariance
        (``decompose(..., repeats="ensemble_seeds")``).

    Returns
    -------
    ndarray, shape (n_repeats, k, n_test)
    """
    n_repeats = check_int(n_repeats, "n_repeats", low=1, owner="fit_repeats")
    fixed_training_set = check_bool(fixed_training_set, "fixed_training_set", owner="fit_repeats")
    for name, value in (("make_estimator", make_estimator),
                        ("draw_training_set", draw_training_set)):
        if not callable(value):
            raise TypeError(f"The {name!r} parameter of fit_repeats must be callable; got "
                            f"{value!r} of type {type(value).__name__}.")
    X_test = check_array(X_test, "X_test", ndim=2, owner="fit_repeats")   # before any fit
    seed = as_seed_sequence(rng)
    out = None
    for r in range(n_repeats):
        data = draw_training_set(child_seed(seed, 0 if fixed_training_set else r, 0))
        X, y = (data.X, data.y) if isinstance(data, Sample) else data
        estimator = make_estimator(child_seed(seed, r, 1)).fit(X, y)
        members = member_predictions(estimator, X_test)          # (k, n_test)
        if out is None:
            out = np.empty((n_repeats,) + members.shape)
        out[r] = members
    return out
