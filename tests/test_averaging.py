"""Dropout on linear regression as ridge, Gaussian dropout, and exact averages over
every thinned sub-network (ensim.theory.dropout_ridge, ensim.nn.GaussianDropout,
ensim.nn.exact_ensemble, ensim.nn.logistic_unit_ensemble)."""

import itertools

import numpy as np
import pytest
from _gradcheck import numerical_gradient

from ensim.decompose import decompose
from ensim.nn import (Dropout, GaussianDropout, TrainingConfig, build_mlp, exact_ensemble,
                      logistic_unit_ensemble, train)
from ensim.theory import dropout_objective, dropout_ridge


def _regression(seed=0, n=60, scales=(0.3, 1.0, 3.0, 0.1)):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, len(scales))) * np.asarray(scales)  # unequal column scales
    y = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 0.5 * rng.standard_normal(n)
    return X, y


# ---------------------------------------------------------------- dropout_ridge
@pytest.mark.parametrize("p", [0.3, 0.7, 1.0])
def test_dropout_ridge_matches_direct_solve(p):
    X, y = _regression()
    G = X.T @ X
    w = np.linalg.solve(p**2 * G + p * (1 - p) * np.diag(np.diag(G)), p * X.T @ y)
    W = np.linalg.solve(G + (1 - p) / p * np.diag(np.diag(G)), X.T @ y)
    np.testing.assert_allclose(dropout_ridge(X, y, p).coef, w, rtol=1e-12)
    inverted = dropout_ridge(X, y, p, inverted=True)
    np.testing.assert_allclose(inverted.coef, W, rtol=1e-12)
    np.testing.assert_allclose(inverted.coef, p * w, rtol=1e-12)
    np.testing.assert_allclose(inverted.penalty, (1 - p) / p * np.diag(G), rtol=1e-12)


@pytest.mark.parametrize("inverted", [False, True])
def test_dropout_ridge_minimises_the_marginalised_objective_with_intercept(inverted):
    X, y = _regression(1)
    y = y + 4.0
    sol = dropout_ridge(X, y, 0.6, inverted=inverted, fit_intercept=True)
    theta = np.append(sol.coef, sol.intercept)

    def objective():
        return dropout_objective(X, y, theta[:-1], 0.6, intercept=theta[-1], inverted=inverted)

    grad = numerical_gradient(objective, theta, eps=1e-5)
    assert np.max(np.abs(grad)) < 1e-6 * objective()
    # without the intercept the solution is a different one, with a worse objective
    plain = dropout_ridge(X, y, 0.6, inverted=inverted)
    assert dropout_objective(X, y, plain.coef, 0.6, inverted=inverted) > objective()


def test_marginalised_objective_against_monte_carlo_over_masks():
    X, y = _regression(2, n=30)
    w, p, n_masks = np.array([0.5, -1.0, 2.0, 1.0]), 0.6, 20000
    R = np.random.default_rng(3).random((n_masks, *X.shape)) < p
    losses = (((y - (R * X) @ w) ** 2).sum(axis=1))  # (n_masks,)
    mean, se = losses.mean(), losses.std(ddof=1) / np.sqrt(n_masks)
    # |z| < 4: false-failure probability 6.3e-5 (the mean of 20,000 draws is normal)
    assert abs(mean - dropout_objective(X, y, w, p)) < 4 * se
    # negative control: the objective without its penalty term is rejected
    residual = y - p * X @ w
    assert abs(mean - residual @ residual) > 4 * se


def _monte_carlo_minimisers(X, y, p, n_masks, n_replicates, rng):
    """Minimisers of the sampled objective sum_r ||y - (R_r * X) w||^2, one per replicate."""
    out = []
    for _ in range(n_replicates):
        R = rng.random((n_masks, *X.shape)) < p
        Z = R * X  # (n_masks, n, d)
        A = np.einsum("rni,rnj->ij", Z, Z)
        b = np.einsum("rni,n->i", Z, y)
        out.append(np.linalg.solve(A, b))
    return np.array(out)  # (n_replicates, d)


def test_dropout_ridge_against_brute_force_monte_carlo_minimisation():
    X, y = _regression(4, n=40)
    p = 0.5
    w_mc = _monte_carlo_minimisers(X, y, p, 500, 30, np.random.default_rng(5))
    mean, se = w_mc.mean(axis=0), w_mc.std(axis=0, ddof=1) / np.sqrt(len(w_mc))
    # The minimiser of a sampled objective is biased at order 1/n_masks (a ratio of
    # random matrices): 500 masks x 40 rows make that bias far below the 4.5 se
    # tolerance. Per coordinate |t| < 4.5 with the SE from 30 replicates (29 dof):
    # false-failure probability 1.0e-4, about 4e-4 for the four.
    closed = dropout_ridge(X, y, p).coef
    assert np.all(np.abs(mean - closed) < 4.5 * se), (mean, closed, se)
    # negative control: the ridge with the wrong Gamma (the identity instead of
    # diag(X^T X)^(1/2)), scaled to the same total penalty, is rejected by the same check
    G = X.T @ X
    lam = p * (1 - p) * np.trace(G) / G.shape[0]
    wrong = np.linalg.solve(p**2 * G + lam * np.eye(G.shape[0]), p * X.T @ y)
    assert np.any(np.abs(mean - wrong) > 4.5 * se), (mean, wrong, se)


