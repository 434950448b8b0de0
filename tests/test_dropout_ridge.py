"""The dropout-ridge study: SGD with dropout on a linear model against the closed form."""

import dataclasses

import matplotlib
import numpy as np
import pandas as pd
import pytest

import ensim
from ensim.studies.dropout_ridge import Config, make_data, wrong_ridge
from ensim.theory import dropout_ridge
from ensim.study import StudyError

matplotlib.use("Agg")

# About a second: two seeds, one keep probability, both kinds and schedules, 300 steps.
TINY = dict(n_seeds=2, keep_probs=(0.5,), n_steps=300, n_checkpoints=5, n_masks=300)


@pytest.fixture(scope="module")
def tiny():
    return ensim.run("dropout-ridge", **TINY)


def test_the_design_tells_the_right_ridge_from_the_wrong_one():
    X, y = make_data(Config(), np.random.SeedSequence(0))
    scales = X.std(axis=0)
    assert scales.max() / scales.min() > 2.5               # Gamma far from a multiple of I
    closed = dropout_ridge(X, y, 0.5, inverted=True, fit_intercept=True).coef
    wrong = wrong_ridge(X, y, 0.5)
    assert np.linalg.norm(wrong - closed) / np.linalg.norm(closed) > 0.1
    # the wrong ridge is a ridge: the same formula with the identity as Gamma
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    lam = np.mean(np.sum(X * X, axis=0))
    np.testing.assert_allclose(wrong, np.linalg.solve(Xc.T @ Xc + lam * np.eye(8), Xc.T @ yc),
                               rtol=1e-12)


def test_study_runs_and_its_claims_are_claims(tiny):
    import matplotlib.pyplot as plt

    assert tiny.study.name == "dropout-ridge" and tiny.study.order == 55
    summary = tiny.tables["summary"]
    assert len(summary) == 2 * 2 * 2                      # seeds x kinds x schedules
    assert summary[["distance", "distance_wrong", "distance_ols"]].notna().all().all()
    # the Monte Carlo objective lands on the closed form: |z| < 4 in every cell
    # (false-failure probability 8 x 6.3e-5)
    z = (summary.objective_mc - summary.objective) / summary.objective_mc_se
    assert (z.abs() < 4).all(), z
    # Negative control: the objective without dropout's penalty is missed in every cell.
    wrong = (summary.objective_mc - summary.objective_unpenalised) / summary.objective_mc_se
    assert (wrong.abs() > 4).all(), wrong
    # SGD went somewhere: the trained weights are closer to the closed form than
    # the initial weights are (every cell, even after 300 steps)
    curves = tiny.tables["curves"]
    first = curves.sort_values("step").groupby(["seed", "kind", "schedule"])["last"].first()
    final = summary.set_index(["seed", "kind", "schedule"]).distance
    assert (final < first.loc[final.index]).all()
    for claim in tiny.claims:
        assert isinstance(claim, ensim.Claim) and "|" not in claim.statement
        assert claim.statement.startswith("Negative control") == claim.is_control
    controls = [c for c in tiny.claims if c.is_control]
    # two seeds give a t interval with one degree of freedom: a control can be
    # inconclusive here, but it must never hold
    assert len(controls) == 2 and all(c.verdict != "holds" for c in controls)
    figure = tiny.figure()
    assert len(figure.axes) == 3
    plt.close(figure)


def test_arms_of_one_seed_share_data_and_initial_weights(tiny):
    summary = tiny.tables["summary"]
    assert (summary.groupby("seed")[["data_digest", "init_checksum"]].nunique() == 1).all().all()
    assert summary.data_digest.nunique() == 2
    # ... and differ in their masks: the two kinds end at different weights
    assert summary.groupby("seed").distance.nunique().eq(4).all()


def test_same_seed_same_tables(tiny):
    again = ensim.run("dropout-ridge", **TINY)
    for name, table in tiny.tables.items():
        pd.testing.assert_frame_equal(table, again.tables[name])


@pytest.mark.parametrize("overrides, words", [
    (dict(keep_probs=(0.5, 1.0)), r"keep_probs.*\(0, 1\); got 1"),
    (dict(keep_probs=(0.0,)), r"keep_probs.*\(0, 1\); got 0"),
    (dict(kinds=("uniform",)), "kinds.*'uniform'"),
    (dict(schedules=("cosine",)), "schedules.*'cosine'"),
    (dict(n_samples=5), "n_samples.*got 5"),
    (dict(learning_rate=0.0), "learning_rate"),
])
def test_bad_settings_are_refused_before_any_work(overrides, words, tmp_path):
    with pytest.raises(StudyError, match=words):
        ensim.run("dropout-ridge", out=tmp_path, **overrides)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises((ValueError, TypeError)):
        dataclasses.replace(Config(), **overrides)
