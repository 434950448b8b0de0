"""The streaming Monte Carlo engine: sample member errors, accumulate, report.

:func:`simulate` draws ``n_trials`` independent trials of an error model, each a
vector of ``k`` member errors, in fixed-size blocks. Block ``b`` is drawn from its
own stream, the child ``b`` of one root :class:`~numpy.random.SeedSequence`, and
reduced on the spot to a short vector of float64 sums; the sums are added in
block order. Hence:

* memory is bounded by the block size, whatever ``n_trials``;
* the NumPy result is bit-for-bit the same for any ``n_jobs`` and any grouping
  of blocks into tasks (each block's sums are computed the same way wherever it
  runs, and the sums are always added in the same order);
* nothing is derived from the theory being checked: every reported moment is
  an average over sampled errors.

The model reduces each block to per-trial moments
(:meth:`~ensim.errors.ErrorModel._moments_of_blocks`). By default it samples the
``(n, k)`` errors and reduces them; :class:`~ensim.EquicorrelatedErrors` reduces
the independent factors its errors are built from (row sums, row sums of
squares and column sums of ``Z``, and ``W``), which gives the moments of the
same sampled errors up to rounding with three read-only passes over the block.

Symbols
-------
For trial ``t`` with member errors ``e_t1, ..., e_tk``:

``ebar_t = (1/k) sum_i e_ti``
    the ensemble's error;
``q1_t = (1/k) sum_i e_ti^2``
    the mean member second moment;
``q2_t = (1/(k(k-1))) sum_{i != j} e_ti e_tj``
    the mean pairwise cross moment.

Per trial, exactly, ``ebar_t^2 = q1_t / k + (k-1)/k * q2_t``: the primer's formula
holds sample by sample for second moments; averaging over trials turns it into
``MSE_ens = V/k + (k-1)/k * C`` (with biases, the squared mean bias is added).
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ._backend import BACKENDS, get_namespace, to_numpy
from ._random import as_seed_sequence, child_seed, make_generator
from ._validation import check_choice, check_int
from .errors import ErrorModel
from .stats import equivalence_test, normal_conf_int

__all__ = ["FewTrialsWarning", "SimulationResult", "default_block_size", "simulate"]

#: Below this many trials :func:`simulate` warns that its intervals undercover.
FEW_TRIALS = 1000


class FewTrialsWarning(UserWarning):
    """:func:`simulate` ran fewer than :data:`FEW_TRIALS` trials: its intervals rest on
    a normal approximation of a mean of squared errors, which are skewed, and cover the
    truth less often than they say."""

# Layout of one block's summary: the trial count; the mean and the centred sum of
# squares (M2) of each per-trial stream ebar^2, q1, q2; then the k per-member sums
# of d_ti = e_ti - bias_i. Blocks are merged in block order with Chan's pairwise
# update, which is exact for M2 up to rounding and never cancels catastrophically.
_N, _EBAR2, _EBAR2_M2, _Q1, _Q1_M2, _Q2, _Q2_M2 = range(7)
_N_SCALARS = 7
_STREAMS = (_EBAR2, _Q1, _Q2)
_EPS = float(np.finfo(np.float64).eps)

#: Elements (trials x members) per block on each backend. Small enough to stay in
#: the CPU's L2 cache, large enough that a GPU is kept busy.
_BLOCK_ELEMENTS = {"numpy": 2**18, "cupy": 2**24}

#: The most elements a block may hold (128 GiB of float64 errors, more than a large
#: GPU's memory): a larger block_size is a typo, refused by name instead of failing as
#: a MemoryError.
_MAX_BLOCK_ELEMENTS = 2**34

#: Elements per parallel task: about 0.1 s of work, so task overhead is negligible.
_TASK_ELEMENTS = 2**23

#: Blocks seeded at once (a few KiB of generator state) ...
_BATCH_BLOCKS = 16
#: ... and reduced together, up to this many trials (their per-trial moments
#: take about 40 bytes a trial) and this many member sums (8 bytes each).
_BATCH_TRIALS = 2**16


def default_block_size(k: int, backend: str = "numpy") -> int:
    """Trials per block: about ``2**18`` elements (2 MiB) on NumPy, ``2**24`` on CuPy."""
    return max(1, _BLOCK_ELEMENTS[backend] // k)


def _block_sums(model: ErrorModel, n: int, gens, xp, buffer=None) -> np.ndarray:
    """Draw ``len(gens)`` blocks of ``n`` trials and reduce each to its summary.

    Block ``b`` is drawn from ``gens[b]``; row ``b`` of the ``(B, 7 + k)`` result
    is its summary, described above, the same bits whichever blocks it is
    reduced with. ``q1`` and ``q2`` are taken about the model's biases
    (``d = e - bias``), a fixed shift that keeps their standard errors free of
    the bias terms; the ensemble error ``ebar`` is always the plain mean of the
    sampled errors. The model hands over the per-trial moments
    (:meth:`ErrorModel._moments_of_blocks`).
    """
    moments, col_sum = model._moments_of_blocks(
        n, gens, xp, out=None if buffer is None else buffer[:n])      # (B, 3, n), (B, k)
    means = xp.mean(moments, axis=2)                                  # (B, 3) ebar^2, q1, q2
    moments -= means[:, :, None]
    moments *= moments
    out = np.empty((len(gens), _N_SCALARS + model.k))
    out[:, _N] = n
    out[:, _EBAR2:_N_SCALARS:2] = to_numpy(means)
    out[:, _EBAR2_M2:_N_SCALARS:2] = to_numpy(xp.sum(moments, axis=2))
    out[:, _N_SCALARS:] = to_numpy(col_sum)
    return out


def _merge(total: np.ndarray, block: np.ndarray) -> None:
    """Add ``block``'s summary into ``total`` in place (Chan et al.'s update)."""
    n_a, n_b = total[_N], block[_N]
    n = n_a + n_b
    for i in _STREAMS:
        delta = block[i] - total[i]
        total[i] += delta * (n_b / n)
        total[i + 1] += block[i + 1] + delta * delta * (n_a * n_b / n)
    total[_N] = n
    total[_N_SCALARS:] += block[_N_SCALARS:]


@functools.lru_cache(maxsize=1)
def _blas_controller():
    """One threadpoolctl controller per process (finding the BLAS libraries is slow)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _run_blocks(model, root, first, stop, block_size, n_trials, backend) -> np.ndarray:
    """Summaries of blocks ``first .. stop-1``, one row each: ``(stop - first, 7 + k)``."""
    xp = get_namespace(backend)
    rows = np.empty((stop - first, _N_SCALARS + model.k))
    # One buffer per task, refilled by every block (NumPy; CuPy allocates).
    buffer = np.empty((min(block_size, n_trials), model.k)) if xp is np else None
    # One BLAS thread: the sums then never depend on how many threads a process has.
    # Overflow and NaN are not warned about but checked: a clear error names the block.
    with _blas_controller().limit(limits=1, user_api="blas"), np.errstate(all="ignore"):
        per_batch = _BATCH_BLOCKS if xp is np else 1   # a GPU generator's state is MBs
        for batch in range(first, stop, per_batch):
            blocks = range(batch, min(batch + per_batch, stop))
            # Seeded together, not each between two blocks' draws: a block's draws
            # push the seeding code out of cache, and it then costs ~5x as much.
            generators = [make_generator(child_seed(root, b), xp) for b in blocks]
            for n, group in _equal_blocks(blocks, block_size, n_trials, model.k, xp):
                rows[group.start - first:group.stop - first] = _block_sums(
                    model, n, generators[group.start - batch:group.stop - batch], xp, buffer)
            finite = np.all(np.isfinite(rows[batch - first:blocks.stop - first]), axis=1)
            if not finite.all():
                bad = batch + int(np.argmin(finite))          # the first block not finite
                raise ValueError(_non_finite_message(model, f"block {bad}"))
    return rows