@pytest.mark.parametrize("kwargs, match", [
    (dict(keep_prob=0.0), r"'keep_prob' parameter of dropout_ridge must be in \(0, 1\]; got 0"),
    (dict(keep_prob=1.5), r"'keep_prob' parameter of dropout_ridge must be in \(0, 1\]; got 1.5"),
    (dict(keep_prob=float("nan")), "'keep_prob' parameter of dropout_ridge must be finite"),
    (dict(y=np.ones(7)), r"same number of rows .* X of shape \(60, 4\) and y of shape \(7,\)"),
    (dict(X=np.full((60, 4), np.nan)), "'X' parameter of dropout_ridge must hold only finite"),
    (dict(y=np.full(60, np.inf)), "'y' parameter of dropout_ridge must hold only finite"),
    (dict(X=np.ones(60)), "'X' parameter of dropout_ridge must be a 2-D array"),
])
def test_dropout_ridge_refuses_bad_input(kwargs, match):
    X, y = _regression()
    args = dict(X=X, y=y, keep_prob=0.5) | kwargs
    with pytest.raises(ValueError, match=match):
        dropout_ridge(args["X"], args["y"], args["keep_prob"])


# ------------------------------------------------------------- GaussianDropout
def test_gaussian_dropout_forward_backward_and_replay():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    layer = GaussianDropout(0.4)
    y = layer.forward(x, training=True, rng=np.random.default_rng(1))
    noise = layer.noise.copy()
    np.testing.assert_array_equal(y, x * noise)
    # replay: the same noise given explicitly, and the same seed, give the same output
    np.testing.assert_array_equal(GaussianDropout(0.4).forward(x, noise=noise), y)
    np.testing.assert_array_equal(
        GaussianDropout(0.4).forward(x, training=True, rng=np.random.default_rng(1)), y)
    # inference is the identity; keep_prob 1 draws nothing
    assert GaussianDropout(0.4).forward(x) is x
    assert GaussianDropout(1.0).forward(x, training=True, rng=rng) is x
    # backward against central differences of sum(g * forward(x, noise))
    g = rng.standard_normal(x.shape)
    grad = layer.backward(g)
    xx = x.copy()
    numeric = numerical_gradient(lambda: float((g * GaussianDropout(0.4).forward(
        xx, noise=noise)).sum()), xx)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)


def test_gaussian_dropout_noise_has_the_moments_of_inverted_dropout():
    p, n = 0.3, 200_000
    noise = GaussianDropout(p).draw_noise((n,), np.random.default_rng(2))
    variance = (1 - p) / p
    # mean: se = sqrt(var / n); variance: se = var * sqrt(2 / n) (normal noise).
    # |z| < 4 for each: false-failure probability 1.3e-4 in all.
    assert abs(noise.mean() - 1) < 4 * np.sqrt(variance / n)
    assert abs(noise.var() - variance) < 4 * variance * np.sqrt(2 / n)
    # negative controls: the variance of dropout without the 1/p, (1 - p) / 1 ... is
    # rejected, and so is the mean of noise that is not rescaled (mean p).
    assert abs(noise.var() - (1 - p)) > 4 * variance * np.sqrt(2 / n)
    assert abs(p * noise.mean() - 1) > 4 * np.sqrt(variance / n)


def test_gaussian_dropout_refuses_bad_input():
    with pytest.raises(ValueError, match=r"'keep_prob' parameter of GaussianDropout must be in "
                                         r"\(0, 1\]; got 0"):
        GaussianDropout(0.0)
    layer = GaussianDropout(0.5)
    with pytest.raises(ValueError, match="needs a random generator 'rng'"):
        layer.forward(np.ones((2, 3)), training=True)
    with pytest.raises(ValueError, match=r"'noise' parameter of GaussianDropout must have shape"):
        layer.forward(np.ones((2, 3)), noise=np.ones(4))
    with pytest.raises(ValueError, match="finite"):
        layer.forward(np.ones((2, 3)), noise=np.full(3, np.nan))


