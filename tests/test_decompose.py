"""Reference and golden tests of ensim.decompose: known answers, definitions, bad input."""

import itertools

import numpy as np
import pytest

from ensim import decompose as decompose_module
from ensim.decompose import (RepeatedDecomposition, EnsembleDecomposition, bias_variance,
                             decompose)

# --- reference vectors ----------------------------------------------------------------


def test_diversity_prediction_theorem():
    # Page's example: truth 49, estimates 48, 47, 51, 42.
    d = decompose([[48.0], [47.0], [51.0], [42.0]], y=[49.0])
    assert np.mean(d.member_mse) == pytest.approx(14.5, rel=1e-15)
    assert d.mse_ensemble == pytest.approx(4.0, rel=1e-15)
    assert d.ambiguity == pytest.approx(10.5, rel=1e-15)


def test_hand_computed_three_members():
    # y = (1, 3); errors e1 = (1, 0), e2 = (-1, 2), e3 = (0, 1). By hand:
    # member MSE (1/2, 5/2, 1/2), biases all 1/2, ensemble errors (0, 1) -> MSE 1/2;
    # centred errors (1/2,-1/2), (-3/2,3/2), (-1/2,1/2): S = diag(1/4, 9/4, 1/4),
    # S12 = -3/4, S13 = -1/4, S23 = 3/4 -> V = 11/12, C = -1/12, rho = -1/11;
    # cross moments M12 = -1/2, M13 = 0, M23 = 1 -> 1/6; ambiguity 2/3.
    d = decompose([[2.0, 3.0], [0.0, 5.0], [1.0, 4.0]], y=[1.0, 3.0])
    assert isinstance(d, EnsembleDecomposition)
    np.testing.assert_allclose(d.member_mse, [0.5, 2.5, 0.5], rtol=1e-15)
    np.testing.assert_allclose(d.member_bias, [0.5, 0.5, 0.5], rtol=1e-15)
    expected = dict(mse_ensemble=0.5, mean_square=7 / 6, cross_moment=1 / 6, bias=0.5,
                    variance=11 / 12, covariance=-1 / 12, rho=-1 / 11, ambiguity=2 / 3)
    for name, value in expected.items():
        assert getattr(d, name) == pytest.approx(value, rel=1e-14), name
    np.testing.assert_allclose(d.covariance_matrix,
                               [[0.25, -0.75, -0.25], [-0.75, 2.25, 0.75], [-0.25, 0.75, 0.25]],
                               rtol=1e-14)
    np.testing.assert_allclose(d.second_moment_matrix,
                               [[0.5, -0.5, 0.0], [-0.5, 2.5, 1.0], [0.0, 1.0, 0.5]],
                               rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(d.correlation_matrix,
                               [[1, -1, -1], [-1, 1, 1], [-1, 1, 1]], rtol=1e-14)
    assert all(identity.holds(1e-14) for identity in d.identities())


@pytest.mark.parametrize("n", [2, 3])
def test_correlation_of_two_bootstrap_means_is_n_over_2n_minus_1(n):
    # Enumerate the whole joint law: data Z uniform on {-1, 1}^n, and two bootstrap
    # resamples (index tuples in {0..n-1}^n), all equally likely. Each member is the
    # mean of its resample. Over this exact law the sampling correlation of the two
    # members is n / (2n - 1), and so is ESL's variance ratio
    # Var_Z E[T|Z] / (Var_Z E[T|Z] + E_Z Var[T|Z]) = (1/n) / (1/n + (n-1)/n^2).
    data = np.array(list(itertools.product([-1.0, 1.0], repeat=n)))        # (2^n, n)
    resamples = np.array(list(itertools.product(range(n), repeat=n)))      # (n^n, n)
    means = data[:, resamples].mean(axis=2)                                # (2^n, n^n)
    first = np.repeat(means, len(resamples), axis=1)                       # pairs (a, b)
    second = np.tile(means, (1, len(resamples)))
    predictions = np.stack([first.ravel(), second.ravel()], axis=1)[:, :, None]  # (R, 2, 1)
    d = decompose(predictions, y=[0.0])
    assert d.rho[0] == pytest.approx(n / (2 * n - 1), rel=1e-12)
    # The variance components are unbiased sample estimates, so over the enumerated
    # population of R repeats the between-set part carries R / (R-1) on Var qbar,
    # and Var qbar = Var_Z E[T|Z] + E_Z Var[T|Z] / 2 = 1/n + (n-1)/(2 n^2) exactly.
    n_repeats = predictions.shape[0]
    within = (n - 1) / n**2
    between = n_repeats / (n_repeats - 1) * (1 / n + within / 2) - within / 2
    assert d.within_set_variance[0] == pytest.approx(within, rel=1e-12)
    assert d.between_set_variance[0] == pytest.approx(between, rel=1e-12)
    assert d.rho_ratio[0] == pytest.approx(between / (between + within), rel=1e-12)
    # ... which tends to n / (2n - 1) as R grows: within 2 / R here.
    assert abs(d.rho_ratio[0] - n / (2 * n - 1)) < 2 / n_repeats


# --- definitions, computed the slow way ------------------------------------------------


def _slow_test_points(q, y):
    """View 1 straight from the definitions, with explicit loops over member pairs."""
    k, n = q.shape
    e = q - y
    b = e.mean(axis=1)
    cov = np.array([[np.mean((e[i] - b[i]) * (e[j] - b[j])) for j in range(k)]
                    for i in range(k)])
    mom = np.array([[np.mean(e[i] * e[j]) for j in range(k)] for i in range(k)])
    off = ~np.eye(k, dtype=bool)
    return dict(mse_ensemble=np.mean((q.mean(axis=0) - y) ** 2),
                mean_square=np.mean(np.diag(mom)), cross_moment=mom[off].mean(), bias=b.mean(),
                variance=np.mean(np.diag(cov)), covariance=cov[off].mean(),
                ambiguity=np.mean((q - q.mean(axis=0)) ** 2), cov=cov, mom=mom)


def _slow_across_repeats(q, y, f):
    """Pointwise terms straight from the definitions (loops over test points and pairs)."""
    n_repeats, k, n = q.shape
    out = {name: np.empty(n) for name in
           ("covariance", "variance", "loss", "bias", "average_bias", "diversity")}
    for t in range(n):
        x = q[:, :, t]                                        # (R, k)
        c = np.cov(x, rowvar=False, ddof=0)                   # (k, k) across repeats
        out["covariance"][t] = c[~np.eye(k, dtype=bool)].mean()
        out["variance"][t] = np.diag(c).mean()
        out["loss"][t] = np.mean((x.mean(axis=1) - y[t]) ** 2)
        out["bias"][t] = x.mean() - f[t]
        out["average_bias"][t] = np.mean((x.mean(axis=0) - f[t]) ** 2)
        out["diversity"][t] = np.mean((x - x.mean(axis=1, keepdims=True)) ** 2)
    return out


@pytest.fixture
def correlated_predictions(rng):
    """(R, k, n) predictions with a shared training-set effect, member effects and bias."""
    n_repeats, k, n = 12, 5, 30
    shared = rng.normal(size=(n_repeats, 1, n))
    own = rng.normal(size=(n_repeats, k, n))
    offsets = rng.normal(size=(1, k, 1))
    y = rng.normal(size=n)
    return 0.3 + y + 0.8 * shared + 0.6 * own + 0.2 * offsets, y, y + 0.1 * rng.normal(size=n)


def test_one_ensemble_matches_definitions(correlated_predictions):
    q, y, _ = correlated_predictions
    d = decompose(q[0], y)
    slow = _slow_test_points(q[0], y)
    for name in ("mse_ensemble", "mean_square", "cross_moment", "bias", "variance",
                 "covariance", "ambiguity"):
        assert getattr(d, name) == pytest.approx(slow[name], rel=1e-12), name
    assert d.rho == pytest.approx(slow["covariance"] / slow["variance"], rel=1e-12)
    np.testing.assert_allclose(d.covariance_matrix, slow["cov"], rtol=1e-12)
    np.testing.assert_allclose(d.second_moment_matrix, slow["mom"], rtol=1e-12)


def test_repeats_match_definitions(correlated_predictions):
    q, y, f = correlated_predictions
    d = decompose(q, y, f, matrices=True)
    assert isinstance(d, RepeatedDecomposition)
    slow = _slow_across_repeats(q, y, f)
    for name, values in slow.items():
        np.testing.assert_allclose(getattr(d, name), values, rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(d.noise, (y - f) ** 2, rtol=1e-15)
    # View 1 per repeat equals decompose of each repeat alone.
    for r in range(q.shape[0]):
        one = decompose(q[r], y)
        assert d.test_points.covariance[r] == pytest.approx(one.covariance, rel=1e-12)
        assert d.test_points.mse_ensemble[r] == pytest.approx(one.mse_ensemble, rel=1e-12)
    # Matrices: the across-repeat covariance matrix averaged over x.
    expected = np.mean([np.cov(q[:, :, t], rowvar=False, ddof=0) for t in range(q.shape[2])],
                       axis=0)
    np.testing.assert_allclose(d.covariance_matrix, expected, rtol=1e-12)
    # Ueda-Nakano's loss is the ensemble mean's own bias-variance decomposition.
    bv = bias_variance(q.mean(axis=1), y, f)
    np.testing.assert_allclose(d.loss, bv.loss, rtol=1e-12)
    np.testing.assert_allclose(d.ensemble_variance, bv.variance, rtol=1e-12)
    assert all(identity.holds(1e-12) for identity in d.identities())


def test_identities_detect_a_wrong_term(correlated_predictions):
    # Negative control: the identity check must fail when one term is wrong, e.g. the
    # covariance computed with divisor n - 1 instead of n.
    q, y, _ = correlated_predictions
    d = decompose(q[0], y)
    n = d.n_test
    wrong = decompose_module.Identity("primer", "", d.mse_ensemble,
                                      d.bias**2 + d.variance / d.k
                                      + (d.k - 1) / d.k * d.covariance * n / (n - 1))
    assert not wrong.holds(1e-10)


def _scaled(function, name, factor):
    """``function`` with the term ``name`` of its result (a dict) multiplied by ``factor``."""
    def wrong(*args):
        out = function(*args)
        out[name] = out[name] * factor
        return out
    return wrong


def test_identity_checks_catch_a_wrong_ensemble_error(correlated_predictions, monkeypatch):
    # Negative control of the checks themselves: an ensemble error 1.5 times too large
    # must break every identity that has MSE_ens on one side. X and C are measured
    # from products of pairs of members, so they do not follow the wrong MSE_ens.
    q, y, f = correlated_predictions
    monkeypatch.setattr(decompose_module, "_test_point_sums",
                        _scaled(decompose_module._test_point_sums, "ensemble_error2", 1.5))
    one = decompose(q[0], y)
    assert [(i.name, i.holds(1e-10)) for i in one.identities()] == [
        ("primer, second moments", False), ("primer with bias", False),
        ("ambiguity (Krogh-Vedelsby)", False)]
    assert all(i.relative_error > 0.1 for i in one.identities())
    # The same wrong term inside a repeated decomposition: its test-point identities.
    repeated = decompose(q, y, f)
    assert not any(i.holds(1e-10) for i in repeated.test_points.identities())


def test_identity_checks_catch_a_wrong_pointwise_term(correlated_predictions, monkeypatch):
    # Negative control: a pointwise covariance 1.5 times too large breaks exactly the
    # identities it appears in, and the others still hold.
    q, y, f = correlated_predictions
    monkeypatch.setattr(decompose_module, "_pointwise_terms",
                        _scaled(decompose_module._pointwise_terms, "covariance", 1.5))
    d = decompose(q, y, f)
    held = {i.name: i.holds(1e-10) for i in d.identities()}
    assert held == {"bias-variance-covariance": False, "ESL ensemble variance": False,
                    "ambiguity (expected)": True, "bias-variance-diversity": True,
                    "primer, second moments": True, "primer with bias": True,
                    "ambiguity (Krogh-Vedelsby)": True}


def test_chunking_does_not_change_results(correlated_predictions, monkeypatch):
    q, y, f = correlated_predictions
    whole = decompose(q, y, f)
    monkeypatch.setattr(decompose_module, "_CHUNK_ELEMENTS", 7)   # one test point per chunk
    parts = decompose(q, y, f)
    for name in RepeatedDecomposition._POINTWISE:
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), rtol=1e-12)
    # View 1 merges the centred sums of the chunks exactly.
    for name in ("variance", "covariance", "cross_moment", "mse_ensemble"):
        np.testing.assert_allclose(getattr(parts.test_points, name),
                                   getattr(whole.test_points, name), rtol=1e-12, err_msg=name)
    assert all(identity.holds(1e-12) for identity in parts.identities())


