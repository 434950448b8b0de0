"""Error models: validation, and that samples have exactly the requested covariance."""

import numpy as np
import pytest

from ensim import DISTS, EquicorrelatedErrors, GeneralErrors
from ensim._random import numpy_generator
from ensim.errors import _reduce_chunk, _reduce_errors, standardized_draws

N = 200_000  # trials per covariance check


def sample_cov_check(eps, sigma, z=5.0):
    """Max over entries of |sample cov - sigma| / SE, with SE from the fourth moments.

    Each entry's estimate is a mean of n products; SE = sd(product) / sqrt(n). With
    k(k+1)/2 <= 21 entries and |z| < 5 per entry (two-sided 5.7e-7 each for a normal
    statistic) the false-failure probability is below 2e-5 per call, heavy tails
    aside; Student-t (df = 5) products have finite variance, so the CLT still applies.
    """
    n, k = eps.shape
    centred = eps - eps.mean(axis=0)
    worst = 0.0
    for i in range(k):
        for j in range(i, k):
            prod = centred[:, i] * centred[:, j]
            se = prod.std(ddof=1) / np.sqrt(n)
            diff = abs(prod.mean() - sigma[i, j])
            worst = max(worst, diff / se if se > 0 else (0.0 if diff < 1e-12 else np.inf))
    return worst


@pytest.mark.parametrize("dist", DISTS)
def test_standardized_draws_have_zero_mean_unit_variance(dist):
    gen = numpy_generator(np.random.SeedSequence(1))
    x = standardized_draws(dist, gen, (N,), df=8.0)
    se_mean, se_var = 1 / np.sqrt(N), np.sqrt(np.var(x**2) / N)
    # |z| < 5 for each of the two checks: false-failure probability about 1e-6.
    assert abs(x.mean()) < 5 * se_mean
    assert abs(np.mean(x**2) - 1.0) <= 5 * se_var  # Rademacher: x^2 = 1 exactly, SE 0
    # Negative controls: the unscaled Student-t (variance df/(df-2) = 4/3) fails the
    # variance check; a mean shifted by 0.05 (over 5 SE at this N) fails the mean check.
    if dist == "student-t":
        raw = gen.standard_t(8.0, N)
        assert abs(raw.var() - 1.0) > 5 * np.sqrt(np.var(raw**2) / N)
    assert abs(x.mean() + 0.05) >= 5 * se_mean


@pytest.mark.parametrize("dist", DISTS)
@pytest.mark.parametrize("V, C, k", [
    (1.0, 0.5, 4), (2.0, 0.0, 3), (1.5, -0.5, 4), (1.0, -1 / 5, 6), (1.0, 1.0, 3), (3.0, -0.2, 2)])
def test_equicorrelated_sample_covariance(dist, V, C, k):
    model = EquicorrelatedErrors(k, V, C, dist=dist, df=6.0)
    eps = model.sample(N, numpy_generator(np.random.SeedSequence(7)))
    assert eps.shape == (N, k)
    assert sample_cov_check(eps, model.sigma) < 5.0


def test_sample_covariance_check_rejects_wrong_covariance():
    # Negative control: samples of C = 0.5 are far from a claimed C = 0.45.
    model = EquicorrelatedErrors(4, 1.0, 0.5)
    eps = model.sample(N, numpy_generator(np.random.SeedSequence(7)))
    wrong = EquicorrelatedErrors(4, 1.0, 0.45).sigma
    assert sample_cov_check(eps, wrong) > 5.0


@pytest.mark.parametrize("dist", DISTS)
@pytest.mark.parametrize("V, C, k, bias", [
    (1.0, 0.5, 4, 0.0), (2.0, 0.0, 3, 0.3), (1.5, -0.5, 4, [0.1, -0.2, 0.0, 2.0]),
    (1.0, -1 / 5, 6, 0.0), (1.0, 1.0, 3, -1.0), (3.0, -0.2, 2, 0.0), (0.7, 0.2, 1, 0.5),
    (0.7, -0.3, 1, 0.0), (1e-100, 0.5e-100, 5, 0.0), (1e100, -0.25e100, 5, 1e50),
    (1.0, 0.3, 37, 0.0), (2.0, -0.01, 100, 0.5)])     # several chunks of rows, one short
def test_equicorrelated_moments_are_those_of_its_samples(dist, V, C, k, bias):
    # The engine's fast path reduces the factors (Z, W) instead of the errors built
    # from them, drawing Z a chunk of rows at a time (2**16 elements: 1771 rows at
    # k = 37, 655 at k = 100); the same draws must give the moments of the
    # sampled errors.
    model = EquicorrelatedErrors(k, V, C, dist=dist, df=6.0, bias=bias)
    n = 3000
    fast, fast_col = model._moments(n, numpy_generator(np.random.SeedSequence(5)))
    eps = model.sample(n, numpy_generator(np.random.SeedSequence(5)))
    slow, slow_col = _reduce_errors(eps, model._bias_on(np))
    scale = V + float(np.mean(model.bias ** 2))           # E[e^2] per member
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_allclose(fast_col, slow_col, rtol=0, atol=1e-12 * n * np.sqrt(V))


