"""Correlated error models: what the Monte Carlo engine samples.

An error model describes the joint law of the errors ``eps_1, ..., eps_k`` of
``k`` ensemble members at one test point. Each model is validated when it is
constructed and knows its own theory (:attr:`ErrorModel.theory_mse`); the engine
in :mod:`ensim.montecarlo` only asks it for blocks of samples.

Distributions
-------------
The ensemble-MSE formula needs only second moments, so every model can draw its
independent factors from any zero-mean, unit-variance law and still has exactly
the requested covariance:

``"gaussian"``
    standard normal.
``"student-t"``
    Student-t with ``df`` degrees of freedom scaled to unit variance (heavy
    tails; ``df > 2`` needed for a variance, ``df > 4`` for the standard error
    of the MSE to exist, which is why :func:`ensim.simulate` refuses
    ``df <= 4``).
``"exponential"``
    ``Exp(1) - 1``: skewed (skewness 2).
``"rademacher"``
    ``+1`` or ``-1`` with probability 1/2: discrete.

Ranges
------
The engine sums squared errors and the squares of those (for standard errors)
in float64, so every model keeps its errors' scale well inside float64's range:
``k <= 10**6`` members; variances (the largest diagonal entry of ``sigma``) of
0 or in ``[1e-100, 1e100]``, whose fourth powers neither overflow nor underflow
even after heavy tails and ``10**18`` trials; biases with ``|bias| <= 1e50``.
"""

from __future__ import annotations

import abc
import math

import numpy as np

from ._validation import check_array, check_choice, check_covariance, check_int, check_real
from .theory import check_bias, check_covariance_matrix

__all__ = ["DISTS", "MAX_ABS_BIAS", "MAX_K", "MAX_VARIANCE", "MIN_VARIANCE",
           "EquicorrelatedErrors", "ErrorModel", "GeneralErrors", "standardized_draws"]

DISTS = ("gaussian", "student-t", "exponential", "rademacher")

#: Most members a model may have: one trial of 10**6 errors is 8 MB.
MAX_K = 10**6
#: Variances must be 0 or in [MIN_VARIANCE, MAX_VARIANCE] (see "Ranges" above).
MIN_VARIANCE, MAX_VARIANCE = 1e-100, 1e100
#: Largest |bias| a member may have: its fourth power is 1e200.
MAX_ABS_BIAS = 1e50
_VARIANCE_RANGE = f"[{MIN_VARIANCE:g}, {MAX_VARIANCE:g}] or exactly 0"


def standardized_draws(dist: str, gen, shape, xp=np, df: float = 5.0, out=None):
    """Independent zero-mean, unit-variance draws of ``dist`` with ``shape``, as float64.

    ``gen`` is a NumPy or CuPy generator (see :func:`ensim._random.make_generator`);
    only methods that both offer are used, so the code is the same on both.
    ``out`` (NumPy only) is a float64 buffer of ``shape`` to fill instead of
    allocating; the Gaussian and exponential laws fill it in place.
    """
    fill = {} if out is None or xp is not np else {"out": out}
    if dist == "gaussian":
        return gen.standard_normal(shape, dtype=xp.float64, **fill)
    if dist == "exponential":
        draws = gen.standard_exponential(shape, dtype=xp.float64, **fill)
        draws -= 1.0
        return draws
    if dist == "rademacher":
        draws = gen.random(shape, dtype=xp.float64)
        # 2 * 1[u < 1/2] - 1, in place: -1 or +1 with probability 1/2 each.
        return xp.where(draws < 0.5, -1.0, 1.0)
    if dist == "student-t":
        # T = Z / sqrt(G / df), G ~ chi2(df) = 2 * Gamma(df/2); Var(T) = df/(df-2).
        z = gen.standard_normal(shape, dtype=xp.float64)
        chi2 = gen.standard_gamma(df / 2.0, shape, dtype=xp.float64)
        chi2 *= 2.0
        z *= xp.sqrt((df - 2.0) / chi2)
        return z
    raise ValueError(f"The 'dist' parameter must be one of {DISTS}; got {dist!r}.")


