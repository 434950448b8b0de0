"""Intervals, equivalence tests, jackknife errors and fits that turn measurements into verdicts.

Conventions: an estimate always travels with its standard error; intervals are
two-sided at level ``1 - alpha``, and every result's ``conf_int(alpha=0.05)``
returns them as an :class:`Interval` ``(low, high)``; agreement with theory is shown by equivalence
(TOST: the interval lies inside a stated margin), never by a failure to reject.
A standard error estimated from few independent units (training sets, jackknife
groups) goes with its degrees of freedom ``dof``, which switch the normal
quantiles to Student-t ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ._validation import check_array, check_int, check_real, check_real_array

__all__ = [
    "EquivalenceResult",
    "Interval",
    "InverseKFit",
    "JackknifeEstimate",
    "equivalence_test",
    "fit_inverse_k",
    "jackknife",
    "mean_and_se",
    "normal_conf_int",
    "t_interval",
    "t_quantile",
]


class Interval(NamedTuple):
    """A two-sided confidence interval: ``low, high = result.conf_int(alpha)``.

    The bounds are floats, or arrays of one bound per statistic for a vector of
    estimates (:class:`JackknifeEstimate`).
    """

    low: float
    high: float


def _check_dof(dof, owner):
    if dof is None:
        return None
    return check_real(dof, "dof", low=0.0, low_inclusive=False, owner=owner)


class _StudentT:
    """Student-t with ``dof`` degrees of freedom: ``ppf``, ``sf`` and ``cdf`` as a frozen
    ``scipy.stats.t(dof)`` gives them (the same calls), without freezing one, which
    costs about 1.5 ms each time."""

    def __init__(self, dof):
        from scipy import stats as sps

        self._t, self.dof = sps.t, dof

    def ppf(self, q):
        return self._t.ppf(q, self.dof)

    def sf(self, x):
        return self._t.sf(x, self.dof)

    def cdf(self, x):
        return self._t.cdf(x, self.dof)


def _quantile_distribution(dof):
    """The standard normal, or Student-t with ``dof`` degrees of freedom."""
    from scipy import stats as sps  # imported on first use: `import ensim` stays light

    return sps.norm if dof is None else _StudentT(dof)


def normal_conf_int(estimate: float, stderr: float, alpha: float = 0.05,
                    dof: float | None = None) -> Interval:
    """Two-sided interval ``estimate -/+ q_(1-alpha/2) * stderr``.

    ``q`` is the standard normal quantile, or with ``dof`` the Student-t quantile
    with ``dof`` degrees of freedom: use it when ``stderr`` is estimated from few
    independent units (``n - 1`` for a mean of ``n`` values, ``G - 1`` for a
    jackknife over ``G`` groups).

    ``estimate`` and ``stderr`` may be scalars or arrays (pandas Series too) of
    matching shape: the bounds are then arrays of the same kind. Every ``estimate``
    must be finite, and every ``stderr`` finite and non-negative (a negative one
    would invert the interval).
    """
    owner = "normal_conf_int"
    alpha = check_real(alpha, "alpha", low=0.0, high=1.0, low_inclusive=False,
                       high_inclusive=False, owner=owner)
    dof = _check_dof(dof, owner)
    shapes = (np.shape(check_real_array(estimate, "estimate", owner=owner)),
              np.shape(check_real_array(stderr, "stderr", low=0.0, owner=owner)))
    if shapes[0] != shapes[1] and () not in shapes:
        raise ValueError(f"The 'estimate' and 'stderr' parameters of {owner} must have the same "
                         f"shape (or one be a scalar); got {shapes[0]} and {shapes[1]}.")
    if isinstance(estimate, (list, tuple)):
        estimate = np.asarray(estimate, dtype=float)
    if isinstance(stderr, (list, tuple)):
        stderr = np.asarray(stderr, dtype=float)
    half = _quantile_distribution(dof).ppf(1.0 - alpha / 2.0) * stderr
    low, high = estimate - half, estimate + half
    if isinstance(low, (float, np.floating)):            # NumPy scalars as plain floats
        low, high = float(low), float(high)
    return Interval(low, high)


def t_quantile(dof, alpha: float) -> float:
    """The two-sided ``1 - alpha`` Student-t quantile ``q_(1 - alpha/2)`` on ``dof``
    degrees of freedom (NaN for ``dof < 1``, as SciPy gives it)."""
    from scipy import stats as sps

    return float(sps.t.ppf(1 - alpha / 2, dof))


def mean_and_se(values) -> tuple[float, float, int]:
    """``(mean, standard error, n - 1)`` of ``n`` independent values (``ddof=1``)."""
    values = np.asarray(values, dtype=float)
    return (float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size)),
            values.size - 1)


def t_interval(values, alpha: float) -> tuple[float, float, float, float]:
    """``(mean, se, low, high)``: the mean of ``values`` with its Student-t interval at
    level ``1 - alpha`` (``n - 1`` dof). One value has no standard error: NaN for the
    standard error and both bounds (and no values NaN for all four)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return (float(values[0]) if values.size else math.nan), math.nan, math.nan, math.nan
    mean, se, dof = mean_and_se(values)
    half = t_quantile(dof, alpha) * se
    return mean, se, mean - half, mean + half


