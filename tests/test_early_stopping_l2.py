"""The early-stopping-l2 study: the eigendirection factors against their closed forms,
ridge against a direct solve, the network comparison's pairing, and bad settings."""

import time

import numpy as np
import pytest

import ensim
from ensim.study import StudyError
from ensim.studies.early_stopping_l2 import (Config, gd_factor, gradient_descent_path,
                                             linear_problem, ridge, ridge_factor,
                                             small_step_gap)

TINY = dict(n_features=8, n_samples=40, taus=(1, 5, 50, 500), n_replicates=3, hidden=(8,),
            n_train=40, n_val=30, n_test=50, max_epochs=120, patience=20,
            l2_multiples=(0.5, 2.0))


@pytest.fixture(scope="module")
def tiny():
    return ensim.run("early-stopping-l2", **TINY)


def test_the_hessian_has_the_declared_eigenvalues():
    config = Config(**{k: v for k, v in TINY.items() if k in ("n_features", "n_samples")})
    X, _, eig, Q = linear_problem(config, np.random.SeedSequence(1))
    H = X.T @ X / X.shape[0]
    np.testing.assert_allclose(Q.T @ H @ Q, np.diag(eig), atol=1e-12)


def test_the_iterates_shrink_each_direction_by_the_closed_form():
    # Reference: w_tau = Q diag(1 - (1 - eps lambda)^tau) Q^T w* (Goodfellow et al. 7.8).
    config = Config(n_features=12, n_samples=60)
    X, y, eig, Q = linear_problem(config, np.random.SeedSequence(2))
    w_star = np.linalg.lstsq(X, y, rcond=None)[0]
    path = gradient_descent_path(X, y, 0.5, (1, 7, 300, 4000))
    for tau, w in path.items():
        closed = Q @ (gd_factor(eig, 0.5, tau) * (Q.T @ w_star))
        np.testing.assert_allclose(w, closed, rtol=0, atol=1e-12)
    # Negative control: ridge's factor with alpha = 1/(tau eps) is not the iterate at tau = 7.
    tau = 7
    ridge_w = Q @ (ridge_factor(eig, 1 / (tau * 0.5)) * (Q.T @ w_star))
    assert np.abs(path[tau] - ridge_w).max() > 1e-3


def test_the_factors_in_the_study_match_their_closed_forms(tiny):
    f = tiny.tables["factors"]
    assert np.abs(f.gd_measured - f.gd_closed).max() < 1e-12
    np.testing.assert_allclose(f.gd_closed, 1 - (1 - f.eps_eig) ** f.tau, rtol=0, atol=1e-15)
    alpha = 1 / (f.tau * f.eps_eig / f.eig)                # 1 / (tau eps)
    np.testing.assert_allclose(f.ridge, f.eig / (f.eig + alpha), rtol=1e-12)


def test_ridge_solves_the_penalised_problem_and_the_small_step_limit():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((30, 4)), rng.standard_normal(30)
    w = ridge(X, y, 0.3)
    grad = X.T @ (X @ w - y) / 30 + 0.3 * w                 # gradient of the objective
    assert np.abs(grad).max() < 1e-12
    x = np.array([1e-3, 1.0, 2.5, 1e3])
    eps = 1e-7                                              # epsilon lambda -> 0
    np.testing.assert_allclose(small_step_gap(x),
                               gd_factor(x / 1e9 / eps, eps, 1e9) - x / (1 + x), atol=1e-6)
    assert 0.2 < small_step_gap(2.5) < 0.21                 # the largest gap, near x = 2.5


def test_the_networks_of_a_replicate_start_from_the_same_weights(tiny):
    nets = tiny.tables["networks"]
    assert set(nets.network) == {"early_stopped", "none", "l2"}
    assert len(nets) == 3 * (2 + 2)
    # tau and the matching penalty are the early-stopped network's, per replicate.
    for _, group in nets.groupby("replicate"):
        assert group.tau.nunique() == 1
        np.testing.assert_allclose(group.match_l2, 1 / (2 * group.tau * 0.05))
    l2 = nets[nets.network == "l2"]
    np.testing.assert_allclose(l2.l2, l2.multiple * l2.match_l2, rtol=1e-12)
    # Stronger penalties give smaller weights (paired: same initial weights).
    for _, group in l2.groupby("replicate"):
        assert np.all(np.diff(group.sort_values("multiple").weight_norm2) < 0)


@pytest.mark.parametrize("overrides, words", [
    (dict(learning_rate=2.5), ["learning_rate", "(0, 2"]),
    (dict(eig_range=(1.0, 0.1)), ["eig_range", "0 < low < high"]),
    (dict(taus=(0, 10)), ["taus", ">= 1"]),
    (dict(l2_multiples=(-1.0,)), ["l2_multiples", "> 0"]),
    (dict(n_val=0), ["n_val", "at least 1"]),
])
def test_bad_settings_are_refused_before_any_training(overrides, words, tmp_path):
    start = time.monotonic()
    with pytest.raises(StudyError) as info:
        ensim.run("early-stopping-l2", out=tmp_path / "r", **overrides)
    assert time.monotonic() - start < 5
    for word in words:
        assert word in str(info.value)
    assert not (tmp_path / "r").exists()


def test_the_figure_draws_every_replicate_and_marks_collapsed_networks(tiny):
    import matplotlib

    matplotlib.use("Agg")
    from ensim.studies.early_stopping_l2 import collapsed_networks, plot

    nets = tiny.tables["networks"].copy()
    assert not collapsed_networks(nets).any()            # control: a tiny run collapses none
    l2 = nets.index[nets.network == "l2"]
    nets.loc[l2[:2], "weight_norm2"] = 1e-36             # two networks decayed to 0
    down = collapsed_networks(nets)
    assert down.sum() == 2 and down[l2[:2]].all()
    fig = plot({**tiny.tables, "networks": nets}, tiny.study.quick)
    for ax in fig.axes[3:5]:
        markers = {}
        for line in ax.get_lines():
            if line.get_linestyle() == "None":
                markers[line.get_marker()] = markers.get(line.get_marker(), 0) + len(
                    line.get_xdata())
        # Each of the 3 replicates' 2 L2 networks and early-stopped one, drawn once.
        assert markers == {"o": 2 * 3 - 2, "x": 2, "s": 3}
    # On the log-scaled norm panel the collapsed ones sit at its floor, inside the axes.
    crosses = [line for line in fig.axes[3].get_lines()
               if line.get_marker() == "x" and len(line.get_ydata())]
    floor = min(float(np.min(line.get_ydata())) for line in crosses)
    assert fig.axes[3].get_ylim()[0] < floor < nets.weight_norm2[~down].min()
    matplotlib.pyplot.close(fig)
