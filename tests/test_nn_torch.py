"""Reference: ensim's layers and optimizers against PyTorch itself, where it is installed."""

import numpy as np
import pytest

from ensim.nn import SGD, Adam, BatchNorm, Dropout, build_mlp

torch = pytest.importorskip("torch")


def test_batchnorm_agrees_with_torch_batchnorm1d(rng):
    x = 3 + 2 * rng.standard_normal((16, 4))
    g = rng.standard_normal((16, 4))
    ours = BatchNorm(4)
    ours.params["gamma"][...] = [0.5, 1.0, 2.0, -1.0]
    ours.params["beta"][...] = [0.0, 1.0, -1.0, 0.5]
    ref = torch.nn.BatchNorm1d(4, dtype=torch.float64)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(ours.params["gamma"]))
        ref.bias.copy_(torch.from_numpy(ours.params["beta"]))
    for step in range(3):  # three training steps, then inference
        xs = x + step
        x_t = torch.tensor(xs, requires_grad=True)
        y_t = ref(x_t)
        y_t.backward(torch.from_numpy(g))
        y = ours.forward(xs, training=True)
        grad_x = ours.backward(g)
        np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(grad_x, x_t.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.grads["gamma"], ref.weight.grad.numpy(), rtol=1e-10)
        np.testing.assert_allclose(ours.grads["beta"], ref.bias.grad.numpy(), rtol=1e-10)
        ref.weight.grad = ref.bias.grad = None
    np.testing.assert_allclose(ours.running_mean, ref.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.running_var, ref.running_var.numpy(), rtol=1e-12)
    ref.eval()
    np.testing.assert_allclose(ours.forward(x), ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-12, atol=1e-12)


def test_dropout_with_torch_mask_reproduces_torch_output(rng):
    # torch.nn.Dropout(p=drop) zeroes with probability drop and scales by 1/(1-drop):
    # our layer given torch's kept set and keep_prob = 1 - drop must agree exactly.
    drop = 0.3
    torch.manual_seed(0)
    x = torch.tensor(rng.uniform(1, 2, (8, 50)))  # strictly positive: zeros are dropped units
    y_ref = torch.nn.Dropout(p=drop).train()(x).numpy()
    mask = (y_ref != 0).astype(float)
    y = Dropout(1 - drop).forward(x.numpy(), training=True, mask=mask)
    np.testing.assert_allclose(y, y_ref, rtol=1e-15)


@pytest.mark.parametrize("make", [
    (lambda: SGD(momentum=0.9), lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    (lambda: SGD(momentum=0.9, nesterov=True),
     lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True)),
    (lambda: Adam(), lambda p: torch.optim.Adam(p, lr=0.05)),
], ids=["sgd-momentum", "sgd-nesterov", "adam"])
def test_optimizers_agree_with_torch(make, rng):
    make_ours, make_ref = make
    theta = rng.standard_normal(5)
    param = theta.copy()
    grad = np.zeros(5)
    theta_t = torch.tensor(theta, requires_grad=True)
    ours, ref = make_ours(), make_ref([theta_t])
    for _ in range(10):  # f(theta) = sum(theta**4) / 4, gradient theta**3
        grad[...] = param**3
        ours.step([(param, grad)], 0.05)
        ref.zero_grad()
        (theta_t**4 / 4).sum().backward()
        ref.step()
    np.testing.assert_allclose(param, theta_t.detach().numpy(), rtol=1e-12)


def test_network_gradients_agree_with_torch(rng):
    # Dense -> BatchNorm -> ReLU -> Dropout(fixed mask) -> Dense, cross-entropy.
    net = build_mlp(6, [5], 3, task="classification", keep_prob=0.5, batch_norm=True, rng=1)
    X, y = rng.standard_normal((10, 6)), rng.integers(0, 3, 10)
    mask = (rng.random((10, 5)) < 0.5).astype(float)
    loss, _ = net.loss_and_grad(X, y, masks=[mask])
    d1, bn, _, _, d2 = net.layers
    t = {k: torch.tensor(v, requires_grad=True) for k, v in {
        "W1": d1.params["W"], "b1": d1.params["b"], "gamma": bn.params["gamma"],
        "beta": bn.params["beta"], "W2": d2.params["W"], "b2": d2.params["b"]}.items()}
    h = torch.tensor(X) @ t["W1"] + t["b1"]
    h = torch.nn.functional.batch_norm(h, None, None, t["gamma"], t["beta"], training=True)
    h = torch.relu(h) * torch.tensor(mask) / 0.5
    loss_t = torch.nn.functional.cross_entropy(h @ t["W2"] + t["b2"], torch.tensor(y))
    loss_t.backward()
    np.testing.assert_allclose(loss, loss_t.item(), rtol=1e-12)
    ours = {"W1": d1.grads["W"], "b1": d1.grads["b"], "gamma": bn.grads["gamma"],
            "beta": bn.grads["beta"], "W2": d2.grads["W"], "b2": d2.grads["b"]}
    for name, grad in ours.items():
        np.testing.assert_allclose(grad, t[name].grad.numpy(), rtol=1e-9, atol=1e-12, err_msg=name)
