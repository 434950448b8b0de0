"""Benchmark: member-steps per second of k networks trained at once, against one at a time.

For the small (10-64-64-1, squared error) and large (784-512-512-10, softmax) networks,
with dropout 0.5 after each hidden layer, with and without batch normalization, float32
batches of 128, SGD with momentum 0.9 and lr 0.01, on 1 and 2 BLAS threads, it times:

* **stacked**: :func:`ensim.nn.train_stacked` on ``k = 10`` and ``k = 50`` members (the
  stack size chosen by its default memory budget); on ``t > 1`` threads with
  ``n_jobs=t`` stacks trained at once, each with one BLAS thread (and, for comparison,
  ``stacked k=50, 1 job``: one stack at a time, the ``t`` BLAS threads in its products);
* **one at a time**: :func:`ensim.nn.train` called once per member, member after member
  (how an ensemble of ensim networks was trained before; its rate is the same for any k);
* **torch**: the same network in PyTorch, one model at a time (consecutive steps on
  one model; a loop over members costs at least this per member-step);
* **vmap**: ``k`` PyTorch models stacked with ``torch.func.stack_module_state`` and
  trained with ``vmap(grad(...), randomness="different")`` and a momentum step on the
  stacked tensors (batch normalization through
  ``torch.func.replace_all_batch_norm_modules_``, which stops tracking running
  statistics: vmap cannot update them in place).

Every member sees its own batches. A member-step is one training step of one member.
An epoch is 16 batches for the small network and 4 for the large one (2 with
``--quick``). Both ensim methods train whole ensembles: each member for one epoch (three
for the large network), in one ``train_stacked`` call for all members or one ``train``
call per member, so that each member's set-up and cold start are paid on as many steps
by both. **ceiling k=50** times what a stacked step cannot do without (each member's
mask words, drawn as its solo network draws them, and the step's batched products, see
:func:`stacked_ceiling`): a target above its ratio cannot be met by this design here.
Methods are timed in alternation, A, B, C, A, B, C, ..., and the best block of each is
kept, so that ratios are fair on a shared machine. GFLOP/s count only a step's matrix
products (as ``bench_nn.py``) and are compared with the float32 sgemm rate on exactly
one step's product shapes ("step sgemm"), timed in the same alternation.

``python benchmarks/bench_ensemble.py [--quick] [--threads 1 2]``. PyTorch is optional.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import platform
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from _cpu import cpu_times, steal_report  # benchmarks/_cpu.py, beside this script
from ensim.nn import TrainingConfig, build_mlp, build_stacked_mlp, train, train_stacked

BATCH = 128
KEEP_PROB = 0.5
NETWORKS = {"10-64-64-1": (10, (64, 64), 1), "784-512-512-10": (784, (512, 512), 10)}
KS = (10, 50)
CEILING = "ceiling k=50"


def step_flops(n_in, hidden, n_out, batch=BATCH):
    """Floating-point operations of the matrix products of one training step of one member:
    forward, weight gradients, and input gradients except the first layer's."""
    widths = [n_in, *hidden, n_out]
    per_layer = [2 * batch * a * b for a, b in itertools.pairwise(widths)]
    return 3 * sum(per_layer) - per_layer[0]


def sgemm_step(n_in, hidden, n_out, batch=BATCH):
    """A method timing exactly the float32 matrix products of one training step: its rate
    times :func:`step_flops` is the machine's sgemm rate on the step's shapes."""
    rng = np.random.default_rng(0)
    widths = [n_in, *hidden, n_out]
    Ws = [rng.standard_normal((a, b)).astype(np.float32) for a, b in itertools.pairwise(widths)]
    hs = [rng.standard_normal((batch, w)).astype(np.float32) for w in widths]
    outs = [np.empty_like(W) for W in Ws]

    def run(n_calls):
        start = time.perf_counter()
        for _ in range(n_calls):
            for h, W in zip(hs, Ws):
                h @ W  # forward
            for i, (h, g, out) in enumerate(zip(hs[:-1], hs[1:], outs)):
                np.matmul(h.T, g, out=out)  # weight gradient
                if i > 0:
                    g @ Ws[i].T  # input gradient
        return n_calls, time.perf_counter() - start

    return run


def _data(n_in, n_out, n_batches, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_batches * BATCH, n_in)).astype(np.float32)
    if n_out > 1:
        y = rng.integers(0, n_out, n_batches * BATCH)
    else:
        y = rng.standard_normal((n_batches * BATCH, 1)).astype(np.float32)
    return X, y


