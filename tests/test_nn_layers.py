"""Layers: golden values from the primer, gradients, statistics, reference semantics."""

import numpy as np
import pytest
from _gradcheck import numerical_gradient

from ensim.nn import (
    BatchNorm,
    Dense,
    Dropout,
    MSELoss,
    ReLU,
    Sigmoid,
    SoftmaxCrossEntropy,
    Tanh,
)
from ensim.nn.layers import _keep_threshold


# ------------------------------------------------------------------- golden
def test_dropout_matches_primer_worked_example():
    # The primer's five steps: A, mask M, keep p = 0.6 -> A * M / p.
    A = np.array([[10.0, 25.0, 5.0, 40.0, 15.0]])
    M = np.array([1, 1, 0, 1, 0])
    layer = Dropout(0.6)
    out = layer.forward(A, training=True, mask=M)
    np.testing.assert_array_equal(np.round(out, 2), [[16.67, 41.67, 0.0, 66.67, 0.0]])
    # Step 5: gradients flow only through kept units, scaled by 1 / p.
    grad_in = layer.backward(np.ones_like(A))
    np.testing.assert_allclose(grad_in, [[1 / 0.6, 1 / 0.6, 0, 1 / 0.6, 0]], rtol=1e-15)
    np.testing.assert_array_equal(layer.mask, [True, True, False, True, False])


def test_dropout_is_identity_at_inference():
    A = np.array([[10.0, 25.0, 5.0, 40.0, 15.0]])
    layer = Dropout(0.6)
    np.testing.assert_array_equal(layer.forward(A, training=False), A)
    np.testing.assert_array_equal(layer.backward(np.ones_like(A)), np.ones_like(A))


def test_batchnorm_matches_primer_2d_example(rng):
    # A cloud centred at (10, 10) with variance 5 is normalised to mean 0 and
    # variance 1; beta = [2, 2] moves it to (2, 2) and gamma = [3, 0.5] stretches
    # x by 3 and squashes y by 2. Exact for the sample statistics, up to eps.
    cloud = 10 + np.sqrt(5) * rng.standard_normal((2000, 2))  # (2000, 2)
    layer = BatchNorm(2)
    z = layer.forward(cloud, training=True)
    shrink = cloud.var(axis=0) / (cloud.var(axis=0) + layer.eps)  # var(x_hat) = var / (var + eps)
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(z.var(axis=0), shrink, rtol=1e-12)
    layer.params["beta"][...] = [2, 2]
    layer.params["gamma"][...] = [3, 0.5]
    y = layer.forward(cloud, training=True)
    np.testing.assert_allclose(y.mean(axis=0), [2, 2], rtol=1e-12)
    np.testing.assert_allclose(y.std(axis=0), [3, 0.5] * np.sqrt(shrink), rtol=1e-12)
    # Step 2's point: a ReLU after the normalisation keeps half the cloud, after
    # the shift and scale it keeps P(3 z + 2 > 0) = 0.75 of x and P(z/2 + 2 > 0)
    # = 0.99997 of y. With 2000 points each fraction has SE < 0.011, so the bounds
    # below sit more than 4.5 SE away (false failure < 1e-5 each).
    assert (z > 0).mean() < 0.55
    assert (y[:, 0] > 0).mean() > 0.70
    assert (y[:, 1] > 0).mean() > 0.99
    # Negative control: without the shift (beta = 0) half of y is kept, which the same
    # bound rejects.
    layer.params["beta"][...] = [0, 0]
    assert (layer.forward(cloud, training=True)[:, 0] > 0).mean() < 0.55


def test_batchnorm_running_statistics_follow_pytorch_by_hand():
    # Batch [1, 2, 3, 4]: mean 2.5, biased variance 1.25, unbiased 5/3.
    # PyTorch (momentum 0.1): running_mean = 0.9 * 0 + 0.1 * 2.5,
    # running_var = 0.9 * 1 + 0.1 * 5/3; the output uses the biased variance.
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    layer = BatchNorm(1)
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y[:, 0], (x[:, 0] - 2.5) / np.sqrt(1.25 + 1e-5), rtol=1e-14)
    np.testing.assert_allclose(layer.running_mean, [0.25], rtol=1e-15)
    np.testing.assert_allclose(layer.running_var, [0.9 + 0.1 * 5 / 3], rtol=1e-15)
    # Inference uses the running statistics.
    np.testing.assert_allclose(layer.forward(np.array([[1.0]]))[0, 0],
                               (1 - 0.25) / np.sqrt(0.9 + 0.5 / 3 + 1e-5), rtol=1e-14)