@dataclass(frozen=True)
class EquivalenceResult:
    """Two one-sided tests (TOST) of ``|estimate - target| < margin``.

    Attributes
    ----------
    estimate, stderr : float
        The measurement and its standard error.
    target : float
        The value theory predicts.
    margin : float
        The equivalence margin: differences below it are considered negligible.
    p_value : float
        The larger of the two one-sided p-values; equivalence is shown at level
        ``alpha`` when ``p_value < alpha``.
    alpha : float
        The test's level.
    dof : float or None
        Degrees of freedom of the Student-t tests; ``None`` for z-tests.
    """

    estimate: float
    stderr: float
    target: float
    margin: float
    p_value: float
    alpha: float
    dof: float | None = None

    @property
    def equivalent(self) -> bool:
        """True when equivalence within ``margin`` is shown at level ``alpha``."""
        return self.p_value < self.alpha

    def conf_int(self, alpha: float = 0.05) -> Interval:
        """The interval at level ``1 - alpha`` (Student-t with :attr:`dof`, if set).

        TOST at level :attr:`alpha` shows equivalence exactly when
        ``conf_int(2 * self.alpha)`` lies inside ``target -/+ margin``.
        """
        return normal_conf_int(self.estimate, self.stderr, alpha, self.dof)

    def summary(self) -> str:
        low, high = self.conf_int(2 * self.alpha)
        kind = "z" if self.dof is None else f"t, {self.dof:g} dof"
        return (f"TOST ({kind}): estimate {self.estimate:.6g} (SE {self.stderr:.3g}), target "
                f"{self.target:.6g} +/- {self.margin:.3g}; {100 * (1 - 2 * self.alpha):g}% CI "
                f"[{low:.6g}, {high:.6g}]; p = {self.p_value:.3g} -> "
                f"{'equivalent' if self.equivalent else 'not shown equivalent'}")


def equivalence_test(estimate: float, stderr: float, target: float, margin: float,
                     alpha: float = 0.05, dof: float | None = None) -> EquivalenceResult:
    r"""TOST for a normally distributed estimate: is ``|estimate - target| < margin``?

    The two one-sided tests are ``H0: estimate - target <= -margin`` and
    ``H0: estimate - target >= margin``; the reported p-value is the larger of the
    two. Without ``dof`` they are z-tests: statsmodels' ``ztost`` computed from
    summary statistics (the Monte Carlo engine streams its trials and keeps no raw
    data). With ``dof`` they are Student-t tests with ``dof`` degrees of freedom,
    for a standard error estimated from few independent units: statsmodels'
    ``ttost_mean`` for the mean of ``dof + 1`` values. The tests check that both
    agree with statsmodels on raw samples.

    A zero standard error (a deterministic estimate) gives p = 0 inside the margin
    and p = 1 outside it. ``estimate`` and ``target`` must be finite: a NaN or an
    infinity has no distance to the margin.
    """
    owner = "equivalence_test"
    estimate = check_real(estimate, "estimate", owner=owner)
    target = check_real(target, "target", owner=owner)
    stderr = check_real(stderr, "stderr", low=0.0, owner=owner)
    margin = check_real(margin, "margin", low=0.0, low_inclusive=False, owner=owner)
    alpha = check_real(alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                       high_inclusive=False, owner=owner)
    dof = _check_dof(dof, owner)
    diff = estimate - target
    if stderr == 0.0:
        p_value = 0.0 if abs(diff) < margin else 1.0
    else:
        dist = _quantile_distribution(dof)
        p_lower = dist.sf((diff + margin) / stderr)   # H0: diff <= -margin
        p_upper = dist.cdf((diff - margin) / stderr)  # H0: diff >= +margin
        p_value = float(max(p_lower, p_upper))
    return EquivalenceResult(estimate, stderr, target, margin, p_value, alpha, dof)


