"""The weight-scaling study: Monte Carlo averaging, the NWGM and the exact ensemble
against the weight-scaled network."""

import dataclasses

import matplotlib
import numpy as np
import pandas as pd
import pytest

import ensim
from ensim.studies.weight_scaling import crossover
from ensim.study import StudyError

matplotlib.use("Agg")

# A few seconds: both tasks, two seeds, tiny networks, 2**8 enumerated sub-networks.
TINY = dict(n_seeds=2, n_draws=3, ks=(1, 2, 5), hidden=(8,), max_epochs=2,
            exact_hidden=(4, 4), exact_seeds=1, exact_n_test=30, identity_hidden=8, logistic_inputs=6,
            logistic_points=5, n_boot=50)


@pytest.fixture(scope="module")
def tiny():
    return ensim.run("weight-scaling", **TINY)


def test_crossover_interpolates_on_the_log_scale():
    assert crossover([1, 2, 4], [1.0, 0.5, -0.5]) == pytest.approx(2 * np.sqrt(2), rel=1e-12)
    assert crossover([1, 2, 4], [1.0, 0.5, 0.1]) == np.inf
    assert crossover([1, 2, 4], [-1.0, 0.5, 0.1]) == 1.0
    assert crossover([1, 10], [1.0, 0.0]) == pytest.approx(10.0)


def test_study_runs_and_its_claims_are_claims(tiny):
    import matplotlib.pyplot as plt

    assert tiny.study.name == "weight-scaling" and tiny.study.order == 50
    curves = tiny.tables["curves"]
    # digits: 2 rules x 4 metrics; friedman1: 1 rule x 2 metrics; 3 ks, 2 seeds
    assert len(curves) == 2 * 3 * (2 * 4 + 2)
    assert (curves.mc_sd >= 0).all() and curves.mc_mean.notna().all()
    exact = tiny.tables["exact"]
    assert set(exact.n_subnetworks) == {2**8}
    np.testing.assert_allclose(exact.total_probability, 1.0, rtol=1e-12)
    assert ((exact.C <= exact.V + 1e-12) & (exact.V >= 0)).all()
    ident = tiny.tables["identities"].set_index("case")
    assert ident.loc["softmax inputs only", "n_subnetworks"] == 2**8
    for claim in tiny.claims:
        assert isinstance(claim, ensim.Claim) and "|" not in claim.statement
        assert claim.statement.startswith("Negative control") == claim.is_control
        if claim.kind == "identity" and not claim.is_control:
            assert claim.verdict == "holds", claim
    controls = [c for c in tiny.claims if c.is_control]
    assert len(controls) == 2 and all(c.verdict == "fails" for c in controls)
    figure = tiny.figure()
    assert len(figure.axes) == 6
    plt.close(figure)


def test_cells_of_one_seed_share_the_data(tiny):
    curves, exact = tiny.tables["curves"], tiny.tables["exact"]
    per_seed = curves.groupby(["task", "seed"]).data_digest.nunique()
    assert (per_seed == 1).all()
    assert curves.groupby("task").data_digest.nunique().eq(2).all()   # seeds differ
    mc = curves.groupby(["task", "seed"]).data_digest.first()
    for _, row in exact.iterrows():
        assert mc.loc[(row.task, row.seed)] == row.data_digest


def test_same_seed_same_tables(tiny):
    again = ensim.run("weight-scaling", **TINY)
    for name, table in tiny.tables.items():
        pd.testing.assert_frame_equal(table, again.tables[name])


def _crossover_claim(tiny, ks, diffs, n_seeds=5):
    """The crossover claim on made-up curves: ``diffs[k]`` plus 0.01 x seed at the last k."""
    config = dataclasses.replace(tiny.config, ks=ks)
    rows = [{"task": "friedman1", "seed": seed, "k": k, "rule": "mean", "metric": "mse",
             "mc_mean": 1.0 + diff - (0.01 * seed if k == ks[-1] else 0.0), "mc_sd": 0.3,
             "weight_scaled": 1.0}
            for seed in range(n_seeds) for k, diff in zip(ks, diffs)]
    tables = dict(tiny.tables, curves=pd.DataFrame(rows))
    return next(c for c in tiny.study.claims(tables, config) if "about k = 50" in c.statement)


def test_the_crossover_claim_sees_a_crossing_at_fifty(tiny):
    claim = _crossover_claim(tiny, (1, 10, 100), (0.2, 0.1, -0.1))
    # mean paired curve 0.2, 0.1, -0.12: it crosses 0 at log10 k = 1 + 0.1 / 0.22
    assert claim.estimate == pytest.approx(10 ** (1 + 0.1 / 0.22), rel=1e-9)
    assert claim.verdict == "holds"
    # negative control: a curve that never crosses up to k = 200 (past the range's end,
    # 125) is not a crossing at 50
    claim = _crossover_claim(tiny, (1, 10, 200), (0.7, 0.6, 0.5))
    assert claim.estimate == np.inf and claim.verdict == "fails"
    # a grid past the range's end keeps its censored interval: beyond 200, so beyond 125
    assert claim.conf_low == 200 and claim.conf_high == np.inf


