"""Member predictions of real scikit-learn ensembles, and the identities on them."""

import dataclasses

import numpy as np
import pytest
from sklearn.ensemble import BaggingRegressor, VotingRegressor
from sklearn.exceptions import NotFittedError
from sklearn.tree import DecisionTreeRegressor

from ensim.data import KnownTruth
from ensim.decompose import decompose
from ensim.ensembles import ENSEMBLES, fit_repeats, make_ensemble, member_predictions

TRUTH = KnownTruth("friedman1", noise_sd=1.0)


def _params(kind):
    if kind.endswith("mlp"):
        return {"member_params": {"hidden_layer_sizes": (8,), "max_epochs": 30}}
    if kind == "bagged_trees":
        return {"max_features": 0.6}        # members see different feature subsets
    return {"max_features": 0.5}


@pytest.fixture(scope="module")
def data():
    return TRUTH.sample(150, rng=1), TRUTH.sample(300, rng=2)


@pytest.mark.parametrize("kind", ENSEMBLES)
def test_members_average_to_the_ensembles_prediction(kind, data):
    train, test = data
    estimator = make_ensemble(kind, 8, rng=3, **_params(kind)).fit(train.X, train.y)
    members = member_predictions(estimator, test.X)
    assert members.shape == (8, 300)
    np.testing.assert_allclose(members.mean(axis=0), estimator.predict(test.X),
                               rtol=1e-12, atol=1e-12)


def test_feature_subsets_are_respected(data):
    # Negative control for the test above: a bagged ensemble whose members use feature
    # subsets, predicted while ignoring the subsets, does not match predict.
    train, test = data
    estimator = make_ensemble("bagged_trees", 8, rng=3, max_features=0.6).fit(train.X, train.y)
    assert any(len(f) < train.X.shape[1] for f in estimator.estimators_features_)
    # The fitted members fed the first columns instead of their own subset.
    ignoring = [member.predict(test.X[:, :len(f)])
                for member, f in zip(estimator.estimators_, estimator.estimators_features_)]
    assert not np.allclose(np.mean(ignoring, axis=0), estimator.predict(test.X))


@pytest.mark.parametrize("kind", ENSEMBLES)
def test_identities_on_one_trained_ensemble(kind, data):
    # Each side is computed separately: the ensemble's MSE from sklearn's own predict,
    # the terms from the members.
    train, test = data
    estimator = make_ensemble(kind, 8, rng=4, **_params(kind)).fit(train.X, train.y)
    d = decompose(member_predictions(estimator, test.X), test.y)
    mse = np.mean((estimator.predict(test.X) - test.y) ** 2)
    k = d.k
    off = ~np.eye(k, dtype=bool)
    assert mse == pytest.approx(np.mean(np.diag(d.second_moment_matrix)) / k
                                + (k - 1) / k * d.second_moment_matrix[off].mean(), rel=1e-10)
    assert mse == pytest.approx(d.mean_error**2 + np.mean(np.diag(d.covariance_matrix)) / k
                                + (k - 1) / k * d.covariance_matrix[off].mean(), rel=1e-10)
    assert mse == pytest.approx(np.mean(d.mse_per_member) - d.ambiguity, rel=1e-10)
    assert all(identity.holds(1e-10) for identity in d.identities())


def _not_averaging():
    """Fitted-to-be ensembles whose prediction is not the plain mean of their members."""
    from sklearn.ensemble import (AdaBoostRegressor, GradientBoostingRegressor,
                                  RandomForestClassifier, StackingRegressor)
    from sklearn.linear_model import LinearRegression

    trees = [("a", DecisionTreeRegressor(max_depth=2)), ("b", DecisionTreeRegressor())]
    return {
        "AdaBoostRegressor": (AdaBoostRegressor(n_estimators=3, random_state=0), TypeError),
        "GradientBoostingRegressor": (GradientBoostingRegressor(n_estimators=3), TypeError),
        "StackingRegressor": (StackingRegressor(trees, final_estimator=LinearRegression()),
                              TypeError),
        "RandomForestClassifier": (RandomForestClassifier(n_estimators=3, random_state=0),
                                   TypeError),
        "VotingRegressor": (VotingRegressor(trees, weights=[3, 1]), ValueError),
    }


