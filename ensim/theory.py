"""Closed forms that ensim's measurements are checked against.

Symbols
-------
k : number of ensemble members.
V : error variance of one member, ``Var(eps_i)``.
C : covariance of the errors of two distinct members, ``Cov(eps_i, eps_j)``, i != j.
rho : ``C / V``, the pairwise error correlation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import (
    check_array,
    check_bool,
    check_covariance,
    check_int,
    check_real,
    covariance_range,
)

__all__ = [
    "DropoutRidgeSolution",
    "check_bias",
    "check_covariance_matrix",
    "covariance_bounds",
    "dropout_objective",
    "dropout_ridge",
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
    k = check_int(k, "k", low=1, owner="ensemble_mse")
    V = check_real(V, "V", low=0.0, owner="ensemble_mse")
    C = check_covariance(V, C, k, owner="ensemble_mse")
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


@dataclass(frozen=True)
class DropoutRidgeSolution:
    """The minimiser of the marginalised dropout objective of a linear model.

    Attributes
    ----------
    coef : ndarray of shape (n_features,)
        The weights, in the parametrisation asked for (``w`` of the network
        ``(R * X) w``, or ``W = p w`` of the inverted network ``(R * X / p) W``).
    intercept : float
        The unpenalised intercept (0 when ``fit_intercept`` is false); it is the
        same in both parametrisations.
    penalty : ndarray of shape (n_features,)
        The diagonal ``lambda_j`` of the equivalent ridge penalty ``sum_j lambda_j
        coef_j**2`` in the same parametrisation: ``p (1 - p) (X^T X)_jj`` for
        ``w``, ``(1 - p) / p (X^T X)_jj`` for ``W``.
    keep_prob : float
    inverted : bool
    """

    coef: np.ndarray
    intercept: float
    penalty: np.ndarray
    keep_prob: float
    inverted: bool


def dropout_ridge(X, y, keep_prob, *, inverted=False, fit_intercept=False) -> DropoutRidgeSolution:
    r"""Linear regression with dropout on its inputs, marginalised: a ridge regression.

    Each input ``X_ij`` is kept with probability ``p = keep_prob`` by an independent
    ``R_ij ~ Bernoulli(p)``. Srivastava et al. (2014, section 9.1) show that

    .. math::

        E_R \|y - (R * X) w\|^2 = \|y - p X w\|^2 + p (1 - p) \|\Gamma w\|^2,
        \qquad \Gamma = \operatorname{diag}(X^T X)^{1/2},

    whose minimiser is the ridge solution

    .. math::

        w = (p^2 X^T X + p (1 - p) \operatorname{diag}(X^T X))^{-1} p X^T y.

    Inverted dropout (``ensim.nn``'s :class:`~ensim.nn.Dropout`) multiplies by
    ``R / p``, so the network learns ``W = p w``; with ``inverted=True`` this
    returns

    .. math::

        W = (X^T X + \tfrac{1 - p}{p} \operatorname{diag}(X^T X))^{-1} X^T y,

    the weights of ``build_mlp(d, (), 1, input_keep_prob=p)``. Multiplicative
    Gaussian noise ``N(1, (1 - p) / p)`` (:class:`~ensim.nn.GaussianDropout`) has
    the same first two moments as ``R / p`` and therefore the same marginalised
    objective and the same ``W``.

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
    y : array of shape (n_samples,)
    keep_prob : float in (0, 1]
        ``keep_prob = 1`` is ordinary least squares.
    inverted : bool, default False
        Return ``W = p w`` (inverted dropout) instead of ``w``.
    fit_intercept : bool, default False
        Add an intercept ``b`` that is never dropped nor penalised: ``X`` and ``y``
        are centred in the data term, while the penalty keeps the uncentred
        ``diag(X^T X)`` (the inputs, not their deviations, are dropped), and
        ``b = mean(y) - mean(X) @ (p w)``.

    Returns
    -------
    DropoutRidgeSolution

    Raises
    ------
    ValueError
        For ``keep_prob`` outside ``(0, 1]``, shapes of ``X`` and ``y`` that
        disagree, NaN or infinite entries, or a singular system (a column of
        zeros with ``keep_prob = 1``, or fewer rows than columns).
    """
    owner = "dropout_ridge"
    p = check_real(keep_prob, "keep_prob", low=0.0, high=1.0, low_inclusive=False, owner=owner)
    inverted = check_bool(inverted, "inverted", owner=owner)
    fit_intercept = check_bool(fit_intercept, "fit_intercept", owner=owner)
    X = check_array(X, "X", ndim=2, owner=owner)
    y = check_array(y, "y", ndim=1, owner=owner)
    if X.shape[0] != y.shape[0] or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"The 'X' and 'y' parameters of {owner} must have the same number "
                         f"of rows (at least 1) and X at least one column; got X of shape "
                         f"{X.shape} and y of shape {y.shape}.")
    gram_diag = np.einsum("ij,ij->j", X, X)  # (d,): diag(X^T X), uncentred
    if fit_intercept:
        x_mean, y_mean = X.mean(axis=0), float(y.mean())
        Xc, yc = X - x_mean, y - y_mean
    else:
        Xc, yc = X, y
    # Solve in the inverted parametrisation (better scaled for small p), then map.
    penalty_inverted = (1.0 - p) / p * gram_diag  # (d,)
    A = Xc.T @ Xc + np.diag(penalty_inverted)  # (d, d)
    try:
        W = np.linalg.solve(A, Xc.T @ yc)  # (d,)
    except np.linalg.LinAlgError as exc:
        raise ValueError(f"The system of {owner} is singular (keep_prob = {p:g}, X of shape "
                         f"{X.shape}): a constant or all-zero column, or fewer rows than "
                         "columns without dropout.") from exc
    intercept = y_mean - float(x_mean @ W) if fit_intercept else 0.0
    if inverted:
        return DropoutRidgeSolution(W, intercept, penalty_inverted, p, True)
    return DropoutRidgeSolution(W / p, intercept, p * (1.0 - p) * gram_diag, p, False)


def dropout_objective(X, y, coef, keep_prob, *, intercept=0.0, inverted=False) -> float:
    r"""The marginalised dropout objective ``E_R ||y - b - (R * X / s) coef||^2``.

    ``s = p`` when ``inverted`` and ``1`` otherwise; the closed form is
    ``||y - b - (p / s) X coef||^2 + p (1 - p) / s^2 sum_j (X^T X)_jj coef_j^2``
    (see :func:`dropout_ridge`, which minimises it).
    """
    owner = "dropout_objective"
    p = check_real(keep_prob, "keep_prob", low=0.0, high=1.0, low_inclusive=False, owner=owner)
    X = check_array(X, "X", ndim=2, owner=owner)
    y = check_array(y, "y", ndim=1, owner=owner)
    coef = check_array(coef, "coef", ndim=1, owner=owner)
    if X.shape[0] != y.shape[0] or X.shape[1] != coef.shape[0]:
        raise ValueError(f"The parameters of {owner} disagree: X of shape {X.shape}, y of "
                         f"shape {y.shape}, coef of shape {coef.shape}.")
    intercept = check_real(intercept, "intercept", owner=owner)
    s = p if inverted else 1.0
    residual = y - intercept - (p / s) * (X @ coef)
    gram_diag = np.einsum("ij,ij->j", X, X)
    return float(residual @ residual + p * (1.0 - p) / s**2 * (gram_diag @ coef**2))
