"""Bad input across the public API: each call is refused with the parameter, the value
and what is valid named, before any work (see also the per-module bad-input tests)."""

import math

import numpy as np
import pytest

from ensim import EquicorrelatedErrors, simulate
from ensim import claims as cl
from ensim.data import GaussianNoise, ImageAugmenter, load_dataset, resample, split_and_standardize
from ensim.decompose import ensemble_mse_curve
from ensim.ensembles import fit_repeats, make_ensemble
from ensim.nn import (
    DropoutMLPRegressor,
    EarlyStopping,
    TrainingConfig,
    build_mlp,
    build_stacked_mlp,
    stacked_training_bytes,
    train,
    train_stacked,
)
from ensim.nn.layers import Dense
from ensim.nn.network import Network
from ensim.stats import fit_inverse_k, jackknife, normal_conf_int
from ensim.theory import dropout_ridge

X = np.random.default_rng(0).normal(size=(20, 3))
Y = X.sum(axis=1)
Y2 = Y[:, None]
NET = build_mlp(3, (4,), 1, rng=0)
STACK = build_stacked_mlp(3, (4,), 1, 2, rng=0)


def _never_called(*args):
    raise AssertionError("work started before the bad input was refused")


CASES = [
    # Flags: a string such as "no" would count as true.
    (lambda: dropout_ridge(X, Y, 0.5, inverted="no"), TypeError, "'inverted'.*True or False.*'no'"),
    (lambda: dropout_ridge(X, Y, 0.5, fit_intercept=2), TypeError, "'fit_intercept'.*got 2"),
    (lambda: split_and_standardize(X, Y, per_feature="no"), TypeError, "'per_feature'"),
    (lambda: split_and_standardize(X, Y, stratify="no"), TypeError, "'stratify'"),
    (lambda: split_and_standardize(X, Y, standardize_target=1), TypeError,
     "'standardize_target'"),
    (lambda: load_dataset("diabetes", standardize_target="no"), TypeError,
     "'standardize_target' parameter of load_dataset"),
    (lambda: build_mlp(3, (4,), 1, batch_norm="no"), TypeError, "'batch_norm'.*'no'"),
    (lambda: TrainingConfig(shuffle="no").validate(), TypeError, "'shuffle'"),
    (lambda: TrainingConfig(verbose="no").validate(), TypeError, "'verbose'"),
    (lambda: TrainingConfig(nesterov="yes").validate(), TypeError, "'nesterov'"),
    (lambda: EarlyStopping(restore_best_weights="no"), TypeError, "'restore_best_weights'"),
    (lambda: fit_repeats(_never_called, _never_called, X, 2, fixed_training_set="no"),
     TypeError, "'fixed_training_set'"),
    # Networks: dtypes that would truncate the weights, a one-class softmax, widths.
    (lambda: build_mlp(3, (4,), 1, dtype=np.int64), TypeError, "'dtype'.*float32 or float64.*int64"),
    (lambda: build_mlp(3, (4,), 1, dtype=bool), TypeError, "'dtype'.*bool"),
    (lambda: build_mlp(3, (4,), 1, dtype="banana"), TypeError, "'dtype' parameter of build_mlp"),
    (lambda: build_mlp(3, (4,), 1, task="classification"), ValueError,
     "'n_outputs'.*number of classes.*at least 2.*got 1"),
    (lambda: build_mlp(3, (4,), 2, batch_norm_convention="tf"), ValueError,
     "'batch_norm_convention'.*'tf'"),
    (lambda: build_mlp(3, 4.0, 1), TypeError, "'hidden_layer_sizes'.*4.0 of type float"),
    (lambda: build_mlp(3, None, 1), TypeError, "'hidden_layer_sizes'.*None"),
    (lambda: build_mlp(3, "64", 1), TypeError, "'hidden_layer_sizes'.*'64'"),
    (lambda: Dense(3, 3, rng=0), TypeError, "'rng' parameter of Dense.*Generator.*int"),
    # Repeats: callables and the test rows are checked before the first fit.
    (lambda: fit_repeats(5, _never_called, X, 2), TypeError, "'make_estimator'.*callable"),
    (lambda: fit_repeats(_never_called, _never_called, np.full((4, 3), np.nan), 2),
     ValueError, "'X_test'.*finite"),
    # The engine: a block too large to allocate names block_size.
    (lambda: simulate(EquicorrelatedErrors(3, 1.0, 0.2), 10, block_size=2**40), ValueError,
     r"'block_size'.*\[1, 5726623061\].*1099511627776"),
    # Intervals and claims.
    (lambda: normal_conf_int(math.nan, 1.0), ValueError, "'estimate'.*finite.*nan"),
    (lambda: normal_conf_int(math.inf, 1.0), ValueError, "'estimate'.*finite"),
    (lambda: normal_conf_int(np.zeros(3), np.ones(2)), ValueError, r"same shape.*\(3,\).*\(2,\)"),
    (lambda: normal_conf_int("x", 1.0), TypeError, "'estimate'"),
    (lambda: cl.direction("s", 1.0, interval=(5, 2)), ValueError, "conf_low <= conf_high"),
    (lambda: cl.within("s", 1.0, 0, 5, 10, -1), ValueError, "lower <= upper"),
    (lambda: cl.identity("s", -5.0), ValueError, "'residual'.*>= 0.*-5"),
    (lambda: cl.Claim("s", None, "a", 0, 1, "holds"), TypeError, "'estimate'.*'a'"),
    (lambda: cl.Claim("s", None, 1.0, 0, 2, "holds", alpha=5), ValueError, r"'alpha'.*\(0, 0.5\)"),
    (lambda: cl.holm([cl.direction("s", 1.0, stderr=0.1)], "f", alpha=2), ValueError,
     "'alpha' parameter of holm"),
    (lambda: cl.holm([1], "f"), TypeError, "'claims' parameter of holm.*Claim"),
    (lambda: cl.count_verdicts([1]), TypeError, "'claims' parameter of count_verdicts"),
    (lambda: cl.all_of("x", [cl.identity("a", 0.0), cl.identity("b", 0.0)], labels=["x"]),
     ValueError, "'labels'.*one label per part"),
    # Training data: shapes, pairs and types before the first step.
    (lambda: train(NET, X, Y2, validation_data=(X, Y2, Y2)), TypeError,
     "'validation_data'.*pair.*3 items"),
    (lambda: train(NET, X, Y2, validation_data=(np.zeros((3, 3)), np.zeros((4, 1)))),
     ValueError, r"y_val of the 'validation_data'.*one target per row of X_val \(3\)"),
    (lambda: train(NET, X, Y2, validation_data=(np.zeros((3, 2)), np.zeros((3, 1)))),
     ValueError, r"X_val of the 'validation_data'.*\(n, 3\)"),
    (lambda: train(NET, np.zeros((0, 3)), np.zeros((0, 1))), ValueError, "'X'.*n >= 1"),
    (lambda: train(NET, X.tolist(), Y2), TypeError, "'X' parameter of train.*list"),
    (lambda: train("net", X, Y2), TypeError, "'network'.*Network.*str"),
    (lambda: train(NET, X, Y2, config={"lr": 1}), TypeError, "'config'.*TrainingConfig.*dict"),
    (lambda: train(NET, X, Y2, masks=5), TypeError, "'masks'.*list"),
    (lambda: train_stacked(STACK, X, Y2, validation_data=(np.zeros((3, 4)), np.zeros((3, 1)))),
     ValueError, "X_val of the 'validation_data' parameter of train_stacked"),
    (lambda: train_stacked(STACK, np.zeros((0, 3)), np.zeros((0, 1))), ValueError, "n >= 1"),
    (lambda: stacked_training_bytes(STACK, -5), ValueError, "'batch_size'.*-5"),
    (lambda: stacked_training_bytes(STACK, 8, optimizer="rmsprop"), ValueError, "'optimizer'"),
    (lambda: stacked_training_bytes(STACK, 8, n_validation=-10), ValueError, "'n_validation'"),
    (lambda: stacked_training_bytes("s", 8), TypeError, "'stack'.*StackedNetwork"),
    # A network's own methods.
    (lambda: NET.apply_max_norm(-1.0), ValueError, r"'max_norm'.*\(0, inf\]"),
    (lambda: NET.set_weights([np.zeros(1)] * 4), ValueError, r"array 0 has shape \(1,\)"),
    (lambda: NET.penalty(l1=-1), ValueError, "'l1' parameter of Network.penalty"),
    (lambda: NET.loss_and_grad(X, Y2, l2=-1.0), ValueError, "'l2'"),
    (lambda: Network([Dense(3, 3, rng=np.random.default_rng(0))], head="mse"), TypeError,
     "'head'.*MSELoss.*'mse'"),
    (lambda: Network(["dense"], head=None), TypeError, "'layers'.*item 0 is a str"),
    # Curves, jackknives, data helpers, ensembles.
    (lambda: ensemble_mse_curve(np.ones((4, 5)), [[0, 0, 0, 0]]), ValueError,
     r"permutations of range\(4\).*order 0"),
    (lambda: ensemble_mse_curve(np.ones((4, 5)), []), ValueError, "at least one order"),
    (lambda: ensemble_mse_curve(np.ones(4), [[0, 1, 2, 3]]), ValueError, "'errors'.*2-D"),
    (lambda: jackknife(lambda q: np.arange(len(q)), np.zeros((10, 3)), n_groups=5),
     ValueError, "'statistic'.*same number of floats"),
    (lambda: jackknife(np.mean, np.full((10, 3), np.nan)), ValueError, "'predictions'.*finite"),
    (lambda: resample(np.full((10, 2), np.nan), np.zeros(10)), ValueError, "'X'.*finite"),
    (lambda: ImageAugmenter(image_shape=8), TypeError, "'image_shape'.*pair"),
    (lambda: ImageAugmenter(image_shape=(2, 2, 2)), TypeError, "'image_shape'"),
    (lambda: ImageAugmenter(scale=np.zeros(64)), ValueError, "'scale'.*> 0"),
    (lambda: ImageAugmenter()(np.zeros((2, 10)), np.random.default_rng(0)), ValueError,
     r"\(batch, 64\)"),
    (lambda: ImageAugmenter()(np.zeros((2, 64)), 0), TypeError, "'rng'.*Generator"),
    (lambda: GaussianNoise(0.1)(np.zeros((2, 3)), None), TypeError, "'rng'.*Generator"),
    (lambda: make_ensemble("random_forest", 3, member_params=5), TypeError,
     "'member_params'.*dict"),
    # A stack's thinned sub-networks: errors name the stack's method, not a member's.
    (lambda: build_stacked_mlp(3, (4,), 1, 2, rng=0, keep_prob=0.5).predict_thinned(
        X, [np.full((2, 3, 4), 0.5)]), ValueError,
     r"'masks\[0\]' parameter of StackedNetwork.predict_thinned.*0 or 1"),
    (lambda: build_stacked_mlp(3, (4,), 1, 2, rng=0, keep_prob=0.5).forward(X, members=[7]),
     TypeError, "'members'.*slice"),
    # A seed of the right type but out of range is a ValueError; another type a TypeError.
    (lambda: DropoutMLPRegressor(random_state=-1).fit(X, Y), ValueError,
     "'random_state'.*non-negative int.*got -1"),
    (lambda: DropoutMLPRegressor(random_state=[1, -2]).fit(X, Y), ValueError,
     r"'random_state'.*got \[1, -2\]"),
    (lambda: DropoutMLPRegressor(random_state=1.5).fit(X, Y), TypeError, "'random_state'.*1.5"),
]


