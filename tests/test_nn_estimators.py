"""scikit-learn estimators: the common checks, composition, and bad input."""

import numpy as np
import pytest
from sklearn.ensemble import BaggingRegressor
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from _sklearn_checks import common_checks, run_array_api_checks

from ensim.nn import (DropoutMLPClassifier, DropoutMLPRegressor, StackedMLPClassifier, build_mlp,
                      train)

_VARIANT = {"hidden_layer_sizes": (16,), "batch_norm": True, "early_stopping": True,
            "learning_rate": 0.01, "validation_fraction": 0.2, "random_state": 0}


_FLOAT32 = {"dtype": "float32", "keep_prob": 0.8, "random_state": 0}

_COMMON_CHECKS, _ARRAY_API_CHECKS = common_checks([
    DropoutMLPRegressor(random_state=0), DropoutMLPClassifier(random_state=0),
    DropoutMLPRegressor(**_VARIANT), DropoutMLPClassifier(**_VARIANT),
    DropoutMLPRegressor(**_FLOAT32), DropoutMLPClassifier(**_FLOAT32)],
    expected_failed_checks=lambda estimator: (
        {"check_methods_subset_invariance": "float32 products differ in the last bits "
                                            "between batch sizes (about 1e-7 relative), "
                                            "the check's tolerance"}
        if estimator.dtype == "float32" and isinstance(estimator, DropoutMLPClassifier) else {}))


@_COMMON_CHECKS
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


def test_array_api_dispatch_leaves_results_unchanged():
    # The six estimators' array API checks, apart (see tests/_sklearn_checks.py).
    assert len(_ARRAY_API_CHECKS) == 6
    run_array_api_checks(_ARRAY_API_CHECKS)


def _regression(rng, n=120):
    X = rng.standard_normal((n, 4))
    return X, X[:, 0] - 2 * X[:, 1] + 0.1 * rng.standard_normal(n)


def test_estimators_compose_with_bagging_pipelines_and_cross_validation(rng):
    # The target is linear with noise sd 0.1 on a variance of 5: the best R^2 is about
    # 0.998, a constant's 0. R^2 > 0.8 says most of the signal was learnt (the seeds are
    # fixed, so the scores are too); a network barely trained stays below it.
    X, y = _regression(rng)
    barely = DropoutMLPRegressor((16,), keep_prob=0.9, max_epochs=1, learning_rate=1e-4,
                                 random_state=0).fit(X, y)
    assert barely.score(X, y) < 0.8                       # control: the bound can fail
    model = DropoutMLPRegressor((16,), keep_prob=0.9, max_epochs=30, learning_rate=0.01,
                                random_state=0)
    bagged = BaggingRegressor(model, n_estimators=3, random_state=0).fit(X, y)
    assert len(bagged.estimators_) == 3 and bagged.score(X, y) > 0.8
    scores = cross_val_score(make_pipeline(StandardScaler(), model), X, y, cv=3)
    assert scores.shape == (3,) and np.all(scores > 0.8)


def test_same_random_state_gives_same_model_and_another_differs(rng):
    X, y = _regression(rng)
    fits = [DropoutMLPRegressor((8,), max_epochs=5, random_state=s).fit(X, y).predict(X)
            for s in (1, 1, 2)]
    np.testing.assert_array_equal(fits[0], fits[1])
    assert not np.allclose(fits[0], fits[2])


def test_thinned_predictions_in_output_space(rng):
    X, y = _regression(rng)
    model = DropoutMLPRegressor((8, 8), max_epochs=3, random_state=0).fit(X, y)
    result = model.predict_thinned(X[:10], model.sample_masks(5, rng=0))
    assert result.members.shape == (5, 10) and result.full.shape == (10,)
    np.testing.assert_allclose(result.full, model.predict(X[:10]), rtol=1e-15)
    clf = DropoutMLPClassifier((8,), max_epochs=3, random_state=0).fit(X, y > 0)
    probs = clf.predict_thinned(X[:10], clf.sample_masks(4, rng=0)).members
    assert probs.shape == (4, 10, 2)
    np.testing.assert_allclose(probs.sum(axis=-1), 1, rtol=1e-12)


def test_history_is_kept_on_the_fitted_model(rng):
    X, y = _regression(rng)
    model = DropoutMLPRegressor((8,), max_epochs=200, early_stopping=True, patience=2,
                                learning_rate=0.01, random_state=0).fit(X, y)
    history = model.history_
    assert model.n_iter_ == history.n_epochs == len(history.metrics["val_loss"])
    assert history.n_epochs < 200 and history.stopped_epoch == history.n_epochs - 1


def test_predict_before_fit_raises(rng):
    with pytest.raises(NotFittedError):
        DropoutMLPClassifier().predict(np.ones((2, 3)))