# ------------------------------------------------------------------ methods
# Each method is a callable ``run(n_units) -> (member_steps, seconds)`` that does
# ``n_units`` units of work and reports what it did. For ensim a unit is a whole training
# of ``n_epochs`` epochs per member: of the k members at once (stacked), or of one member
# (one at a time), so that both pay each member's set-up on as many steps. For PyTorch a
# unit is an epoch of consecutive steps on the same models (no set-up at all).

def ensim_stacked(net, k, batch_norm, n_batches, n_epochs, n_jobs=1):
    n_in, hidden, n_out = NETWORKS[net]
    task = "classification" if n_out > 1 else "regression"
    stack = build_stacked_mlp(n_in, hidden, n_out, k, rng=0, task=task, keep_prob=KEEP_PROB,
                              batch_norm=batch_norm, dtype=np.float32)
    X, y = _data(n_in, n_out, n_batches)
    config = TrainingConfig(max_epochs=n_epochs, batch_size=BATCH, optimizer="sgd",
                            learning_rate=0.01, momentum=0.9)

    def run(n_trainings):
        start = time.perf_counter()
        for _ in range(n_trainings):
            if n_jobs == 1:
                train_stacked(stack, X, y, config, rng=1)
            else:  # n_jobs threads over the stacks, one BLAS thread each
                with threadpool_limits(1):
                    train_stacked(stack, X, y, config, rng=1, n_jobs=n_jobs)
        return n_trainings * k * n_batches * n_epochs, time.perf_counter() - start

    return run


def ensim_alone(net, batch_norm, n_batches, n_epochs):
    n_in, hidden, n_out = NETWORKS[net]
    task = "classification" if n_out > 1 else "regression"
    network = build_mlp(n_in, hidden, n_out, task=task, keep_prob=KEEP_PROB,
                        batch_norm=batch_norm, rng=0, dtype=np.float32)
    X, y = _data(n_in, n_out, n_batches)
    config = TrainingConfig(max_epochs=n_epochs, batch_size=BATCH, optimizer="sgd",
                            learning_rate=0.01, momentum=0.9)

    def run(n_members):  # one train() call per member, as an ensemble was trained before
        start = time.perf_counter()
        for _ in range(n_members):
            train(network, X, y, config, rng=1)
        return n_members * n_batches * n_epochs, time.perf_counter() - start

    return run


def _torch_model(torch, net, batch_norm):
    nn = torch.nn
    n_in, hidden, n_out = NETWORKS[net]
    layers, width = [], n_in
    for n_hidden in hidden:
        layers.append(nn.Linear(width, n_hidden))
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_hidden))
        layers += [nn.ReLU(), nn.Dropout(p=1 - KEEP_PROB)]
        width = n_hidden
    layers.append(nn.Linear(width, n_out))
    loss = nn.CrossEntropyLoss() if n_out > 1 else nn.MSELoss()
    return nn.Sequential(*layers).train(), loss


def torch_alone(torch, net, batch_norm, n_batches):
    model, loss_fn = _torch_model(torch, net, batch_norm)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    n_in, _, n_out = NETWORKS[net]
    X, y = (torch.from_numpy(a) for a in _data(n_in, n_out, n_batches))

    def run(n_epochs):
        start = time.perf_counter()
        for _ in range(n_epochs):
            order = torch.randperm(X.shape[0])
            for b in range(n_batches):
                rows = order[b * BATCH:(b + 1) * BATCH]
                optimizer.zero_grad(set_to_none=True)
                loss_fn(model(X[rows]), y[rows]).backward()
                optimizer.step()
        return n_batches * n_epochs, time.perf_counter() - start

    return run