def _check_variance(value, name, owner) -> float:
    value = check_real(value, name, range_text=_VARIANCE_RANGE, owner=owner)
    if value != 0.0 and not MIN_VARIANCE <= value <= MAX_VARIANCE:
        raise ValueError(f"The {name!r} parameter of {owner} must be in {_VARIANCE_RANGE}; "
                         f"got {value:g}.")
    return value


def _reduce_errors(eps, bias=None, xp=np):
    """The per-trial moments of sampled errors ``eps`` ``(n, k)``; see :meth:`ErrorModel._moments`.

    ``bias`` (shape ``(k,)`` or None) is subtracted from ``eps`` in place. Row
    and column sums are matrix-vector products and the sums of squares one
    ``einsum``: one streaming pass each.
    """
    n, k = eps.shape
    ones_k = xp.ones(k)
    row = eps @ ones_k                                   # (n,)  k * ebar
    moments = xp.empty((3, n))                           # ebar^2, q1, q2 per trial
    ebar = row / k
    xp.multiply(ebar, ebar, out=moments[0])
    if bias is not None:
        eps -= bias                                      # (n, k)  d = e - bias
        row = eps @ ones_k                               # (n,)  sum_i d_ti
    col = xp.ones(n) @ eps                               # (k,)  per-member sums of d
    sq = xp.einsum("ij,ij->i", eps, eps)                 # (n,)  sum_i d_ti^2
    xp.divide(sq, k, out=moments[1])
    if k > 1:
        # sum_{i != j} d_i d_j = (sum_i d_i)^2 - sum_i d_i^2
        xp.multiply(row, row, out=moments[2])
        moments[2] -= sq
        moments[2] /= k * (k - 1)
    else:
        moments[2] = 0.0
    return moments, col


#: Laws whose draws of an (n, k) array are the draws of its row chunks in turn
#: (one sequential pass over the stream); Student-t draws all normals, then all
#: gammas, so it is drawn whole.
_ONE_PASS_DISTS = ("gaussian", "exponential", "rademacher")
#: Elements per chunk of rows in EquicorrelatedErrors._moments (512 KiB: well
#: inside a core's L2 cache, with room for the rest of the block's arrays).
_CHUNK_ELEMENTS = 2**16


#: From this many members on, NumPy sums a row's squares fastest as one BLAS dot per
#: row (``vecdot``); with fewer, the calls cost more than the sums, and squaring the
#: chunk in place and summing the rows as a matrix-vector product is 2-8x faster.
_ROW_DOT_MIN_K = 48


def _reduce_chunk(z, sums, squares, col, ones_k, ones_rows, xp):
    """Reduce one chunk ``z`` ``(m, k)``: row sums, row sums of squares, column sums.

    Writes the row sums into ``sums`` and the row sums of squares into
    ``squares``, and adds the column sums to ``col``. ``ones_k`` and ``ones_rows``
    hold at least ``k`` and ``m`` ones. ``z`` may be overwritten: its caller is
    done with it.
    """
    m, k = z.shape
    if xp is np and k == 1:
        # One term a row: the sum is the entry and its square the product, exactly the
        # bits the matrix-vector product and the dot give (which cost 10-15x more here).
        sums[...] = z[:, 0]
        col += ones_rows[:m] @ z
        np.multiply(z[:, 0], z[:, 0], out=squares)
        return
    xp.matmul(z, ones_k, out=sums)
    col += ones_rows[:m] @ z
    if xp is np and k < _ROW_DOT_MIN_K:
        np.multiply(z, z, out=z)
        np.matmul(z, ones_k, out=squares)
    elif xp is np and hasattr(np, "vecdot"):             # NumPy >= 2: one BLAS dot a row
        np.vecdot(z, z, out=squares)
    else:                                                # CuPy's einsum takes no out=
        squares[...] = xp.einsum("ij,ij->i", z, z)


