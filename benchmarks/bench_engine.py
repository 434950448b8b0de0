"""Benchmark: the Monte Carlo engine against the rate NumPy makes normal variates.

Sampling ``k`` member errors per trial is the honest cost of the engine, so the
limit is the rate of ``Generator.standard_normal``. Everything is measured side by
side in one run, on this machine, and reported as ratios:

(a) the raw fill of a preallocated buffer with PCG64 and with SFC64 (the limit);
(b) :func:`ensim.simulate` on ``EquicorrelatedErrors`` at k = 10, 100, 1000 with
    one job and with two;
(c) ``Generator.multivariate_normal`` with the same covariance (a k x k product
    per trial in BLAS), on one core like the engine with one job, and otherwise
    given every advantage: the matrix built once, large draws, Cholesky.

Targets: (b) at k = 100 with one job >= 0.8 x the fastest raw fill; (b) >= 2x (c)
at k = 100 and >= 5x at k = 1000; two jobs >= 1.7x one job.

Run: ``python benchmarks/bench_engine.py [--seconds S] [--billion]``. ``--billion``
also runs ``n_trials = 10**9`` at k = 1 and reports the peak memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from threadpoolctl import threadpool_limits

from ensim import EquicorrelatedErrors, simulate


def rate(work, n_per_call, seconds, repeats=3):
    """Best-of-``repeats`` normals per second of ``work()``, each repeat ~``seconds``."""
    best = 0.0
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while True:
            work()
            calls += 1
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        best = max(best, calls * n_per_call / elapsed)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--billion", action="store_true", help="also run 10**9 trials at k = 1")
    args = parser.parse_args(argv)
    s = args.seconds
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}, python {platform.python_version()}")

    buffer = np.empty(2**17)
    raw = {}
    for name, bitgen in (("PCG64", np.random.PCG64), ("SFC64", np.random.SFC64)):
        gen = np.random.Generator(bitgen(0))
        raw[name] = rate(lambda: gen.standard_normal(out=buffer), buffer.size, s)
    limit = max(raw.values())

    engine = {}
    simulate(EquicorrelatedErrors(10, 1.0, 0.3), 10**6, n_jobs=2)  # start the worker pool
    for k in (10, 100, 1000):
        model = EquicorrelatedErrors(k, 1.0, 0.3)
        for n_jobs in (1, 2):
            n_trials = int(max(1, 1.2e8 * s / k) * n_jobs)
            engine[k, n_jobs] = rate(lambda: simulate(model, n_trials, rng=1, n_jobs=n_jobs),
                                     n_trials * k, 0.0)
    mvn = {}
    for k in (100, 1000):
        # A fair baseline: the covariance built once, large draws (2**21 normals per
        # call, so the k x k Cholesky factorisation each call makes is amortised),
        # Cholesky (the fastest method), SFC64, and one BLAS thread: one core, like
        # the engine with one job.
        sigma = EquicorrelatedErrors(k, 1.0, 0.3).sigma
        gen = np.random.Generator(np.random.SFC64(0))
        n = max(1, 2**21 // k)
        mean = np.zeros(k)
        with threadpool_limits(limits=1, user_api="blas"):
            mvn[k] = rate(lambda: gen.multivariate_normal(mean, sigma, size=n,
                                                          method="cholesky"), n * k, s)

    print("\nnormals per second (millions), best of 3")
    print(f"  raw fill, PCG64                 {raw['PCG64'] / 1e6:8.1f}")
    print(f"  raw fill, SFC64                 {raw['SFC64'] / 1e6:8.1f}   <- limit")
    for (k, n_jobs), value in engine.items():
        print(f"  engine k={k:<5} n_jobs={n_jobs}        {value / 1e6:8.1f}   "
              f"{value / limit:5.2f} x limit")
    for k, value in mvn.items():
        print(f"  multivariate_normal k={k:<5}     {value / 1e6:8.1f}   {value / limit:5.2f} x limit")

    checks = [
        ("engine k=100, 1 job / fastest raw fill", engine[100, 1] / limit, 0.8),
        ("engine / multivariate_normal, k=100", engine[100, 1] / mvn[100], 2.0),
        ("engine / multivariate_normal, k=1000", engine[1000, 1] / mvn[1000], 5.0),
        ("engine k=100, 2 jobs / 1 job", engine[100, 2] / engine[100, 1], 1.7),
    ]
    print("\nratio                                        measured  target")
    for name, value, target in checks:
        print(f"  {name:<42} {value:7.2f}  >= {target:<4} {'met' if value >= target else 'NOT met'}")

    if args.billion:
        import resource  # Unix only; needed by this option alone

        start = time.perf_counter()
        result = simulate(EquicorrelatedErrors(1, 1.0, 0.0), 10**9, rng=2, n_jobs=-1)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\n10**9 trials at k=1: {time.perf_counter() - start:.1f} s, mse {result.mse:.6f} "
              f"(SE {result.stderr:.2g}), peak RSS of this process {peak:.0f} MiB")


if __name__ == "__main__":
    main()