@pytest.mark.parametrize("params, match", [
    ({"keep_prob": 1.5}, r"'keep_prob' parameter of DropoutMLPRegressor must be in \(0, 1\]; "
                         r"got 1.5"),
    ({"input_keep_prob": 0.0}, r"'input_keep_prob' parameter of DropoutMLPRegressor must be in "
                               r"\(0, 1\]; got 0"),
    ({"hidden_layer_sizes": (4, 0)}, (r"'hidden_layer_sizes' parameter of DropoutMLPRegressor "
                                     r"must be in \[1, inf\]; got 0")),
    ({"optimizer": "lbfgs"}, r"'optimizer' parameter of DropoutMLPRegressor must be one of"),
    ({"dtype": "float16"}, r"'dtype' parameter of DropoutMLPRegressor must be one of"),
    ({"early_stopping": True, "validation_fraction": 1.0},
     r"'validation_fraction' parameter of DropoutMLPRegressor must be in \(0, 1\); got 1"),
])
def test_bad_parameters_are_named_in_fit(params, match, rng):
    X, y = _regression(rng, n=20)
    with pytest.raises(ValueError, match=match):
        DropoutMLPRegressor(**params).fit(X, y)


@pytest.mark.parametrize("Estimator, y_kind", [(DropoutMLPRegressor, "values"),
                                                (DropoutMLPClassifier, "labels")])
@pytest.mark.parametrize("params, match", [
    ({"keep_prob": 2.0}, r"'keep_prob' parameter"),  # a bad parameter
    ({"batch_norm": True, "batch_size": 1}, r"'batch_size' parameter of DropoutMLP(Regressor|"
                                            r"Classifier) must be >= 2 when batch_norm=True; "
                                            r"got 1\."),
    ({"early_stopping": True, "validation_fraction": 0.01}, r"leaves 0 validation"),  # the data
], ids=["keep_prob", "batch_size", "validation_split"])
def test_failed_fit_leaves_a_fresh_estimator_unfitted(Estimator, y_kind, params, match, rng):
    X, y = _regression(rng, n=40)
    y = y if y_kind == "values" else (y > 0).astype(int)
    model = Estimator((4,), max_epochs=2, **params)
    with pytest.raises(ValueError, match=match):
        model.fit(X, y)
    with pytest.raises(NotFittedError):
        model.predict(X)
    assert not [name for name in vars(model) if name.endswith("_")]  # no fitted attributes


def test_failed_refit_keeps_or_forgets_the_whole_previous_fit(rng):
    X, y = _regression(rng, n=40)
    model = DropoutMLPRegressor((4,), max_epochs=2, random_state=0).fit(X, y)
    before = model.predict(X)
    # A bad parameter is refused before anything changes: the previous fit stands.
    model.set_params(keep_prob=2.0)
    with pytest.raises(ValueError, match=r"'keep_prob' parameter"):
        model.fit(X[:, :3], y[:, None].repeat(2, axis=1))
    assert model.n_features_in_ == 4 and model.n_outputs_ == 1
    np.testing.assert_array_equal(model.predict(X), before)
    # A failure past the parameters (here the data) forgets the previous fit whole.
    model.set_params(keep_prob=0.5, early_stopping=True, validation_fraction=0.01)
    with pytest.raises(ValueError, match=r"leaves 0 validation"):
        model.fit(X[:, :3], y[:, None].repeat(2, axis=1))
    with pytest.raises(NotFittedError):
        model.predict(X[:, :3])
    assert not [name for name in vars(model) if name.endswith("_")]


def test_thinned_networks_need_dropout_in_the_estimator(rng):
    X, y = _regression(rng, n=40)
    model = DropoutMLPRegressor((4,), keep_prob=1.0, max_epochs=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"DropoutMLPRegressor.sample_masks needs a Bernoulli "
                                         r"Dropout layer, but keep_prob=1 and input_keep_prob=1 "
                                         r"built none"):
        model.sample_masks(50)
    with pytest.raises(ValueError, match=r"DropoutMLPRegressor.predict_thinned needs a Bernoulli"):
        model.predict_thinned(X, [])
    gaussian = DropoutMLPRegressor((4,), keep_prob=0.5, dropout="gaussian", max_epochs=2,
                                   random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"dropout='gaussian' has no thinned sub-networks"):
        gaussian.sample_masks(5)
    # Positive control: input dropout alone is enough.
    model.set_params(input_keep_prob=0.8).fit(X, y)
    assert model.predict_thinned(X, model.sample_masks(5, rng=0)).members.shape == (5, 40)


def test_batch_norm_needs_two_training_rows_after_the_validation_split(rng):
    X, y = _regression(rng, n=4)
    with pytest.raises(ValueError, match=r"DropoutMLPRegressor needs at least 2 training rows "
                                         r"when batch_norm=True; got 1\."):
        DropoutMLPRegressor(batch_norm=True, early_stopping=True, validation_fraction=0.75).fit(X, y)


