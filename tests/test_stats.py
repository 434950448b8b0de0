"""ensim.stats: TOST and intervals against statsmodels, the WLS fit on 1/k, bad input."""

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.weightstats import DescrStatsW

from ensim import EquicorrelatedErrors, simulate
from ensim.claims import equivalence
from ensim.stats import Interval, equivalence_test, fit_inverse_k, jackknife, normal_conf_int


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
    np.testing.assert_allclose(result.conf_int(0.1), d.tconfint_mean(0.1), rtol=1e-12)
    assert "t, 11 dof" in result.summary()
    # Negative control: the z-test on the same numbers is a different (smaller) p-value.
    assert equivalence_test(sample.mean(), d.std_mean, 0.0, 0.5).p_value < result.p_value


def test_few_degrees_of_freedom_turn_a_z_verdict_inconclusive():
    # Estimate 0 with SE 1 and margin 2.2: z_0.95 = 1.64 puts the 90% interval inside
    # the margin, t_0.95 with 3 dof = 2.35 does not.
    assert equivalence("c", 0.0, 1.0, 0.0, 2.2).verdict == "holds"
    assert equivalence("c", 0.0, 1.0, 0.0, 2.2, dof=3).verdict == "inconclusive"
    low, high = normal_conf_int(0.0, 1.0, 0.05, dof=3)
    assert high == pytest.approx(sps.t.ppf(0.975, 3), rel=1e-12) and low == -high


@pytest.mark.parametrize("dof", [0, -1.0, np.inf, "3"])
def test_bad_dof_is_refused(dof):
    error = TypeError if isinstance(dof, str) else ValueError
    with pytest.raises(error, match="'dof' parameter of normal_conf_int"):
        normal_conf_int(0.0, 1.0, dof=dof)
    with pytest.raises(error, match="'dof' parameter of equivalence_test"):
        equivalence_test(0.0, 1.0, 0.0, 1.0, dof=dof)


def test_tost_verdicts_and_interval():
    inside = equivalence_test(1.01, 0.01, 1.0, 0.1)
    outside = equivalence_test(1.5, 0.01, 1.0, 0.1)
    unclear = equivalence_test(1.05, 0.2, 1.0, 0.1)
    assert [equivalence("c", r.estimate, r.stderr, r.target, r.margin).verdict
            for r in (inside, outside, unclear)] == ["holds", "fails", "inconclusive"]
    low, high = inside.conf_int(2 * inside.alpha)     # the 90% interval TOST uses
    assert (high - low) / 2 == pytest.approx(1.6448536 * 0.01, rel=1e-6)
    assert equivalence_test(1.0, 0.0, 1.0, 0.1).p_value == 0.0
    assert equivalence_test(1.2, 0.0, 1.0, 0.1).p_value == 1.0
    assert "equivalent" in inside.summary()


def test_normal_conf_int():
    low, high = normal_conf_int(2.0, 0.5, 0.05)
    assert (low, high) == pytest.approx((2.0 - 0.979982, 2.0 + 0.979982), rel=1e-6)


def test_inverse_k_fit_recovers_c_and_v_minus_c():
    """WLS of measured MSE_ens on 1/k: C and V - C inside 4.5-SE intervals.

    Each of the three checks fails falsely with probability 6.8e-6 if the fit's
    estimates are normal with the stated SEs. Negative control: the fit of data
    from C = 0.35 excludes C = 0.30 by the same criterion.
    """
    V, C = 1.0, 0.3
    ks = np.array([1, 2, 3, 5, 8, 13, 20, 40])
    runs = [simulate(EquicorrelatedErrors(int(k), V, C), 60_000, rng=int(k)) for k in ks]
    fit = fit_inverse_k(ks, [r.mse for r in runs], [r.stderr for r in runs])
    assert abs(fit.covariance - C) < 4.5 * fit.covariance_stderr
    assert abs(fit.slope - (V - C)) < 4.5 * fit.slope_stderr
    assert abs(fit.variance - V) < 4.5 * fit.variance_stderr
    assert fit.covariance_stderr < 0.01 and fit.n_points == ks.size
    low, high = fit.conf_int(0.05, "covariance")
    assert (low + high) / 2 == pytest.approx(fit.covariance, rel=1e-12)
    assert high - low == pytest.approx(2 * 1.959964 * fit.covariance_stderr, rel=1e-6)
    assert "C (intercept)" in fit.summary()

    other = [simulate(EquicorrelatedErrors(int(k), V, 0.35), 60_000, rng=100 + int(k)) for k in ks]
    wrong = fit_inverse_k(ks, [r.mse for r in other], [r.stderr for r in other])
    assert abs(wrong.covariance - C) > 4.5 * wrong.covariance_stderr