@pytest.mark.parametrize("k", [1, 2, 47, 48, 300])     # each way of summing, both sides of 48
def test_chunk_reduction_gives_the_sums_of_the_chunk(k):
    z = np.random.default_rng(k).standard_normal((200, k)) * 3.0
    sums, squares, col = np.empty(200), np.empty(200), np.full(k, 0.5)
    _reduce_chunk(z.copy(), sums, squares, col, np.ones(k), np.ones(256), np)
    np.testing.assert_allclose(sums, z.sum(axis=1), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(squares, (z * z).sum(axis=1), rtol=1e-13)
    np.testing.assert_allclose(col, 0.5 + z.sum(axis=0), rtol=1e-13)
    if k == 1:   # the shortcut gives exactly the bits of the general products
        assert np.array_equal(sums, z @ np.ones(1))
        assert np.array_equal(squares, (z * z) @ np.ones(1))
        if hasattr(np, "vecdot"):                        # NumPy >= 2
            assert np.array_equal(squares, np.vecdot(z, z))


def test_moment_check_rejects_other_errors():
    # Negative control for the check above: the moments of errors of another
    # covariance (or without the bias) fail it.
    model = EquicorrelatedErrors(4, 1.0, 0.5, bias=0.2)
    fast, _ = model._moments(3000, numpy_generator(np.random.SeedSequence(5)))
    for other in (EquicorrelatedErrors(4, 1.0, 0.45, bias=0.2), EquicorrelatedErrors(4, 1.0, 0.5)):
        eps = other.sample(3000, numpy_generator(np.random.SeedSequence(5)))
        slow, _ = _reduce_errors(eps, model._bias_on(np))
        assert not np.allclose(fast, slow, rtol=1e-12, atol=1e-12)


def test_a_subclass_that_samples_its_own_errors_is_simulated_with_them():
    # The factor shortcut holds only for EquicorrelatedErrors' own sample(): a subclass
    # that draws other errors (here: every error doubled) must be reduced from them.
    from ensim import simulate

    class Doubled(EquicorrelatedErrors):
        def sample(self, n, gen, xp=np, out=None):
            return 2.0 * super().sample(n, gen, xp, out)

    class OwnMoments(EquicorrelatedErrors):
        def _moments(self, n, gen, xp=np, out=None):
            return _reduce_errors(3.0 * EquicorrelatedErrors.sample(self, n, gen, xp, out),
                                  None, xp)

    class Delegating(EquicorrelatedErrors):     # its _moments defers to the factor path
        calls = 0

        def _moments(self, n, gen, xp=np, out=None):
            type(self).calls += 1
            return super()._moments(n, gen, xp, out)

    plain = simulate(EquicorrelatedErrors(4, 1.0, 0.5), 4000, rng=3, progress=False)
    doubled = simulate(Doubled(4, 1.0, 0.5), 4000, rng=3, progress=False)
    tripled = simulate(OwnMoments(4, 1.0, 0.5), 4000, rng=3, progress=False)
    delegated = simulate(Delegating(4, 1.0, 0.5), 4000, rng=3, progress=False)
    assert doubled.mse == pytest.approx(4.0 * plain.mse, rel=1e-12)
    assert tripled.mse == pytest.approx(9.0 * plain.mse, rel=1e-12)
    assert delegated.mse == plain.mse and Delegating.calls == delegated.n_blocks


def test_lower_edge_errors_sum_to_zero():
    model = EquicorrelatedErrors(8, 2.0, -2.0 / 7)
    eps = model.sample(1000, numpy_generator(np.random.SeedSequence(3)))
    assert np.max(np.abs(eps.sum(axis=1))) < 1e-12


def test_general_errors_covariance_and_bias():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    sigma = a @ a.T
    sigma[3] = sigma[:, 3] = 0.0        # singular: one member has no error
    bias = np.array([0.1, -0.2, 0.3, 0.0])
    model = GeneralErrors(sigma, bias=bias, dist="exponential")
    eps = model.sample(N, numpy_generator(np.random.SeedSequence(11)))
    assert sample_cov_check(eps, sigma) < 5.0
    # Each member's mean error within 5 SE of its bias: with the covariance check,
    # about 14 |z| < 5 checks, false-failure probability below 1e-5.
    se = np.sqrt(np.diag(sigma) / N)
    assert np.all(np.abs(eps.mean(axis=0) - bias) <= 5 * se + 1e-12)
    # Negative control: no bias at all is told apart for the three biased members.
    assert np.all(np.abs(eps.mean(axis=0) - 0.0)[:3] > 5 * se[:3])
    assert model.theory_mse == pytest.approx(sigma.mean() + bias.mean() ** 2)


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(k=0, variance=1.0, covariance=0.0), ValueError, ["'k'", "EquicorrelatedErrors", "got 0"]),
    (dict(k=3, variance=-1.0, covariance=0.0), ValueError, ["'variance'", "-1"]),
    (dict(k=3, variance=1.0, covariance=1.7), ValueError,
     ["'covariance' parameter of EquicorrelatedErrors", "[-V/(k-1), V] = [-0.5, 1]", "1.7"]),
    (dict(k=3, variance=1.0, covariance=-0.51), ValueError, ["'covariance'", "-0.51"]),
    (dict(k=3, variance=float("nan"), covariance=0.0), ValueError, ["'variance'", "finite"]),
    (dict(k=3, variance=1.0, covariance=0.0, dist="cauchy"), ValueError, ["'dist'", "'cauchy'"]),
    (dict(k=3, variance=1.0, covariance=0.0, dist="student-t", df=2.0), ValueError, ["'df'", "2"]),
    (dict(k=3, variance=1.0, covariance=0.0, bias=[1.0, 2.0]), ValueError, ["'bias'", "(3,)"]),
    (dict(k=3, variance=1.0, covariance=0.0, bias=[1.0, np.inf, 0]), ValueError, ["'bias'", "finite"]),
    (dict(k="3", variance=1.0, covariance=0.0), TypeError, ["'k'", "integer"]),
    # Too many members: a clear bound instead of a MemoryError.
    (dict(k=10**12, variance=1.0, covariance=0.0), ValueError,
     ["'k' parameter of EquicorrelatedErrors", "[1, 1000000]", "got 1000000000000"]),
    # Variances whose squares (and their sums) overflow or underflow float64.
    (dict(k=10, variance=1e308, covariance=0.5e308), ValueError,
     ["'variance' parameter of EquicorrelatedErrors", "[1e-100, 1e+100] or exactly 0", "1e+308"]),
    (dict(k=10, variance=1e300, covariance=0.0), ValueError, ["'variance'", "1e+300"]),
    (dict(k=10, variance=1e-200, covariance=0.0), ValueError, ["'variance'", "1e-200"]),
    (dict(k=3, variance=1.0, covariance=0.0, bias=[0.0, -1e60, 0.0]), ValueError,
     ["'bias'", "[-1e+50, 1e+50]", "1e+60"]),
    (dict(k=3, variance=1.0, covariance=0.0, bias=[True, False, True]), TypeError,
     ["'bias'", "booleans"]),
])
def test_equicorrelated_bad_input(kwargs, exc, words):
    with pytest.raises(exc) as info:
        EquicorrelatedErrors(**kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("sigma, words", [
    (np.ones((2, 3)), ["square", "(2, 3)"]),
    (np.array([[1.0, 0.5], [0.4, 1.0]]), ["symmetric"]),
    (np.array([[1.0, 2.0], [2.0, 1.0]]), ["positive semi-definite", "-1"]),
    (np.array([[1.0, np.nan], [np.nan, 1.0]]), ["finite", "2 NaN"]),
    (np.ones(3), ["2-D"]),
])
def test_general_errors_bad_sigma(sigma, words):
    with pytest.raises(ValueError) as info:
        GeneralErrors(sigma)
    assert "'sigma' parameter of GeneralErrors" in str(info.value)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("sigma, exc, words", [
    (np.eye(2, dtype=bool), TypeError, ["real numbers", "booleans", "dtype bool"]),
    ([["1", "0"], ["0", "1"]], TypeError, ["real numbers", "strings"]),
    ([[1.0, 0.5], [0.5]], ValueError, ["rectangular", "ragged list", "[[1.0, 0.5], [0.5]]"]),
    (1e300 * np.eye(2), ValueError, ["largest entry", "[1e-100, 1e+100] or exactly 0", "1e+300"]),
    (1e-120 * np.eye(2), ValueError, ["largest entry", "1e-120"]),
])
def test_general_errors_sigma_of_the_wrong_kind_or_scale(sigma, exc, words):
    with pytest.raises(exc) as info:
        GeneralErrors(sigma)
    assert "'sigma' parameter of GeneralErrors" in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_scale_bounds_are_inclusive():
    # The edges of the documented ranges are accepted (and zero errors too).
    for V in (0.0, 1e-100, 1e100):
        assert EquicorrelatedErrors(3, V, 0.0).variance == V
        assert GeneralErrors(V * np.eye(2)).variance == V
    assert EquicorrelatedErrors(10**6, 1.0, 0.0, bias=1e50).k == 10**6
    assert GeneralErrors(np.eye(2, dtype=int)).k == 2     # integers are real numbers


def test_edges_are_accepted_despite_rounding():
    # rho * V can round just past the edge; it must still be accepted.
    for k in (3, 7, 49, 100):
        V = 0.1
        model = EquicorrelatedErrors(k, V, (-1.0 / (k - 1)) * V)
        assert model.theory_mse == pytest.approx(0.0, abs=1e-15)
        assert EquicorrelatedErrors(k, V, V).theory_mse == pytest.approx(V)
