"""The regularizers study: the training loss of the gap at inference without penalty,
pairing of arms, the Holm family against statsmodels with its control, and bad settings
refused before any training."""

import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

import ensim
from ensim.study import StudyError

# A tiny configuration (a few seconds on 2 cores): two tasks, every arm, two grids of two.
TINY = dict(tasks=("digits_120", "friedman1_80"), n_replicates=3, hidden=(8,), max_epochs=6,
            learning_rate=1e-2, l2_grid=(1e-4, 1e-2), keep_prob_grid=(0.8,),
            patience_grid=(2,), angle_grid=(5.0,), shift_grid=(0,), noise_grid=(0.1,),
            l1_grid=(1e-4,), max_norm_grid=(2.0,), n_val_friedman=40, n_test_friedman=60)


@pytest.fixture(scope="module")
def tiny():
    return ensim.run("regularizers", **TINY)


# --------------------------------------------------- the training loss of the gap


def _numpy_forward(net, X):
    """The network at inference, by hand: Dense, ReLU, dropout as the identity."""
    from ensim.nn import Dense, ReLU

    h = X
    for layer in net.layers:
        if isinstance(layer, Dense):
            h = h @ layer.params["W"] + layer.params["b"]
        elif isinstance(layer, ReLU):
            h = np.maximum(h, 0.0)
    return h


def test_the_reported_training_loss_of_a_dropout_network_is_a_pass_without_masks():
    from ensim.nn import TrainingConfig, build_mlp, evaluation_loss, train

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 5)), rng.integers(0, 3, 60)
    net = build_mlp(5, (16,), 3, task="classification", keep_prob=0.5, rng=1)
    history = train(net, X, y, TrainingConfig(max_epochs=5, l2=1e-2), rng=2)
    z = _numpy_forward(net, X)
    z = z - z.max(axis=1, keepdims=True)
    expected = float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(60), y]))
    assert evaluation_loss(net, X, y) == pytest.approx(expected, rel=1e-12)
    # Negative control: what History records (masks drawn, penalty added) is another number.
    assert abs(history.metrics["loss"][-1] - expected) > 1e-3
    assert abs(expected + net.penalty(l2=1e-2) - evaluation_loss(net, X, y)) > 1e-4


def test_the_stacked_loss_is_each_member_alone():
    from ensim.nn import TrainingConfig, build_stacked_mlp, evaluation_loss, train_stacked

    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((40, 4)), rng.standard_normal((40, 1))
    stack = build_stacked_mlp(4, (8,), 1, 3, rng=4, keep_prob=0.7)
    train_stacked(stack, X, y, TrainingConfig(max_epochs=3), rng=4)
    losses = evaluation_loss(stack, X, y)
    assert losses.shape == (3,)
    for i in range(3):
        direct = np.mean((_numpy_forward(stack.member(i), X) - y) ** 2)
        assert losses[i] == pytest.approx(direct, rel=1e-12)
    with pytest.raises(TypeError, match="'network' parameter of evaluation_loss"):
        evaluation_loss("a network", X, y)


def test_the_tables_hold_the_loss_at_inference(tiny):
    reps = tiny.tables["replicates"]
    assert len(reps) == 2 * 12 * 3
    np.testing.assert_allclose(reps.gap, reps.test_loss - reps.train_loss, rtol=1e-12)
    # Dropout arms: the recorded (training-mode) loss is above the loss at inference.
    drop = reps[reps.arm == "dropout"]
    assert (drop.recorded_train_loss > drop.train_loss).all()
    # The regression test error is the test loss in the target's units (sd squared).
    from ensim.studies.regularizers import Config, task_data

    scale = task_data(Config(**TINY), "friedman1_80")["y_scale"]
    part = reps[reps.task == "friedman1_80"]
    np.testing.assert_allclose(part.test_error, part.test_loss * scale**2, rtol=1e-10)


# ---------------------------------------------------------------------- pairing