@dataclass(frozen=True)
class InverseKFit:
    r"""Weighted least-squares fit ``MSE_ens(k) = C + (V - C) / k``.

    The primer's formula is linear in ``1/k``: the intercept estimates ``C`` and
    the slope ``V - C``; their sum estimates ``V``.

    Attributes
    ----------
    covariance, covariance_stderr : float
        Intercept ``C`` and its standard error.
    slope, slope_stderr : float
        ``V - C`` and its standard error.
    variance, variance_stderr : float
        ``V = intercept + slope`` and its standard error (from the fit's
        covariance matrix).
    n_points : int
        Number of ``k`` values fitted.
    chi2 : float
        Weighted residual sum of squares; about ``n_points - 2`` when the
        standard errors are right and the model holds.
    """

    covariance: float
    covariance_stderr: float
    slope: float
    slope_stderr: float
    variance: float
    variance_stderr: float
    n_points: int
    chi2: float

    def conf_int(self, alpha: float = 0.05, which: str = "covariance") -> Interval:
        """Normal interval at level ``1 - alpha`` for ``"covariance"`` (C), ``"slope"``
        (V - C) or ``"variance"`` (V)."""
        if which not in ("covariance", "slope", "variance"):
            raise ValueError("The 'which' parameter must be one of 'covariance', 'slope', "
                             f"'variance'; got {which!r}.")
        return normal_conf_int(getattr(self, which), getattr(self, which + "_stderr"), alpha)

    def summary(self, alpha: float = 0.05) -> str:
        """A small table: each term with its standard error and ``1 - alpha`` interval."""
        rows = [("C (intercept)", "covariance"), ("V - C (slope)", "slope"), ("V", "variance")]
        level = f"{100 * (1 - alpha):g}% CI"
        lines = [f"WLS fit of MSE_ens on 1/k over {self.n_points} values of k "
                 f"(chi2 = {self.chi2:.3g} on {self.n_points - 2} dof)",
                 f"{'term':<14}{'estimate':>12}{'SE':>12}{level:>28}"]
        for name, which in rows:
            value, se = getattr(self, which), getattr(self, which + "_stderr")
            low, high = self.conf_int(alpha, which)
            lines.append(f"{name:<14}{value:>12.6g}{se:>12.3g}   [{low:.6g}, {high:.6g}]")
        return "\n".join(lines)


def fit_inverse_k(k, mse, stderr) -> InverseKFit:
    """Fit ``mse = C + (V - C) / k`` by weighted least squares (statsmodels WLS).

    Parameters
    ----------
    k : array of int, shape (n,)
        Ensemble sizes, at least two distinct values.
    mse : array, shape (n,)
        Measured ensemble MSE at each ``k``.
    stderr : array, shape (n,)
        Standard error of each ``mse``; weights are ``1 / stderr**2``. Zero
        standard errors (deterministic points) are floored at a tiny fraction of
        the largest one so that they dominate without dividing by zero.

    Returns
    -------
    InverseKFit
        Standard errors use the given ``stderr`` as known (no rescaling by the
        residual variance), as is right for Monte Carlo estimates.
    """
    import statsmodels.api as sm

    owner = "fit_inverse_k"
    k = check_array(k, "k", ndim=1, owner=owner)
    mse = check_array(mse, "mse", ndim=1, owner=owner)
    stderr = check_array(stderr, "stderr", ndim=1, owner=owner)
    if not (k.shape == mse.shape == stderr.shape):
        raise ValueError(f"The 'k', 'mse' and 'stderr' parameters of {owner} must have the "
                         f"same length; got {k.size}, {mse.size} and {stderr.size}.")
    if np.unique(k).size < 2 or np.any(k < 1):
        raise ValueError(f"The 'k' parameter of {owner} must hold at least two distinct values "
                         f">= 1; got {np.unique(k).tolist()}.")
    check_real_array(stderr, "stderr", low=0.0, owner=owner)
    design = np.column_stack([np.ones_like(k), 1.0 / k])          # (n, 2): [1, 1/k]
    scale = float(stderr.max())
    if scale == 0.0:
        # Deterministic points: an exact least-squares solve, with zero uncertainty.
        params, cov = np.linalg.lstsq(design, mse, rcond=None)[0], np.zeros((2, 2))
        chi2 = float(np.sum((mse - design @ params) ** 2))
    else:
        # In units of the largest standard error, so that tiny ones (1e-170) cannot
        # overflow 1 / stderr**2: ``cov`` is the covariance over scale**2.
        weights = 1.0 / np.maximum(stderr / scale, 1e-6) ** 2
        fit = sm.WLS(mse, design, weights=weights).fit(cov_type="fixed scale")
        params, cov = np.asarray(fit.params), np.asarray(fit.cov_params())
        with np.errstate(over="ignore"):        # chi2 = inf: a fit far outside tiny SEs
            chi2 = float(np.sum(weights * ((mse - design @ params) / scale) ** 2))
    variance_se = math.sqrt(max(cov[0, 0] + cov[1, 1] + 2 * cov[0, 1], 0.0)) * scale
    return InverseKFit(
        covariance=float(params[0]), covariance_stderr=math.sqrt(cov[0, 0]) * scale,
        slope=float(params[1]), slope_stderr=math.sqrt(cov[1, 1]) * scale,
        variance=float(params[0] + params[1]), variance_stderr=variance_se,
        n_points=int(k.size), chi2=chi2)


