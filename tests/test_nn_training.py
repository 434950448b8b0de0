"""Training: early stopping on constructed curves, schedules, the loop and its history."""

import numpy as np
import pytest

from ensim.nn import (
    SGD,
    Adam,
    ConstantLR,
    EarlyStopping,
    ExponentialLR,
    StepLR,
    TrainingConfig,
    build_mlp,
    train,
)
from ensim.nn import optim as optim_module


def _run(stopper, curve):
    """Feed ``curve`` to ``stopper`` epoch by epoch, weights = the epoch number.

    Returns the epoch at which it stopped (None if never) and the restored weights.
    """
    stopper.reset()
    for epoch, value in enumerate(curve):
        if stopper.update(epoch, value, get_weights=lambda e=epoch: e):
            return epoch, stopper.best_weights
    return None, stopper.best_weights


# Expected stopping epochs below are worked by hand from Keras's rules (see the
# EarlyStopping docstring): wait += 1 each watched epoch, reset on an improvement
# that also beats the baseline, stop on a non-improving epoch > 0 with wait >= patience.
def test_patience_zero_stops_at_first_non_improvement():
    assert _run(EarlyStopping(), [5, 4, 3, 3.5, 2, 1])[0] == 3


def test_equal_value_is_not_an_improvement():
    assert _run(EarlyStopping(), [5, 4, 4])[0] == 2


def test_patience_counts_epochs_without_improvement():
    curve = [5, 4, 3, 3.5, 3.2, 3.1, 2.0]
    assert _run(EarlyStopping(patience=2), curve)[0] == 4
    assert _run(EarlyStopping(patience=3), curve)[0] == 5
    assert _run(EarlyStopping(patience=4), curve)[0] is None


def test_min_delta_requires_a_large_enough_improvement():
    curve = [5, 4.6, 4.2, 3.8, 3.4]  # steps of 0.4
    assert _run(EarlyStopping(min_delta=0.5), curve)[0] == 1
    assert _run(EarlyStopping(min_delta=0.3), curve)[0] is None


def test_mode_max_and_auto_for_accuracy():
    curve = [0.5, 0.6, 0.55, 0.7]
    assert _run(EarlyStopping("val_accuracy"), curve)[0] == 2  # auto -> max
    assert _run(EarlyStopping("val_accuracy", mode="max"), curve)[0] == 2
    assert _run(EarlyStopping("val_accuracy", mode="min"), curve)[0] == 1


def test_baseline_keeps_wait_running_until_beaten():
    # Above the baseline 2, improvements do not reset wait: by epoch 3 wait = 4.
    curve = [5, 4, 3, 3, 3, 1]
    assert _run(EarlyStopping(patience=2), curve)[0] == 4
    assert _run(EarlyStopping(patience=2, baseline=2.0), curve)[0] == 3
    # Improvements that beat the baseline reset wait as usual.
    assert _run(EarlyStopping(patience=2, baseline=10.0), curve)[0] == 4


def test_start_from_epoch_ignores_warm_up():
    curve = [1, 2, 3, 4, 5, 6]
    assert _run(EarlyStopping(), curve)[0] == 1
    assert _run(EarlyStopping(start_from_epoch=3), curve)[0] == 4


def test_restore_best_weights_remembers_best_epoch():
    stopper = EarlyStopping(patience=2, restore_best_weights=True)
    stopped, weights = _run(stopper, [5, 3, 4, 4, 4])
    assert (stopped, weights, stopper.best_epoch) == (3, 1, 1)
    # With start_from_epoch and no later improvement, the first watched epoch is best.
    stopper = EarlyStopping(restore_best_weights=True, start_from_epoch=2)
    assert _run(stopper, [1, 1, 9, 9.5])[1] == 2
    # Negative control: without restore_best_weights nothing is remembered.
    assert _run(EarlyStopping(patience=2), [5, 3, 4, 4, 4])[1] is None


@pytest.mark.parametrize("kwargs, match", [
    ({"patience": -1}, r"'patience' parameter of EarlyStopping must be in \[0, inf\]; got -1"),
    ({"min_delta": -0.1}, r"'min_delta' parameter of EarlyStopping must be in \[0, inf\]"),
    ({"mode": "up"}, r"'mode' parameter of EarlyStopping must be one of 'auto', 'min', 'max'"),
])
def test_early_stopping_rejects_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)


# ---------------------------------------------------------------- schedules
def test_schedules_follow_their_formulas():
    assert [ConstantLR(0.1)(e) for e in (0, 5)] == [0.1, 0.1]
    assert [StepLR(1.0, step_size=2, gamma=0.5)(e) for e in range(5)] == [1, 1, 0.5, 0.5, 0.25]
    assert ExponentialLR(2.0, gamma=0.5)(3) == 0.25


