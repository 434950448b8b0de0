"""Exact averages over every thinned sub-network of a small network.

A network with ``n`` Bernoulli dropout units has ``2**n`` thinned sub-networks;
mask ``m`` has probability ``pi(m) = prod_u p_u^{m_u} (1 - p_u)^{1 - m_u}`` (the
keep probability ``p_u`` of unit ``u``'s layer). For ``n`` up to about 20 they can
all be evaluated: :func:`exact_ensemble` runs them in batches of masks, so memory
is bounded by the batch, not by ``2**n``, and returns the exact arithmetic mean,
the exact normalised weighted geometric mean (NWGM) and the exact error moments
of the whole ensemble, against which the weight-scaled network and Monte Carlo
averages of sampled masks are judged. :func:`logistic_unit_ensemble` does the
same for one logistic unit with dropout on its inputs (Baldi & Sadowski, 2014).
"""

from __future__ import annotations

import copy
import dataclasses
import math

import numpy as np

from .._backend import to_numpy
from .._validation import check_array, check_int, check_real
from .losses import MSELoss, SoftmaxCrossEntropy

__all__ = ["MAX_SUBNETWORKS", "ExactEnsemble", "LogisticEnsemble", "exact_ensemble",
           "logistic_unit_ensemble"]

#: Default largest number of sub-networks an exact average enumerates.
MAX_SUBNETWORKS = 2**22

#: Prediction entries (masks x test points x outputs) held per batch of masks.
_BATCH_ENTRIES = 2**21


@dataclasses.dataclass(frozen=True)
class ExactEnsemble:
    """Exact averages over all ``2**n`` thinned sub-networks, each with its probability.

    Attributes
    ----------
    n_units : int
        Dropout units enumerated (layers with ``keep_prob = 1`` have none).
    n_subnetworks : int
        ``2**n_units``.
    arithmetic_mean : ndarray of shape (n_test, n_outputs)
        ``sum_m pi(m) q_m``: the prediction of the whole ensemble.
    second_moment : ndarray of shape (n_test, n_outputs)
        ``sum_m pi(m) q_m**2``; ``second_moment - arithmetic_mean**2`` is the
        variance over masks at each point and output.
    nwgm : ndarray of shape (n_test, n_outputs) or None
        Softmax head: the renormalised weighted geometric mean of the members'
        class probabilities, ``prod_m q_m^pi(m) / sum_c prod_m q_mc^pi(m)``,
        computed as ``softmax(sum_m pi(m) z_m)`` from the logits ``z_m`` (the
        log-sum-exp of each member is the same for every class and cancels).
        None for a regression head, whose outputs are not probabilities.
    geometric_mass : ndarray of shape (n_test,) or None
        ``sum_c prod_m q_mc^pi(m)``, the unnormalised geometric mean's total (at
        most 1, by the inequality of arithmetic and geometric means).
    full : ndarray of shape (n_test, n_outputs)
        The weight-scaled full network (inverted dropout at inference).
    total_probability : float
        ``sum_m pi(m)``, 1 up to rounding: a check on the enumeration.
    mse_mean, mse_full, mse_nwgm : float or None
        With targets: ``<(qbar - y)^2>`` of the arithmetic mean, of the full
        network and of the NWGM (averaged over points and outputs).
    mean_square, cross_moment : float or None
        ``S = sum_m pi(m) <e_m^2>`` and ``X = <(sum_m pi(m) e_m)^2>``, with errors
        ``e_m = q_m - y``: a Monte Carlo average of ``k`` masks drawn independently
        has expected squared error ``S / k + (k - 1) / k * X`` exactly.
    mean_error, member_variance, covariance : float or None
        ``b = <ebar>``, ``V = sum_m pi(m) <(e_m - b_m)^2>`` (``b_m = <e_m>``) and
        ``C = <(ebar - b)^2> = X - b^2``: the expectations of
        :func:`ensim.decompose.decompose`'s ``mean_error``, ``member_variance`` and
        ``covariance`` over ensembles of independently drawn masks, so that
        ``S / k + (k - 1) / k * X = b^2 + V / k + (k - 1) / k * C``.
    """

    n_units: int
    n_subnetworks: int
    arithmetic_mean: np.ndarray
    second_moment: np.ndarray
    nwgm: np.ndarray | None
    geometric_mass: np.ndarray | None
    full: np.ndarray
    total_probability: float
    mse_mean: float | None = None
    mse_full: float | None = None
    mse_nwgm: float | None = None
    mean_square: float | None = None
    cross_moment: float | None = None
    mean_error: float | None = None
    member_variance: float | None = None
    covariance: float | None = None


