"""Summaries of a hidden representation: how correlated its units are, and how many
directions it uses.

Both take a matrix of activations ``H`` of shape ``(n_samples, n_units)``, one row
per input (e.g. :meth:`ensim.nn.Network.hidden_activations` on test inputs).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_array

__all__ = ["mean_abs_correlation", "participation_ratio"]


def _activations(H, owner):
    H = check_array(H, "H", ndim=2, owner=owner)
    if H.shape[0] < 2:
        raise ValueError(f"The 'H' parameter of {owner} needs at least 2 rows (samples); "
                         f"got shape {H.shape}.")
    return H


def mean_abs_correlation(H):
    """Mean absolute Pearson correlation over pairs of distinct units.

    ``mean_{i < j} |r_ij|``, where ``r_ij`` is the correlation of units ``i`` and
    ``j`` across the rows of ``H``. Units that are constant over the rows (a ReLU
    unit that never fires, say) have no correlation and are left out.

    Parameters
    ----------
    H : array of shape (n_samples, n_units)

    Returns
    -------
    float
        In ``[0, 1]``; NaN when fewer than two units vary.

    Notes
    -----
    For independent units the expected value is not 0 but about
    ``sqrt(2 / (pi (n_samples - 1)))``, the mean absolute sample correlation of
    independent Gaussian variables.
    """
    H = _activations(H, "mean_abs_correlation")
    centred = H - H.mean(axis=0)  # (n_samples, n_units)
    norms = np.sqrt((centred * centred).sum(axis=0))  # (n_units,)
    live = norms > 0
    if live.sum() < 2:
        return float("nan")
    unit = centred[:, live] / norms[live]  # (n_samples, n_live), columns of norm 1
    r = unit.T @ unit  # (n_live, n_live)
    upper = np.triu_indices(r.shape[0], k=1)
    return float(np.clip(np.abs(r[upper]), 0.0, 1.0).mean())


def participation_ratio(H):
    """The effective rank of a representation: the participation ratio of its covariance.

    ``PR = (sum_i lambda_i)**2 / sum_i lambda_i**2`` over the eigenvalues
    ``lambda_i`` of the covariance matrix of the units (the columns of ``H``),
    computed as ``trace(S)**2 / ||S||_F**2``. It is ``n`` for ``n`` uncorrelated
    units of equal variance, 1 when a single direction carries all the variance,
    and lies in ``[1, rank(S)]`` otherwise; it does not change when every unit is
    scaled by the same factor.

    Parameters
    ----------
    H : array of shape (n_samples, n_units)

    Returns
    -------
    float
        0 when no unit varies (a covariance of zeros has rank 0).
    """
    H = _activations(H, "participation_ratio")
    centred = H - H.mean(axis=0)  # (n_samples, n_units)
    S = centred.T @ centred / (H.shape[0] - 1)  # (n_units, n_units)
    frobenius2 = float((S * S).sum())
    if frobenius2 == 0:
        return 0.0
    return float(np.trace(S) ** 2 / frobenius2)
