"""Networks: whole-network gradients, penalties, max-norm and thinned sub-networks."""

import numpy as np
import pytest
from _gradcheck import numerical_gradient

from ensim.nn import (
    BatchNorm,
    Dense,
    Dropout,
    MSELoss,
    Network,
    ReLU,
    SoftmaxCrossEntropy,
    build_mlp,
)


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("penalty", [{}, {"l1": 0.01, "l2": 0.03}], ids=["plain", "l1-l2"])
def test_network_gradients_match_finite_differences(task, penalty, rng):
    # Input dropout, two hidden blocks with batch norm and dropout, fixed masks.
    n_out = 3 if task == "classification" else 2
    net = build_mlp(4, [6, 5], n_out, task=task, keep_prob=0.7, input_keep_prob=0.8,
                    batch_norm=True, rng=3)
    X = rng.standard_normal((9, 4))
    y = rng.integers(0, 3, 9) if task == "classification" else rng.standard_normal((9, 2))
    masks = [(rng.random((9, n)) < 0.7).astype(float) for n in (4, 6, 5)]
    for layer in net.layers:  # move batch norm away from its identity start
        if isinstance(layer, BatchNorm):
            layer.params["gamma"][...] = rng.uniform(0.5, 2, layer.n_features)
            layer.params["beta"][...] = rng.standard_normal(layer.n_features)

    def loss():
        return net.loss_and_grad(X, y, masks=masks, **penalty)[0]

    loss()
    analytic = [grad.copy() for _, grad in net.parameters()]
    for (param, _), grad in zip(net.parameters(), analytic):
        np.testing.assert_allclose(grad, numerical_gradient(loss, param), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("layers", [
    lambda rng: [BatchNorm(3), Dense(3, 2, rng=rng)],
    lambda rng: [Dropout(0.8), BatchNorm(3), Dense(3, 4, rng=rng), ReLU(), Dense(4, 2, rng=rng)],
], ids=["batchnorm-first", "dropout-batchnorm-first"])
def test_parameters_before_the_first_dense_layer_get_gradients(layers, rng):
    net = Network(layers(rng), MSELoss())
    batch_norm = net.layers[0] if isinstance(net.layers[0], BatchNorm) else net.layers[1]
    batch_norm.params["gamma"][...] = rng.uniform(0.5, 2, 3)
    batch_norm.params["beta"][...] = rng.standard_normal(3)
    X, y = rng.standard_normal((9, 3)), rng.standard_normal((9, 2))
    masks = [(rng.random((9, 3)) < 0.8).astype(float)] if len(net.dropout_layers) else None

    def loss():
        return net.loss_and_grad(X, y, masks=masks)[0]

    loss()
    analytic = [grad.copy() for _, grad in net.parameters()]
    for (param, _), grad in zip(net.parameters(), analytic):
        np.testing.assert_allclose(grad, numerical_gradient(loss, param), rtol=1e-5, atol=1e-8)
    assert np.abs(batch_norm.grads["gamma"]).max() > 1e-3  # a real gradient, not zeros
    # Where no parameter precedes the first dense layer, its input gradient is skipped.
    assert build_mlp(3, [4], 2, input_keep_prob=0.8, rng=0).layers[1].needs_input_grad is False


def test_penalty_is_l1_plus_l2_of_dense_weights_only():
    net = build_mlp(2, [2], 1, batch_norm=True, rng=0)
    for layer in net.layers:
        for value in layer.params.values():
            value[...] = -1.0  # biases, gamma and beta too: they must not count
    # Two weight matrices with 4 + 2 entries of -1: l1 * 6 + l2 * 6.
    assert net.penalty(l1=0.5, l2=0.25) == pytest.approx(0.5 * 6 + 0.25 * 6, rel=1e-15)


def test_max_norm_bounds_incoming_weight_norms(rng):
    net = build_mlp(30, [20], 3, rng=0)
    W = net.layers[0].params["W"]  # (30, 20)
    W *= 3
    norms_before = np.linalg.norm(W, axis=0)
    c = float(np.median(norms_before))
    net.apply_max_norm(c)
    norms_after = np.linalg.norm(W, axis=0)
    assert np.all(norms_after <= c * (1 + 1e-12))
    # Columns under the bound are untouched; those over it end exactly on it.
    under = norms_before <= c
    np.testing.assert_allclose(norms_after[under], norms_before[under], rtol=1e-15)
    np.testing.assert_allclose(norms_after[~under], c, rtol=1e-12)
    # Negative control: the row norms (outgoing weights) are not what is bounded.
    assert np.linalg.norm(W, axis=1).max() > c * (1 + 1e-6) or W.shape[1] < 2


def test_network_rejects_mismatched_layer_sizes(rng):
    with pytest.raises(ValueError, match=r"Layer 2 \(Dense\(6, 2.*expects 6 inputs, but the "
                                         r"layer before it gives 5"):
        Network([Dense(3, 5, rng=rng), ReLU(), Dense(6, 2, rng=rng)], SoftmaxCrossEntropy())
    with pytest.raises(ValueError, match=r"BatchNorm\(4, .*expects 4 inputs.*gives 5"):
        Network([Dense(3, 5, rng=rng), BatchNorm(4), Dense(5, 2, rng=rng)], SoftmaxCrossEntropy())


def test_forward_rejects_wrong_number_of_masks(rng):
    net = build_mlp(3, [4, 4], 1, keep_prob=0.5, rng=0)
    with pytest.raises(ValueError, match=r"one mask per dropout layer \(2\); got 1"):
        net.forward(np.ones((2, 3)), masks=[np.ones(4)])


# ------------------------------------------------------- thinned networks
def test_sample_masks_shapes_dtype_and_seeding():
    net = build_mlp(5, [8, 6], 2, keep_prob=0.5, input_keep_prob=0.8, rng=0, dtype=np.float32)
    masks = net.sample_masks(7, rng=11)
    assert [mask.shape for mask in masks] == [(7, 5), (7, 8), (7, 6)]
    assert all(mask.dtype == np.float32 for mask in masks)
    assert all(set(np.unique(mask)) <= {0.0, 1.0} for mask in masks)
    again = net.sample_masks(7, rng=11)
    other = net.sample_masks(7, rng=12)
    assert all(np.array_equal(a, b) for a, b in zip(masks, again))
    assert not all(np.array_equal(a, b) for a, b in zip(masks, other))


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("chunk_size", [None, 1, 3])
@pytest.mark.parametrize("n_test", [40, 3], ids=["masks-folded", "activations-scaled"])
def test_predict_thinned_equals_masked_forward_passes(batch_norm, chunk_size, n_test, rng):
    # With 40 test rows, masks are folded into the weights of the dense layers they
    # feed (n_out < n_test); with 3 rows, the activations are scaled instead.
    net = build_mlp(5, [8, 6], 3, task="classification", keep_prob=0.6, input_keep_prob=0.9,
                    batch_norm=batch_norm, rng=0)
    X_train = rng.standard_normal((40, 5))
    net.loss_and_grad(X_train, rng.integers(0, 3, 40), rng=rng)  # move running stats off 0 and 1
    X = X_train[:n_test]
    masks = net.sample_masks(7, rng=1)
    result = net.predict_thinned(X, masks, chunk_size=chunk_size)
    assert result.members.shape == (7, n_test, 3)
    for j in range(7):
        expected = net.head.predict(net.forward(X, masks=[mask[j] for mask in masks]))
        np.testing.assert_allclose(result.members[j], expected, rtol=1e-12, atol=1e-15)
    assert not np.allclose(result.members[0], result.members[1])  # members differ
    np.testing.assert_allclose(result.full, net.predict(X), rtol=1e-15)
    np.testing.assert_allclose(result.mean, result.members.mean(axis=0), rtol=1e-15)


def test_predict_thinned_with_mask_after_last_hidden_only(rng):
    # Dropout directly before the output layer: everything before it is shared.
    layers = [Dense(4, 6, rng=rng), ReLU(), Dropout(0.5), Dense(6, 2, rng=rng)]
    net = Network(layers, SoftmaxCrossEntropy())
    X = rng.standard_normal((10, 4))
    masks = net.sample_masks(3, rng=0)
    result = net.predict_thinned(X, masks)
    for j in range(3):
        np.testing.assert_allclose(result.members[j],
                                   net.head.predict(net.forward(X, masks=[masks[0][j]])),
                                   rtol=1e-12)


def test_all_ones_masks_give_the_full_network_only_when_keep_prob_is_one(rng):
    # With keep_prob < 1 an all-ones mask still scales by 1/p, so it is not the
    # weight-scaled network (a negative control for the scaling in predict_thinned).
    X = rng.standard_normal((10, 4))
    net = build_mlp(4, [6], 1, keep_prob=0.5, rng=0)
    result = net.predict_thinned(X, [np.ones((1, 6))])
    assert not np.allclose(result.members[0], result.full)
    # The mask precedes the output layer (z = h W + b), so z_member - b = (z_full - b) / p.
    b = net.layers[-1].params["b"]
    np.testing.assert_allclose(result.members[0] - b, (result.full - b) / 0.5, rtol=1e-12)
    layers = [Dense(4, 6, rng=rng), ReLU(), Dropout(1.0), Dense(6, 1, rng=rng)]
    net_kept = Network(layers, MSELoss())
    kept = net_kept.predict_thinned(X, net_kept.sample_masks(3, rng=0))
    assert kept.members.shape == (3, 10, 1)
    np.testing.assert_allclose(kept.members, np.broadcast_to(kept.full, (3, 10, 1)), rtol=1e-15)


def test_thinned_networks_need_a_dropout_layer(rng):
    net = build_mlp(4, [6], 2, keep_prob=1.0, rng=0)  # keep_prob=1 builds no dropout layer
    X = rng.standard_normal((5, 4))
    with pytest.raises(ValueError, match=r"Network.sample_masks needs a network with a Bernoulli "
                                         r"Dropout layer; this one has none"):
        net.sample_masks(50)
    with pytest.raises(ValueError, match=r"Network.predict_thinned needs a network with a "
                                         r"Bernoulli Dropout layer; this one has none"):
        net.predict_thinned(X, [])
    # Positive control: one dropout layer is enough.
    net = build_mlp(4, [6], 2, keep_prob=0.5, rng=0)
    assert net.predict_thinned(X, net.sample_masks(50, rng=0)).members.shape == (50, 5, 2)


def test_predict_thinned_on_no_test_rows(rng):
    net = build_mlp(4, [6], 2, keep_prob=0.5, rng=0)
    result = net.predict_thinned(np.empty((0, 4)), net.sample_masks(3, rng=0))
    assert result.members.shape == (3, 0, 2) and result.full.shape == (0, 2)


_OK = np.ones((2, 6))      # a valid mask set for the second dropout layer


@pytest.mark.parametrize("masks, error, words", [
    ([np.full((2, 4), np.nan), _OK], ValueError,
     ["'masks[0]'", "only 0 or 1", "got nan at index (0, 0)", "(8 such entries)"]),
    ([np.array([[1.0, 0.5, 0.0, 1.0], [1, 1, 1, 1]]), _OK], ValueError,
     ["only 0 or 1", "got 0.5 at index (0, 1)."]),
    ([np.ones((2, 3)), _OK], ValueError,
     ["must have shape (m, 4)", "dropout layer 0", "got shape (2, 3)"]),
    ([np.ones(4), _OK], ValueError, ["must have shape (m, 4)", "got shape (4,)"]),
    ([np.ones((2, 4)), np.ones((3, 6))], ValueError,
     ["'masks[1]'", "must have shape (2, 6)", "got shape (3, 6)"]),
    ([np.ones((2, 4))], ValueError, ["one array per dropout layer (2); got 1"]),
    ([np.full((2, 4), "1"), _OK], TypeError, ["'masks[0]'", "dtype <U1"]),
    (None, TypeError, ["'masks'", "list of arrays", "NoneType"]),
])
def test_predict_thinned_refuses_bad_masks(masks, error, words, rng):
    net = build_mlp(3, [4, 6], 2, keep_prob=0.5, rng=0)     # dropout widths 4 and 6
    with pytest.raises(error) as info:
        net.predict_thinned(rng.standard_normal((5, 3)), masks)
    for word in words:
        assert word in str(info.value)
    # Positive control: valid masks of the same shapes pass.
    assert net.predict_thinned(rng.standard_normal((5, 3)),
                               [np.ones((2, 4)), _OK]).members.shape == (2, 5, 2)


def test_predict_thinned_accepts_boolean_and_integer_masks(rng):
    net = build_mlp(3, [4], 2, keep_prob=0.5, rng=0)
    X = rng.standard_normal((5, 3))
    floats = net.sample_masks(6, rng=1)
    expected = net.predict_thinned(X, floats).members
    for dtype in (bool, np.int64):
        members = net.predict_thinned(X, [mask.astype(dtype) for mask in floats]).members
        np.testing.assert_array_equal(members, expected)


def test_predict_thinned_refuses_inputs_of_the_wrong_width(rng):
    net = build_mlp(3, [4], 2, keep_prob=0.5, rng=0)
    with pytest.raises(ValueError, match=r"'X' parameter of Network.predict_thinned must have "
                                         r"shape \(n_test, 3\); got shape \(5, 2\)"):
        net.predict_thinned(np.ones((5, 2)), net.sample_masks(2, rng=0))


def _thinned_peak_bytes(net, X, masks, **kwargs):
    """Peak memory traced while ``net.predict_thinned(X, masks)`` runs, in bytes."""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start = tracemalloc.get_traced_memory()[0]
        net.predict_thinned(X, masks, **kwargs)
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def _thinned_memory_bound(n_test, m=200):
    """Bytes docs/nn.md allows predict_thinned on the 784-512-512-10 float64 network.

    A chunk's working memory is at most max(2**20, per-member) entries, per member
    four activation arrays of n_test x (widest layer) entries plus the weights of
    the widest dense layer a mask is folded into (folded only when the layer's
    n_out < n_test); beyond the chunk come the shared and full-network passes (one
    member's activations) and the result (m x n_test x n_outputs). 1 MiB of slack
    covers Python objects and small arrays.
    """
    folded = [512 * n_out for n_out in (512, 10) if n_out < n_test]
    per_member = 4 * n_test * 784 + max(folded, default=0)
    return 8 * (max(2**20, per_member) + per_member + m * n_test * 10) + 2**20


@pytest.mark.parametrize("n_test", [1, 64, 600])
def test_predict_thinned_working_memory_is_bounded(n_test):
    net = build_mlp(784, [512, 512], 10, task="classification", keep_prob=0.5, rng=0)
    X = np.random.default_rng(0).standard_normal((n_test, 784))
    masks = net.sample_masks(200, rng=0)
    assert _thinned_peak_bytes(net, X, masks) < _thinned_memory_bound(n_test)


def test_predict_thinned_memory_grows_with_an_explicit_chunk_size():
    # Negative control for the bound above: 200 members in one chunk hold at least
    # 200 x 64 x 512 activation entries (52 MB), four times the bound.
    net = build_mlp(784, [512, 512], 10, task="classification", keep_prob=0.5, rng=0)
    X = np.random.default_rng(0).standard_normal((64, 784))
    masks = net.sample_masks(200, rng=0)
    peak = _thinned_peak_bytes(net, X, masks, chunk_size=200)
    assert peak > 8 * 200 * 64 * 512 > _thinned_memory_bound(64)


def test_predict_thinned_rejects_a_bad_chunk_size(rng):
    # Bad masks: test_predict_thinned_refuses_bad_masks.
    net = build_mlp(5, [8, 6], 2, keep_prob=0.5, rng=0)
    X = rng.standard_normal((4, 5))
    with pytest.raises(ValueError, match="'chunk_size' parameter of Network.predict_thinned"):
        net.predict_thinned(X, net.sample_masks(2, 0), chunk_size=0)


@pytest.mark.gpu
def test_network_on_cupy_matches_numpy():
    import cupy

    from ensim.nn import TrainingConfig, train

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 5))
    y = rng.integers(0, 3, 64)
    nets = [build_mlp(5, [16], 3, task="classification", batch_norm=True, rng=1, backend=b)
            for b in ("numpy", "cupy")]
    config = TrainingConfig(max_epochs=5, batch_size=16)
    train(nets[0], X, y, config, rng=2)
    train(nets[1], cupy.asarray(X), cupy.asarray(y), config, rng=2)
    for a, b in zip(nets[0].get_weights(), nets[1].get_weights()):
        np.testing.assert_allclose(a, cupy.asnumpy(b), rtol=1e-9, atol=1e-12)


