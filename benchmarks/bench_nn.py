"""Benchmark: training steps per second of ensim's MLP next to PyTorch's, and the
rate of evaluating thinned sub-networks, as fractions of the machine's sgemm rate.

For two networks (784-512-512-10 with dropout, a softmax head and batch 128; and
10-64-64-1 with dropout, a squared-error head and batch 128), with and without batch
normalization, it times ensim's training step (forward, backward, SGD with momentum
0.9) and the same step in PyTorch (same architecture, batch, optimizer, dropout,
float32, same number of threads), and prints steps per second side by side. The
large network's step is also counted in floating-point operations and compared with
the float32 matrix-product (sgemm) rate measured on the same machine, in two ways:
on the matrix shapes the step itself multiplies (the best a step made only of its
products could do), and on large square matrices (the machine's peak).

Last, it evaluates 50 thinned sub-networks of the large network on 1,000 test points
with :meth:`ensim.nn.Network.predict_thinned` and reports its sgemm fraction too.

Run it alone on a quiet machine: ``python benchmarks/bench_nn.py [--threads 1 2]``.
PyTorch (``pip install torch``) is optional: without it the PyTorch columns are empty.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import time

import numpy as np
from threadpoolctl import threadpool_limits

from ensim.nn import SGD, build_mlp

BATCH = 128
KEEP_PROB = 0.5
NETWORKS = {"784-512-512-10": (784, (512, 512), 10), "10-64-64-1": (10, (64, 64), 1)}


def _time_per_call(fn, *, min_seconds=1.0, n_repeats=5):
    """Median seconds per call of ``fn`` over ``n_repeats`` blocks of about ``min_seconds``."""
    for _ in range(5):
        fn()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < min_seconds / 4:
        fn()
        n += 1
    block = max(1, int(n * 4 / n_repeats))
    times = []
    for _ in range(n_repeats):
        start = time.perf_counter()
        for _ in range(block):
            fn()
        times.append((time.perf_counter() - start) / block)
    return float(np.median(times))


def step_flops(n_in, hidden, n_out, batch=BATCH):
    """Floating-point operations of the matrix products of one training step.

    Forward ``2 B n_in n_out`` per dense layer, the same again for each weight
    gradient, and again for each input gradient except the first layer's (the data
    needs none). Element-wise work (activations, masks, batch norm, the optimizer)
    is not counted.
    """
    widths = [n_in, *hidden, n_out]
    per_layer = [2 * batch * a * b for a, b in itertools.pairwise(widths)]
    return 3 * sum(per_layer) - per_layer[0]


def sgemm_rate_square(n=2048):
    """float32 matrix-product rate in FLOP/s on ``n x n`` matrices."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    return 2 * n**3 / _time_per_call(lambda: a @ a)


def sgemm_rate_step(n_in, hidden, n_out, batch=BATCH):
    """float32 rate in FLOP/s of exactly the matrix products of one training step."""
    rng = np.random.default_rng(0)
    widths = [n_in, *hidden, n_out]
    Ws = [rng.standard_normal((a, b)).astype(np.float32) for a, b in itertools.pairwise(widths)]
    hs = [rng.standard_normal((batch, w)).astype(np.float32) for w in widths]
    outs = [np.empty_like(W) for W in Ws]

    def products():
        for h, W in zip(hs, Ws):
            h @ W  # forward
        for i, (h, g, out) in enumerate(zip(hs[:-1], hs[1:], outs)):
            np.matmul(h.T, g, out=out)  # weight gradient
            if i > 0:
                g @ Ws[i].T  # input gradient

    return step_flops(n_in, hidden, n_out, batch) / _time_per_call(products)


def _data(n_in, n_out, n_batches=16, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_batches * BATCH, n_in)).astype(np.float32)
    if n_out > 1:
        y = rng.integers(0, n_out, n_batches * BATCH)
    else:
        y = rng.standard_normal((n_batches * BATCH, 1)).astype(np.float32)
    return X, y


def ensim_steps_per_second(n_in, hidden, n_out, batch_norm):
    """Training steps per second of ensim (SGD, momentum 0.9, float32)."""
    from ensim._random import as_seed_sequence, numpy_generator

    task = "classification" if n_out > 1 else "regression"
    net = build_mlp(n_in, hidden, n_out, task=task, keep_prob=KEEP_PROB, batch_norm=batch_norm,
                    rng=0, dtype=np.float32)
    X, y = _data(n_in, n_out)
    optimizer, pairs, rng = SGD(momentum=0.9), net.flat_parameters(), numpy_generator(as_seed_sequence(1))
    n_batches, state = X.shape[0] // BATCH, {"i": 0}

    def step():
        start = (state["i"] % n_batches) * BATCH
        state["i"] += 1
        net.loss_and_grad(X[start:start + BATCH], y[start:start + BATCH], rng=rng)
        optimizer.step(pairs, 0.01)

    return 1 / _time_per_call(step)


