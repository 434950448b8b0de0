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
    assert np.mean(d.mse_per_member) == pytest.approx(14.5, rel=1e-15)
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
    np.testing.assert_allclose(d.mse_per_member, [0.5, 2.5, 0.5], rtol=1e-15)
    np.testing.assert_allclose(d.mean_error_per_member, [0.5, 0.5, 0.5], rtol=1e-15)
    expected = dict(mse_ensemble=0.5, mean_square=7 / 6, cross_moment=1 / 6, mean_error=0.5,
                    member_variance=11 / 12, covariance=-1 / 12, rho=-1 / 11,
                    ambiguity=2 / 3)
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
                mean_square=np.mean(np.diag(mom)), cross_moment=mom[off].mean(),
                mean_error=b.mean(), member_variance=np.mean(np.diag(cov)),
                covariance=cov[off].mean(),
                ambiguity=np.mean((q - q.mean(axis=0)) ** 2), cov=cov, mom=mom)


def _slow_across_repeats(q, y, f):
    """Pointwise terms straight from the definitions (loops over test points and pairs)."""
    n_repeats, k, n = q.shape
    out = {name: np.empty(n) for name in
           ("covariance", "member_variance", "loss", "bias_signed", "bias2",
            "ensemble_variance", "member_bias2", "member_loss", "diversity")}
    for t in range(n):
        x = q[:, :, t]                                        # (R, k)
        c = np.atleast_2d(np.cov(x, rowvar=False, ddof=0))    # (k, k) across repeats
        out["covariance"][t] = c[~np.eye(k, dtype=bool)].mean() if k > 1 else np.nan
        out["member_variance"][t] = np.diag(c).mean()
        out["loss"][t] = np.mean((x.mean(axis=1) - y[t]) ** 2)
        out["bias_signed"][t] = x.mean() - f[t]
        out["bias2"][t] = (x.mean() - f[t]) ** 2
        out["ensemble_variance"][t] = np.var(x.mean(axis=1))
        out["member_bias2"][t] = np.mean((x.mean(axis=0) - f[t]) ** 2)
        out["member_loss"][t] = np.mean((x - y[t]) ** 2)
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
    for name in ("mse_ensemble", "mean_square", "cross_moment", "mean_error",
                 "member_variance", "covariance", "ambiguity"):
        assert getattr(d, name) == pytest.approx(slow[name], rel=1e-12), name
    assert d.rho == pytest.approx(slow["covariance"] / slow["member_variance"], rel=1e-12)
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
    np.testing.assert_allclose(d.ensemble_variance, bv.ensemble_variance, rtol=1e-12)
    np.testing.assert_allclose(d.bias2, bv.bias2, rtol=1e-12)
    assert all(identity.holds(1e-12) for identity in d.identities())