def test_validation_split_too_small_for_early_stopping(rng):
    X, y = _regression(rng, n=20)
    with pytest.raises(ValueError, match=r"leaves 0 validation and 20 training examples out of "
                                         r"n_samples=20"):
        DropoutMLPRegressor(early_stopping=True, validation_fraction=0.04).fit(X, y)
    labels = np.repeat([0, 1, 2, 3], 5)
    with pytest.raises(ValueError, match=r"leaves 2 validation.*at least 4 in each \(one per class\)"):
        DropoutMLPClassifier(early_stopping=True, validation_fraction=0.1).fit(X, labels)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs_and_targets_are_refused(bad, rng):
    X, y = _regression(rng, n=20)
    X_bad, y_bad = X.copy(), y.copy()
    X_bad[3, 1], y_bad[5] = bad, bad
    with pytest.raises(ValueError, match="Input X contains"):
        DropoutMLPRegressor().fit(X_bad, y)
    with pytest.raises(ValueError, match="Input y contains"):
        DropoutMLPRegressor().fit(X, y_bad)


def test_labels_unseen_at_fit_are_refused_by_train(rng):
    net = build_mlp(3, [4], 3, task="classification", rng=0)
    X = rng.standard_normal((10, 3))
    y = np.arange(10) % 3
    with pytest.raises(ValueError, match=r"'validation_data' parameter of train holds label 5, "
                                         r"unseen at fit: the network has 3 classes"):
        train(net, X, y, validation_data=(X, np.full(10, 5)))
    with pytest.raises(ValueError, match=r"'y' parameter of train must hold integer class labels"):
        train(net, X, y.astype(float))


def test_train_refuses_non_finite_inputs_and_targets(rng):
    net = build_mlp(3, [4], 1, rng=0)
    X, y = rng.standard_normal((10, 3)), rng.standard_normal((10, 1))
    X_bad, y_bad = X.copy(), y.copy()
    X_bad[0, 0], y_bad[[1, 2], 0] = np.nan, np.inf
    with pytest.raises(ValueError, match=r"'X' parameter of train must hold only finite values; "
                                         r"got 1 NaN or infinite entry"):
        train(net, X_bad, y)
    with pytest.raises(ValueError, match=r"'y' parameter of train .* got 2 NaN or infinite entries"):
        train(net, X, y_bad)


@pytest.mark.parametrize("make", [lambda: DropoutMLPClassifier(max_epochs=2),
                                  lambda: StackedMLPClassifier("independent", 2,
                                                               member_params={"max_epochs": 2})])
def test_one_class_is_refused_before_training(make, rng):
    X = rng.standard_normal((40, 3))
    with pytest.raises(ValueError, match="at least 2 classes; got only the class 0"):
        make().fit(X, np.zeros(40))
    assert len(make().fit(X, np.arange(40) % 2).classes_) == 2     # two classes are fine


def test_gaussian_dropout_from_the_estimators(rng):
    # The estimator's network has Gaussian dropout layers, and it trains and predicts.
    X, y = _regression(rng)
    model = DropoutMLPRegressor((16,), keep_prob=0.8, dropout="gaussian", max_epochs=30,
                                learning_rate=0.01, random_state=0).fit(X, y)
    kinds = {type(layer).__name__ for layer in model.network_.layers}
    assert "GaussianDropout" in kinds and "Dropout" not in kinds
    assert model.score(X, y) > 0.8
    bernoulli = DropoutMLPRegressor((16,), keep_prob=0.8, max_epochs=30, learning_rate=0.01,
                                    random_state=0).fit(X, y)
    assert not np.allclose(model.predict(X), bernoulli.predict(X))   # a different noise
    with pytest.raises(ValueError, match="'dropout' parameter.*'bernoulli', 'gaussian'"):
        DropoutMLPRegressor(dropout="uniform").fit(X, y)
    with pytest.raises(ValueError, match="Bernoulli dropout only; got 'gaussian'"):
        StackedMLPClassifier("dropout", 2, member_params={"dropout": "gaussian"}).fit(
            X, (y > 0).astype(int))


def test_random_state_takes_a_list_of_ints_as_every_rng_does(rng):
    X, y = _regression(rng)
    a = DropoutMLPRegressor((8,), max_epochs=3, random_state=[0, 1]).fit(X, y).predict(X)
    b = DropoutMLPRegressor((8,), max_epochs=3, random_state=[0, 1]).fit(X, y).predict(X)
    c = DropoutMLPRegressor((8,), max_epochs=3, random_state=[0, 2]).fit(X, y).predict(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    with pytest.raises(TypeError, match="non-empty list"):
        DropoutMLPRegressor(random_state=[]).fit(X, y)