def torch_steps_per_second(torch, n_in, hidden, n_out, batch_norm):
    """Training steps per second of the same network in PyTorch."""
    nn = torch.nn
    layers, width = [], n_in
    for n_hidden in hidden:
        layers.append(nn.Linear(width, n_hidden))
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_hidden))
        layers += [nn.ReLU(), nn.Dropout(p=1 - KEEP_PROB)]
        width = n_hidden
    layers.append(nn.Linear(width, n_out))
    model = nn.Sequential(*layers).train()
    loss_fn = nn.CrossEntropyLoss() if n_out > 1 else nn.MSELoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    X, y = _data(n_in, n_out)
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    n_batches, state = X.shape[0] // BATCH, {"i": 0}

    def step():
        start = (state["i"] % n_batches) * BATCH
        state["i"] += 1
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(X[start:start + BATCH]), y[start:start + BATCH]).backward()
        optimizer.step()

    return 1 / _time_per_call(step)


def thinned_rate(m=50, n_test=1000, chunk_size=None):
    """Seconds and FLOP/s of evaluating ``m`` thinned sub-networks of the large network.

    The flops counted are the necessary ones: the first layer once (no mask
    precedes it), the later layers once per sub-network. The default chunk is
    cache-sized (one member at a time for this network, the shared work hoisted);
    ``chunk_size=16`` stacks 16 members into batched products, for comparison.
    """
    n_in, hidden, n_out = NETWORKS["784-512-512-10"]
    net = build_mlp(n_in, hidden, n_out, task="classification", keep_prob=KEEP_PROB, rng=0,
                    dtype=np.float32)
    X = np.random.default_rng(0).standard_normal((n_test, n_in)).astype(np.float32)
    masks = net.sample_masks(m, rng=0)
    widths = [n_in, *hidden, n_out]
    flops = 2 * n_test * widths[0] * widths[1] + m * sum(
        2 * n_test * a * b for a, b in itertools.pairwise(widths[1:]))
    seconds = _time_per_call(lambda: net.predict_thinned(X, masks, chunk_size=chunk_size),
                             min_seconds=2.0)
    return seconds, flops / seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                        help="BLAS (and PyTorch) thread counts to measure with")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    print(f"machine: {platform.processor() or platform.machine()}, {platform.system()}, "
          f"numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}")
    large = NETWORKS["784-512-512-10"]
    for n_threads in args.threads:
        with threadpool_limits(n_threads):
            if torch is not None:
                torch.set_num_threads(n_threads)
            peak, step_rate = sgemm_rate_square(), sgemm_rate_step(*large)
            print(f"\n== {n_threads} thread(s): sgemm {peak / 1e9:.0f} GFLOP/s on 2048^2, "
                  f"{step_rate / 1e9:.0f} GFLOP/s on the large step's shapes")
            print(f"{'network':<16}{'batch norm':<12}{'ensim steps/s':>14}{'torch steps/s':>15}"
                  f"{'ratio':>8}{'ensim GFLOP/s':>15}{'of step sgemm':>15}")
            for name, (n_in, hidden, n_out) in NETWORKS.items():
                for batch_norm in (False, True):
                    ours = ensim_steps_per_second(n_in, hidden, n_out, batch_norm)
                    ref = (torch_steps_per_second(torch, n_in, hidden, n_out, batch_norm)
                           if torch is not None else float("nan"))
                    rate = ours * step_flops(n_in, hidden, n_out)
                    print(f"{name:<16}{batch_norm!s:<12}{ours:>14.0f}{ref:>15.0f}"
                          f"{ours / ref:>8.2f}{rate / 1e9:>15.1f}{rate / step_rate:>15.0%}")
            for label, chunk_size in (("default chunks", None), ("stacked by 16", 16)):
                seconds, rate = thinned_rate(chunk_size=chunk_size)
                print(f"50 thinned sub-networks of 784-512-512-10 on 1,000 points ({label}): "
                      f"{seconds * 1e3:.0f} ms, {rate / 1e9:.1f} GFLOP/s = {rate / step_rate:.0%} "
                      f"of step sgemm, {rate / peak:.0%} of square sgemm")


if __name__ == "__main__":
    main()
