"""Benchmark: collecting member predictions and decomposing them, next to ``predict``.

Times, in one run on this machine:

1. ``estimator.predict`` of a 200-tree random forest on 10^4 test points;
2. :func:`ensim.ensembles.member_predictions` of the same forest (a ``(200, 10^4)``
   array);
3. :func:`ensim.decompose.decompose` of that one ensemble, with its ``k x k``
   matrices;
4. :func:`ensim.decompose.decompose` of ``(100, 200, 10^4)`` predictions (100
   retrainings; the array is built from the forest's members plus noise, so only
   the decomposition is timed), with the peak memory it allocates beyond its
   input, traced by :mod:`tracemalloc`.

Run it with ``python benchmarks/bench_decompose.py`` (about a minute and 3 GB of
memory); ``--small`` runs a tenth of the repeats.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc

import numpy as np

from ensim.data import KnownTruth
from ensim.decompose import decompose
from ensim.ensembles import make_ensemble, member_predictions


def _best_of(function, repeat=3):
    """Smallest wall time of ``repeat`` calls, and the last result."""
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="10 repeats instead of 100")
    args = parser.parse_args(argv)
    n_repeats, k, n_test = (10 if args.small else 100), 200, 10_000

    truth = KnownTruth("friedman1", noise_sd=1.0)
    train, test = truth.sample(1000, rng=0), truth.sample(n_test, rng=1)
    forest = make_ensemble("random_forest", k, rng=2, max_features=0.33).fit(train.X, train.y)

    t_predict, _ = _best_of(lambda: forest.predict(test.X))
    t_members, members = _best_of(lambda: member_predictions(forest, test.X))
    t_one, _ = _best_of(lambda: decompose(members, test.y))

    gen = np.random.default_rng(3)
    predictions = np.empty((n_repeats, k, n_test))
    for r in range(n_repeats):   # stand-in for retraining: members plus independent noise
        predictions[r] = members + 0.1 * gen.standard_normal((k, n_test))
    tracemalloc.start()
    start = time.perf_counter()
    result = decompose(predictions, test.y, test.f)
    t_repeated = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert all(identity.holds(1e-10) for identity in result.identities())

    size = predictions.nbytes
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"NumPy {np.__version__}")
    print(f"{'operation':<58}{'seconds':>10}")
    rows = [
        (f"forest.predict, k={k}, n_test={n_test}", t_predict),
        (f"member_predictions, ({k}, {n_test})", t_members),
        (f"decompose one ensemble ({k}, {n_test}), with k x k matrices", t_one),
        (f"predict x {n_repeats} repeats (the time to make the array below)",
         t_members * n_repeats),
        (f"decompose repeats ({n_repeats}, {k}, {n_test})", t_repeated),
    ]
    for name, seconds in rows:
        print(f"{name:<58}{seconds:>10.3f}")
    print(f"input array: {size / 2**30:.2f} GiB; peak memory allocated by decompose: "
          f"{peak / 2**30:.2f} GiB ({peak / size:.2f} x the input)")


if __name__ == "__main__":
    main()