def test_build_mlp_with_gaussian_dropout_trains_reproducibly():
    X, y = _regression(6)
    kinds = [type(layer) for layer in build_mlp(4, (8,), 1, keep_prob=0.5, input_keep_prob=0.8,
                                                dropout="gaussian").layers]
    assert kinds.count(GaussianDropout) == 2 and Dropout not in kinds
    config = TrainingConfig(max_epochs=3, batch_size=16)
    weights = []
    for _ in range(2):
        net = build_mlp(4, (8,), 1, keep_prob=0.5, dropout="gaussian", rng=0)
        train(net, X, y[:, None], config, rng=1)
        weights.append(net.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    plain = build_mlp(4, (8,), 1, keep_prob=0.5, rng=0)
    train(plain, X, y[:, None], config, rng=1)
    assert not np.allclose(plain.get_weights()[0], weights[0][0])  # the noise was used
    with pytest.raises(ValueError, match="'dropout' parameter of build_mlp must be one of"):
        build_mlp(4, (8,), 1, dropout="uniform")


def test_gaussian_dropout_matches_torch_with_the_same_noise():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((6, 5)), rng.standard_normal((6, 5))
    layer = GaussianDropout(0.5)
    y = layer.forward(x, training=True, rng=rng)
    xt = torch.tensor(x, requires_grad=True)
    yt = xt * torch.tensor(layer.noise)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-15)
    np.testing.assert_allclose(layer.backward(g), xt.grad.numpy(), rtol=1e-15)


# ------------------------------------------------------------- exact ensembles
def _direct_average(net, X, targets):
    """Every sub-network one by one, its probability as a product over units."""
    widths = net.dropout_widths
    units = sum(widths)
    probs, qs, logs = [], [], []
    for bits in itertools.product([0, 1], repeat=units):
        bits = np.array(bits, dtype=float)
        masks, offset = [], 0
        prob = 1.0
        for layer, w in zip(net.dropout_layers, widths):
            m = bits[offset:offset + w]
            prob *= np.prod(np.where(m == 1, layer.keep_prob, 1 - layer.keep_prob))
            masks.append(m)
            offset += w
        q = net.head.predict(net.forward(X, masks=masks))
        probs.append(prob)
        qs.append(q)
        logs.append(np.log(q) if net.n_outputs > 1 else q)  # (regression: unused)
    probs, qs, logs = np.array(probs), np.array(qs), np.array(logs)
    mean = np.tensordot(probs, qs, axes=1)
    geo = np.exp(np.tensordot(probs, logs, axes=1))
    nwgm = geo / geo.sum(axis=1, keepdims=True) if net.n_outputs > 1 else None
    errors = (qs - targets).reshape(len(probs), -1)  # (2**n, n_test * K)
    b_m = errors.mean(axis=1)
    e_bar = probs @ errors
    V = probs @ ((errors - b_m[:, None]) ** 2).mean(axis=1)
    b = e_bar.mean()
    C = np.mean((e_bar - b) ** 2)
    S = probs @ (errors**2).mean(axis=1)
    return mean, nwgm, V, C, S, probs.sum()