def test_a_crossover_beyond_the_grid_is_not_refuted_by_it(tiny):
    # No crossing up to k = 50 says only that the crossover lies beyond 50: it may still
    # be in [20, 125], so the claim is inconclusive, not failed.
    # The grid cannot reach the range's end, so no interval is shown (NaN, "—").
    claim = _crossover_claim(tiny, (1, 10, 50), (0.7, 0.6, 0.5))
    assert claim.estimate == np.inf and claim.verdict == "inconclusive"
    assert np.isnan(claim.conf_low) and np.isnan(claim.conf_high)
    assert "beyond 50" in claim.method and "grid ends at 50" in claim.method
    # A crossing inside that short grid is measured: its interval stays, and decides.
    claim = _crossover_claim(tiny, (1, 10, 30, 50), (0.2, 0.1, -0.1, -0.2))
    assert np.isfinite(claim.conf_low) and np.isfinite(claim.conf_high)
    assert "no interval" not in claim.method
    # Four seeds give too few distinct bootstrap resamples for an interval or a verdict.
    claim = _crossover_claim(tiny, (1, 10, 100), (0.2, 0.1, -0.1), n_seeds=4)
    assert claim.verdict == "inconclusive" and "fewer than 5 seeds" in claim.method
    assert np.isnan(claim.conf_low) and np.isnan(claim.conf_high)
    # The run's own (two seeds): no interval on any crossover claim.
    crossings = [c for c in tiny.claims if "about k = 50" in c.statement]
    assert crossings and all(np.isnan(c.conf_low) and np.isnan(c.conf_high)
                             and c.verdict == "inconclusive" for c in crossings)


def _errorbars(ax):
    """Per errorbar on ``ax``: its label, point ``(x, y)`` and bar segments."""
    return [(c.get_label(), c.lines[0].get_xydata(), c.lines[2][0].get_segments())
            for c in ax.containers]


def test_the_curve_panels_draw_what_the_claims_at_kmax_test(tiny):
    import matplotlib.pyplot as plt

    kmax = max(TINY["ks"])
    figure = tiny.figure()
    try:
        for ax, (task, metric) in zip(figure.axes, [("digits", m) for m in
                                                    ("error_rate", "log_loss", "brier")]
                                      + [("friedman1", "mse")]):
            (label, xy, segments), = _errorbars(ax)
            assert "tested" in label and "t interval over 2 seeds" in label
            claim = next(c for c in tiny.claims if c.statement.startswith(
                f"{task}, {metric}: at k = {kmax}, Monte Carlo averaging is better"))
            ws = tiny.tables["curves"].query("task == @task and metric == @metric"
                                             ).groupby("seed").weight_scaled.first().mean()
            (bottom, top), = [sorted(s[:, 1]) for s in segments]
            np.testing.assert_allclose([bottom, xy[0, 1], top],
                                       ws + np.array([claim.conf_low, claim.estimate,
                                                      claim.conf_high]), rtol=1e-10)
            bands = [t.get_text() for t in ax.get_legend().get_texts() if "sd" in t.get_text()]
            assert bands and all("not an interval" in t for t in bands)
    finally:
        plt.close(figure)


def test_the_exact_panel_keeps_its_marks_apart_and_clear(tiny):
    import matplotlib.pyplot as plt

    figure = tiny.figure()
    try:
        figure.canvas.draw()
        ax = figure.axes[4]
        assert "2^8" in ax.get_title()
        bars = {label: (xy, segments) for label, xy, segments in _errorbars(ax)}
        (v_xy, _), (c_xy, _) = bars["sampled V / exact V"], bars["sampled C / exact C"]
        assert (v_xy[:, 0] < c_xy[:, 0]).all()            # V left of C at every k
        # only the exact value, 1, is drawn across the ratio axis
        flat = [line for line in ax.get_lines() if len(line.get_ydata()) == 2
                and np.ptp(line.get_ydata()) == 0]
        assert [line.get_ydata()[0] for line in flat] == [1.0]
        assert any("ratio" in t.get_text() for t in ax.texts)
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any("z interval" in t for t in labels)
        covers = [ax.get_legend().get_window_extent()] + [t.get_window_extent()
                                                          for t in ax.texts]
        for xy, segments in bars.values():
            for x, y in ax.transData.transform(np.vstack([xy, *segments])):
                assert not any(box.contains(x, y) for box in covers)
    finally:
        plt.close(figure)


def test_the_logistic_panel_shows_every_weight_scale(tiny):
    import matplotlib.pyplot as plt

    figure = tiny.figure()
    try:
        ax = figure.axes[5]
        assert ax.get_xscale() == "log"
        log = tiny.tables["logistic"]
        low, high = ax.get_ylim()
        for scale in TINY.get("logistic_scales", tiny.config.logistic_scales):
            (line,) = [ln for ln in ax.get_lines() if ln.get_label() == f"weights × {scale:g}"]
            part = log[log.scale == scale]
            np.testing.assert_allclose(line.get_xdata(), np.abs(part.gap), rtol=1e-12)
            np.testing.assert_allclose(line.get_ydata(), part.approx / part.gap, rtol=1e-12)
            assert (low <= line.get_ydata()).all() and (line.get_ydata() <= high).all()
        # the smallest scale's points are spread over the axis, not at one corner
        smallest = np.abs(log[log.scale == min(tiny.config.logistic_scales)].gap)
        x0, x1 = np.log10(ax.get_xlim())
        assert (np.log10(smallest.max()) - x0) / (x1 - x0) > 0.1
    finally:
        plt.close(figure)


@pytest.mark.parametrize("overrides, words", [
    (dict(keep_prob=1.0), r"keep_prob.*\(0, 1\); got 1"),
    (dict(ks=(5, 2)), "ks.*increasing"),
    (dict(tasks=("mnist",)), "tasks.*'mnist'"),
    (dict(exact_hidden=(12, 12)), r"exact_hidden.*24 units, 2\*\*24"),
    (dict(n_seeds=1), "n_seeds.*got 1"),
])
def test_bad_settings_are_refused_before_any_training(overrides, words, tmp_path, monkeypatch):
    import ensim.nn

    def no_training(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(ensim.nn, "train", no_training)
    with pytest.raises(StudyError, match=words):
        ensim.run("weight-scaling", out=tmp_path, **overrides)
    assert list(tmp_path.iterdir()) == []