def test_batchnorm_keras_convention_by_hand():
    # Keras: running = 0.99 * running + 0.01 * batch, biased variance, eps = 1e-3.
    x = np.array([[1.0], [2.0], [3.0], [4.0]])
    layer = BatchNorm(1, convention="keras")
    y = layer.forward(x, training=True)
    np.testing.assert_allclose(y[:, 0], (x[:, 0] - 2.5) / np.sqrt(1.25 + 1e-3), rtol=1e-14)
    np.testing.assert_allclose(layer.running_mean, [0.025], rtol=1e-14)
    np.testing.assert_allclose(layer.running_var, [0.99 + 0.01 * 1.25], rtol=1e-14)


def test_softmax_cross_entropy_is_stable_and_exact():
    # Logits [0, log 3] -> probabilities [1/4, 3/4]; a shift by 1000 changes nothing.
    head = SoftmaxCrossEntropy()
    z = np.array([[0.0, np.log(3.0)], [1000.0, 1000.0 + np.log(3.0)]])
    y = np.array([0, 1])
    np.testing.assert_allclose(head.predict(z), [[0.25, 0.75], [0.25, 0.75]], rtol=1e-12)
    loss, grad = head.loss_and_grad(z, y)
    np.testing.assert_allclose(loss, (np.log(4) + np.log(4 / 3)) / 2, rtol=1e-12)
    np.testing.assert_allclose(grad, [[-0.75 / 2, 0.75 / 2], [0.25 / 2, -0.25 / 2]], rtol=1e-12)