def test_exact_ensemble_against_direct_enumeration():
    rng = np.random.default_rng(0)
    net = build_mlp(3, (3, 4), 3, task="classification", keep_prob=0.6, input_keep_prob=0.8,
                    rng=1)
    X, labels = rng.standard_normal((5, 3)), np.array([0, 1, 2, 1, 0])
    mean, nwgm, V, C, S, total = _direct_average(net, X, np.eye(3)[labels])
    exact = exact_ensemble(net, X, labels, batch_size=37)  # batches that do not divide 2**10
    assert exact.n_subnetworks == 2**10 and abs(exact.total_probability - 1) < 1e-12
    np.testing.assert_allclose(exact.arithmetic_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(exact.nwgm, nwgm, rtol=1e-12)
    np.testing.assert_allclose([exact.member_variance, exact.covariance, exact.mean_square],
                               [V, C, S], rtol=1e-11)
    assert np.all(exact.geometric_mass <= 1 + 1e-12)
    # the two forms of the formula agree for every k
    for k in (1, 3, 50):
        second = exact.mean_square / k + (k - 1) / k * exact.cross_moment
        centred = (exact.mean_error**2 + exact.member_variance / k
                   + (k - 1) / k * exact.covariance)
        assert abs(second - centred) < 1e-12


def test_exact_ensemble_regression_and_sampled_moments_converge():
    rng = np.random.default_rng(1)
    net = build_mlp(4, (5, 5), 1, keep_prob=0.5, rng=2)
    X = rng.standard_normal((30, 4))
    y = rng.standard_normal(30)
    exact = exact_ensemble(net, X, y)
    mean, _, V, C, _, _ = _direct_average(net, X, y[:, None])
    np.testing.assert_allclose(exact.arithmetic_mean, mean, rtol=1e-12)
    assert exact.nwgm is None
    # sampled V and C of ensembles of 20 independently drawn masks are unbiased for
    # the exact ones: 200 ensembles, |t| < 4 on each (199 dof): false-failure
    # probability about 1.8e-4 for the two
    draws = [decompose(net.predict_thinned(X, net.sample_masks(20, rng=r)).members[..., 0], y,
                       matrices=False) for r in range(200)]
    for name, target in (("member_variance", V), ("covariance", C)):
        values = np.array([getattr(d, name) for d in draws])
        se = values.std(ddof=1) / np.sqrt(len(values))
        assert abs(values.mean() - target) < 4 * se, name
    # negative control: C is not the uncentred cross moment X = C + b^2
    values = np.array([d.covariance for d in draws])
    assert abs(values.mean() - exact.cross_moment) > 4 * values.std(ddof=1) / np.sqrt(len(values))


def test_softmax_nwgm_is_weight_scaling_with_dropout_on_the_softmax_inputs_only():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((20, 6))
    net = build_mlp(6, (12,), 4, task="classification", keep_prob=0.5, rng=4)
    exact = exact_ensemble(net, X)
    assert np.max(np.abs(exact.nwgm - exact.full)) < 1e-12
    # negative control: dropout also below the last hidden layer breaks the identity
    deep = build_mlp(6, (6, 6), 4, task="classification", keep_prob=0.5, rng=4)
    gap = np.max(np.abs(exact_ensemble(deep, X).nwgm - deep.predict(X)))
    assert gap > 1e-4
    # and the arithmetic mean is not the weight-scaled network either
    assert np.max(np.abs(exact.arithmetic_mean - exact.full)) > 1e-4


def test_logistic_nwgm_is_sigmoid_of_the_mean_input():
    rng = np.random.default_rng(5)
    w, X = 2 * rng.standard_normal(12), rng.standard_normal((40, 12))
    result = logistic_unit_ensemble(w, X, 0.5, bias=0.3)
    assert np.max(np.abs(result.nwgm - result.sigmoid_mean_input)) < 1e-12
    # direct arithmetic mean over the 4,096 masks
    bits = np.array(list(itertools.product([0, 1], repeat=12)), dtype=float)
    S = 0.3 + bits @ (X * w).T
    O = 1 / (1 + np.exp(-S))
    np.testing.assert_allclose(result.mean, O.mean(axis=0), rtol=1e-12)  # p = 0.5: equal weights
    # negative control: the arithmetic mean is not sigmoid(E[S])
    assert np.max(np.abs(result.mean - result.sigmoid_mean_input)) > 1e-3
    # the second-order approximation has the sign of the exact gap where it is not tiny
    gap = result.mean - result.nwgm
    big = np.abs(gap) > 1e-3
    assert np.all(np.sign(result.second_order[big]) == np.sign(gap[big]))


def test_exact_ensemble_refuses_what_it_cannot_enumerate():
    net = build_mlp(4, (16, 16), 2, task="classification", keep_prob=0.5)
    with pytest.raises(ValueError, match=r"2\*\*32 = 4,294,967,296 sub-networks \(32 dropout "
                                         r"units\), more than max_subnetworks = 4,194,304"):
        exact_ensemble(net, np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"2\*\*16 = 65,536 sub-networks .* max_subnetworks "
                                         "= 1,000"):
        exact_ensemble(build_mlp(4, (8, 8), 1, keep_prob=0.5), np.ones((3, 4)),
                       max_subnetworks=1000)
    with pytest.raises(ValueError, match="must have a Dropout layer"):
        exact_ensemble(build_mlp(4, (3,), 1), np.ones((3, 4)))
    small = build_mlp(4, (3,), 2, task="classification", keep_prob=0.5)
    with pytest.raises(ValueError, match=r"'X' parameter of exact_ensemble must have shape"):
        exact_ensemble(small, np.ones((3, 5)))
    with pytest.raises(ValueError, match="'X' parameter of exact_ensemble must hold only finite"):
        exact_ensemble(small, np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match=r"'targets' parameter of exact_ensemble must hold 3 "
                                         r"labels in \[0, 1\]"):
        exact_ensemble(small, np.ones((3, 4)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"'keep_prob' parameter of logistic_unit_ensemble must "
                                         r"be in \(0, 1\)"):
        logistic_unit_ensemble(np.ones(3), np.ones((2, 3)), 1.0)
    with pytest.raises(ValueError, match=r"unit of logistic_unit_ensemble has 2\*\*30"):
        logistic_unit_ensemble(np.ones(30), np.ones((2, 30)), 0.5, max_subnetworks=2**20)