def test_centred_terms_survive_a_large_bias(rng):
    # C is measured from centred products, so a bias 10^4 times the spread of the errors
    # leaves it accurate (the form <e_i e_j> - b_i b_j would lose about 8 digits).
    k, n = 4, 1000
    shared, own = rng.normal(size=n), rng.normal(size=(k, n))
    q = 1e4 + 0.5 * shared + own
    d = decompose(q, np.zeros(n))
    slow = _slow_test_points(q - 1e4, np.zeros(n))           # same centred terms, no bias
    assert d.covariance == pytest.approx(slow["covariance"], rel=1e-6)
    assert d.variance == pytest.approx(slow["variance"], rel=1e-9)


def test_ensemble_seeds_names_the_third_view(correlated_predictions):
    q, y, _ = correlated_predictions
    d = decompose(q, y, repeats="ensemble_seeds")
    assert d.covariance_view == "ensemble_randomness"
    assert d.rho_ratio is None and d.within_set_variance is None
    assert decompose(q, y).covariance_view == "training_sets"


def test_tables_and_summary(correlated_predictions):
    q, y, f = correlated_predictions
    d = decompose(q, y, f)
    frame = d.to_frame()
    assert set(frame["view"]) >= {"test_points", "training_sets", "ensemble_randomness"}
    row = frame[(frame.term == "covariance") & (frame.view == "training_sets")]
    assert row["value"].item() == pytest.approx(np.mean(d.covariance))
    assert d.pointwise_frame().shape == (q.shape[2], len(RepeatedDecomposition._POINTWISE))
    text = d.summary()
    assert "bias-variance-diversity" in text and "test_points" in text
    assert "ambiguity" in decompose(q[0], y).summary()


