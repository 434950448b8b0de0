"""Benchmark: the Monte Carlo engine against the rate NumPy makes normal variates.

Sampling ``k`` member errors per trial is the honest cost of the engine, so the
limit is the rate of ``Generator.standard_normal``. Everything is measured in one
run, on this machine, and reported as ratios:

(a) the raw fill of a preallocated buffer with PCG64, and with SFC64 (the limit)
    into buffers of 2**15, 2**16 and 2**17 normals (256 KiB to 1 MiB), the size
    taking turns from round to round: the engine's own 2**16-element chunks
    cannot flatter it, and the limit is the best of as many rounds as every
    other workload (the fastest of three fills per round would be the best of
    three times as many noisy samples, a limit biased upward by the noise);
(b) :func:`ensim.simulate` on ``EquicorrelatedErrors`` at k = 10, 100, 1000 with
    one job, and at k = 100 with two;
(c) ``Generator.multivariate_normal`` with the same covariance (a k x k product
    per trial in BLAS), on one core like the engine with one job, and otherwise
    given every advantage: the matrix built once, large draws, Cholesky.

On a shared machine the rate of any one of these drifts by 10-20% within
minutes, so a ratio of two rates measured minutes apart means little. The
measurements are therefore interleaved: every round measures every workload once,
one after the other (fill, engine, ..., fill, engine, ...). A ratio is that of the
two workloads' best rounds (the rounds least disturbed by other work); next to it
stand the median and range of the ratios formed within each round, which show
how much the machine moved while it ran.

Targets: (b) with one job >= 0.9 x the SFC64 fill at k = 100 and k = 1000;
(b) >= 2x (c) at k = 100 and >= 5x at k = 1000; two jobs >= 1.7x one job.

Run: ``python benchmarks/bench_engine.py [--seconds S] [--rounds R] [--billion]``.
``--billion`` also runs ``n_trials = 10**9`` at k = 1 and reports the peak memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from threadpoolctl import threadpool_limits

from _cpu import cpu_times, steal_report  # benchmarks/_cpu.py, beside this script
from ensim import EquicorrelatedErrors, simulate


def rate(work, n_per_call, seconds):
    """Normals per second of ``work()``, called repeatedly for about ``seconds``."""
    calls, start = 0, time.perf_counter()
    while True:
        work()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * n_per_call / elapsed


LIMIT = "fill SFC64 (the limit)"
SIZES = (2**15, 2**16, 2**17)


class RotatingFill:
    """2**17 SFC64 normals per call, into a buffer of a size that changes each round."""

    def __init__(self):
        self.gen = np.random.Generator(np.random.SFC64(0))
        self.buffers = [np.empty(size) for size in SIZES]
        self.size_of_round = []                     # the buffer size used in each round
        self.turn = 0

    def next_round(self):
        self.turn = len(self.size_of_round) % len(SIZES)
        self.size_of_round.append(SIZES[self.turn])

    def __call__(self):
        buffer = self.buffers[self.turn]
        for _ in range(2**17 // buffer.size):
            self.gen.standard_normal(out=buffer)


def workloads(seconds):
    """``{name: (work, normals per call)}``; each call takes about ``seconds`` or less."""
    jobs = {}
    pcg, buffer = np.random.Generator(np.random.PCG64(0)), np.empty(2**17)
    jobs["fill PCG64 2^17"] = (lambda: pcg.standard_normal(out=buffer), 2**17)
    jobs[LIMIT] = (RotatingFill(), 2**17)
    for k, n_jobs in ((10, 1), (100, 1), (1000, 1), (100, 2)):
        model = EquicorrelatedErrors(k, 1.0, 0.3)
        n_trials = int(max(1, 1.0e8 * seconds / k) * n_jobs)
        jobs[f"engine k={k} jobs={n_jobs}"] = (
            lambda model=model, n=n_trials, j=n_jobs: simulate(model, n, rng=1, n_jobs=j),
            n_trials * k)
    for k in (100, 1000):
        # A fair baseline: the covariance built once, large draws (2**21 normals per
        # call, so the k x k Cholesky factorisation each call makes is amortised),
        # Cholesky (the fastest method), SFC64, and one BLAS thread: one core, like
        # the engine with one job.
        sigma = EquicorrelatedErrors(k, 1.0, 0.3).sigma
        gen = np.random.Generator(np.random.SFC64(0))
        n = max(1, 2**21 // k)
        mean = np.zeros(k)

        def mvn(gen=gen, mean=mean, sigma=sigma, n=n):
            with threadpool_limits(limits=1, user_api="blas"):
                gen.multivariate_normal(mean, sigma, size=n, method="cholesky")

        jobs[f"multivariate_normal k={k}"] = (mvn, n * k)
    return jobs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    parser.add_argument("--rounds", type=int, default=9,
                        help="rounds of interleaved measurements (best a multiple of 3)")
    parser.add_argument("--billion", action="store_true", help="also run 10**9 trials at k = 1")
    args = parser.parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"numpy {np.__version__}, python {platform.python_version()}; "
          f"{args.rounds} rounds of {args.seconds:g} s per workload, interleaved")

    jobs = workloads(args.seconds)
    start_times = cpu_times()
    simulate(EquicorrelatedErrors(10, 1.0, 0.3), 10**6, n_jobs=2)  # start the worker pool
    for work, _ in jobs.values():                                    # warm every path once
        work()
    fill = jobs[LIMIT][0]
    rates = {name: [] for name in jobs}                              # name -> one rate per round
    for _ in range(args.rounds):
        fill.next_round()
        for name, (work, n_per_call) in jobs.items():
            rates[name].append(rate(work, n_per_call, args.seconds))
    rates = {name: np.array(values) for name, values in rates.items()}

    print(steal_report(start_times))
    print(f"\nnormals per second (millions): best round, and its ratio to the best {LIMIT}")
    for name, values in rates.items():
        print(f"  {name:<28} {values.max() / 1e6:8.1f}   {values.max() / rates[LIMIT].max():5.2f}")
    sizes = np.array(fill.size_of_round)
    print("  the limit by buffer size (best of its rounds): " + ", ".join(
        f"2^{size.bit_length() - 1} {rates[LIMIT][sizes == size].max() / 1e6:.1f}"
        for size in SIZES if np.any(sizes == size)))

    checks = [
        ("engine k=100, 1 job / SFC64 fill", "engine k=100 jobs=1", LIMIT, 0.9),
        ("engine k=1000, 1 job / SFC64 fill", "engine k=1000 jobs=1", LIMIT, 0.9),
        ("engine k=10, 1 job / SFC64 fill", "engine k=10 jobs=1", LIMIT, None),
        ("engine / multivariate_normal, k=100", "engine k=100 jobs=1",
         "multivariate_normal k=100", 2.0),
        ("engine / multivariate_normal, k=1000", "engine k=1000 jobs=1",
         "multivariate_normal k=1000", 5.0),
        ("engine k=100, 2 jobs / 1 job", "engine k=100 jobs=2", "engine k=100 jobs=1", 1.7),
    ]
    print("\nratio                                       of bests   within a round: "
          "median [min, max]   target")
    for label, top, bottom, target in checks:
        best = rates[top].max() / rates[bottom].max()
        within = rates[top] / rates[bottom]
        verdict = "" if target is None else (
            f">= {target:<4} {'met' if best >= target else 'NOT met'}")
        print(f"  {label:<42} {best:5.2f}      {np.median(within):5.2f} "
              f"[{within.min():.2f}, {within.max():.2f}]          {verdict}")

    if args.billion:
        import resource  # Unix only; needed by this option alone

        start = time.perf_counter()
        result = simulate(EquicorrelatedErrors(1, 1.0, 0.0), 10**9, rng=2, n_jobs=-1)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\n10**9 trials at k=1: {time.perf_counter() - start:.1f} s, mse {result.mse:.6f} "
              f"(SE {result.stderr:.2g}), peak RSS of this process {peak:.0f} MiB")


if __name__ == "__main__":
    main()
