"""Stacked MLP ensembles: scikit-learn checks, members as solo fits, settings, bad input."""

import collections
import dataclasses
import inspect

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from ensim._random import as_seed_sequence, child_seed, numpy_generator
from ensim.ensembles import ENSEMBLES, make_ensemble, member_predictions
from ensim.nn import (
    DropoutMLPClassifier,
    DropoutMLPRegressor,
    StackedMLPClassifier,
    StackedMLPRegressor,
    TrainingConfig,
)
from ensim.nn.settings import DEFAULTS, ESTIMATOR_SETTINGS, SETTINGS

_SMALL = {"hidden_layer_sizes": (16,), "max_epochs": 50, "learning_rate": 0.01}
_VARIANT = {"hidden_layer_sizes": (16,), "batch_norm": True, "early_stopping": True,
            "validation_fraction": 0.2, "learning_rate": 0.01, "max_epochs": 50}


@parametrize_with_checks([StackedMLPRegressor("dropout", 3, member_params=_SMALL, random_state=0),
                          StackedMLPClassifier("bagged", 3, member_params=_SMALL, random_state=0),
                          StackedMLPRegressor("fixed_mask", 2, member_params=_VARIANT,
                                              random_state=0),
                          StackedMLPClassifier("independent", 2, member_params=_VARIANT,
                                               random_state=0)])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def _regression(n=90, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    return X, X[:, 0] - 2 * np.sin(X[:, 1]) + 0.2 * rng.standard_normal(n)


@pytest.mark.parametrize("params", [
    {"hidden_layer_sizes": (8,), "max_epochs": 6, "keep_prob": 1.0},
    {"hidden_layer_sizes": (8, 6), "max_epochs": 40, "keep_prob": 1.0, "early_stopping": True,
     "patience": 1, "learning_rate": 0.02, "batch_norm": True},
], ids=["plain", "early_stopping"])
def test_an_independent_member_is_the_estimator_fitted_alone(params):
    # Member i is DropoutMLPRegressor(random_state=child_seed(root, i)): same split,
    # same initial weights, same batches, same stopping epoch, same numbers.
    X, y = _regression()
    root = as_seed_sequence(5)
    ensemble = StackedMLPRegressor("independent", 4, member_params=params,
                                   random_state=root).fit(X, y)
    members = ensemble.member_predictions(X)
    assert members.shape == (4, len(X))
    for i in range(4):
        alone = DropoutMLPRegressor(random_state=child_seed(root, i), **params).fit(X, y)
        np.testing.assert_array_equal(members[i], alone.predict(X))
        assert ensemble.n_iter_[i] == alone.n_iter_
    if "early_stopping" in params:
        assert len(set(ensemble.n_iter_)) > 1  # members stopped at different epochs
    np.testing.assert_allclose(members.mean(axis=0), ensemble.predict(X), rtol=1e-12)
    # Negative control: member 0 is not the estimator seeded as member 1.
    other = DropoutMLPRegressor(random_state=child_seed(root, 1), **params).fit(X, y)
    assert not np.array_equal(members[0], other.predict(X))


def test_bagged_members_train_on_their_own_bootstrap_samples():
    X, y = _regression(n=40)
    X = np.column_stack([np.arange(40.0), X])
    seen = []

    def record(batch, rng):
        seen.append(batch[:, 0].astype(int).copy())
        return batch

    k, root = 3, as_seed_sequence(9)
    StackedMLPRegressor("bagged", k, random_state=root, member_params={
        "hidden_layer_sizes": (4,), "max_epochs": 1, "batch_size": 8, "augment": record}).fit(X, y)
    for i in range(k):
        expected = numpy_generator(child_seed(root, i, 4)).integers(0, 40, size=40)
        assert collections.Counter(np.concatenate(seen[i::k])) == collections.Counter(expected)
    # Negative control: the samples differ from member to member, and from the data.
    assert collections.Counter(np.concatenate(seen[0::k])) != collections.Counter(range(40))
    assert collections.Counter(np.concatenate(seen[0::k])) != collections.Counter(
        np.concatenate(seen[1::k]))


def test_fixed_mask_members_are_their_sub_networks():
    X, y = _regression()
    ensemble = StackedMLPRegressor("fixed_mask", 3, random_state=2, member_params={
        "hidden_layer_sizes": (16,), "max_epochs": 3}).fit(X, y)
    stack = ensemble.stack_
    for i in range(3):
        net, masks = stack.member(i), stack.member_masks(i)
        np.testing.assert_array_equal(ensemble.member_predictions(X)[i],
                                      net.head.predict(net.forward(X, masks=masks))[:, 0])
        # Not the full network (negative control).
        assert not np.allclose(ensemble.member_predictions(X)[i], net.predict(X)[:, 0])
    assert not np.array_equal(stack.masks[0][0], stack.masks[0][1])
    with pytest.raises(ValueError, match=r"fixed sub-networks"):
        ensemble.sample_masks(2)


def test_classifier_members_give_probabilities_that_average_to_predict_proba():
    X, y = _regression()
    labels = np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))  # three classes
    ensemble = make_ensemble("dropout_mlp", 4, rng=3, task="classification", member_params={
        "hidden_layer_sizes": (16,), "max_epochs": 5})
    assert isinstance(ensemble, StackedMLPClassifier)
    ensemble.fit(X, labels)
    members = member_predictions(ensemble, X)
    assert members.shape == (4, len(X), 3) and members.dtype == np.float64
    np.testing.assert_allclose(members.sum(axis=-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(members.mean(axis=0), ensemble.predict_proba(X), rtol=1e-12)
    thinned = ensemble.predict_thinned(X[:7], ensemble.sample_masks(5, rng=0))
    assert thinned.members.shape == (4, 5, 7, 3) and thinned.full.shape == (4, 7, 3)
    np.testing.assert_allclose(thinned.full, members[:, :7], rtol=1e-12)


@pytest.mark.parametrize("kind", [kind for kind in ENSEMBLES if kind.endswith("_mlp")])
def test_make_ensemble_builds_every_mlp_kind_on_ensim(kind):
    X, y = _regression(n=50)
    estimator = make_ensemble(kind, 3, rng=1, member_params={"hidden_layer_sizes": (4,),
                                                            "max_epochs": 2})
    assert isinstance(estimator, StackedMLPRegressor)
    assert estimator.kind == kind.removesuffix("_mlp")
    members = member_predictions(estimator.fit(X, y), X)
    assert members.shape == (3, 50)
    np.testing.assert_allclose(members.mean(axis=0), estimator.predict(X), rtol=1e-12)


# ------------------------------------------------------------- the settings table
@pytest.mark.parametrize("Estimator", [DropoutMLPRegressor, DropoutMLPClassifier])
def test_estimator_defaults_are_the_settings_table(Estimator):
    parameters = inspect.signature(Estimator.__init__).parameters
    declared = {name: p.default for name, p in parameters.items() if name != "self"}
    assert list(declared) == list(ESTIMATOR_SETTINGS)
    assert declared == {name: DEFAULTS[name] for name in ESTIMATOR_SETTINGS}
    for name in ESTIMATOR_SETTINGS:  # and its documentation lists each with its default
        assert f"{name} : {SETTINGS[name].kind}, default {DEFAULTS[name]!r}" in Estimator.__doc__


def test_training_config_defaults_are_the_settings_table():
    fields = {f.name: f.default for f in dataclasses.fields(TrainingConfig)}
    for name, default in fields.items():
        if name != "early_stopping":
            assert SETTINGS[name].training and default == DEFAULTS[name], name
    assert {name for name, s in SETTINGS.items() if s.training} == set(fields) - {"early_stopping"}
    assert TrainingConfig().max_epochs == DropoutMLPRegressor().max_epochs == 200


def test_gamma_defaults_to_each_schedules_own_decay():
    assert TrainingConfig(schedule="step").make_schedule()(10) == pytest.approx(1e-4)
    assert TrainingConfig(schedule="exponential").make_schedule()(1) == pytest.approx(0.95e-3)
    assert TrainingConfig(schedule="exponential", gamma=0.5).make_schedule()(1) == 0.5e-3


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("make, error, match", [
    (lambda: StackedMLPRegressor("independent", 0), ValueError,
     r"'n_members' parameter of StackedMLPRegressor must be in \[1, inf\]; got 0"),
    (lambda: StackedMLPRegressor("boosted", 2), ValueError,
     r"'kind' parameter of StackedMLPRegressor must be one of 'independent', 'bagged', "
     r"'fixed_mask', 'dropout'; got 'boosted'"),
    (lambda: StackedMLPRegressor(member_params={"max_iter": 30}), ValueError,
     r"StackedMLPRegressor \(member_params\) got unknown setting 'max_iter'; the valid settings "
     r"are hidden_layer_sizes, activation, .*verbose\."),
    (lambda: StackedMLPRegressor(member_params={"random_state": 3}), ValueError,
     r"unknown setting 'random_state'"),
    (lambda: StackedMLPRegressor(member_params={"keep_prob": 0.0}), ValueError,
     r"'keep_prob' parameter of StackedMLPRegressor \(member_params\) must be in \(0, 1\]; "
     r"got 0"),
    (lambda: StackedMLPRegressor(member_params=[("keep_prob", 0.5)]), TypeError,
     r"'member_params' parameter of StackedMLPRegressor must be a dict"),
    (lambda: StackedMLPRegressor("fixed_mask", 2, member_params={"keep_prob": 1.0}), ValueError,
     r"needs keep_prob < 1 or input_keep_prob < 1"),
    (lambda: StackedMLPClassifier(member_params={"batch_norm": True, "batch_size": 1}),
     ValueError, r"'batch_size' parameter of StackedMLPClassifier must be >= 2"),
    (lambda: StackedMLPRegressor(max_bytes=0), ValueError,
     r"'max_bytes' parameter of StackedMLPRegressor must be in \[1, inf\]; got 0"),
])
def test_bad_parameters_are_refused_before_any_work(make, error, match):
    X, y = _regression(n=20)
    estimator = make()
    with pytest.raises(error, match=match):
        estimator.fit(X, y)
    assert not hasattr(estimator, "stack_")


@pytest.mark.parametrize("call, error, match", [
    (lambda: make_ensemble("bagged_mlp", 0), ValueError,
     r"'n_estimators' parameter of make_ensemble must be in \[1, inf\]; got 0"),
    (lambda: make_ensemble("independent_mlp", 3, member_params={"max_iter": 30}), ValueError,
     r"unknown setting 'max_iter'; the valid settings are"),
    (lambda: make_ensemble("dropout_mlp", 3, task="ranking"), ValueError,
     r"'task' parameter of make_ensemble must be one of 'regression', 'classification'"),
    (lambda: make_ensemble("random_forest", 3, task="classification"), ValueError,
     r"must be 'regression' for kind 'random_forest'"),
    (lambda: make_ensemble("dropout_mlp", 3, max_features=0.5), TypeError,
     r"unexpected parameter 'max_features' for kind 'dropout_mlp'"),
])
def test_make_ensemble_refuses_bad_mlp_arguments_before_fitting(call, error, match):
    with pytest.raises(error, match=match):
        call()
