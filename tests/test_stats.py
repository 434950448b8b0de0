"""ensim.stats against statsmodels on raw samples, and the Student-t option."""

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import DescrStatsW

from ensim.stats import equivalence_test, normal_conf_int, verdict_from_equivalence


@pytest.fixture
def sample(rng):
    return rng.normal(loc=0.1, size=12)


def test_z_tost_is_statsmodels_ztost(sample):
    d = DescrStatsW(sample)
    result = equivalence_test(sample.mean(), d.std_mean, 0.0, 0.5)
    assert result.dof is None
    assert result.p_value == pytest.approx(d.ztost_mean(-0.5, 0.5)[0], rel=1e-12)
    np.testing.assert_allclose(normal_conf_int(sample.mean(), d.std_mean, 0.1),
                               d.zconfint_mean(0.1), rtol=1e-12)


def test_t_tost_is_statsmodels_ttost(sample):
    d = DescrStatsW(sample)
    dof = sample.size - 1
    result = equivalence_test(sample.mean(), d.std_mean, 0.0, 0.5, dof=dof)
    assert result.p_value == pytest.approx(d.ttost_mean(-0.5, 0.5)[0], rel=1e-12)
    np.testing.assert_allclose(normal_conf_int(sample.mean(), d.std_mean, 0.1, dof=dof),
                               d.tconfint_mean(0.1), rtol=1e-12)
    np.testing.assert_allclose(result.conf_int(), d.tconfint_mean(0.1), rtol=1e-12)
    assert "t, 11 dof" in result.summary()
    # Negative control: the z-test on the same numbers is a different (smaller) p-value.
    assert equivalence_test(sample.mean(), d.std_mean, 0.0, 0.5).p_value < result.p_value


def test_few_degrees_of_freedom_turn_a_z_verdict_inconclusive():
    # Estimate 0 with SE 1 and margin 2.2: z_0.95 = 1.64 puts the 90% interval inside
    # the margin, t_0.95 with 3 dof = 2.35 does not.
    assert verdict_from_equivalence(equivalence_test(0.0, 1.0, 0.0, 2.2)) == "holds"
    assert verdict_from_equivalence(equivalence_test(0.0, 1.0, 0.0, 2.2, dof=3)) == \
        "inconclusive"
    low, high = normal_conf_int(0.0, 1.0, 0.05, dof=3)
    assert high == pytest.approx(sps.t.ppf(0.975, 3), rel=1e-12) and low == -high


@pytest.mark.parametrize("dof", [0, -1.0, np.inf, "3"])
def test_bad_dof_is_refused(dof):
    error = TypeError if isinstance(dof, str) else ValueError
    with pytest.raises(error, match="'dof' parameter of normal_conf_int"):
        normal_conf_int(0.0, 1.0, dof=dof)
    with pytest.raises(error, match="'dof' parameter of equivalence_test"):
        equivalence_test(0.0, 1.0, 0.0, 1.0, dof=dof)