def test_every_arm_of_a_replicate_has_the_same_split_and_initial_weights(tiny):
    reps = tiny.tables["replicates"]
    assert (reps.groupby(["task", "replicate"]).init_digest.nunique() == 1).all()
    assert (reps.groupby("task").split_digest.nunique() == 1).all()
    # Replicates differ from each other.
    assert (reps.groupby(["task", "arm"]).init_digest.nunique() == 3).all()
    none = reps[reps.arm == "none"].set_index(["task", "replicate"])
    for arm in ("l2_zero", "batch_norm"):        # the same weights, other training: differ
        other = reps[reps.arm == arm].set_index(["task", "replicate"])
        assert (other.test_loss != none.test_loss.loc[other.index]).all()


def test_the_grid_is_the_product_of_the_arms_knobs():
    from ensim.studies.regularizers import Config, arm_grid

    config = Config(l2_grid=(0.0, 1e-3), keep_prob_grid=(0.5, 0.8, 1.0))
    assert arm_grid(config, "none", "digits_full") == [{}]
    assert arm_grid(config, "dropout_l2", "digits_full") == [
        {"keep_prob": p, "l2": lam} for p in (0.5, 0.8, 1.0) for lam in (0.0, 1e-3)]
    assert arm_grid(config, "l2_zero", "friedman1_200") == [{"l2": 0.0}]
    assert len(arm_grid(config, "augmentation", "digits_300")) == 4     # angles x shifts
    assert len(arm_grid(config, "augmentation", "friedman1_200")) == 2  # noise sds


def test_same_seed_same_tables(tiny):
    again = ensim.run("regularizers", **dict(TINY, arms=("none", "l2"), tasks=("friedman1_80",)))
    a = tiny.tables["replicates"].query("task == 'friedman1_80' and arm in ['none', 'l2']")
    b = again.tables["replicates"]
    pd.testing.assert_frame_equal(a.reset_index(drop=True)[b.columns], b.reset_index(drop=True),
                                  check_exact=True)


# -------------------------------------------------------------- Holm and control


def test_the_holm_family_agrees_with_statsmodels(tiny):
    from statsmodels.stats.multitest import multipletests

    from ensim.stats import mean_and_se
    from ensim.studies.regularizers import paired

    reps = tiny.tables["replicates"]
    task = "digits_120"
    family = [c for c in tiny.claims if c.family == f"test_loss against none ({task})"]
    arms = [a for a in ensim.studies.regularizers.ARMS if a != "none"]
    assert len(family) == len(arms)
    raw = []
    for arm in arms:
        mean, se, dof = mean_and_se(paired(reps, task, arm, "test_loss"))
        raw.append(1.0 if se == 0 else min(1.0, 2 * sps.t(dof).sf(abs(mean) / se)))
    _, adjusted, _, _ = multipletests(raw, alpha=0.05, method="holm")
    np.testing.assert_allclose([c.p_value for c in family], adjusted, rtol=1e-10)


def test_an_arm_that_changes_nothing_is_not_declared_different(tiny):
    # In the study's own run: the control's test-loss and gap claims (two tasks) do not
    # hold after Holm. Under the null each holds with probability <= 0.025 (one side of
    # a two-sided 5% test), <= 0.1 for the four (per seed: the run's seed is fixed). The
    # test below is its control: the same rule finds a planted effect.
    controls = [c for c in tiny.claims if c.family and "l2_zero" in c.statement]
    assert len(controls) == 4 and all(c.verdict != "holds" for c in controls)


def test_the_claims_separate_a_null_arm_from_a_real_effect():
    # Synthetic paired replicates (30 per arm): the control differs from none by noise
    # only, "l2" lowers the test loss by 1.5 sd of the paired noise. Under the null, Holm
    # declares the control lower with probability <= 0.025 (one side of a 0.05 two-sided
    # test); with this fixed generator the outcome is fixed. The planted effect has power
    # above 0.999 at 30 replicates (t = 1.5 * sqrt(30) = 8.2), the negative control of the
    # check: the same rule must find it.
    from ensim.studies.regularizers import Config, claims

    rng = np.random.default_rng(11)
    rows = []
    base = rng.normal(1.0, 0.2, 30)
    for arm, shift in (("none", 0.0), ("l2", -1.5), ("l2_zero", 0.0)):
        loss = base + shift * 0.1 + rng.normal(0, 0.1 / np.sqrt(2), 30)
        rows += [{"task": "digits_300", "arm": arm, "replicate": i, "test_loss": v,
                  "gap": v - 0.5, "weight_norm2": 1.0} for i, v in enumerate(loss)]
    config = Config(tasks=("digits_300",), arms=("none", "l2", "l2_zero"))
    out = claims({"replicates": pd.DataFrame(rows)}, config)
    by = {c.statement.split(":")[0]: c for c in out if c.family and "test_loss" in c.family}
    assert by["l2 lowers the test loss against none"].verdict == "holds"
    assert by["l2 zero lowers the test loss against none"].verdict != "holds"