def test_identities_detect_a_wrong_term(correlated_predictions):
    # Negative control: the identity check must fail when one term is wrong, e.g. the
    # covariance computed with divisor n - 1 instead of n.
    q, y, _ = correlated_predictions
    d = decompose(q[0], y)
    n = d.n_test
    wrong = decompose_module.Identity("primer", "", d.mse_ensemble,
                                      d.mean_error**2 + d.member_variance / d.k
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
    assert held == {"bias-variance": True,
                    "bias-variance-covariance": False, "ESL ensemble variance": False,
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
    for name in ("member_variance", "covariance", "cross_moment", "mse_ensemble"):
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
    assert d.member_variance == pytest.approx(slow["member_variance"], rel=1e-9)


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
    np.testing.assert_allclose(bv.ensemble_variance, q.var(axis=0), rtol=1e-12)
    np.testing.assert_allclose(bv.bias2, (q.mean(axis=0) - f) ** 2, rtol=1e-12)
    np.testing.assert_allclose(bv.loss, np.mean((q - y) ** 2, axis=0), rtol=1e-12)
    assert all(identity.holds(1e-12) for identity in bv.identities())
    # Negative control: a variance with divisor n - 1 breaks the identity.
    wrong = decompose_module.Identity("bias-variance", "", bv.loss,
                                      bv.noise + bv.bias2 + q.var(axis=0, ddof=1)
                                      + bv.noise_cross)
    assert not wrong.holds(1e-6)


# --- one vocabulary for one model and for ensembles ------------------------------------


def test_a_single_model_has_the_ensemble_fields(correlated_predictions):
    # k = 1 through decompose and through bias_variance: one result type, one set of
    # names, the pairwise terms undefined (NaN) and the spread terms zero.
    q, y, f = correlated_predictions
    one = decompose(q[:, :1], y, f)
    bv = bias_variance(q[:, 0], y, f)
    ensemble = decompose(q, y, f)
    assert type(one) is type(bv) is type(ensemble) is RepeatedDecomposition
    assert one.k == bv.k == 1
    for name in RepeatedDecomposition._POINTWISE:
        if name in ("within_set_variance", "between_set_variance", "rho_ratio"):
            assert getattr(one, name) is None and getattr(bv, name) is None
            assert getattr(ensemble, name) is not None
            continue
        np.testing.assert_array_equal(getattr(one, name), getattr(bv, name), err_msg=name)
    assert np.isnan(one.covariance).all() and np.isnan(one.rho).all()
    np.testing.assert_array_equal(one.member_variance, one.ensemble_variance)
    np.testing.assert_array_equal(one.member_bias2, one.bias2)
    np.testing.assert_array_equal(one.member_loss, one.loss)
    assert np.all(one.diversity == 0)
    assert all(identity.holds(1e-12) for identity in one.identities())
    # The pointwise terms that do not involve pairs are the slow definitions' too.
    slow = _slow_across_repeats(q[:, :1], y, f)
    for name in ("loss", "bias2", "ensemble_variance", "member_variance", "diversity"):
        np.testing.assert_allclose(getattr(one, name), slow[name], rtol=1e-12, atol=1e-15,
                                   err_msg=name)
    frame = one.to_frame()
    assert np.isnan(frame.loc[frame.term == "covariance", "value"]).all()


def test_one_model_on_test_points(correlated_predictions):
    q, y, _ = correlated_predictions
    d = decompose(q[0, :1], y)                               # (1, n_test)
    e = q[0, 0] - y
    assert d.k == 1 and d.mse_ensemble == pytest.approx(np.mean(e**2), rel=1e-14)
    assert d.mean_error == pytest.approx(e.mean(), rel=1e-14)
    assert d.member_variance == pytest.approx(e.var(), rel=1e-12)
    assert d.ambiguity == 0.0 and np.isnan(d.covariance) and np.isnan(d.cross_moment)
    assert all(identity.holds(1e-12) for identity in d.identities())


# --- several noisy targets per test point ------------------------------------------------


def _gallery_terms(predictions, targets, f):
    """scikit-learn's gallery example "Single estimator versus bagging", transposed:
    predictions (n_repeat, n_test), targets (n_targets, n_test)."""
    error = np.zeros(predictions.shape[1])
    for s in range(targets.shape[0]):
        for r in range(predictions.shape[0]):
            error += (targets[s] - predictions[r]) ** 2
    error /= predictions.shape[0] * targets.shape[0]
    return dict(error=error, bias=(f - predictions.mean(axis=0)) ** 2,
                var=predictions.var(axis=0), noise=targets.var(axis=0))


def test_several_targets_give_the_gallery_example_terms(rng):
    n_repeats, n_targets, n = 30, 50, 40
    f = np.sin(np.linspace(-2, 2, n))
    targets = f + 0.3 * rng.normal(size=(n_targets, n))       # (n_targets, n_test)
    q = f + 0.2 + 0.5 * rng.normal(size=(n_repeats, n))
    gallery = _gallery_terms(q, targets, f)
    with_truth, without = bias_variance(q, targets, f), bias_variance(q, targets)
    for bv in (with_truth, without):
        assert bv.n_targets == n_targets
        np.testing.assert_allclose(bv.loss, gallery["error"], rtol=1e-12)
        np.testing.assert_allclose(bv.ensemble_variance, gallery["var"], rtol=1e-12)
        assert all(identity.holds(1e-12) for identity in bv.identities())
    np.testing.assert_allclose(with_truth.bias2, gallery["bias"], rtol=1e-12)
    np.testing.assert_allclose(with_truth.noise, np.mean((targets - f) ** 2, axis=0),
                               rtol=1e-12)
    # Without the truth, the bias is measured against the targets' mean, the noise is
    # the gallery's spread of the targets, and the cross term is zero.
    np.testing.assert_allclose(without.noise, gallery["noise"], rtol=1e-12)
    np.testing.assert_allclose(without.bias2, (q.mean(axis=0) - targets.mean(axis=0)) ** 2,
                               rtol=1e-12)
    assert np.all(without.noise_cross == 0)
    # The gallery's own three terms add up only in expectation (its bias is against f,
    # its noise around the targets' mean): the exact identity needs noise_cross.
    gap = gallery["error"] - (gallery["bias"] + gallery["var"] + gallery["noise"])
    assert np.max(np.abs(gap)) > 1e-4
    # An ensemble with several targets: every identity still holds, against the
    # slow definitions with the mean target and the targets' spread added.
    ensemble = np.stack([q, q[::-1] + 0.1], axis=1)           # (R, 2, n)
    d = decompose(ensemble, targets, f)
    slow = _slow_across_repeats(ensemble, targets.mean(axis=0), f)
    np.testing.assert_allclose(d.loss, slow["loss"] + gallery["noise"], rtol=1e-12)
    np.testing.assert_allclose(d.member_loss, slow["member_loss"] + gallery["noise"],
                               rtol=1e-12)
    assert all(identity.holds(1e-12) for identity in d.identities())


def test_one_target_in_a_2d_array_is_the_1d_target(correlated_predictions):
    q, y, f = correlated_predictions
    one, stacked = decompose(q, y, f), decompose(q, y[None, :], f)
    assert stacked.n_targets == 1
    for name in RepeatedDecomposition._POINTWISE:
        np.testing.assert_allclose(getattr(stacked, name), getattr(one, name), rtol=1e-14,
                                   err_msg=name)


def test_noise_from_several_targets_estimates_the_noise_variance(rng):
    # Statistical: with the truth, noise = mean_s (y_s - f)^2 averaged over 200 x 50
    # independent draws estimates sigma^2 = 0.09 with SE sigma^2 sqrt(2 / 10^4), so a
    # 5-SE band fails with probability 6e-7. Negative control: without the truth and
    # with only 2 targets, the spread around their mean estimates sigma^2 / 2 and must
    # fall outside the same band (it is 0.045, 35 SE away).
    sigma2, n = 0.09, 200
    f = np.linspace(0, 1, n)
    q = f + rng.normal(size=(5, n))
    targets = f + np.sqrt(sigma2) * rng.normal(size=(50, n))
    se = sigma2 * np.sqrt(2 / targets.size)
    assert abs(bias_variance(q, targets, f).noise.mean() - sigma2) < 5 * se
    spread = bias_variance(q, targets[:2]).noise.mean()
    assert abs(spread - sigma2) > 5 * se


def test_bad_targets_are_refused():
    q3, q2 = np.ones((3, 2, 4)), np.ones((2, 4))
    with pytest.raises(ValueError, match=r"'y' parameter of decompose must have shape "
                                         r"\(4,\), .* or \(n_targets, 4\) .* got shape "
                                         r"\(3, 5\)"):
        decompose(q3, np.ones((3, 5)))
    with pytest.raises(ValueError, match=r"n_targets >= 1.* got shape \(0, 4\)"):
        decompose(q3, np.ones((0, 4)))
    with pytest.raises(ValueError, match=r"several targets per test point apply only to "
                                         r"repeated predictions.* got shape \(3, 4\)"):
        decompose(q2, np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"'y' parameter of bias_variance .* got shape "
                                         r"\(2, 3\)"):
        bias_variance(np.ones((3, 4)), np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"'y' parameter of bias_variance must hold only "
                                         r"finite values"):
        bias_variance(np.ones((3, 4)), np.full((2, 4), np.nan))
    # Positive control: the same shapes, right, are accepted.
    assert decompose(q3, np.ones((3, 4))).n_targets == 3


# --- reference: mlxtend's bias_variance_decomp on the same bootstrap draws ---------------


def _mlxtend_draws(X, y, n_rounds, seed):
    """The bootstrap samples mlxtend's bias_variance_decomp draws: one RandomState,
    ``choice(arange(n), n, replace=True)`` per round."""
    rng = np.random.RandomState(seed)
    for _ in range(n_rounds):
        index = rng.choice(np.arange(X.shape[0]), size=X.shape[0], replace=True)
        yield X[index], y[index]


@pytest.mark.parametrize("n_members", [1, 5], ids=["tree", "bagged-trees"])
def test_mlxtend_bias_variance_decomp_is_the_ensemble_terms(n_members):
    # mlxtend reports the means over test points of the ensemble's loss, squared bias
    # (against y_test) and variance: ensim's loss, bias2 and ensemble_variance, for a
    # single model and for an ensemble treated as one model by mlxtend.
    evaluate = pytest.importorskip(
        "mlxtend.evaluate",
        reason="mlxtend (in the 'test' extra) is the reference for this test")
    from sklearn.base import clone
    from sklearn.ensemble import BaggingRegressor
    from sklearn.tree import DecisionTreeRegressor

    from ensim.data import KnownTruth
    from ensim.ensembles import member_predictions

    truth = KnownTruth("friedman1", noise_sd=1.0)
    train, test = truth.sample(80, rng=0), truth.sample(40, rng=1)
    model = (DecisionTreeRegressor(random_state=0) if n_members == 1 else
             BaggingRegressor(DecisionTreeRegressor(), n_estimators=n_members, random_state=0))
    n_rounds, seed = 25, 123
    reference = evaluate.bias_variance_decomp(clone(model), train.X, train.y, test.X, test.y,
                                              loss="mse", num_rounds=n_rounds,
                                              random_seed=seed)
    fits = [clone(model).fit(X, y) for X, y in _mlxtend_draws(train.X, train.y, n_rounds, seed)]
    if n_members == 1:
        predictions = np.stack([fit.predict(test.X) for fit in fits])          # (R, n_test)
        d = bias_variance(predictions, test.y)
    else:
        d = decompose(np.stack([member_predictions(fit, test.X) for fit in fits]), test.y)
        np.testing.assert_allclose(d.test_points.mse_ensemble[-1],
                                   np.mean((fits[-1].predict(test.X) - test.y) ** 2),
                                   rtol=1e-12)
    assert d.k == n_members
    mine = (d.loss.mean(), d.bias2.mean(), d.ensemble_variance.mean())
    np.testing.assert_allclose(mine, reference, rtol=1e-12)
    # Negative control: the draws matter (another seed gives other numbers), and the
    # members' mean variance is not mlxtend's variance for an ensemble.
    other = evaluate.bias_variance_decomp(clone(model), train.X, train.y, test.X, test.y,
                                          loss="mse", num_rounds=n_rounds,
                                          random_seed=seed + 1)
    assert not np.allclose(mine, other, rtol=1e-3)
    if n_members > 1:
        assert d.member_variance.mean() > 1.5 * reference[2]


def test_same_input_same_numbers(correlated_predictions):
    q, y, f = correlated_predictions
    a, b = decompose(q, y, f), decompose(q.copy(), y.copy(), f.copy())
    np.testing.assert_array_equal(a.rho, b.rho)


# --- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize("predictions, y, message", [
    (np.ones(3), np.ones(3), r"must be a 2-D or 3-D array; got shape \(3,\)"),
    (np.ones((1, 2, 3, 4)), np.ones(4), r"2-D or 3-D array; got shape \(1, 2, 3, 4\)"),
    (np.ones((0, 5)), np.ones(5), r"at least 1 member .* got shape \(0, 5\)"),
    (np.ones((2, 0, 5)), np.ones(5), r"at least 1 member .* got shape \(2, 0, 5\)"),
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
        decompose(np.ones((2, 2, 2)), np.ones(2), f=np.ones(3))
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