def test_sigmoid_does_not_overflow():
    out = Sigmoid().forward(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_array_equal(out, [0.0, 0.5, 1.0])


# -------------------------------------------------------------- gradients
def _check_layer_gradients(layer, x, rng, **forward_kwargs):
    """Compare backward() with finite differences of L = sum(w * layer(x))."""
    w = rng.standard_normal(layer.forward(x, training=True, **forward_kwargs).shape)

    def loss():
        return float((w * layer.forward(x, training=True, **forward_kwargs)).sum())

    layer.forward(x, training=True, **forward_kwargs)
    grad_x = layer.backward(w)
    analytic = {name: g.copy() for name, g in layer.grads.items()}
    if grad_x is not None:
        np.testing.assert_allclose(grad_x, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    for name, value in layer.params.items():
        np.testing.assert_allclose(analytic[name], numerical_gradient(loss, value),
                                   rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("make_layer", [
    lambda rng: Dense(5, 3, rng=rng),
    lambda rng: Dense(5, 3, init="glorot", rng=rng),
    lambda rng: ReLU(),
    lambda rng: Tanh(),
    lambda rng: Sigmoid(),
    lambda rng: BatchNorm(5),
    lambda rng: BatchNorm(5, convention="keras"),
], ids=["dense-he", "dense-glorot", "relu", "tanh", "sigmoid", "batchnorm", "batchnorm-keras"])
def test_layer_gradients_match_finite_differences(make_layer, rng):
    layer = make_layer(rng)
    x = rng.standard_normal((7, 5))
    if isinstance(layer, BatchNorm):
        layer.params["gamma"][...] = rng.uniform(0.5, 2, 5)
        layer.params["beta"][...] = rng.standard_normal(5)
    _check_layer_gradients(layer, x, rng)


@pytest.mark.parametrize("mask_shape", [(7, 5), (5,)], ids=["per-example", "shared"])
def test_dropout_gradient_with_fixed_mask_matches_finite_differences(mask_shape, rng):
    mask = (rng.random(mask_shape) < 0.5).astype(float)
    _check_layer_gradients(Dropout(0.5), rng.standard_normal((7, 5)), rng, mask=mask)


@pytest.mark.parametrize("head", [MSELoss(), SoftmaxCrossEntropy()], ids=["mse", "cross-entropy"])
def test_loss_gradients_match_finite_differences(head, rng):
    z = rng.standard_normal((6, 3))
    y = rng.standard_normal((6, 3)) if isinstance(head, MSELoss) else rng.integers(0, 3, 6)
    _, grad = head.loss_and_grad(z, y)
    np.testing.assert_allclose(grad, numerical_gradient(lambda: head.loss(z, y), z),
                               rtol=1e-6, atol=1e-9)


# ------------------------------------------------------------ statistical
def test_dropout_mask_keeps_keep_prob_fraction(rng):
    # Kept fraction of N = 10**6 Bernoulli(p) draws has SE sqrt(p (1-p) / N) = 4.9e-4;
    # |z| < 4 fails by chance with probability 6e-5.
    p, shape = 0.6, (1000, 1000)
    layer = Dropout(p)
    layer.forward(np.ones(shape), training=True, rng=rng)
    fraction, se = layer.mask.mean(), np.sqrt(p * (1 - p) / layer.mask.size)
    assert abs(fraction - p) < 4 * se
    # Negative control: the drop probability (what PyTorch calls p) fails the same check.
    assert abs(fraction - (1 - p)) > 4 * se


@pytest.mark.parametrize("bit_generator", [np.random.MT19937, np.random.PCG64,
                                           np.random.PCG64DXSM, np.random.SFC64,
                                           np.random.Philox])
@pytest.mark.parametrize("p", [0.5, 0.3])
def test_dropout_mask_keep_rate_is_right_for_every_bit_generator(bit_generator, p):
    # Even and odd positions are checked apart, since a generator's raw output may
    # be split into two 32-bit halves. Each half holds N = 100_000 Bernoulli(p)
    # draws, with SE sqrt(p (1 - p) / N) <= 1.6e-3; |z| < 5 fails by chance with
    # probability 5.7e-7, so the 20 checks together fail with probability < 1.2e-5.
    n = 200_000
    mask = Dropout(p).draw_mask((n // 2, 2), np.random.Generator(bit_generator(12345)))
    assert mask.shape == (n // 2, 2) and mask.dtype == bool
    se = np.sqrt(p * (1 - p) / (n // 2))
    for half in (mask[:, 0], mask[:, 1]):
        assert abs(half.mean() - p) < 5 * se
    # Negative control: 64-bit words split into 32-bit halves, which is wrong for
    # MT19937 (32-bit raw output: every second half is 0, so always kept), fail the check.
    threshold = np.uint32(round(p * 2**32))
    raw = np.random.MT19937(12345).random_raw(n // 2).view(np.uint32)  # (n,)
    assert abs((raw[1::2] < threshold).mean() - p) > 5 * se


@pytest.mark.parametrize("keep_prob", [2.0**-40, 2.0**-34, 2.0**-33, 1e-9, 0.3, 0.5, 0.7,
                                       1 - 1e-9, 1 - 2.0**-33, 1 - 2.0**-34, 1 - 2.0**-52])
def test_dropout_mask_probability_is_exact_to_2_to_the_minus_33(keep_prob):
    # A NumPy mask keeps a unit when 32 uniform bits are below the threshold, so
    # P(keep) = threshold / 2**32 exactly; the threshold ends in 2**32 (keep all).
    threshold = _keep_threshold(keep_prob)
    assert 0 <= threshold <= 2**32
    assert abs(threshold / 2**32 - keep_prob) <= 2.0**-33
    rng = np.random.Generator(np.random.SFC64(0))
    mask = Dropout(keep_prob).draw_mask((10_000,), rng)
    if threshold == 2**32:
        assert mask.all()
    else:   # each unit is its 32 bits compared with the threshold, bit for bit
        bits = np.random.SFC64(0).random_raw(5_000).view(np.uint32)        # (10_000,)
        assert np.array_equal(mask, bits < np.uint32(threshold))
    if threshold == 0:
        assert not mask.any()


def test_inverted_dropout_preserves_expectation(rng):
    # For each of 5 units, the mean of N = 200_000 outputs x * M / p has standard
    # error x * sqrt((1 - p) / (p N)); every |z| < 4.5 (5 units, Bonferroni) fails
    # by chance with probability < 5 * 7e-6 = 3.4e-5.
    p, n_draws = 0.6, 200_000
    x = np.array([10.0, 25.0, 5.0, 40.0, 15.0])
    layer = Dropout(p)
    out = layer.forward(np.tile(x, (n_draws, 1)), training=True, rng=rng)  # (n_draws, 5)
    se = x * np.sqrt((1 - p) / (p * n_draws))
    assert np.all(np.abs(out.mean(axis=0) - x) < 4.5 * se)
    # Negative control: without the 1/p rescaling the mean is p x and fails.
    unscaled = out * p
    assert np.all(np.abs(unscaled.mean(axis=0) - x) > 4.5 * se)


@pytest.mark.parametrize("convention", ["pytorch", "keras"])
def test_batchnorm_running_statistics_converge(convention, rng):
    # 2000 independent features, batches of m = 8 from N(mu, sigma^2), T steps.
    # PyTorch: the running mean and the unbiased running variance are
    # exponential averages with weight a = 0.1 of unbiased estimates of mu and
    # sigma^2; after T = 300 steps the start values weigh 0.9**300 ~ 2e-14, and
    # over features the averages have standard errors
    #   sqrt(a / (2 - a) * sigma^2 / m / F)  and  sqrt(a / (2 - a) * 2 sigma^4 / (m - 1) / F).
    # Keras (weight a = 0.01, biased variance) converges to mu and sigma^2 (m-1)/m;
    # after T = 3000 steps the start weighs 0.99**3000 ~ 8e-14.
    # Each |z| < 4 fails by chance with probability 6e-5.
    mu, sigma, m, n_features = 3.0, 2.0, 8, 2000
    layer = BatchNorm(n_features, convention=convention)
    a, n_steps, target_var = ((0.1, 300, sigma**2) if convention == "pytorch"
                              else (0.01, 3000, sigma**2 * (m - 1) / m))
    for _ in range(n_steps):
        layer.forward(mu + sigma * rng.standard_normal((m, n_features)), training=True)
    se_mean = np.sqrt(a / (2 - a) * sigma**2 / m / n_features)
    se_var = np.sqrt(a / (2 - a) * 2 * sigma**4 / (m - 1) / n_features)
    if convention == "keras":  # biased batch variance: its variance is ((m-1)/m)^2 as large
        se_var *= (m - 1) / m
    assert abs(layer.running_mean.mean() - mu) < 4 * se_mean
    # (the mean's control: the check has the power to see a running mean 5% off mu,
    # which is more than 4 SE here)
    assert abs(layer.running_mean.mean() - 0.95 * mu) > 4 * se_mean
    assert abs(layer.running_var.mean() - target_var) < 4 * se_var
    # Negative control: the other convention's variance target fails the same check.
    wrong_var = sigma**2 * (m - 1) / m if convention == "pytorch" else sigma**2
    assert abs(layer.running_var.mean() - wrong_var) > 4 * se_var


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("keep_prob", [0.0, 1.5, -0.1, float("nan")])
def test_dropout_rejects_keep_prob_outside_unit_interval(keep_prob):
    with pytest.raises(ValueError, match=r"'keep_prob' parameter of Dropout must .*\(0, 1\]"):
        Dropout(keep_prob)


def test_dropout_rejects_mask_of_wrong_shape():
    with pytest.raises(ValueError, match=r"'mask' parameter of Dropout must have shape \(2, 3\) "
                                         r"or \(3,\); got \(4,\)"):
        Dropout(0.5).forward(np.ones((2, 3)), mask=np.ones(4))


def test_dropout_rejects_non_binary_mask():
    with pytest.raises(ValueError, match="only 0 and 1"):
        Dropout(0.5).forward(np.ones((2, 3)), mask=np.full(3, 0.5))


def test_dense_rejects_wrong_input_width(rng):
    with pytest.raises(ValueError, match=r"Dense\(4, 2\) must have 4 columns; got shape \(3, 5\)"):
        Dense(4, 2, rng=rng).forward(np.ones((3, 5)))


def test_batchnorm_needs_two_examples_in_training():
    with pytest.raises(ValueError, match="at least 2 examples"):
        BatchNorm(3).forward(np.ones((1, 3)), training=True)


def test_batchnorm_rejects_unknown_convention():
    with pytest.raises(ValueError, match="'convention' parameter of BatchNorm must be one of"):
        BatchNorm(3, convention="caffe")


# ------------------------------------------------------------ stale caches
@pytest.mark.parametrize("make_layer", [
    lambda rng: Dense(5, 3, rng=rng),
    lambda rng: ReLU(),
    lambda rng: Tanh(),
    lambda rng: Sigmoid(),
    lambda rng: BatchNorm(5),
], ids=["dense", "relu", "tanh", "sigmoid", "batchnorm"])
def test_backward_needs_a_training_forward_pass(make_layer, rng):
    layer = make_layer(rng)
    x = rng.standard_normal((7, 5))
    out = layer.forward(x)
    with pytest.raises(RuntimeError, match=r"backward needs a forward pass in training mode"):
        layer.backward(np.ones_like(out))  # never run in training mode
    # A training pass, then an inference pass on other inputs of the same shape:
    # the cache of the training pass must not be used for the inference pass.
    layer.forward(x, training=True)
    layer.forward(rng.standard_normal((7, 5)))
    with pytest.raises(RuntimeError, match=r"backward needs a forward pass in training mode"):
        layer.backward(np.ones_like(out))
    # Positive control: right after a training pass, backward works.
    layer.forward(x, training=True)
    assert layer.backward(np.ones_like(out)).shape == x.shape


def test_dense_refuses_training_on_stacked_inputs(rng):
    layer = Dense(5, 3, rng=rng)
    with pytest.raises(ValueError, match=r"Dense\(5, 3\) needs a 2-D batch in training mode; "
                                         r"got shape \(2, 7, 5\)"):
        layer.forward(np.ones((2, 7, 5)), training=True)
    assert layer.forward(np.ones((2, 7, 5))).shape == (2, 7, 3)  # inference accepts it