def test_inverse_k_fit_on_exact_points():
    ks = np.array([1.0, 2.0, 4.0, 10.0])
    fit = fit_inverse_k(ks, 0.2 + 0.5 / ks, np.zeros(4))
    assert fit.covariance == pytest.approx(0.2) and fit.slope == pytest.approx(0.5)
    assert fit.covariance_stderr == 0.0


@pytest.mark.parametrize("args, words", [
    (([1, 1, 1], [1.0, 1.0, 1.0], [0.1, 0.1, 0.1]), ["two distinct values"]),
    (([1, 2], [1.0, 1.0, 1.0], [0.1, 0.1, 0.1]), ["same length", "2, 3 and 3"]),
    (([1, 2], [1.0, np.nan], [0.1, 0.1]), ["'mse'", "finite"]),
    (([0, 2], [1.0, 1.0], [0.1, 0.1]), ["'k'", ">= 1"]),
    (([1, 2], [1.0, 1.0], [0.1, -0.1]), ["'stderr'", "[0, inf]", "got -0.1 at index 1"]),
])
def test_inverse_k_fit_bad_input(args, words):
    with pytest.raises(ValueError) as info:
        fit_inverse_k(*args)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("kwargs, words", [
    (dict(estimate=1.0, stderr=-1.0, target=1.0, margin=0.1), ["'stderr'", "-1"]),
    (dict(estimate=1.0, stderr=0.1, target=1.0, margin=0.0), ["'margin'", "got 0"]),
    (dict(estimate=1.0, stderr=0.1, target=1.0, margin=0.1, alpha=0.7), ["'alpha'", "0.7"]),
    (dict(estimate=np.nan, stderr=0.1, target=1.0, margin=0.1), ["'estimate'", "finite", "nan"]),
    (dict(estimate=1.0, stderr=0.1, target=np.inf, margin=0.1), ["'target'", "finite", "inf"]),
    (dict(estimate=-np.inf, stderr=0.1, target=1.0, margin=0.1), ["'estimate'", "-inf"]),
])
def test_tost_bad_input(kwargs, words):
    with pytest.raises(ValueError) as info:
        equivalence_test(**kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("stderr, words", [
    (-1.0, ["'stderr' parameter of normal_conf_int", "[0, inf]", "got -1."]),
    (np.nan, ["'stderr'", "finite", "got nan."]),
    (np.array([0.1, 0.2, -0.3, -0.4]), ["got -0.3 at index 2 (2 such entries)"]),
    (np.array([[0.1, np.inf]]), ["got inf at index (0, 1)"]),
])
def test_normal_conf_int_refuses_a_bad_stderr(stderr, words):
    with pytest.raises(ValueError) as info:
        normal_conf_int(np.zeros(np.shape(stderr)), stderr)
    for word in words:
        assert word in str(info.value)


def test_normal_conf_int_keeps_arrays_and_series():
    import pandas as pd

    estimate, stderr = pd.Series([1.0, 2.0]), pd.Series([0.5, 0.0])
    low, high = normal_conf_int(estimate, stderr, 0.05)
    assert isinstance(low, pd.Series)
    q = sps.norm.ppf(0.975)
    np.testing.assert_allclose(low, [1.0 - 0.5 * q, 2.0])
    np.testing.assert_allclose(high, [1.0 + 0.5 * q, 2.0])
    low, high = normal_conf_int(np.array([1.0, 2.0]), np.array([0.5, 0.0]), 0.05)
    np.testing.assert_allclose(low, [1.0 - 0.5 * q, 2.0])


def test_jackknife_of_a_mean_is_its_standard_error(rng):
    # The delete-one jackknife of a sample mean is exactly s / sqrt(n).
    values = rng.normal(size=12)
    est = jackknife(np.mean, values, n_groups=12)
    assert est.estimate[0] == pytest.approx(values.mean(), rel=1e-12)
    assert est.stderr[0] == pytest.approx(values.std(ddof=1) / np.sqrt(12), rel=1e-12)
    low, high = est.conf_int(0.05)                       # Student-t, 11 dof
    assert est.dof == 11
    assert high[0] - low[0] == pytest.approx(2 * 2.200985 * est.stderr[0], rel=1e-6)
    # Negative control: the population sd (ddof=0) is not what it gives.
    assert est.stderr[0] != pytest.approx(values.std() / np.sqrt(12), rel=1e-3)


def test_jackknife_intervals_cover_at_their_level():
    # 10^4 samples of 50 normal values (the columns), a nominal 95% jackknife interval of
    # each mean with G = 10 groups. For a mean over equal groups the t interval with
    # G - 1 dof is exact, so the number covering the true mean is binomial(10^4, 0.95):
    # sd 0.0022, and the band 0.95 +/- 0.01 fails by chance with probability 7e-6.
    samples = np.random.default_rng(7).normal(size=(50, 10_000))
    est = jackknife(lambda q: q.mean(axis=0), samples, n_groups=10)
    low, high = est.conf_int(0.05)
    t_coverage = np.mean((low < 0) & (0 < high))
    assert abs(t_coverage - 0.95) < 0.01, t_coverage
    # Negative control: the normal interval covers P(|T_9| < 1.96) = 0.918; the same
    # band rejects it (it would reach 0.94 by chance with probability 3e-17).
    low, high = normal_conf_int(est.estimate, est.stderr, 0.05)
    z_coverage = np.mean((low < 0) & (0 < high))
    assert z_coverage < 0.94, z_coverage


def test_jackknife_refuses_bad_input():
    with pytest.raises(TypeError, match="'statistic' parameter of jackknife must be callable"):
        jackknife(3, np.ones((5, 2)))
    with pytest.raises(ValueError, match="at least 4 repeats"):
        jackknife(np.mean, np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"'n_groups' parameter of jackknife must be in \[2, 5\]"):
        jackknife(np.mean, np.ones((5, 2)), n_groups=6)


def _interval_results():
    """One result of each class that has ``conf_int``, with its normal or t quantile's
    degrees of freedom (``None``: normal) and the standard error of the interval."""
    sim = simulate(EquicorrelatedErrors(5, 1.0, 0.2), 4_000, rng=3)
    tost = equivalence_test(0.1, 0.05, 0.0, 0.5, dof=7)
    fit = fit_inverse_k([1, 2, 4, 8], [1.0, 0.6, 0.4, 0.3], [0.01, 0.01, 0.01, 0.01])
    est = jackknife(np.mean, np.arange(12.0) ** 2, n_groups=6)
    return [(sim, sim.n_trials - 1, sim.stderr), (tost, 7, tost.stderr),
            (fit, None, fit.covariance_stderr), (est, est.dof, est.stderr[0])]


@pytest.mark.parametrize("index", range(4),
                         ids=["SimulationResult", "EquivalenceResult", "InverseKFit",
                              "JackknifeEstimate"])
def test_every_result_gives_a_named_interval_whose_width_follows_alpha(index):
    result, dof, stderr = _interval_results()[index]
    interval = result.conf_int()
    assert isinstance(interval, Interval) and Interval._fields == ("low", "high")
    low, high = interval                                    # it unpacks as a pair
    assert (low, high) == (interval.low, interval.high)
    np.testing.assert_array_equal(result.conf_int(0.05), interval)   # the default is 0.05
    # The width is 2 q_(1 - alpha/2) SE: alpha = 0.01 widens it by q_0.995 / q_0.975.
    dist = sps.norm if dof is None else sps.t(dof)
    for alpha in (0.05, 0.01, 0.3):
        width = np.ravel(np.subtract(result.conf_int(alpha).high, result.conf_int(alpha).low))
        assert width[0] == pytest.approx(2 * dist.ppf(1 - alpha / 2) * stderr, rel=1e-12)
    # Negative control: a different alpha gives a different width.
    assert np.ravel(result.conf_int(0.01).high)[0] > np.ravel(interval.high)[0]


def test_inverse_k_summary_prints_the_level_it_uses():
    fit = fit_inverse_k([1, 2, 4, 8], [1.0, 0.6, 0.4, 0.3], [0.01, 0.01, 0.01, 0.01])
    assert "95% CI" in fit.summary()
    text = fit.summary(0.1)
    low, high = fit.conf_int(0.1, "variance")
    assert "90% CI" in text and f"[{low:.6g}, {high:.6g}]" in text
    assert "95% CI" not in text                             # negative control


def test_mean_and_se_and_t_interval():
    from ensim.stats import mean_and_se, t_interval, t_quantile

    values = np.array([1.0, 2.0, 4.0, 7.0])
    mean, se, dof = mean_and_se(values)
    assert (mean, dof) == (3.5, 3)
    assert se == pytest.approx(np.sqrt(np.var(values, ddof=1) / 4), rel=1e-15)
    assert t_quantile(3, 0.05) == pytest.approx(3.182446305284263, rel=1e-12)
    assert t_quantile(10**6, 0.05) == pytest.approx(1.959966, rel=1e-6)   # the normal's
    m, s, low, high = t_interval(values, 0.05)
    assert (m, s) == (mean, se)
    assert (low, high) == pytest.approx((mean - 3.182446305284263 * se,
                                         mean + 3.182446305284263 * se), rel=1e-12)
    assert np.isnan(t_interval([2.0], 0.05)[1:]).all() and t_interval([2.0], 0.05)[0] == 2.0
    assert np.isnan(t_interval([], 0.05)).all()