@pytest.mark.parametrize("name", list(_not_averaging()))
def test_ensembles_that_do_not_average_are_refused(name, data):
    train, test = data
    estimator, error = _not_averaging()[name]
    target = train.y > np.median(train.y) if name.endswith("Classifier") else train.y
    estimator.fit(train.X, target)
    # Why they are refused: the mean of their members is not their prediction.
    members = [m.predict(test.X) for m in np.ravel(estimator.estimators_)]
    assert not np.allclose(np.mean(members, axis=0), estimator.predict(test.X))
    with pytest.raises(error, match=f"'estimator' parameter of member_predictions .*{name}"
                                    if error is TypeError else r"weights=\[3, 1\]"):
        member_predictions(estimator, test.X)


def test_an_unweighted_voting_regressor_is_accepted(data):
    # Negative control of the refusals above: the same members, averaged equally.
    train, test = data
    trees = [("a", DecisionTreeRegressor(max_depth=2)), ("b", DecisionTreeRegressor())]
    estimator = VotingRegressor(trees).fit(train.X, train.y)
    np.testing.assert_allclose(member_predictions(estimator, test.X).mean(axis=0),
                               estimator.predict(test.X), rtol=1e-12)


def test_make_ensemble_refuses_weights():
    with pytest.raises(TypeError, match=r"'weights' parameter of make_ensemble .*"
                                        r"got weights=\[1, 2\]"):
        make_ensemble("independent_mlp", 2, weights=[1, 2])


@pytest.mark.parametrize("kind", ["bagged_trees", "random_forest", "extra_trees"])
def test_identities_across_training_sets(kind):
    test = TRUTH.sample(200, rng=5)
    predictions = fit_repeats(lambda s: make_ensemble(kind, 6, rng=s, **_params(kind)),
                              lambda s: TRUTH.sample(100, rng=s), test.X, 8, rng=6)
    d = decompose(predictions, test.y, test.f)
    identities = d.identities()
    assert len(identities) == 8
    for identity in identities:
        assert identity.holds(1e-10), (identity.name, identity.relative_error)
    # Negative control: the sides are measured apart, so an ensemble error off by one
    # part in 10^6 breaks the four identities that have it on one side.
    wrong = dataclasses.replace(d, loss=d.loss * (1 + 1e-6))
    assert [i.name for i in wrong.identities() if not i.holds(1e-10)] == [
        "bias-variance", "bias-variance-covariance", "ambiguity (expected)",
        "bias-variance-diversity"]


def test_fit_repeats_is_reproducible_and_keyed_by_repeat():
    test = TRUTH.sample(20, rng=7)

    def run(n_repeats, rng):
        return fit_repeats(lambda s: make_ensemble("random_forest", 3, rng=s),
                           lambda s: TRUTH.sample(50, rng=s), test.X, n_repeats, rng=rng)

    a, b = run(3, 11), run(3, 11)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(run(2, 11), a[:2])      # repeat r does not depend on R
    assert not np.array_equal(run(3, 12), a)


def test_fixed_training_set_redraws_only_the_ensemble():
    test = TRUTH.sample(20, rng=7)
    seen = []

    def draw(seed):
        sample = TRUTH.sample(50, rng=seed)
        seen.append(sample.y.sum())
        return sample.X, sample.y

    fit_repeats(lambda s: make_ensemble("bagged_trees", 3, rng=s), draw, test.X, 3, rng=1,
                fixed_training_set=True)
    assert len(set(seen)) == 1


def test_bad_input_is_refused(data):
    train, test = data
    with pytest.raises(NotFittedError):
        member_predictions(make_ensemble("random_forest", 3), test.X)
    tree = DecisionTreeRegressor().fit(train.X, train.y)
    with pytest.raises(TypeError, match="averages its members' predictions .*"
                                        "got DecisionTreeRegressor"):
        member_predictions(tree, test.X)
    with pytest.raises(TypeError, match="averages its members' predictions .*got ndarray"):
        member_predictions(np.ones(3), test.X)
    empty = VotingRegressor([("tree", DecisionTreeRegressor())]).fit(train.X, train.y)
    empty.estimators_ = []
    with pytest.raises(ValueError, match="at least one member"):
        member_predictions(empty, test.X)
    fitted = BaggingRegressor(n_estimators=2, random_state=0).fit(train.X, train.y)
    with pytest.raises(ValueError, match="NaN"):
        member_predictions(fitted, np.full_like(test.X, np.nan))
    with pytest.raises(ValueError, match="'kind' parameter of make_ensemble must be one of"):
        make_ensemble("boosted_trees")
    with pytest.raises(ValueError, match=r"'n_estimators' .* must be in \[1, inf\]; got 0"):
        make_ensemble("random_forest", 0)
