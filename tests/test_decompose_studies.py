"""The three decomposition studies at a tiny scale: protocol, determinism, verdicts."""

import dataclasses

import matplotlib
import numpy as np
import pandas as pd
import pytest

from ensim._random import as_seed_sequence, child_seed, key_from_params
from ensim.claims import Claim
from ensim.decompose import jackknife
from ensim.studies import bagging_bias_variance, ensemble_size, forest_correlation

matplotlib.use("Agg")

TINY = {
    bagging_bias_variance: dict(n_repeats=8, n_test=30, n_groups=4),
    ensemble_size: dict(n_repeats=3, k_max=12, n_test=60),
    forest_correlation: dict(max_features=(1, 10), n_features=10, n_trees=3, n_repeats=8,
                             n_test=10, n_groups=4),
}


def run_tiny(module):
    config = dataclasses.replace(module.QUICK, **TINY[module])
    root = as_seed_sequence(0)
    records = []
    for params in module.cells(config):
        seed = child_seed(root, *key_from_params(params))
        rows = module.run_cell(config, params, seed, "numpy")
        assert rows and all(isinstance(row, dict) for row in rows)
        records += [{**params, **row} for row in rows]
    return config, pd.DataFrame.from_records(records)


@pytest.mark.parametrize("module", list(TINY))
def test_study_runs_plots_and_claims(module):
    import matplotlib.pyplot as plt

    config, table = run_tiny(module)
    assert module.QUICK != module.FULL and module.NAME
    figure = module.plot(table, config)
    plt.close(figure)
    claims = module.claims(table, config)
    assert claims and all(isinstance(c, Claim) for c in claims)
    # Exact identities hold at any scale; negative controls fail at any scale tested.
    for claim in claims:
        if "exact" in claim.statement:
            assert claim.verdict == "holds", claim
        if claim.statement.startswith("Negative control"):
            assert claim.verdict != "holds", claim
    _, again = run_tiny(module)
    pd.testing.assert_frame_equal(table, again)          # same seed, same numbers


def test_jackknife_of_a_mean_is_its_standard_error(rng):
    # The delete-one jackknife of a sample mean is exactly s / sqrt(n).
    values = rng.normal(size=12)
    est = jackknife(np.mean, values, n_groups=12)
    assert est.estimate[0] == pytest.approx(values.mean(), rel=1e-12)
    assert est.stderr[0] == pytest.approx(values.std(ddof=1) / np.sqrt(12), rel=1e-12)
    low, high = est.conf_int(0.05)
    assert high[0] - low[0] == pytest.approx(2 * 1.959964 * est.stderr[0], rel=1e-6)
    # Negative control: the population sd (ddof=0) is not what it gives.
    assert est.stderr[0] != pytest.approx(values.std() / np.sqrt(12), rel=1e-3)


def test_jackknife_refuses_bad_input():
    with pytest.raises(TypeError, match="'statistic' parameter of jackknife must be callable"):
        jackknife(3, np.ones((5, 2)))
    with pytest.raises(ValueError, match="at least 4 repeats"):
        jackknife(np.mean, np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"'n_groups' parameter of jackknife must be in \[2, 5\]"):
        jackknife(np.mean, np.ones((5, 2)), n_groups=6)