# -------------------------------------------------------------------- loop
def _regression_data(rng, n=200):
    X = rng.standard_normal((n, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(n))[:, None]  # (n, 1)
    return X, y


def test_training_is_reproducible_from_its_seed(rng):
    X, y = _regression_data(rng)
    config = TrainingConfig(max_epochs=5, batch_size=32)
    runs = []
    for seed in (7, 7, 8):
        net = build_mlp(3, [16], 1, keep_prob=0.8, batch_norm=True, rng=1)
        history = train(net, X, y, config, rng=seed)
        runs.append((history.metrics["loss"], net.get_weights()))
    assert runs[0][0] == runs[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert runs[0][0] != runs[2][0]  # another seed: other shuffles and masks


@pytest.mark.parametrize("config", [
    TrainingConfig(max_epochs=60, batch_size=32, optimizer="adam", learning_rate=1e-2),
    TrainingConfig(max_epochs=60, batch_size=32, optimizer="sgd", learning_rate=1e-2),
    TrainingConfig(max_epochs=60, batch_size=32, optimizer="sgd", learning_rate=1e-2, nesterov=True,
                   schedule="step", step_size=30, gamma=0.5),
], ids=["adam", "sgd-momentum", "sgd-nesterov-step"])
def test_training_fits_a_linear_target(config, rng):
    # The noise variance is 0.01 and Var(y) = 5.25: an MSE under 0.05 means learning.
    X, y = _regression_data(rng)
    net = build_mlp(3, [16], 1, rng=0)
    history = train(net, X, y, config, rng=1)
    assert history.metrics["loss"][-1] < 0.05 < history.metrics["loss"][0]
    assert history.n_epochs == 60 and len(history.learning_rate) == 60


def test_history_records_validation_and_early_stopping(rng):
    X, y = _regression_data(rng, n=300)
    net = build_mlp(3, [32], 1, rng=0)
    stopper = EarlyStopping(patience=3, restore_best_weights=True)
    config = TrainingConfig(max_epochs=200, batch_size=16, learning_rate=0.05, early_stopping=stopper)
    history = train(net, X[:200], y[:200], config, validation_data=(X[200:], y[200:]), rng=1)
    assert set(history.metrics) == {"loss", "mse", "val_loss", "val_mse"}
    assert all(len(v) == history.n_epochs for v in history.metrics.values())
    assert history.stopped_epoch == history.n_epochs - 1 < 199
    best = history.best_epoch
    assert history.metrics["val_loss"][best] == min(history.metrics["val_loss"])
    # The restored network is the best epoch's: its validation loss is that epoch's.
    val_loss = float(((net.forward(X[200:]) - y[200:]) ** 2).mean())
    assert val_loss == pytest.approx(history.metrics["val_loss"][best], rel=1e-12)
    assert val_loss < history.metrics["val_loss"][-1]


def test_max_norm_holds_after_every_step(rng):
    X, y = _regression_data(rng)
    for max_norm, expect_bounded in ((0.5, True), (None, False)):
        net = build_mlp(3, [16], 1, rng=0)
        train(net, X, y, TrainingConfig(max_epochs=20, learning_rate=0.05, max_norm=max_norm), rng=1)
        norms = np.concatenate([np.linalg.norm(W, axis=0) for W in net.dense_weights()])
        assert np.all(norms <= 0.5 * (1 + 1e-12)) == expect_bounded  # None: a negative control


def test_l2_penalty_shrinks_weights(rng):
    X, y = _regression_data(rng)
    sizes = []
    for l2 in (0.0, 0.1):
        net = build_mlp(3, [16], 1, rng=0)
        train(net, X, y, TrainingConfig(max_epochs=30, learning_rate=0.01, l2=l2), rng=1)
        sizes.append(sum(float((W**2).sum()) for W in net.dense_weights()))
    assert sizes[1] < 0.5 * sizes[0]


def test_augment_is_called_on_every_batch(rng):
    X, y = _regression_data(rng, n=100)
    seen = []

    def augment(X_batch, generator):
        seen.append(X_batch.shape[0])
        assert isinstance(generator, np.random.Generator)
        return X_batch

    train(build_mlp(3, [4], 1, rng=0), X, y,
          TrainingConfig(max_epochs=2, batch_size=30, augment=augment), rng=0)
    assert seen == [30, 30, 30, 10] * 2


@pytest.mark.parametrize("kwargs, error, match", [
    ({"max_epochs": 0}, ValueError, r"'max_epochs' parameter of TrainingConfig must be in \[1, inf\]"),
    ({"optimizer": "rmsprop"}, ValueError, r"'optimizer' parameter of TrainingConfig must be one of"),
    ({"learning_rate": -1.0}, ValueError, r"'learning_rate' parameter of TrainingConfig must be in"),
    ({"augment": 3}, TypeError, r"'augment' parameter of TrainingConfig must be callable"),
])
def test_training_config_rejects_bad_fields(kwargs, error, match, rng):
    X, y = _regression_data(rng, n=10)
    with pytest.raises(error, match=match):
        train(build_mlp(3, [4], 1, rng=0), X, y, TrainingConfig(**kwargs))


def test_validation_monitor_needs_validation_data(rng):
    X, y = _regression_data(rng, n=10)
    config = TrainingConfig(early_stopping=EarlyStopping("val_loss"))
    with pytest.raises(ValueError, match="monitors 'val_loss', which needs validation_data"):
        train(build_mlp(3, [4], 1, rng=0), X, y, config)


def test_verbose_training_shows_a_progress_bar(rng, capsys):
    X, y = _regression_data(rng, n=20)
    train(build_mlp(3, [4], 1, rng=0), X, y, TrainingConfig(max_epochs=3, verbose=True), rng=0)
    assert "epochs" in capsys.readouterr().err
    train(build_mlp(3, [4], 1, rng=0), X, y, TrainingConfig(max_epochs=3), rng=0)
    assert capsys.readouterr().err == ""  # quiet by default


def test_lone_last_row_is_skipped_with_batch_norm_only(rng):
    # 33 rows in batches of 16: the last batch has one row, which batch
    # statistics cannot use; without batch norm it is trained on.
    X, y = _regression_data(rng, n=33)
    seen = []

    def record(X_batch, generator):
        seen.append(X_batch.shape[0])
        return X_batch

    for batch_norm, expected in ((True, [16, 16]), (False, [16, 16, 1])):
        seen.clear()
        train(build_mlp(3, [4], 1, batch_norm=batch_norm, rng=0), X, y,
              TrainingConfig(max_epochs=1, batch_size=16, augment=record), rng=0)
        assert seen == expected


def test_unknown_monitor_is_refused_before_training(rng):
    X, y = _regression_data(rng, n=10)
    config = TrainingConfig(early_stopping=EarlyStopping("val_accuracy"))
    with pytest.raises(ValueError, match=r"'monitor' parameter of EarlyStopping must be one of "
                                         r"'loss', 'mse', 'val_loss', 'val_mse' for this network; "
                                         r"got 'val_accuracy'"):
        train(build_mlp(3, [4], 1, rng=0), X, y, config, validation_data=(X, y))


def test_batch_size_one_with_batch_norm_is_refused_before_training(rng):
    X, y = _regression_data(rng, n=10)
    net = build_mlp(3, [4], 1, batch_norm=True, rng=0)
    before = net.get_weights()
    with pytest.raises(ValueError, match=r"The 'batch_size' parameter of train must be >= 2 when "
                                         r"the network has BatchNorm; got 1\."):
        train(net, X, y, TrainingConfig(max_epochs=1, batch_size=1), rng=0)
    with pytest.raises(ValueError, match=r"train needs at least 2 training rows when the "
                                         r"network has BatchNorm; got 1\."):
        train(net, X[:1], y[:1], TrainingConfig(max_epochs=1), rng=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.get_weights()))  # nothing ran
    # Positive controls: batches of 2 with batch norm, and of 1 without, train.
    assert train(net, X, y, TrainingConfig(max_epochs=1, batch_size=2), rng=0).n_epochs == 1
    plain = build_mlp(3, [4], 1, rng=0)
    assert train(plain, X, y, TrainingConfig(max_epochs=1, batch_size=1), rng=0).n_epochs == 1


@pytest.mark.parametrize("make", [
    lambda: SGD(),
    lambda: SGD(momentum=0.9),
    lambda: SGD(momentum=0.9, nesterov=True),
    lambda: Adam(),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sliced_optimizer_steps_are_bit_identical_to_whole_array_steps(make, dtype, monkeypatch):
    # Arrays larger than a slice are stepped a cache-sized slice at a time; the
    # arithmetic of each element is unchanged, so every bit must be too. A 2-D
    # (stacked) buffer, a 1-D one and one smaller than a slice, over three steps.
    rng = np.random.default_rng(0)
    shapes = [(3, 70_001), (150_000,), (17,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(3)]

    def run(slice_size):
        monkeypatch.setattr(optim_module, "_STEP_SLICE", slice_size)
        ps, optimizer = [p.copy() for p in params], make()
        for step_grads in grads:
            optimizer.step(list(zip(ps, step_grads)), 0.05)
        return ps

    whole, sliced = run(10**9), run(2**12)
    for a, b, p in zip(whole, sliced, params):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, p)  # the step moved every array