def test_thinned_members_average_to_the_weight_scaled_network_when_dropout_feeds_a_linear_map(rng):
    # z_j = (h * M_j / p) W + b has expectation h W + b = the full network, exactly,
    # when the only dropout layer feeds the (linear) output layer. With m = 20000
    # members, each of the 5 x 2 averages has SE = sd(z_j) / sqrt(m); all ten
    # |z| < 4.5 fail by chance with probability < 10 * 6.8e-6 = 7e-5.
    layers = [Dense(4, 16, rng=rng), ReLU(), Dropout(0.6), Dense(16, 2, rng=rng)]
    net = Network(layers, MSELoss())
    X = rng.standard_normal((5, 4))
    result = net.predict_thinned(X, net.sample_masks(20_000, rng=1))
    se = result.members.std(axis=0, ddof=1) / np.sqrt(20_000)  # (5, 2)
    assert np.all(np.abs(result.mean - result.full) < 4.5 * se)
    # Negative control: members without the 1/p rescaling average to p h W + b.
    b = layers[-1].params["b"]
    unscaled_mean = 0.6 * (result.mean - b) + b
    assert np.any(np.abs(unscaled_mean - result.full) > 4.5 * se)


def test_parameters_are_views_of_one_buffer_that_survive_copies(rng):
    import copy
    import pickle

    from ensim.nn import SGD

    net = build_mlp(3, [5], 2, batch_norm=True, rng=0)
    X, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    for candidate in (net, copy.deepcopy(net), pickle.loads(pickle.dumps(net))):
        (flat, flat_grad), = candidate.flat_parameters()
        assert flat.size == 3 * 5 + 5 + 5 + 5 + 5 * 2 + 2
        assert all(np.shares_memory(p, flat) and np.shares_memory(g, flat_grad)
                   for p, g in candidate.parameters())
    # Stepping on the flat pair equals stepping array by array, bit for bit.
    twin = copy.deepcopy(net)
    flat_optimizer, array_optimizer = SGD(momentum=0.9, nesterov=True), SGD(momentum=0.9, nesterov=True)
    for _ in range(3):
        net.loss_and_grad(X, y)
        flat_optimizer.step(net.flat_parameters(), 0.1)
        twin.loss_and_grad(X, y)
        array_optimizer.step(twin.parameters(), 0.1)
    assert all(np.array_equal(a, b) for a, b in zip(net.get_weights(), twin.get_weights()))
    assert not np.array_equal(net.get_weights()[0], build_mlp(3, [5], 2, batch_norm=True,
                                                             rng=0).get_weights()[0])


def test_a_pickle_with_the_earlier_private_widths_still_samples_masks():
    from ensim.nn.network import Network

    net = build_mlp(3, [5, 4], 1, keep_prob=0.5, rng=0)
    state = net.__getstate__()
    state["_dropout_widths"] = state.pop("dropout_widths")   # as pickles made before
    old = Network.__new__(Network)
    old.__setstate__(state)
    assert old.dropout_widths == net.dropout_widths == [5, 4]
    assert not hasattr(old, "_dropout_widths")
    masks = old.sample_masks(3, rng=1)
    assert [m.shape for m in masks] == [(3, 5), (3, 4)]