@pytest.mark.parametrize("call, error, match", CASES)
def test_bad_input_is_refused_with_its_name(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
def test_a_fit_that_diverged_is_refused():
    # scikit-learn's MLPs refuse non-finite weights after fit; so do ensim's estimators.
    big = DropoutMLPRegressor((8,), learning_rate=1e300, max_epochs=3, random_state=0)
    with pytest.raises(ValueError, match="diverged.*learning_rate.*1e\\+300"):
        big.fit(X, Y)
    assert not hasattr(big, "network_")
    stacked = make_ensemble("dropout_mlp", 2, rng=0,
                            member_params={"learning_rate": 1e300, "max_epochs": 3})
    with pytest.raises(ValueError, match="StackedMLPRegressor: training diverged"):
        stacked.fit(X, Y)
    # Control: a sane rate fits.
    DropoutMLPRegressor((8,), max_epochs=3, random_state=0).fit(X, Y)


def test_flags_that_are_flags_still_work():
    # The same calls with real booleans (NumPy's too) go through.
    assert dropout_ridge(X, Y, 0.5, inverted=np.True_).coef.shape == (3,)
    assert build_mlp(3, 4, 1, batch_norm=True, rng=0).n_outputs == 1   # an int is one width
    assert build_mlp(3, [], 1, rng=0, dtype="float32").dtype == np.float32
    TrainingConfig(shuffle=False, verbose=False, nesterov=False).validate()


def test_a_block_larger_than_the_run_takes_only_the_runs_memory():
    import tracemalloc

    model = EquicorrelatedErrors(3, 1.0, 0.2)
    simulate(model, 1000, rng=0)             # the first run's lazy imports are not the run's
    tracemalloc.start()
    big = simulate(model, 1000, block_size=2**26, rng=1)   # 2**26 x 3 errors would be 1.5 GiB
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**22
    assert big.n_blocks == 1 and big.n_trials == 1000
    assert big.mse == simulate(model, 1000, block_size=1000, rng=1).mse   # the same block


def test_the_inverse_k_fit_takes_tiny_standard_errors():
    # 1 / stderr**2 overflows at 1e-170; the fit must not depend on the SEs' unit.
    k, mse = [1, 2, 5, 10], [1.0, 0.6, 0.35, 0.28]
    se = np.array([0.01, 0.01, 0.02, 0.01])
    ref = fit_inverse_k(k, mse, se)
    tiny = fit_inverse_k(k, mse, se * 1e-170)
    assert tiny.covariance == pytest.approx(ref.covariance, rel=1e-12)
    assert tiny.slope == pytest.approx(ref.slope, rel=1e-12)
    assert tiny.covariance_stderr == pytest.approx(ref.covariance_stderr * 1e-170, rel=1e-12)
    assert tiny.variance_stderr == pytest.approx(ref.variance_stderr * 1e-170, rel=1e-12)
    assert math.isinf(tiny.chi2)                 # 0.2 / 1e-340 is beyond any float
    small = fit_inverse_k(k, mse, se * 1e-100)
    assert small.chi2 == pytest.approx(ref.chi2 * 1e200, rel=1e-9)


def test_formula_check_refuses_too_few_trials():
    import ensim
    from ensim.study import StudyError

    with pytest.raises(StudyError, match=r"'n_trials'.*\[1000, inf\].*got 3"):
        ensim.run("formula-check", n_trials=3)