def torch_vmap(torch, net, k, batch_norm, n_batches):
    from torch.func import functional_call, grad, replace_all_batch_norm_modules_, \
        stack_module_state, vmap

    models = []
    for _ in range(k):
        model, loss_fn = _torch_model(torch, net, batch_norm)
        if batch_norm:
            replace_all_batch_norm_modules_(model)
        models.append(model)
    params, buffers = stack_module_state(models)
    params = {name: p.detach() for name, p in params.items()}
    velocity = {name: torch.zeros_like(p) for name, p in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    del models

    def loss_of(p, b, x, t):
        return loss_fn(functional_call(base, (p, b), (x,)), t)

    step_grad = vmap(grad(loss_of), in_dims=(0, 0, 0, 0), randomness="different")
    n_in, _, n_out = NETWORKS[net]
    X, y = (torch.from_numpy(a) for a in _data(n_in, n_out, n_batches))

    def run(n_epochs):
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(n_epochs):
                orders = torch.stack([torch.randperm(X.shape[0]) for _ in range(k)])
                for b in range(n_batches):
                    rows = orders[:, b * BATCH:(b + 1) * BATCH]  # (k, batch)
                    grads = step_grad(params, buffers, X[rows], y[rows])
                    for name, g in grads.items():
                        v = velocity[name]
                        v.mul_(0.9).add_(g)
                        params[name].sub_(v, alpha=0.01)
        return k * n_batches * n_epochs, time.perf_counter() - start

    return run


def stacked_ceiling(net, k, n_batches, n_jobs=1):
    """What a stacked step cannot do without: its batched products and its mask words.

    Per step, for a stack of the size ``train_stacked`` picks for ``k`` members: each
    member's 32 random bits per dropout unit (``random_raw``, as the solo network draws
    them, so that a member stays bit-identical to it) compared with the threshold, and
    the step's batched float32 products (forward, weight gradients, input gradients
    but the first layer's), made with the same ``np.matmul`` calls on ``(stack, batch,
    width)`` arrays. No element-wise work, loss or optimizer step: its rate bounds
    from above what any stacked step of this design can reach on this machine. With
    ``n_jobs > 1`` the stacks are shared out over that many threads, one BLAS thread
    each, as :func:`train_stacked` shares them.
    """
    from ensim.nn.stacked import _chunk_size, stacked_training_bytes

    n_in, hidden, n_out = NETWORKS[net]
    probe = build_stacked_mlp(n_in, hidden, n_out, 1, rng=0, keep_prob=KEEP_PROB,
                              dtype=np.float32)
    size = min(k, _chunk_size(stacked_training_bytes(probe, BATCH), None, "bench"))
    n_stacks = max(-(-k // size), n_jobs)
    size = -(-k // n_stacks)
    rng = np.random.default_rng(0)
    widths = [n_in, *hidden, n_out]
    n_words = BATCH * sum(hidden) // 2
    threshold = np.uint32(round(KEEP_PROB * 2**32))

    def worker(seed):
        """One job's arrays, and a function running ``n_steps`` steps of its stack."""
        Ws = [rng.standard_normal((size, a, b)).astype(np.float32)
              for a, b in itertools.pairwise(widths)]
        hs = [rng.standard_normal((size, BATCH, w)).astype(np.float32) for w in widths]
        dWs = [np.empty_like(W) for W in Ws]
        gens = [np.random.Generator(np.random.SFC64([seed, i])) for i in range(size)]
        masks = np.empty((size, 2 * n_words), dtype=bool)

        def steps(n_steps):
            for _ in range(n_steps):
                for i, gen in enumerate(gens):
                    np.less(gen.bit_generator.random_raw(n_words).view(np.uint32), threshold,
                            out=masks[i])
                for h, W in zip(hs, Ws):
                    np.matmul(h, W)  # forward
                for i, (h, g, dW) in enumerate(zip(hs[:-1], hs[1:], dWs)):
                    np.matmul(h.transpose(0, 2, 1), g, out=dW)  # weight gradient
                    if i > 0:
                        np.matmul(g, Ws[i].transpose(0, 2, 1))  # input gradient

        return steps

    workers = [worker(j) for j in range(n_jobs)]
    shares = [len(range(j, n_stacks, n_jobs)) for j in range(n_jobs)]

    def run(n_epochs):
        start = time.perf_counter()
        if n_jobs == 1:
            workers[0](n_epochs * n_batches * n_stacks)
        else:
            from concurrent.futures import ThreadPoolExecutor
            with threadpool_limits(1), ThreadPoolExecutor(n_jobs) as pool:
                list(pool.map(lambda j: workers[j](n_epochs * n_batches * shares[j]),
                              range(n_jobs)))
        return n_stacks * size * n_batches * n_epochs, time.perf_counter() - start

    return run


# ------------------------------------------------------------------ timing
def measure_alternately(methods, *, block_seconds, n_rounds):
    """Best member-steps/s of each method, timed A, B, C, A, B, C, ... in blocks of
    about ``block_seconds`` (at least one unit)."""
    units = {}
    for name, run in methods.items():  # warm up and calibrate the block size
        steps, seconds = run(1)
        units[name] = max(1, round(block_seconds / max(seconds, 1e-9)))
    best = dict.fromkeys(methods, 0.0)
    for _ in range(n_rounds):
        for name, run in methods.items():
            steps, seconds = run(units[name])
            best[name] = max(best[name], steps / seconds)
    return best


def machine_description():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('threading_layer', '?')}, "
            f"{i.get('num_threads')} threads max)" for i in threadpool_info()
            if i.get("user_api") == "blas"]
    return (f"{model}; nproc {os.cpu_count()}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}; numpy {np.__version__}; "
            f"BLAS {', '.join(blas) or 'unknown'}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true",
                        help="shorter blocks and fewer rounds (about a minute)")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    block_seconds, n_rounds = (0.12, 2) if args.quick else (0.3, 3)
    print("machine:", machine_description())
    print("load average at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    start_times = cpu_times()
    print(f"torch: {torch.__version__ if torch else 'not installed'}; "
          f"{n_rounds} alternating rounds of ~{block_seconds:g} s blocks, best of each\n")
    results = {}
    for n_threads in args.threads:
        with threadpool_limits(n_threads):
            if torch is not None:
                torch.set_num_threads(n_threads)
            for net, batch_norm in itertools.product(NETWORKS, (False, True)):
                n_in, hidden, n_out = NETWORKS[net]
                small = net.startswith("10-")
                n_batches = 16 if small else (2 if args.quick else 4)
                n_epochs = 1 if small else 3  # per member and training
                methods = {f"stacked k={k}": ensim_stacked(net, k, batch_norm, n_batches,
                                                           n_epochs, n_jobs=n_threads)
                           for k in KS}
                if n_threads > 1:  # for comparison: one job, the BLAS threads in the products
                    methods["stacked k=50, 1 job"] = ensim_stacked(net, 50, batch_norm,
                                                                   n_batches, n_epochs)
                methods["one at a time"] = ensim_alone(net, batch_norm, n_batches, n_epochs)
                if torch is not None:
                    methods["torch"] = torch_alone(torch, net, batch_norm, n_batches)
                    for k in KS:
                        methods[f"vmap k={k}"] = torch_vmap(torch, net, k, batch_norm, n_batches)
                methods["step sgemm"] = sgemm_step(n_in, hidden, n_out)
                methods[CEILING] = stacked_ceiling(net, 50, n_batches, n_jobs=n_threads)
                rates = measure_alternately(methods, block_seconds=block_seconds,
                                            n_rounds=n_rounds)
                flops = step_flops(n_in, hidden, n_out)
                step_rate = rates.pop("step sgemm") * flops
                results[n_threads, net, batch_norm] = rates
                print(f"== {net}, batch norm {batch_norm}, {n_threads} thread(s): step sgemm "
                      f"{step_rate / 1e9:.1f} GFLOP/s")
                print(f"   {'method':<22}{'member-steps/s':>16}{'GFLOP/s':>10}{'of sgemm':>10}")
                for name, rate in rates.items():
                    print(f"   {name:<22}{rate:>16.0f}{rate * flops / 1e9:>10.1f}"
                          f"{rate * flops / step_rate:>10.0%}")
    print("\nload average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    print(steal_report(start_times))
    print("\n== targets (member-steps/s ratios; 'met' on every thread count measured)")
    print(f"{'target':<66}{'measured':>18}{'ceiling':>18}  met?")
    for batch_norm in (False, True):
        suffix = ", batch norm" if batch_norm else ""
        targets = [("10-64-64-1", 50, "one at a time", 3.0), ("10-64-64-1", 50, "vmap k=50", 5.0)]
        targets += [("784-512-512-10", k, "one at a time", 0.95) for k in KS]
        targets += [("784-512-512-10", k, "torch", 1.3) for k in KS]
        for net, k, against, goal in targets:
            ratios = [results[t, net, batch_norm][f"stacked k={k}"]
                      / results[t, net, batch_norm][against]
                      for t in args.threads if against in results[t, net, batch_norm]]
            if not ratios:
                continue
            ceilings = [results[t, net, batch_norm][CEILING] / results[t, net, batch_norm][against]
                        for t in args.threads if against in results[t, net, batch_norm]]
            label = f"{net} k={k}{suffix}: stacked >= {goal:g}x {against}"
            measured = " / ".join(f"{r:.2f}x" for r in ratios)
            bound = " / ".join(f"{r:.2f}x" for r in ceilings)
            verdict = "met" if min(ratios) >= goal else "NOT met"
            if min(ratios) < goal and min(ceilings) < goal:
                verdict += " (above the ceiling)"
            print(f"{label:<66}{measured:>18}{bound:>18}  {verdict}")


if __name__ == "__main__":
    main()