class ErrorModel(abc.ABC):
    """The joint law of ``k`` member errors; subclasses say how to sample it.

    Attributes
    ----------
    k : int
        Number of members.
    dist : str
        Law of the independent factors, one of :data:`DISTS`.
    df : float
        Degrees of freedom of ``"student-t"`` (ignored by the other laws).
    bias : ndarray of shape (k,)
        Mean error of each member.
    """

    k: int
    dist: str
    df: float
    bias: np.ndarray

    @abc.abstractmethod
    def sample(self, n: int, gen, xp=np, out=None):
        """Draw ``n`` independent trials; returns an ``(n, k)`` float64 array.

        ``out``, an optional ``(n, k)`` float64 NumPy buffer, may be used (and
        returned) instead of a new array; the result is the same either way.
        """

    def _moments(self, n: int, gen, xp=np, out=None):
        """Draw ``n`` trials and return the per-trial moments the engine averages.

        Returns ``(moments, col)``. ``moments`` has shape ``(3, n)``; its rows are,
        for each trial ``t``, ``ebar_t^2`` (``ebar_t = mean_i e_ti``, the ensemble
        error), ``q1_t = (1/k) sum_i d_ti^2`` and
        ``q2_t = (1/(k(k-1))) sum_{i != j} d_ti d_tj`` (0 for ``k = 1``), where
        ``d = e - bias``. ``col``, shape ``(k,)``, holds the per-member sums
        ``sum_t d_ti``. This default samples with :meth:`sample` and reduces the
        ``(n, k)`` errors (:func:`_reduce_errors`); a model whose errors are a few
        scaled factors may reduce the factors instead, which costs fewer passes
        over the block and gives the same moments up to rounding.
        """
        return _reduce_errors(self.sample(n, gen, xp, out), self._bias_on(xp), xp)

    def _moments_of_blocks(self, n: int, gens, xp=np, out=None):
        """:meth:`_moments` of ``len(gens)`` blocks of ``n`` trials, block ``b`` from ``gens[b]``.

        Returns ``(moments, col)`` of shapes ``(B, 3, n)`` and ``(B, k)``, block
        ``b``'s exactly as ``_moments(n, gens[b], xp, out)`` returns them. A model
        may do its per-trial arithmetic once for all the blocks; this default
        reduces the blocks one at a time.
        """
        moments, col = xp.empty((len(gens), 3, n)), xp.empty((len(gens), self.k))
        for b, gen in enumerate(gens):
            moments[b], col[b] = self._moments(n, gen, xp, out)
        return moments, col

    @property
    @abc.abstractmethod
    def sigma(self) -> np.ndarray:
        """The ``(k, k)`` error covariance matrix."""

    @property
    def variance(self) -> float:
        """``V``: the mean member error variance (the mean diagonal of :attr:`sigma`)."""
        return float(np.mean(np.diag(self.sigma)))

    @property
    def covariance(self) -> float:
        """``C``: the mean pairwise error covariance over ``i != j`` (NaN for ``k = 1``)."""
        sigma = self.sigma
        if self.k == 1:
            return float("nan")
        return float((sigma.sum() - np.trace(sigma)) / (self.k * (self.k - 1)))

    @property
    def mean_bias(self) -> float:
        """The mean member bias."""
        return float(np.mean(self.bias))

    @property
    def theory_mse(self) -> float:
        """``E[eps_bar^2]`` = mean of all entries of :attr:`sigma` + squared mean bias."""
        return float(np.mean(self.sigma)) + self.mean_bias**2

    def describe(self) -> dict:
        """Plain-number description for tables and manifests."""
        return {"model": type(self).__name__, "k": self.k, "dist": self.dist,
                "df": self.df if self.dist == "student-t" else None,
                "variance": self.variance, "covariance": self.covariance,
                "mean_bias": self.mean_bias, "theory_mse": self.theory_mse}

    def _init_dist_and_bias(self, dist, df, bias):
        owner = type(self).__name__
        self.dist = check_choice(dist, "dist", DISTS, owner=owner)
        self.df = check_real(df, "df", low=2.0, low_inclusive=False, owner=owner)
        self.bias = check_bias(bias, self.k, owner=owner)
        worst = float(np.max(np.abs(self.bias)))
        if worst > MAX_ABS_BIAS:
            raise ValueError(f"The 'bias' parameter of {owner} must be in "
                             f"[-{MAX_ABS_BIAS:g}, {MAX_ABS_BIAS:g}]; got an entry of "
                             f"absolute value {worst:g}.")

    def _draws(self, gen, shape, xp, out=None):
        return standardized_draws(self.dist, gen, shape, xp=xp, df=self.df, out=out)

    def _bias_on(self, xp):
        return xp.asarray(self.bias) if np.any(self.bias) else None