def _check_enumerable(n_units, max_subnetworks, owner, what):
    max_subnetworks = check_int(max_subnetworks, "max_subnetworks", low=1, owner=owner)
    if n_units > 62 or 2**n_units > max_subnetworks:
        raise ValueError(f"The {what} of {owner} has 2**{n_units} = {2**n_units:,} "
                         f"sub-networks ({n_units} dropout units), more than max_subnetworks "
                         f"= {max_subnetworks:,} can enumerate (valid: at most "
                         f"max_subnetworks sub-networks, 2**{int(math.log2(max_subnetworks))} "
                         "here); use fewer dropout units or sample masks instead.")
    return max_subnetworks


def _bits(start, stop, n_units):
    """Rows ``start..stop-1`` of the ``2**n`` masks: bit ``u`` of row ``i`` is unit ``u``."""
    codes = np.arange(start, stop, dtype=np.int64)[:, None]  # (c, 1)
    return ((codes >> np.arange(n_units, dtype=np.int64)) & 1).astype(bool)  # (c, n_units)


def exact_ensemble(network, X, targets=None, *, max_subnetworks=MAX_SUBNETWORKS,
                   batch_size=None) -> ExactEnsemble:
    """Average a network over all its thinned sub-networks, each with its probability.

    Parameters
    ----------
    network : Network
        With at least one :class:`~ensim.nn.Dropout` layer (Bernoulli masks) and
        at most ``log2(max_subnetworks)`` dropout units in layers with
        ``keep_prob < 1``.
    X : array of shape (n_test, n_inputs)
    targets : array, optional
        Regression: ``(n_test,)`` or ``(n_test, n_outputs)``. Classification:
        integer labels ``(n_test,)`` (one-hot encoded, so errors are those of the
        Brier score) or ``(n_test, n_outputs)`` probabilities.
    max_subnetworks : int, default 2**22
        The most sub-networks enumerated; a larger network is refused before any
        work.
    batch_size : int, optional
        Masks evaluated together. By default as many as keep ``batch * n_test *
        n_outputs`` near 2**21 entries: with a few arrays of that size alive,
        memory stays in the tens of MiB whatever ``2**n`` is.

    Returns
    -------
    ExactEnsemble

    Raises
    ------
    ValueError
        For a network without Bernoulli dropout, one with more sub-networks than
        ``max_subnetworks`` (the error says how many it has and the limit), or
        ``X`` / ``targets`` of the wrong shape or with NaN or infinite entries.
    """
    owner = "exact_ensemble"
    layers = network.dropout_layers
    if not layers:
        raise ValueError(f"The 'network' parameter of {owner} must have a Dropout layer; this "
                         "one has none, so its only sub-network is the full network.")
    widths = network.dropout_widths
    varying = [lay.keep_prob < 1 for lay in layers]
    n_units = sum(w for w, v in zip(widths, varying) if v)
    max_subnetworks = _check_enumerable(n_units, max_subnetworks, owner, "'network' parameter")
    X = check_array(X, "X", ndim=2, owner=owner)
    if X.shape[1] != network.n_inputs or X.shape[0] < 1:
        raise ValueError(f"The 'X' parameter of {owner} must have shape (n_test, "
                         f"{network.n_inputs}) with n_test >= 1; got shape {X.shape}.")
    n_test, n_out = X.shape[0], network.n_outputs
    classify = isinstance(network.head, SoftmaxCrossEntropy)
    target = None if targets is None else _check_targets(targets, n_test, n_out, classify, owner)
    if batch_size is None:
        batch_size = max(1, _BATCH_ENTRIES // (n_test * max(n_out, 1)))
    batch_size = check_int(batch_size, "batch_size", low=1, owner=owner)
    n_sub = 2**n_units
    xp = network.xp
    X_dev = xp.asarray(X, dtype=network.dtype)
    logits_net = copy.copy(network)  # shares the layers; its head returns the raw output
    logits_net.head = MSELoss()
    # log pi per unit, kept and dropped, in the order of the enumerated bits
    log_keep = np.concatenate([np.full(w, math.log(lay.keep_prob))
                               for lay, w, v in zip(layers, widths, varying) if v])
    log_drop = np.concatenate([np.full(w, math.log1p(-lay.keep_prob))
                               for lay, w, v in zip(layers, widths, varying) if v])
    sums = dict(q=0.0, q2=0.0, z=0.0, weight=0.0, bias2=0.0, sq=0.0)
    for start in range(0, n_sub, batch_size):
        stop = min(n_sub, start + batch_size)
        bits = _bits(start, stop, n_units)  # (c, n_units)
        weight = np.exp(np.where(bits, log_keep, log_drop).sum(axis=1))  # (c,) pi(m)
        masks, offset = [], 0
        for w, v in zip(widths, varying):
            if v:
                masks.append(xp.asarray(bits[:, offset:offset + w], dtype=network.dtype))
                offset += w
            else:
                masks.append(xp.ones((stop - start, w), dtype=network.dtype))
        z = to_numpy(logits_net.predict_thinned(X_dev, masks, chunk_size=stop - start).members)
        if classify:
            sums["z"] = sums["z"] + np.tensordot(weight, z, axes=1)  # (n_test, n_out)
            top = z.max(axis=-1)  # (c, n_test)
            q = np.exp(z - top[..., None])  # (c, n_test, n_out), softmax numerators
            total = q.sum(axis=-1)  # (c, n_test)
            q /= total[..., None]
            sums["lse"] = sums.get("lse", 0.0) + weight @ (top + np.log(total))  # (n_test,)
        else:
            q = z
        sums["q"] = sums["q"] + np.tensordot(weight, q, axes=1)  # (n_test, n_out)
        sums["q2"] = sums["q2"] + np.tensordot(weight, q * q, axes=1)
        sums["weight"] += float(weight.sum())
        if target is not None:
            member_bias = q.reshape(len(weight), -1).mean(axis=1) - target.mean()  # (c,) b_m
            sums["bias2"] += float(weight @ member_bias**2)
        del z, q
    full = to_numpy(network.predict(X_dev))
    mean = sums["q"]
    nwgm = mass = None
    if classify:
        mean_z = sums["z"]  # (n_test, n_out)
        nwgm = np.exp(mean_z - mean_z.max(axis=1, keepdims=True))
        nwgm /= nwgm.sum(axis=1, keepdims=True)
        mass = np.exp(mean_z - sums["lse"][:, None]).sum(axis=1)  # (n_test,)
    result = dict(n_units=n_units, n_subnetworks=n_sub, arithmetic_mean=mean,
                  second_moment=sums["q2"], nwgm=nwgm, geometric_mass=mass, full=full,
                  total_probability=sums["weight"])
    if target is not None:
        # <e^2> per mask averaged with pi: sum_m pi <(q_m - y)^2> = <E[q^2] - 2 y E[q] + y^2>
        S = float(np.mean(sums["q2"] - 2 * target * mean + target**2))
        cross = float(np.mean((mean - target) ** 2))
        b = float(np.mean(mean - target))
        result.update(mse_mean=cross, mse_full=float(np.mean((full - target) ** 2)),
                      mse_nwgm=None if nwgm is None else float(np.mean((nwgm - target) ** 2)),
                      mean_square=S, cross_moment=cross, mean_error=b,
                      member_variance=S - sums["bias2"], covariance=cross - b * b)
    return ExactEnsemble(**result)


def _check_targets(targets, n_test, n_out, classify, owner):
    targets = np.asarray(targets)
    if classify and targets.ndim == 1 and targets.dtype.kind in "iu":
        if targets.shape != (n_test,) or targets.min() < 0 or targets.max() >= n_out:
            raise ValueError(f"The 'targets' parameter of {owner} must hold {n_test} labels in "
                             f"[0, {n_out - 1}]; got shape {targets.shape} with values in "
                             f"[{targets.min()}, {targets.max()}].")
        return np.eye(n_out)[targets]
    targets = check_array(targets, "targets", owner=owner)
    if targets.ndim == 1 and n_out == 1:
        targets = targets[:, None]
    if targets.shape != (n_test, n_out):
        raise ValueError(f"The 'targets' parameter of {owner} must have shape ({n_test}, "
                         f"{n_out}){' or (' + str(n_test) + ',)' if n_out == 1 else ''}; got "
                         f"shape {targets.shape}.")
    return targets


@dataclasses.dataclass(frozen=True)
class LogisticEnsemble:
    """Exact averages over every input mask of one logistic unit, per example.

    ``S_m = b + sum_i m_i w_i x_i`` (masks without rescaling, as in Baldi &
    Sadowski, 2014; rescaling by ``1/p`` multiplies ``w`` by a constant) and
    ``O_m = sigmoid(S_m)``.

    Attributes
    ----------
    mean : ndarray of shape (n,)
        ``E = sum_m pi(m) O_m``, the arithmetic mean.
    variance : ndarray of shape (n,)
        ``V = sum_m pi(m) (O_m - E)^2``.
    nwgm : ndarray of shape (n,)
        ``G / (G + G')`` with ``G = prod_m O_m^pi(m)`` and ``G' = prod_m (1 -
        O_m)^pi(m)``, computed from ``log O_m`` and ``log(1 - O_m)`` directly.
    sigmoid_mean_input : ndarray of shape (n,)
        ``sigmoid(E[S])`` with ``E[S] = b + sum_i p w_i x_i``: equal to ``nwgm``
        exactly (``log G - log G' = E[S]``).
    second_order : ndarray of shape (n,)
        Baldi & Sadowski's approximation of the gap ``E - NWGM``,
        ``V (1 - 2E) / (1 - 2V)``.
    """

    mean: np.ndarray
    variance: np.ndarray
    nwgm: np.ndarray
    sigmoid_mean_input: np.ndarray
    second_order: np.ndarray


def logistic_unit_ensemble(w, X, keep_prob, *, bias=0.0,
                           max_subnetworks=MAX_SUBNETWORKS) -> LogisticEnsemble:
    """Enumerate all ``2**d`` input masks of a logistic unit with weights ``w``.

    Parameters
    ----------
    w : array of shape (d,)
    X : array of shape (n, d)
    keep_prob : float in (0, 1)
    bias : float
    max_subnetworks : int
        At most this many masks (``2**d``) are enumerated; more is refused.

    Returns
    -------
    LogisticEnsemble
    """
    owner = "logistic_unit_ensemble"
    p = check_real(keep_prob, "keep_prob", low=0.0, high=1.0, low_inclusive=False,
                   high_inclusive=False, owner=owner)
    w = check_array(w, "w", ndim=1, owner=owner)
    X = check_array(X, "X", ndim=2, owner=owner)
    if X.shape[1] != w.shape[0]:
        raise ValueError(f"The 'X' parameter of {owner} must have {w.shape[0]} columns (the "
                         f"length of w); got shape {X.shape}.")
    bias = check_real(bias, "bias", owner=owner)
    d = w.shape[0]
    _check_enumerable(d, max_subnetworks, owner, "unit")
    contributions = X * w  # (n, d)
    sums = np.zeros((5, X.shape[0]))  # E[O], E[O^2], E[log O], E[log(1 - O)], sum pi
    batch = max(1, _BATCH_ENTRIES // max(1, X.shape[0]))
    for start in range(0, 2**d, batch):
        bits = _bits(start, min(2**d, start + batch), d)  # (c, d)
        weight = np.where(bits, p, 1 - p).prod(axis=1)  # (c,)
        S = bias + bits.astype(float) @ contributions.T  # (c, n)
        O = 0.5 * (1 + np.tanh(0.5 * S))
        log_O, log_1mO = -np.logaddexp(0, -S), -np.logaddexp(0, S)  # stable logs
        sums += np.stack([weight @ O, weight @ O**2, weight @ log_O, weight @ log_1mO,
                          np.full(X.shape[0], weight.sum())])
    E = sums[0] / sums[4]
    V = sums[1] / sums[4] - E**2
    log_G, log_G1 = sums[2] / sums[4], sums[3] / sums[4]
    nwgm = 1 / (1 + np.exp(log_G1 - log_G))
    mean_input = bias + p * (X @ w)
    return LogisticEnsemble(mean=E, variance=V, nwgm=nwgm,
                            sigmoid_mean_input=0.5 * (1 + np.tanh(0.5 * mean_input)),
                            second_order=V * (1 - 2 * E) / (1 - 2 * V))