def test_bias_variance_identity(rng):
    q = rng.normal(size=(20, 15))
    y, f = rng.normal(size=15), rng.normal(size=15)
    bv = bias_variance(q, y, f)
    np.testing.assert_allclose(bv.variance, q.var(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bv.bias2, (q.mean(axis=0) - f) ** 2, rtol=1e-12)
    assert bv.identities()[0].holds(1e-12)
    assert list(bv.to_frame().columns) == ["loss", "bias2", "variance", "noise", "noise_cross"]


def test_same_input_same_numbers(correlated_predictions):
    q, y, f = correlated_predictions
    a, b = decompose(q, y, f), decompose(q.copy(), y.copy(), f.copy())
    np.testing.assert_array_equal(a.rho, b.rho)


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("predictions, y, message", [
    (np.ones(3), np.ones(3), r"must be a 2-D or 3-D array; got shape \(3,\)"),
    (np.ones((1, 2, 3, 4)), np.ones(4), r"2-D or 3-D array; got shape \(1, 2, 3, 4\)"),
    (np.ones((1, 5)), np.ones(5), r"at least 2 members .* got k=1"),
    (np.ones((1, 3, 5)), np.ones(5), r"at least 2 repeats .* got n_repeats=1"),
    (np.ones((3, 5)), np.ones(4), r"'y' parameter of decompose must have shape \(5,\).*"
                                  r"got shape \(4,\)"),
    (np.ones((3, 5)), np.ones((5, 1)), r"'y' .* must have shape \(5,\)"),
    (np.array([[1.0, np.nan], [1.0, 2.0]]), np.ones(2), r"'predictions' .* finite .* 1 NaN"),
    (np.array([[1.0, np.inf], [1.0, 2.0]]), np.ones(2), r"finite values; got 1 NaN or inf"),
    (np.ones((2, 2)), [1.0, np.nan], r"'y' parameter .* finite"),
    (np.ones((3, 0)), np.ones(0), r"at least 1 test point .* got shape \(3, 0\)"),
    (np.ones((2, 3, 0)), np.ones(0), r"at least 1 test point .* got shape \(2, 3, 0\)"),
])
def test_bad_input_is_refused(predictions, y, message):
    with pytest.raises(ValueError, match=message):
        decompose(predictions, y)


def test_bad_truth_and_options_are_refused():
    with pytest.raises(ValueError, match=r"'f' parameter of decompose must have shape \(2,\)"):
        decompose(np.ones((2, 2)), np.ones(2), f=np.ones(3))
    with pytest.raises(ValueError, match="'repeats' parameter of decompose must be one of"):
        decompose(np.ones((2, 2, 2)), np.ones(2), repeats="bootstrap")
    with pytest.raises(TypeError, match="'matrices' parameter"):
        decompose(np.ones((2, 2)), np.ones(2), matrices="yes")
    with pytest.raises(TypeError, match="'predictions' parameter of decompose must be an array"):
        decompose([["a", "b"]], np.ones(2))
    with pytest.raises(ValueError, match=r"'predictions' parameter of bias_variance must be "
                                         r"a 2-D array; got shape \(2, 2, 2\)"):
        bias_variance(np.ones((2, 2, 2)), np.ones(2))
    with pytest.raises(ValueError, match="n_repeats"):
        bias_variance(np.ones((1, 2)), np.ones(2))
    with pytest.raises(ValueError, match=r"bias_variance must hold at least 1 test point"):
        bias_variance(np.ones((3, 0)), np.ones(0))


def test_options_of_repeats_are_refused_for_one_ensemble():
    # f and repeats mean nothing for one ensemble's (k, n_test) array: refused, not ignored.
    with pytest.raises(ValueError, match=r"'f' parameter of decompose applies only to "
                                         r"repeated .* shape \(2, 3\); got an array of "
                                         r"shape \(3,\)"):
        decompose(np.ones((2, 3)), np.ones(3), f=np.zeros(3))
    with pytest.raises(ValueError, match=r"'repeats' parameter .* got 'ensemble_seeds'"):
        decompose(np.ones((2, 3)), np.ones(3), repeats="ensemble_seeds")
    # Negative control: both are accepted with repeats.
    d = decompose(np.ones((2, 2, 3)), np.ones(3), f=np.zeros(3), repeats="ensemble_seeds")
    assert d.repeats == "ensemble_seeds" and d.noise.tolist() == [1.0, 1.0, 1.0]
    assert decompose(np.ones((2, 2, 3)), np.ones(3)).repeats == "training_sets"


@pytest.mark.parametrize("name", ["predictions", "y"])
def test_complex_input_is_refused(name):
    q, y = np.ones((2, 3)), np.ones(3)
    args = {"predictions": q, "y": y}
    args[name] = args[name] + 1j
    with pytest.raises(TypeError, match=f"'{name}' parameter of decompose must be an array "
                                        "of real numbers; got complex values"):
        decompose(**args)