# ---------------------------------------------------------------------------------
# Jackknife standard errors over repeats
# ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class JackknifeEstimate:
    """Statistics of repeated measurements with delete-a-group jackknife standard errors.

    Attributes
    ----------
    estimate : ndarray, shape (n_statistics,)
        The statistics on all repeats.
    stderr : ndarray, shape (n_statistics,)
        Their jackknife standard errors.
    n_groups : int
        Groups of repeats left out in turn.
    """

    estimate: np.ndarray
    stderr: np.ndarray
    n_groups: int

    @property
    def dof(self) -> int:
        """Degrees of freedom of the standard errors, ``n_groups - 1``: pass them to
        :func:`normal_conf_int` and :func:`equivalence_test`."""
        return self.n_groups - 1

    def conf_int(self, alpha: float = 0.05) -> Interval:
        """Student-t intervals at level ``1 - alpha`` with :attr:`dof` degrees of
        freedom: ``low`` and ``high`` each of shape (n_statistics,).

        With few groups the normal quantile is too small: at 10 groups a nominal 95%
        normal interval covers about 92%.
        """
        return normal_conf_int(self.estimate, self.stderr, alpha, dof=self.dof)


def jackknife(statistic, predictions, *, n_groups: int = 10) -> JackknifeEstimate:
    """Jackknife standard errors, over repeats, of statistics of repeated predictions.

    Repeats are independent, so leaving out one group of repeats at a time and
    recomputing gives standard errors for any smooth statistic, such as a
    sampling correlation pooled over test points (a ratio, which has no simple
    standard error of its own).

    Parameters
    ----------
    statistic : callable
        ``statistic(predictions_subset) -> float or sequence of floats``, e.g.
        ``lambda q: decompose(q, y).rho.mean()``.
    predictions : array-like, shape (n_repeats, ...)
        Repeats along the first axis.
    n_groups : int, default=10
        Contiguous groups of repeats left out in turn, in ``[2, n_repeats]``
        (``n_repeats``: the delete-one jackknife).

    Returns
    -------
    JackknifeEstimate
        ``stderr^2 = (G-1)/G sum_g (theta_(g) - mean theta_(.))^2`` over the ``G``
        leave-one-group-out values ``theta_(g)``. It has ``G - 1`` degrees of
        freedom (:attr:`JackknifeEstimate.dof`): intervals and equivalence tests on
        it use Student-t quantiles, as :meth:`JackknifeEstimate.conf_int` does.

    Examples
    --------
    >>> import numpy as np
    >>> from ensim.decompose import decompose
    >>> from ensim.stats import jackknife
    >>> q = np.random.default_rng(0).normal(size=(20, 3, 5))
    >>> est = jackknife(lambda s: decompose(s, np.zeros(5)).rho.mean(), q, n_groups=5)
    >>> est.estimate.shape, bool(est.stderr[0] > 0)
    ((1,), True)
    """
    owner = "jackknife"
    if not callable(statistic):
        raise TypeError(f"The 'statistic' parameter of {owner} must be callable; "
                        f"got {type(statistic).__name__}.")
    predictions = check_array(predictions, "predictions", owner=owner)
    if predictions.ndim < 1 or predictions.shape[0] < 4:
        raise ValueError(f"The 'predictions' parameter of {owner} must hold at least 4 "
                         f"repeats on its first axis; got shape {predictions.shape}.")
    n_groups = check_int(n_groups, "n_groups", low=2, high=predictions.shape[0], owner=owner)
    shape = None

    def evaluate(subset):
        nonlocal shape
        value = np.atleast_1d(np.asarray(statistic(subset), dtype=float))
        if value.ndim != 1 or (shape is not None and value.shape != shape):
            raise ValueError(f"The 'statistic' parameter of {owner} must return a float or "
                             f"the same number of floats for every subset of repeats; got "
                             f"shape {value.shape}" + (f" after {shape}." if shape else "."))
        shape = value.shape
        return value

    full = evaluate(predictions)
    groups = np.array_split(np.arange(predictions.shape[0]), n_groups)
    left_out = np.array([evaluate(np.delete(predictions, g, axis=0)) for g in groups])
    spread = left_out - left_out.mean(axis=0)
    stderr = np.sqrt((n_groups - 1) / n_groups * np.sum(spread**2, axis=0))
    return JackknifeEstimate(estimate=full, stderr=stderr, n_groups=n_groups)