def _equal_blocks(blocks: range, block_size: int, n_trials: int, k: int, xp):
    """Split ``blocks`` into ``(n, group)``: runs of blocks of ``n`` trials each, reduced together.

    Only the run's last block may be short. On NumPy a group holds at most
    :data:`_BATCH_TRIALS` trials and ``_BATCH_TRIALS / k`` blocks (each block's
    summary has ``7 + k`` numbers), or one block; on CuPy, whose blocks are large,
    one block.
    """
    per_group = max(1, min(_BATCH_TRIALS // block_size, _BATCH_TRIALS // k)) if xp is np else 1
    last = -(-n_trials // block_size) - 1                 # the only block that may be short
    short = n_trials % block_size != 0 and last in blocks
    full = range(blocks.start, last) if short else blocks
    for start in range(full.start, full.stop, per_group):
        yield block_size, range(start, min(start + per_group, full.stop))
    if short:
        yield n_trials - last * block_size, range(last, last + 1)


def _task_ranges(n_blocks: int, per_task: int):
    """The tasks ``(first, stop)`` covering blocks ``0 .. n_blocks-1``, generated lazily."""
    return ((first, min(first + per_task, n_blocks)) for first in range(0, n_blocks, per_task))


def _non_finite_message(model, where: str) -> str:
    return (f"The 'model' parameter of simulate gave a sum that is not finite in {where}: "
            f"an error of {model!r} was infinite or NaN, or its square or a sum of squares "
            "overflowed float64. Keep every variance 0 or in [1e-100, 1e+100] and every "
            "|bias| <= 1e+50.")


@dataclass(frozen=True)
class SimulationResult:
    r"""What :func:`simulate` measured, next to what theory predicts.

    Attributes
    ----------
    mse : float
        Measured ensemble MSE, ``mean_t ebar_t^2``.
    stderr : float
        Its standard error, ``sd_t(ebar_t^2) / sqrt(n_trials)``, combined with a
        rounding allowance of a few machine epsilons (so that deterministic
        cases, such as errors that cancel exactly, are not reported as exact).
    theory : float
        ``E[ebar^2]`` from the model: ``V/k + (k-1)/k C + mean_bias^2``.
    variance, variance_stderr, variance_theory : float
        Measured ``V`` (mean member error variance about each member's measured
        mean), its standard error and the model's ``V``.
    covariance, covariance_stderr, covariance_theory : float
        Measured ``C`` (mean pairwise error covariance over ``i != j``, about the
        measured means), its standard error and the model's ``C``. NaN for ``k = 1``.
    second_moment, cross_moment : float
        ``mean_t q1_t`` and ``mean_t q2_t``: uncentred versions of ``V`` and ``C``.
        ``mse == second_moment / k + (k-1)/k * cross_moment`` up to rounding.
    bias, bias_theory : float
        Measured and model mean member bias.
    k, n_trials, block_size, n_blocks : int
    backend : str
    seed_entropy : int
        Entropy of the root ``SeedSequence``; with ``spawn_key`` it reproduces the run.
    spawn_key : tuple
    elapsed_s : float
        Wall-clock time of the sampling.
    model : dict
        The model's description (:meth:`ErrorModel.describe`).
    """

    mse: float
    stderr: float
    theory: float
    variance: float
    variance_stderr: float
    variance_theory: float
    covariance: float
    covariance_stderr: float
    covariance_theory: float
    second_moment: float
    cross_moment: float
    bias: float
    bias_theory: float
    k: int
    n_trials: int
    block_size: int
    n_blocks: int
    backend: str
    seed_entropy: int
    spawn_key: tuple
    elapsed_s: float = field(compare=False)
    model: dict = field(compare=False, default_factory=dict)

    @property
    def z(self) -> float:
        """``(mse - theory) / stderr``: about N(0, 1) when the formula holds."""
        if self.stderr == 0.0:  # only when every error is exactly zero
            return 0.0 if self.mse == self.theory else math.copysign(math.inf, self.mse - self.theory)
        return float((self.mse - self.theory) / self.stderr)

    def conf_int(self, alpha: float = 0.05, which: str = "mse") -> tuple[float, float]:
        """Interval at level ``1 - alpha`` for ``"mse"``, ``"variance"`` or
        ``"covariance"``: an :class:`ensim.stats.Interval` ``(low, high)``.

        Student-t with ``n_trials - 1`` degrees of freedom, since each standard error
        is estimated from the trials: the normal interval for millions of trials, and
        a wider one for a handful (at 2 trials its half-width is 6.5x the normal
        one's). Below 1,000 trials even it covers the truth less often than it says
        (see :func:`simulate`, which warns).
        """
        check_choice(which, "which", ("mse", "variance", "covariance"))
        se = self.stderr if which == "mse" else getattr(self, which + "_stderr")
        return normal_conf_int(getattr(self, which), se, alpha, dof=self.n_trials - 1)

    def equivalence(self, margin: float, alpha: float = 0.05):
        """TOST of ``|mse - theory| < margin`` (see :func:`ensim.stats.equivalence_test`),
        with Student-t quantiles on ``n_trials - 1`` degrees of freedom as :meth:`conf_int`."""
        return equivalence_test(self.mse, self.stderr, self.theory, margin, alpha,
                                dof=self.n_trials - 1)

    def summary(self, alpha: float = 0.05) -> str:
        """A small table: each measure with its interval and theory."""
        level = f"{100 * (1 - alpha):g}% CI"
        lines = [f"Monte Carlo: {self.model.get('model', 'model')} k={self.k}, "
                 f"dist={self.model.get('dist')}, {self.n_trials:,} trials "
                 f"({self.n_blocks} blocks, {self.backend}, {self.elapsed_s:.2f} s)",
                 f"{'measure':<12}{'measured':>12}{'SE':>11}{level:>28}{'theory':>12}"]
        for name, theory in (("mse", self.theory), ("variance", self.variance_theory),
                             ("covariance", self.covariance_theory)):
            value = getattr(self, name)
            se = self.stderr if name == "mse" else getattr(self, name + "_stderr")
            low, high = self.conf_int(alpha, name)
            lines.append(f"{name:<12}{value:>12.6g}{se:>11.3g}   [{low:>11.6g}, {high:>11.6g}]"
                         f"{theory:>12.6g}")
        lines.append(f"z = (mse - theory) / SE = {self.z:.3f}")
        return "\n".join(lines)

    def to_row(self) -> dict:
        """A flat dict of plain numbers for a results table."""
        row = {k: v for k, v in asdict(self).items() if k not in ("model", "spawn_key")}
        row["z"] = self.z
        row["seed_entropy"] = str(self.seed_entropy)
        return row


def _finish(model, sums, n_trials, block_size, n_blocks, backend, root, elapsed) -> SimulationResult:
    k, n = model.k, float(n_trials)

    def mean_and_se(i):
        return float(sums[i]), math.sqrt(sums[i + 1] / max(n - 1.0, 1.0) / n)

    mse, mse_se = mean_and_se(_EBAR2)
    m2, m2_se = mean_and_se(_Q1)                                   # about the model's biases
    x2, x2_se = mean_and_se(_Q2)
    shift = model.bias
    means = sums[_N_SCALARS:] / n                                  # (k,) measured mean of d_i
    # Centre on the measured means. Each member mean has variance about V/n, so the
    # centring adds an uncertainty of at most 2 |mean| sqrt(V/n) + V/n, added to the
    # standard errors as a conservative allowance (mean is about 0: d is shifted by
    # the model's biases). Rounding adds about 8 eps of the second moment.
    mean_sq = float(np.mean(means * means))
    variance = m2 - mean_sq
    mean_var = max(variance, 0.0) / n
    scale = m2 + float(np.mean(shift * shift))                     # mean second moment of e
    allowance = 2.0 * math.sqrt(mean_sq * mean_var) + mean_var + 8 * _EPS * scale
    variance_se = math.hypot(m2_se, allowance)
    if k > 1:
        covariance = x2 - (float(means.sum()) ** 2 - k * mean_sq) / (k * (k - 1))
        covariance_se = math.hypot(x2_se, allowance)
    else:
        covariance = covariance_se = math.nan
    # Rounding: ebar^2 is exact to a few eps of itself, and at least (8 eps)^2 k of
    # the second moment where the errors cancel (the lower edge C = -V/(k-1)).
    mse_se = math.hypot(mse_se, 8 * _EPS * mse + 64 * _EPS**2 * k * scale)
    return SimulationResult(
        mse=mse, stderr=mse_se, theory=float(model.theory_mse),
        variance=variance, variance_stderr=variance_se, variance_theory=float(model.variance),
        covariance=covariance, covariance_stderr=covariance_se,
        covariance_theory=float(model.covariance),
        second_moment=m2 + 2 * float(np.mean(shift * means)) + float(np.mean(shift * shift)),
        cross_moment=(x2 + _cross_shift(shift, means)) if k > 1 else math.nan,
        bias=float(np.mean(means + shift)), bias_theory=float(model.mean_bias),
        k=k, n_trials=n_trials, block_size=block_size, n_blocks=n_blocks, backend=backend,
        seed_entropy=root.entropy, spawn_key=tuple(root.spawn_key), elapsed_s=elapsed,
        model=model.describe())


def _cross_shift(shift, means) -> float:
    """``mean_{i != j} (b_i m_j + m_i b_j + b_i b_j)``: undoes the shift of the cross moment."""
    k = shift.size
    total = shift.sum() * means.sum() * 2 + shift.sum() ** 2
    diagonal = 2 * np.dot(shift, means) + np.dot(shift, shift)
    return float((total - diagonal) / (k * (k - 1)))


def simulate(model: ErrorModel, n_trials: int, *, rng=None, backend: str = "numpy",
             n_jobs: int = 1, block_size: int | None = None,
             progress: bool | None = False) -> SimulationResult:
    r"""Measure the ensemble MSE of ``model`` over ``n_trials`` independent trials.

    Parameters
    ----------
    model : ErrorModel
        What to sample, e.g. :class:`~ensim.EquicorrelatedErrors`. Student-t
        errors need ``df > 4``: with ``df <= 4`` the errors' fourth moment is
        infinite, so the MSE has no standard error, and a normal interval built
        from the sample one covers the truth far less often than it claims (about
        78% instead of 95% at ``df = 3``). Such models are refused rather than
        given an interval that cannot be trusted.
    n_trials : int
        Number of independent trials, ``>= 2`` (the standard errors are those of
        means over trials; one trial has none). Memory does not grow with it:
        blocks are handed out one task at a time, never listed in advance. Below
        1,000 trials a :class:`FewTrialsWarning` says that the intervals undercover:
        the squared errors are skewed, and a nominal 95% interval of the MSE covered
        the truth in 93% of runs at 100 Gaussian trials, 87% with Student-t errors
        (``df = 5``), 85% with centred exponential ones, and in 92-95% at 1,000 trials
        (4,000 to 20,000 runs each at ``k = 1``, the most skewed case). Heavy tails
        keep undercovering above the threshold: Student-t errors with ``df = 5``
        covered 94% at 10,000 trials.
    rng : None, int, SeedSequence or Generator
        Root of the random streams. Block ``b`` uses child ``b`` of the root
        ``SeedSequence`` and SFC64 (CuPy: its default generator).
    backend : {"numpy", "cupy"}
        Where the sampling runs. CuPy gives different (equally valid) numbers.
    n_jobs : int, default 1
        Worker processes (joblib); ``-1`` uses every core. The NumPy result does
        not depend on it.
    block_size : int, optional
        Trials per block, at most ``2**34 / k`` (128 GiB of errors); default
        :func:`default_block_size`. The result depends on it (it fixes which
        stream draws which trial), so keep it to reproduce. A block larger than
        ``n_trials`` takes only ``n_trials``' memory.
    progress : bool or None, default False
        Show a progress bar; ``None`` shows one only on a terminal.

    Returns
    -------
    SimulationResult

    Raises
    ------
    ValueError
        For a parameter out of its range (before any sampling), and if a sum
        over the sampled errors is not finite (an error was infinite or NaN, or
        its square overflowed), naming the block; the error models' ranges of
        variances and biases rule the latter out for the built-in models.
    TypeError
        For a ``model`` that is not an :class:`~ensim.errors.ErrorModel`, a
        count that is not an integer, a ``progress`` that is not a flag, or an
        ``rng`` that is not a seed.

    Examples
    --------
    >>> from ensim import EquicorrelatedErrors, simulate
    >>> result = simulate(EquicorrelatedErrors(k=10, variance=1.0, covariance=0.2),
    ...                   n_trials=100_000, rng=0)
    >>> round(result.theory, 3)
    0.28
    >>> abs(result.z) < 5
    True
    """
    if not isinstance(model, ErrorModel):
        raise TypeError("The 'model' parameter of simulate must be an ErrorModel such as "
                        f"EquicorrelatedErrors or GeneralErrors; got {type(model).__name__}.")
    n_trials = check_int(n_trials, "n_trials", owner="simulate")
    if n_trials < 2:
        raise ValueError("The 'n_trials' parameter of simulate must be in [2, inf] (a "
                         f"standard error needs at least two trials); got {n_trials}.")
    if getattr(model, "dist", None) == "student-t" and not model.df > 4.0:
        raise ValueError(f"The 'df' parameter of {type(model).__name__} must be in (4, inf) "
                         "for simulate (with df <= 4 the errors' fourth moment is infinite, so "
                         f"the MSE has no standard error and no valid interval); got {model.df:g}.")
    check_choice(backend, "backend", BACKENDS, owner="simulate")
    n_jobs = check_int(n_jobs, "n_jobs", low=-1, owner="simulate")
    if n_jobs == 0:
        raise ValueError("The 'n_jobs' parameter of simulate must be >= 1 or -1 (all cores); got 0.")
    if block_size is None:
        block_size = default_block_size(model.k, backend)
    block_size = check_int(block_size, "block_size", low=1,
                           high=max(1, _MAX_BLOCK_ELEMENTS // model.k), owner="simulate")
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise TypeError("The 'progress' parameter of simulate must be True, False or None "
                        f"(None: only on a terminal); got {progress!r} of type "
                        f"{type(progress).__name__}.")
    root = as_seed_sequence(rng)
    get_namespace(backend)  # fail now, not in a worker, if CuPy is missing
    if n_trials < FEW_TRIALS:
        import warnings

        warnings.warn(f"simulate: {n_trials} trials are too few for its intervals to cover "
                      "the truth as often as they say (squared errors are skewed: at 100 "
                      "trials a 95% interval covered 85-93% of the time); use at least "
                      f"{FEW_TRIALS:,}.", FewTrialsWarning, stacklevel=2)

    n_jobs = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
    n_blocks = -(-n_trials // block_size)
    per_task = max(1, _TASK_ELEMENTS // (block_size * model.k))
    if n_jobs > 1:  # enough tasks to keep every worker busy
        per_task = min(per_task, max(1, -(-n_blocks // (4 * n_jobs))))
    tasks = _task_ranges(n_blocks, per_task)     # lazy: memory does not grow with n_trials

    start_time = time.perf_counter()
    sums = np.zeros(_N_SCALARS + model.k)                  # the empty summary
    if n_jobs == 1 or n_blocks <= per_task:
        results = (_run_blocks(model, root, a, b, block_size, n_trials, backend)
                   for a, b in tasks)
    else:
        from joblib import Parallel, delayed

        # joblib dispatches a few tasks ahead of the workers (pre_dispatch), so
        # the generator of tasks is consumed as the run goes, never listed.
        results = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_run_blocks)(model, root, a, b, block_size, n_trials, backend)
            for a, b in tasks)
    from tqdm.auto import tqdm

    with tqdm(total=n_trials, unit="trial", unit_scale=True,
              disable=None if progress is None else not progress,
              desc=f"simulate k={model.k}", leave=False) as bar, np.errstate(all="ignore"):
        for rows in results:
            for row in rows:       # block order: the merges never change order
                _merge(sums, row)
            bar.update(int(rows[:, _N].sum()))
    if not np.all(np.isfinite(sums)):
        raise ValueError(_non_finite_message(model, "the sum over all blocks"))
    elapsed = time.perf_counter() - start_time
    return _finish(model, sums, n_trials, block_size, n_blocks, backend, root, elapsed)