# -------------------------------------------------------------------- bad input


@pytest.mark.parametrize("overrides, words", [
    (dict(arms=("none", "ridge")), ["arms", "ridge"]),
    (dict(arms=("l2", "l1")), ["arms", "none"]),
    (dict(l2_grid=(1e-3, -1e-4)), ["l2_grid", "[0, inf]", "-0.0001"]),
    (dict(keep_prob_grid=(0.5, 1.5)), ["keep_prob_grid", "(0, 1]", "1.5"]),
    (dict(keep_prob_grid=(0.0,)), ["keep_prob_grid", "(0, 1]", "got 0"]),
    (dict(val_fraction=0.0001), ["val_fraction", "at least one validation row", "0 rows"]),
    (dict(n_val_friedman=0), ["n_val_friedman", "zero rows"]),
    (dict(tasks=("mnist_300",)), ["tasks", "mnist_300"]),
    (dict(tasks=("digits_5000",)), ["tasks", "1079"]),
])
def test_bad_settings_are_refused_before_any_training(overrides, words, tmp_path):
    start = time.monotonic()
    with pytest.raises(StudyError) as info:
        ensim.run("regularizers", out=tmp_path / "r", **overrides)
    assert time.monotonic() - start < 5
    for word in words:
        assert word in str(info.value)
    assert not (tmp_path / "r").exists()


def test_every_arm_has_its_own_colour_in_the_figure(tiny):
    from matplotlib.colors import to_hex

    from ensim.plotting import color_cycle

    assert len(set(color_cycle(12))) == 12                # all twelve arms tell apart
    assert color_cycle(13)[12] == color_cycle(13)[0]      # the thirteenth repeats
    from ensim.studies.regularizers import CURVE_ARMS

    fig = tiny.figure()
    vc = {line.get_label().split(" (")[0]: to_hex(line.get_color())
          for line in fig.axes[3].get_lines() if line.get_label()[0] != "_"}
    assert len(vc) == 12 and len(set(vc.values())) == 12  # first task's V-C panel
    # The curves panel draws none and the primer's five, each in its V-C colour.
    curves = fig.axes[4]
    solid = [to_hex(line.get_color()) for line in curves.get_lines()
             if line.get_linestyle() == "-" and len(line.get_xdata())]
    assert solid == [vc[arm.replace("_", " ")] for arm in tiny.config.arms
                     if arm in CURVE_ARMS]
    assert len(solid) == 6


def test_the_left_panels_draw_the_paired_differences_the_claims_test(tiny):
    from ensim.stats import mean_and_se
    from ensim.studies.regularizers import paired

    reps, config = tiny.tables["replicates"], tiny.config
    task = next(t for t in config.tasks if t in set(reps.task))
    compared = [a for a in config.arms if a != "none"]
    fig = tiny.figure()
    for ax, column in zip(fig.axes[:3], ("gap", "test_loss", "test_error")):
        drawn = [float(c.lines[0].get_ydata()[0]) for c in ax.containers]
        expected = [mean_and_se(paired(reps, task, arm, column))[0] for arm in compared]
        np.testing.assert_allclose(drawn, expected, rtol=1e-12)
        # Negative control: the unpaired arm means (what the panels drew before) differ.
        part = reps[reps.task == task]
        unpaired = [part[part.arm == arm][column].mean() for arm in compared]
        assert not np.allclose(drawn, unpaired)