class EquicorrelatedErrors(ErrorModel):
    r"""``k`` errors, each of variance ``V``, every pair with covariance ``C``.

    Parameters
    ----------
    k : int
        Number of members, in ``[1, 10**6]`` (:data:`MAX_K`).
    variance : float
        ``V``: 0 or in ``[1e-100, 1e100]``, so that the engine's sums of fourth
        powers stay inside float64's range.
    covariance : float
        ``C`` in ``[-V/(k-1), V]``, edges included (any ``|C| <= V`` when ``k = 1``).
    dist : str, default "gaussian"
        Law of the independent factors, one of :data:`DISTS`.
    df : float, default 5.0
        Degrees of freedom for ``dist="student-t"`` (``> 2``).
    bias : float or array of shape (k,), default 0.0
        Mean error of each member, ``|bias| <= 1e50``.

    Notes
    -----
    Sampling costs O(k) per trial (:func:`ensim.simulate` does not even form
    the errors: it sums the factors below directly). For ``C >= 0`` one shared
    factor ``W`` and ``k`` independent factors ``Z_i`` (all zero mean, unit
    variance) give

    .. math:: \epsilon_i = \sqrt{C}\,W + \sqrt{V - C}\,Z_i .

    For ``C < 0`` no shared factor exists; the two eigenvalues of the
    equicorrelation matrix, ``V - C`` on the vectors orthogonal to ``1`` and
    ``V + (k-1) C`` along ``1``, give instead

    .. math:: \epsilon_i = \sqrt{V - C}\,(Z_i - \bar Z) + \sqrt{(V + (k-1) C)/k}\,W ,

    whose covariance is ``(V - C)(I - 11^T/k) + (V + (k-1)C)/k\, 11^T``
    ``= (V - C) I + C 11^T``. At the lower edge ``C = -V/(k-1)`` the errors sum
    to zero exactly.

    Examples
    --------
    >>> model = EquicorrelatedErrors(k=10, variance=1.0, covariance=0.25)
    >>> round(model.theory_mse, 6)
    0.325
    """

    def __init__(self, k, variance, covariance, dist="gaussian", df=5.0, bias=0.0):
        owner = type(self).__name__
        self.k = check_int(k, "k", low=1, high=MAX_K, owner=owner)
        self.V = _check_variance(variance, "variance", owner)
        self.C = check_covariance(self.V, covariance, self.k, owner=owner)
        self._init_dist_and_bias(dist, df, bias)

    def __repr__(self):
        return (f"EquicorrelatedErrors(k={self.k}, variance={self.V:g}, covariance={self.C:g}, "
                f"dist={self.dist!r}" + (f", df={self.df:g}" if self.dist == "student-t" else "")
                + (f", bias={self.mean_bias:g}" if np.any(self.bias) else "") + ")")

    @property
    def sigma(self) -> np.ndarray:
        return (self.V - self.C) * np.eye(self.k) + self.C

    @property
    def variance(self) -> float:
        return self.V

    @property
    def covariance(self) -> float:
        return self.C if self.k > 1 else float("nan")

    @property
    def theory_mse(self) -> float:
        # (V + (k-1) C) / k is the eigenvalue along 1, divided by k; at the lower
        # edge it is zero, which rounding must not turn into +-1e-17.
        top = self.V + (self.k - 1) * self.C
        if abs(top) <= 4 * self.k * np.finfo(float).eps * self.V:
            top = 0.0
        return top / self.k + self.mean_bias**2

    def sample(self, n, gen, xp=np, out=None):
        k, V, C = self.k, self.V, self.C
        eps = self._draws(gen, (n, k), xp, out)      # (n, k): the Z_i
        shared = self._draws(gen, (n, 1), xp)        # (n, 1): W
        if C >= 0:
            eps *= np.sqrt(V - C)
            shared *= np.sqrt(C)
        else:
            eps -= eps.mean(axis=1, keepdims=True)
            eps *= np.sqrt(V - C)
            shared *= np.sqrt(max(V + (k - 1) * C, 0.0) / k)
        eps += shared
        bias = self._bias_on(xp)
        if bias is not None:
            eps += bias
        return eps

    def _moments(self, n, gen, xp=np, out=None):
        if type(self).sample is not EquicorrelatedErrors.sample:  # a subclass's own errors
            return ErrorModel._moments(self, n, gen, xp, out)
        moments, col = self._factor_blocks(n, [gen], xp, out)
        return moments[0], col[0]

    def _moments_of_blocks(self, n, gens, xp=np, out=None):
        cls = type(self)
        if (cls._moments is not EquicorrelatedErrors._moments
                or cls.sample is not EquicorrelatedErrors.sample):
            # A subclass that draws its own errors, or reduces them its own way: block by
            # block through its _moments (which may call this class's).
            return ErrorModel._moments_of_blocks(self, n, gens, xp, out)
        return self._factor_blocks(n, gens, xp, out)

    def _factor_blocks(self, n, gens, xp=np, out=None):
        # The draws of sample(), reduced as factors. With d = e - bias,
        #   C >= 0:  d_ti = a Z_ti + c W_t,             a = sqrt(V - C), c = sqrt(C);
        #   C <  0:  d_ti = a (Z_ti - Zbar_t) + c W_t,  c = sqrt((V + (k-1) C) / k),
        # so with S_t = sum_i Z_ti, Q_t = sum_i Z_ti^2 and u_t = (a/k) S_t each trial has
        #   dbar_t = u_t + c W_t  (C >= 0),   c W_t  (C < 0: sum_i (Z_i - Zbar) = 0),
        #   P_t / k = (1/k) sum_i (d_ti - dbar_t)^2 = (a^2/k) Q_t - u_t^2,
        #   q1_t = P_t / k + dbar_t^2,   q2_t = dbar_t^2 - P_t / (k (k-1)).
        # Three read-only passes (S, Q and the column sums of Z) replace scaling
        # the block, adding W to it and reading it three times. On NumPy, laws
        # drawn in one sequential pass are drawn and reduced a cache-sized chunk of
        # rows at a time: the same numbers in the same order, never leaving cache.
        # Each block's draws and passes come first; the per-trial arithmetic then
        # runs once over all the blocks' (n,) rows together, element by element
        # (and each sum over one block's row), so a block's moments are the same
        # bits whichever blocks it is computed with.
        k, V, C = self.k, self.V, self.C
        a = math.sqrt(V - C)
        c = math.sqrt(C if C >= 0 else max(V + (k - 1) * C, 0.0) / k)
        moments = xp.empty((len(gens), 3, n))
        ebar2, q1, q2 = moments[:, 0], moments[:, 1], moments[:, 2]  # (B, n) views
        u = xp.empty((len(gens), n))
        w = xp.empty((len(gens), n))
        col = xp.zeros((len(gens), k))
        one_pass = xp is np and self.dist in _ONE_PASS_DISTS
        rows = max(1, _CHUNK_ELEMENTS // k) if one_pass else n
        ones_k, ones_rows = xp.ones(k), xp.ones(min(rows, n))
        for b, gen in enumerate(gens):
            for first in range(0, n, rows):
                stop = min(first + rows, n)
                z = self._draws(gen, (stop - first, k), xp,
                                None if out is None else out[:stop - first])  # (rows, k): Z_i
                # S_t, Q_t and the column sums (k,) sum_t Z_ti
                _reduce_chunk(z, u[b, first:stop], q1[b, first:stop], col[b], ones_k,
                              ones_rows, xp)
            # (n,): W, drawn in place where the law allows
            w[b] = self._draws(gen, (n, 1), xp, w[b, :, None] if xp is np else None)[:, 0]
        if C < 0:
            col -= xp.sum(u, axis=1, keepdims=True) / k      # sum_t (Z_ti - Zbar_t)
        u *= a / k                                           # u_t
        xp.multiply(u, u, out=q2)
        q1 *= a * a / k
        q1 -= q2
        xp.maximum(q1, 0.0, out=q1)                          # P_t / k >= 0; rounding aside
        w *= c                                               # c W_t
        col *= a
        col += xp.sum(w, axis=1, keepdims=True)              # (B, k)  sum_t d_ti
        if C >= 0:
            u += w
            dbar = u
        else:
            dbar = w
        xp.multiply(dbar, dbar, out=ebar2)
        if k > 1:
            xp.multiply(q1, -1.0 / (k - 1), out=q2)
            q2 += ebar2
        else:
            q2[...] = 0.0
        q1 += ebar2
        if self.mean_bias != 0.0:                            # ebar_t = dbar_t + mean bias
            dbar += self.mean_bias
            xp.multiply(dbar, dbar, out=ebar2)
        return moments, col


class GeneralErrors(ErrorModel):
    r"""``k`` errors with any covariance matrix ``sigma`` and optional biases.

    Parameters
    ----------
    sigma : array of shape (k, k)
        Symmetric positive semi-definite error covariance of real numbers
        (checked, with a tolerance of ``1e-10`` relative to its largest entry),
        whose largest entry is 0 or in ``[1e-100, 1e100]``.
    bias : float or array of shape (k,), default 0.0
        Mean error of each member, ``|bias| <= 1e50``.
    dist : str, default "gaussian"
    df : float, default 5.0

    Notes
    -----
    ``sigma = Q diag(lambda) Q^T`` (eigendecomposition, so singular matrices work)
    and ``eps = L Z + bias`` with ``L = Q diag(sqrt(lambda))`` and ``Z`` independent
    zero-mean unit-variance factors. Sampling costs O(k^2) per trial; use
    :class:`EquicorrelatedErrors` for the equicorrelated case.
    """

    def __init__(self, sigma, bias=0.0, dist="gaussian", df=5.0):
        owner = type(self).__name__
        sigma = check_array(sigma, "sigma", ndim=2, owner=owner, allow_bool=False)
        largest = float(np.max(np.abs(sigma))) if sigma.size else 0.0
        if largest != 0.0 and not MIN_VARIANCE <= largest <= MAX_VARIANCE:
            raise ValueError(f"The 'sigma' parameter of {owner} must have its largest entry "
                             f"|sigma_ij| in {_VARIANCE_RANGE}; got {largest:g}.")
        sigma, eigenvalues, eigenvectors = check_covariance_matrix(sigma, owner)
        self.k = sigma.shape[0]
        self._sigma = sigma
        self._factor = eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))  # (k, k) = L
        self._init_dist_and_bias(dist, df, bias)

    def __repr__(self):
        return f"GeneralErrors(k={self.k}, dist={self.dist!r})"

    @property
    def sigma(self) -> np.ndarray:
        return self._sigma.copy()

    def sample(self, n, gen, xp=np, out=None):
        z = self._draws(gen, (n, self.k), xp)        # (n, k); the product allocates anyway
        eps = z @ xp.asarray(self._factor.T)         # (n, k): rows are L z
        bias = self._bias_on(xp)
        if bias is not None:
            eps += bias
        return eps
