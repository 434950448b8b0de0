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


def test_a_crossover_beyond_the_grid_is_not_refuted_by_it(tiny):
    # No crossing up to k = 50 says only that the crossover lies beyond 50: it may still
    # be in [20, 125], so the claim is inconclusive, not failed.
    claim = _crossover_claim(tiny, (1, 10, 50), (0.7, 0.6, 0.5))
    assert claim.estimate == np.inf and claim.verdict == "inconclusive"
    assert claim.conf_low == 50 and "beyond 50" in claim.method
    # Four seeds give too few distinct bootstrap resamples for a verdict.
    claim = _crossover_claim(tiny, (1, 10, 100), (0.2, 0.1, -0.1), n_seeds=4)
    assert claim.verdict == "inconclusive" and "fewer than 5 seeds" in claim.method


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
