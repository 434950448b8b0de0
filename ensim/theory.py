"""Closed forms that ensim's measurements are checked against.

Symbols
-------
k : number of ensemble members.
V : error variance of one member, ``Var(eps_i)``.
C : covariance of the errors of two distinct members, ``Cov(eps_i, eps_j)``, i != j.
rho : ``C / V``, the pairwise error correlation.
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    check_array,
    check_covariance,
    check_int,
    check_real,
    covariance_range,
)

__all__ = [
    "check_bias",
    "check_covariance_matrix",
    "covariance_bounds",
    "ensemble_mse",
    "ensemble_mse_general",
    "forest_variance",
]


def covariance_bounds(variance: float, k: int) -> tuple[float, float]:
    """The interval of pairwise covariances ``C`` that ``k`` members of variance ``V`` admit.

    The equicorrelation matrix ``(V - C) I + C 1 1^T`` has eigenvalues ``V - C``
    (multiplicity ``k - 1``) and ``V + (k - 1) C``; both are non-negative exactly
    when ``-V/(k-1) <= C <= V``. A single member has no pairs, so for ``k = 1`` any
    ``|C| <= V`` is accepted (and has no effect).
    """
    k = check_int(k, "k", low=1)
    variance = check_real(variance, "variance", low=0.0)
    return covariance_range(variance, k)


def ensemble_mse(V: float, C: float, k: int) -> float:
    r"""MSE of the average of ``k`` unbiased members: ``V/k + (k-1)/k * C``.

    Parameters
    ----------
    V : float
        Error variance of each member (``>= 0``).
    C : float
        Error covariance of each pair of distinct members, in ``[-V/(k-1), V]``.
    k : int
        Number of members (``>= 1``).

    Returns
    -------
    float
        ``E[(mean_i eps_i)^2]``.

    Notes
    -----
    With ``eps_bar = (1/k) sum_i eps_i``,

    .. math:: E[\bar\epsilon^2] = \frac{1}{k^2}\Big(\sum_i V + \sum_{i \ne j} C\Big)
              = \frac{V}{k} + \frac{k-1}{k} C .

    ``C = V`` (identical errors) gives ``V``: averaging does not help.
    ``C = 0`` gives ``V / k``. ``C = -V/(k-1)`` gives 0: the errors cancel.

    Examples
    --------
    >>> ensemble_mse(1.0, 0.0, 10)
    0.1
    >>> ensemble_mse(2.0, 2.0, 5)
    2.0
    """
    k = check_int(k, "k", low=1)
    V = check_real(V, "V", low=0.0)
    C = check_covariance(V, C, k)
    return V / k + (k - 1) / k * C


def check_covariance_matrix(sigma, owner: str | None = None):
    """Validate a covariance matrix; returns ``(sigma, eigenvalues, eigenvectors)``.

    ``sigma`` must be a finite, non-empty, square, symmetric (to ``1e-10`` of its
    largest entry) and positive semi-definite (smallest eigenvalue at least
    ``-1e-10`` of its largest entry) matrix; it is returned symmetrised.
    """
    where = f" of {owner}" if owner else ""
    sigma = check_array(sigma, "sigma", ndim=2, owner=owner, allow_bool=False)
    if sigma.shape[0] != sigma.shape[1] or sigma.shape[0] < 1:
        raise ValueError(f"The 'sigma' parameter{where} must be a non-empty square "
                         f"matrix; got shape {sigma.shape}.")
    scale = max(float(np.max(np.abs(sigma))), np.finfo(float).tiny)
    asymmetry = float(np.max(np.abs(sigma - sigma.T)))
    if asymmetry > 1e-10 * scale:
        raise ValueError(f"The 'sigma' parameter{where} must be symmetric; the largest "
                         f"|sigma - sigma.T| is {asymmetry:.3g}.")
    sigma = (sigma + sigma.T) / 2
    eigenvalues, eigenvectors = np.linalg.eigh(sigma)
    if eigenvalues[0] < -1e-10 * scale:
        raise ValueError(f"The 'sigma' parameter{where} must be positive semi-definite; "
                         f"its smallest eigenvalue is {eigenvalues[0]:.3g}.")
    return sigma, eigenvalues, eigenvectors


def check_bias(bias, k: int, owner: str | None = None) -> np.ndarray:
    """``bias`` as a length-``k`` float array (a scalar is repeated); raises if invalid."""
    try:
        scalar = np.ndim(bias) == 0
    except ValueError:              # a ragged list: check_array says so
        scalar = False
    if scalar:
        return np.full(k, check_real(bias, "bias", owner=owner))
    bias = check_array(bias, "bias", ndim=1, owner=owner, allow_bool=False)
    if bias.shape != (k,):
        raise ValueError(f"The 'bias' parameter{' of ' + owner if owner else ''} must be a "
                         f"scalar or have shape ({k},); got shape {bias.shape}.")
    return bias


def ensemble_mse_general(sigma, bias=0.0) -> float:
    r"""MSE of the average of members with error covariance ``sigma`` and biases ``bias``.

    ``E[eps_bar^2] = mean(sigma) + mean(bias)^2``: the mean of all ``k^2`` entries of
    the covariance matrix plus the squared mean bias. With equal variances ``V``
    and covariances ``C`` and no bias this is :func:`ensemble_mse`. ``sigma`` must
    be a valid covariance matrix (square, symmetric, positive semi-definite) and
    ``bias`` a scalar or a vector of length ``k``.
    """
    sigma, _, _ = check_covariance_matrix(sigma)
    bias = check_bias(bias, sigma.shape[0])
    return float(np.mean(sigma)) + float(np.mean(bias)) ** 2


def forest_variance(rho: float, sigma2: float, n_trees: int) -> float:
    r"""Variance of an average of ``n_trees`` identically distributed trees.

    ``rho * sigma2 + (1 - rho) / B * sigma2`` (Hastie, Tibshirani & Friedman, *The
    Elements of Statistical Learning*, eq. 15.1), where ``rho`` is the correlation
    between two trees and ``sigma2`` the variance of one. It is
    :func:`ensemble_mse` with ``V = sigma2``, ``C = rho * sigma2`` and ``k = B``.
    """
    n_trees = check_int(n_trees, "n_trees", low=1)
    low = -1.0 if n_trees == 1 else -1.0 / (n_trees - 1)
    rho = check_real(rho, "rho", low=low, high=1.0,
                     range_text=f"[-1/(B-1), 1] = [{low:g}, 1]" if n_trees > 1 else None)
    sigma2 = check_real(sigma2, "sigma2", low=0.0)
    return rho * sigma2 + (1.0 - rho) / n_trees * sigma2
