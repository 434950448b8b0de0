"""Many networks at once: ``k`` members of one architecture with stacked parameters.

A :class:`StackedNetwork` holds ``k`` networks of one architecture, each weight
matrix stacked on a leading member axis, ``(k, n_in, n_out)``, and trains them
together (:func:`train_stacked`): one batched matrix product per layer
(``numpy.matmul`` on ``(k, batch, n)`` arrays) and one element-wise pass over all
members, instead of ``k`` separate passes that each pay Python's and NumPy's
per-call overhead.

Every member keeps what it would have alone: its initial weights, its batch order
and training rows (a bootstrap sample, for bagging), its dropout masks (or one
fixed mask: a fixed sub-network), its batch-norm statistics, its optimizer state,
its L1/L2/max-norm settings and its early-stopping state. A member that stops
keeps its best weights and leaves the stack, which goes on with the others.

Member ``i`` of a stack built and trained from the root seed ``rng`` *is*, number
for number, the network ``build_mlp(..., rng=child_seed(rng, i, 0))`` trained alone
with ``train(..., rng=child_seed(rng, i, 1))`` (so the member of an estimator with
``random_state=child_seed(rng, i)``), whatever ``k`` and however the members are
split into stacks: on the NumPy backend the results are bit-identical, because
each member's products are the same BLAS calls on the same shapes, and every other
operation is the same element-wise operation in the same order (reductions run
over the same axis, in the same order). ``tests/test_nn_stacked.py`` checks this
with exact equality.
"""

from __future__ import annotations

import copy
import math
import numbers

import numpy as np

from .._random import as_seed_sequence, child_seed, make_generator, numpy_generator
from .._validation import check_bool, check_choice, check_int, check_mask, check_real
from .layers import (
    _RAW_64_BIT,
    BatchNorm,
    Dense,
    Dropout,
    ReLU,
    Sigmoid,
    Tanh,
    _keep_threshold,
    update_running_statistics,
)
from .losses import MSELoss
from .network import Network, ThinnedPredictions, build_mlp
from .training import (
    History,
    _check_batch_norm_batches,
    _check_config,
    _check_data,
    _check_finite,
    _check_targets,
    check_monitor,
)

__all__ = ["StackedNetwork", "build_stacked_mlp", "stacked_training_bytes", "train_stacked"]

#: Default working-memory budget of one stack, in bytes (see :func:`stacked_training_bytes`):
#: cache-sized, as stacks whose arrays leave the cache were measured slower
#: (``docs/benchmarks-nn.md``).
DEFAULT_MAX_BYTES = 2**23

#: Dense layers with at most this many weights transpose W for the input gradient.
_SMALL_LAYER = 2**14

#: Members drawing at least this many 64-bit mask words a step (128 KiB) compare them
#: where they were drawn; smaller ones are gathered into one array and compared at
#: once, which was measured faster for them (``docs/benchmarks-nn.md``).
_DIRECT_MASK_WORDS = 2**14


# ---------------------------------------------------------------------------------
# Stacked layers: the same arithmetic as ensim.nn.layers, with a leading member axis
# ---------------------------------------------------------------------------------

class _StackedDense:
    """``y = x W_i + b_i`` for each member ``i``: ``W`` ``(k, n_in, n_out)``, ``b`` ``(k, n_out)``."""

    def __init__(self, layer, W, b, dW, db):
        self.n_in, self.n_out = layer.n_in, layer.n_out
        self.W, self.b, self.dW, self.db = W, b, dW, db
        self.needs_input_grad = layer.needs_input_grad
        self._x = None

    def forward(self, x, training, members):
        W, b = self.W[members], self.b[members]
        out = np.matmul(x, W) if isinstance(x, np.ndarray) else _xp(W).matmul(x, W)
        out += b[:, None, :]  # (k, batch, n_out)
        self._x = x if training else None
        return out

    def backward(self, grad_out):
        x = self._x  # (k, batch, n_in)
        xp = _xp(x)
        # x^T stays a transposed operand: a contiguous copy was measured faster but
        # changes the last bit of some sums (OpenBLAS then takes another kernel).
        xp.matmul(x.transpose(0, 2, 1), grad_out, out=self.dW)  # (k, n_in, n_out)
        grad_out.sum(axis=1, out=self.db)  # (k, n_out)
        if not self.needs_input_grad:
            return None
        if self.n_out == 1:
            # An outer product: each entry is one product, whichever way it is computed,
            # and broadcasting avoids matmul's slow path for an inner dimension of 1.
            return grad_out * self.W.transpose(0, 2, 1)  # (k, batch, n_in)
        W_t = self.W.transpose(0, 2, 1)  # (k, n_out, n_in)
        if self.n_in * self.n_out <= _SMALL_LAYER:
            # Made contiguous: the same products, measured 1.4x faster than a transposed
            # operand for a 64 x 64 layer, and slower for a 512 x 512 one (the equality
            # tests check that the bits agree).
            W_t = xp.ascontiguousarray(W_t)
        return xp.matmul(grad_out, W_t)  # (k, batch, n_in)


class _StackedReLU:
    # In place where the network owns the array (set by StackedNetwork): its input when
    # it comes fresh from a Dense or BatchNorm layer, which keep other arrays for their
    # backward; its incoming gradient when a layer above made it. The same values as
    # new arrays, with less memory traffic.
    in_place = grad_in_place = False

    def forward(self, x, training, members):
        xp = _xp(x)
        y = xp.maximum(x, 0, out=x) if self.in_place else xp.maximum(x, 0)
        self._active = y > 0 if training else None
        return y

    def backward(self, grad_out):
        if self.grad_in_place:
            grad_out *= self._active
            return grad_out
        return grad_out * self._active


class _StackedTanh:
    def forward(self, x, training, members):
        y = _xp(x).tanh(x)
        self._y = y if training else None
        return y

    def backward(self, grad_out):
        y = self._y
        return grad_out * (1 - y * y)


class _StackedSigmoid:
    def forward(self, x, training, members):
        y = 0.5 * (1 + _xp(x).tanh(0.5 * x))
        self._y = y if training else None
        return y

    def backward(self, grad_out):
        y = self._y
        return grad_out * y * (1 - y)


class _StackedDropout:
    """Inverted dropout with a mask per member: ``(k, batch, n)`` drawn, or ``(k, n)`` fixed.

    :class:`Dropout` computes ``(x * M) * (1 / p)``; with ``M`` 0 or 1 that is exactly
    ``x * S`` for the scale ``S = M / p`` (0 or ``1 / p``, rounded once), so one pass
    over ``x`` does both, forward and backward, with the same bits.
    """

    # In place as _StackedReLU: the input when a ReLU made it (a ReLU keeps only its
    # activity mask), the incoming gradient when a layer above made it.
    in_place = grad_in_place = False

    def __init__(self, layer):
        self.keep_prob = layer.keep_prob
        self.scale = None

    def forward(self, x, training, members, mask=None):
        if mask is None:
            self.scale = None
            return x
        if mask.ndim == 2:
            mask = mask[:, None, :]  # (k, 1, n): one sub-network per member
        xp = _xp(x)
        self.scale = xp.multiply(mask, x.dtype.type(1.0 / self.keep_prob), dtype=x.dtype)
        if self.in_place:
            x *= self.scale
            return x
        return x * self.scale  # (k, batch, n)

    def backward(self, grad_out):
        if self.scale is None:
            return grad_out
        if self.grad_in_place:
            grad_out *= self.scale
            return grad_out
        return grad_out * self.scale


class _StackedBatchNorm:
    """Batch normalization with each member's own ``gamma``, ``beta`` and running statistics."""

    def __init__(self, layer, gamma, beta, dgamma, dbeta, running_mean, running_var):
        self.n_features = layer.n_features
        self.convention, self.momentum, self.eps = layer.convention, layer.momentum, layer.eps
        self.unbiased_running_var = layer.unbiased_running_var
        self.gamma, self.beta, self.dgamma, self.dbeta = gamma, beta, dgamma, dbeta
        self.running_mean, self.running_var = running_mean, running_var  # (k, n) each
        self._x_hat = self._inv_std = None

    def forward(self, x, training, members):
        gamma, beta = self.gamma[members], self.beta[members]
        if not training:
            xp = _xp(x)
            inv_std = 1 / xp.sqrt(self.running_var[members] + self.eps)  # (k, n)
            self._x_hat = None
            return ((x - self.running_mean[members][:, None, :])
                    * (gamma * inv_std)[:, None, :] + beta[:, None, :])
        m = x.shape[1]
        mu = x.sum(axis=1)  # (k, n)
        mu *= 1.0 / m
        x_hat = x - mu[:, None, :]  # (k, batch, n), centred for now
        var = (x_hat * x_hat).sum(axis=1)  # (k, n)
        var *= 1.0 / m  # biased
        inv_std = (var + self.eps) ** -0.5  # (k, n)
        x_hat *= inv_std[:, None, :]
        self._x_hat, self._inv_std = x_hat, inv_std
        update_running_statistics(self, mu, var, m)
        y = x_hat * gamma[:, None, :]
        y += beta[:, None, :]
        return y

    def backward(self, grad_out):
        x_hat, inv_std = self._x_hat, self._inv_std
        self.dbeta[...] = grad_out.sum(axis=1)  # (k, n)
        self.dgamma[...] = (grad_out * x_hat).sum(axis=1)  # (k, n)
        m = grad_out.shape[1]
        grad_in = x_hat * (self.dgamma * (-1.0 / m))[:, None, :]  # (k, batch, n)
        grad_in += grad_out
        grad_in -= (self.dbeta * (1.0 / m))[:, None, :]
        grad_in *= (self.gamma * inv_std)[:, None, :]
        return grad_in


_STACKED_ACTIVATIONS = {ReLU: _StackedReLU, Tanh: _StackedTanh, Sigmoid: _StackedSigmoid}


def _layer_key(layer):
    """What must agree between the members' layers for them to be stacked."""
    if isinstance(layer, Dense):
        return ("Dense", layer.n_in, layer.n_out)
    if isinstance(layer, BatchNorm):
        return ("BatchNorm", layer.n_features, layer.convention, layer.momentum, layer.eps)
    if isinstance(layer, Dropout):
        return ("Dropout", layer.keep_prob)
    if type(layer) in _STACKED_ACTIVATIONS:
        return (type(layer).__name__,)
    raise TypeError(f"StackedNetwork cannot stack a {type(layer).__name__} layer; it stacks "
                    "Dense, BatchNorm, Dropout, ReLU, Tanh and Sigmoid layers.")


# ---------------------------------------------------------------------------------
# The stacked network
# ---------------------------------------------------------------------------------

class StackedNetwork:
    """``k`` networks of one architecture whose parameters are stacked on a member axis.

    Parameters
    ----------
    networks : sequence of Network
        The members (at least one), all of one architecture (layer types, widths,
        keep probabilities, batch-norm settings, head, dtype and namespace). Their
        parameters and running statistics are copied.
    members : sequence of int, optional
        The members' indices in the ensemble they belong to (default ``0, ..., k-1``),
        which address their random streams in :func:`train_stacked` and
        :meth:`sample_masks`. A stack holding members 2, 3 and 4 of an ensemble gives
        them the streams they would have in any other stack.
    masks : list of arrays, optional
        Fixed masks: one ``(k, n_l)`` 0/1 array per dropout layer ``l`` (as
        :meth:`Network.sample_masks` returns for ``m = k``). Member ``i`` is then
        the fixed sub-network ``masks[l][i]``, in training (no mask is drawn) and at
        inference.

    Attributes
    ----------
    k : int
        Number of members.
    members : tuple of int
    masks : list of bool arrays or None
        The fixed masks, ``(k, n_l)`` each.
    head, n_inputs, n_outputs, dtype, xp, dropout_layers, dropout_widths
        As those of the members.

    Notes
    -----
    All parameters live in one ``(k, n_parameters)`` buffer, member ``i``'s row laid
    out as :meth:`Network.flat_parameters` lays out a single network, so an
    optimizer steps every member with a few whole-buffer operations.
    """

    def __init__(self, networks, *, members=None, masks=None):
        networks = list(networks)
        if not networks:
            raise ValueError("The 'networks' parameter of StackedNetwork must hold at least one "
                             "Network (k >= 1); got 0.")
        for i, net in enumerate(networks):
            if not isinstance(net, Network):
                raise TypeError(f"The 'networks' parameter of StackedNetwork must hold Network "
                                f"objects; item {i} is a {type(net).__name__}.")
        template = networks[0]
        key = _architecture(template)
        for i, net in enumerate(networks[1:], start=1):
            if _architecture(net) != key:
                raise ValueError(f"The 'networks' parameter of StackedNetwork must hold networks "
                                 f"of one architecture; network {i} differs from network 0:\n"
                                 f"{net!r}\nagainst\n{template!r}")
        xp = template.xp
        flat = xp.stack([net._flat[0] for net in networks])  # (k, n_parameters)
        running = [(xp.stack([net.layers[j].running_mean for net in networks]),
                    xp.stack([net.layers[j].running_var for net in networks]))
                   for j, layer in enumerate(template.layers) if isinstance(layer, BatchNorm)]
        self._setup(template, flat, running, members=members, masks=masks, k=len(networks))

    # ---------------------------------------------------------------- building
    @classmethod
    def _from_arrays(cls, template, flat, running, members, masks, grads=None):
        stack = cls.__new__(cls)
        stack._setup(template, flat, running, members=members, masks=masks, k=flat.shape[0],
                     checked=True, grads=grads)
        return stack

    def _setup(self, template, flat, running, *, members, masks, k, checked=False,
               grads=None):
        self.k = k
        self.members = _check_members(members, k, "StackedNetwork")
        # The template's arrays are never changed (member() copies it), so subsets share it.
        self._template = template if checked else copy.deepcopy(template)
        self.head = template.head
        self.n_inputs, self.n_outputs = template.n_inputs, template.n_outputs
        self.dtype = template.dtype
        self.dropout_widths = list(template.dropout_widths)
        self._first_trainable = template._first_trainable
        self._flat_params = flat
        self._flat_grads = self.xp.zeros_like(flat) if grads is None else grads
        self.layers, offset, bn = [], 0, iter(running)
        for layer in template.layers:
            views = []
            for name, value in layer.params.items():
                end = offset + value.size
                views.append((flat[:, offset:end].reshape(k, *value.shape),
                              self._flat_grads[:, offset:end].reshape(k, *value.shape)))
                offset = end
            if isinstance(layer, Dense):
                (W, dW), (b, db) = views
                self.layers.append(_StackedDense(layer, W, b, dW, db))
            elif isinstance(layer, BatchNorm):
                (gamma, dgamma), (beta, dbeta) = views
                self.layers.append(_StackedBatchNorm(layer, gamma, beta, dgamma, dbeta, *next(bn)))
            elif isinstance(layer, Dropout):
                self.layers.append(_StackedDropout(layer))
            else:
                self.layers.append(_STACKED_ACTIVATIONS[type(layer)]())
        self.dropout_layers = [layer for layer in self.layers if isinstance(layer, _StackedDropout)]
        for below, layer in zip(self.layers, self.layers[1:]):
            if isinstance(layer, _StackedReLU):
                layer.in_place = isinstance(below, (_StackedDense, _StackedBatchNorm))
            elif isinstance(layer, _StackedDropout):
                layer.in_place = isinstance(below, _StackedReLU)
        for layer in self.layers[:-1]:  # the last one's gradient is the caller's
            if isinstance(layer, (_StackedReLU, _StackedDropout)):
                layer.grad_in_place = True
        self.masks = masks if checked else self._check_masks(masks, "masks", "StackedNetwork")

    @property
    def xp(self):
        """The array namespace of the parameters."""
        return _xp(self._flat_params)

    def __getstate__(self):
        # Layer arrays are views into the flat buffer: pickle the buffer, rebuild the views.
        return {"template": self._template, "flat": self._flat_params,
                "running": self._running(), "members": self.members, "masks": self.masks}

    def __setstate__(self, state):
        self._setup(state["template"], state["flat"], state["running"], members=state["members"],
                    masks=state["masks"], k=state["flat"].shape[0], checked=True)

    def _check_masks(self, masks, name, owner, *, n_members=None):
        """Fixed masks: one ``(k, n_l)`` 0/1 array per dropout layer, returned as booleans."""
        if masks is None:
            return None
        k = self.k if n_members is None else n_members
        xp = self.xp
        if len(masks) != len(self.dropout_layers):
            raise ValueError(f"The {name!r} parameter of {owner} must hold one array per dropout "
                             f"layer ({len(self.dropout_layers)}); got {len(masks)}.")
        checked = []
        for j, (mask, width) in enumerate(zip(masks, self.dropout_widths)):
            mask = xp.asarray(mask)
            if mask.shape != (k, width):
                raise ValueError(f"The {name!r} parameter of {owner} must hold an array of shape "
                                 f"(k, n) = ({k}, {width}) for dropout layer {j}; got "
                                 f"{tuple(mask.shape)}.")
            if mask.dtype != bool:
                if mask.dtype.kind not in "iuf":
                    raise TypeError(f"The {name!r} parameter of {owner} must hold bool or real "
                                    f"0/1 arrays; dropout layer {j}'s has dtype {mask.dtype}.")
                bad = (mask != 0) & (mask != 1)
                if bool(xp.any(bad)):
                    value = mask[bad].ravel()[0].item()
                    raise ValueError(f"The {name!r} parameter of {owner} must hold only 0 and 1 "
                                     f"(or booleans); dropout layer {j}'s mask holds {value!r}.")
            checked.append(mask != 0)
        return checked

    def _subset(self, positions):
        """A new stack of copies of the members at ``positions`` (a list of ints)."""
        index = self.xp.asarray(positions)
        running = [(rm[index], rv[index]) for rm, rv in self._running()]
        masks = None if self.masks is None else [m[index] for m in self.masks]
        return StackedNetwork._from_arrays(self._template, self._flat_params[index], running,
                                           [self.members[p] for p in positions], masks)

    def _rows(self, start, stop):
        """A stack of members ``start`` to ``stop - 1`` whose arrays are views of this one's:
        training it trains them in place."""
        rows = slice(start, stop)
        running = [(rm[rows], rv[rows]) for rm, rv in self._running()]
        masks = None if self.masks is None else [m[rows] for m in self.masks]
        return StackedNetwork._from_arrays(self._template, self._flat_params[rows], running,
                                           list(self.members[rows]), masks,
                                           grads=self._flat_grads[rows])

    def _running(self):
        return [(layer.running_mean, layer.running_var) for layer in self.layers
                if isinstance(layer, _StackedBatchNorm)]

    # ------------------------------------------------------------------ state
    def flat_parameters(self):
        """One ``(params, grads)`` pair of ``(k, n_parameters)`` arrays: every member's parameters."""
        return [(self._flat_params, self._flat_grads)]

    def _member_state(self, i):
        """Copies of member ``i``'s parameter row and running statistics."""
        return (self._flat_params[i].copy(), [(rm[i].copy(), rv[i].copy())
                                              for rm, rv in self._running()])

    def _set_member_state(self, i, state):
        flat, running = state
        self._flat_params[i] = flat
        for (rm, rv), (m, v) in zip(self._running(), running):
            rm[i], rv[i] = m, v

    def member(self, i):
        """Member ``i`` (a position, ``0 <= i < k``) as a standalone :class:`Network` (a copy)."""
        i = check_int(i, "i", low=0, high=self.k - 1, owner="StackedNetwork.member")
        net = copy.deepcopy(self._template)
        flat, running = self._member_state(i)
        net._flat[0][...] = flat
        for layer, (m, v) in zip([la for la in net.layers if isinstance(la, BatchNorm)], running):
            layer.running_mean[...] = m
            layer.running_var[...] = v
        return net

    def member_masks(self, i):
        """Member ``i``'s fixed masks, one ``(n_l,)`` array per dropout layer, or None."""
        return None if self.masks is None else [m[i] for m in self.masks]

    # ----------------------------------------------------------------- passes
    def forward(self, X, *, training=False, masks=None, members=slice(None)):
        """Raw outputs ``z`` of the members, ``(k, batch, n_outputs)``.

        ``X`` is ``(batch, n_inputs)``, shared by all members, or ``(k, batch,
        n_inputs)``, one batch per member. ``masks`` (training) holds one ``(k,
        batch, n_l)`` array per dropout layer; a stack with fixed masks uses its own.
        ``members`` (a slice) runs a subset of the members, at inference.
        """
        if not isinstance(members, slice):
            raise TypeError("The 'members' parameter of StackedNetwork.forward must be a slice "
                            f"of member positions; got {members!r}.")
        if masks is None and self.masks is not None:
            masks = [m[members] for m in self.masks]
        h, j = X, 0
        for layer in self.layers:
            if isinstance(layer, _StackedDropout):
                h = layer.forward(h, training, members, None if masks is None else masks[j])
                j += 1
            else:
                h = layer.forward(h, training, members)
        if h.ndim == 2:  # no Dense layer reached a member axis: cannot happen (one is required)
            raise AssertionError("a stacked forward pass must end with a member axis")
        return h

    def backward(self, grad_z):
        g = grad_z
        for layer in reversed(self.layers[self._first_trainable:]):
            g = layer.backward(g)

    def penalty(self, l1, l2):
        """Per member ``l1_i * sum|W| + l2_i * sum W**2`` over the weight matrices, ``(k,)``."""
        total = np.zeros(self.k)
        for layer in self.layers:
            if isinstance(layer, _StackedDense):
                W = layer.W
                if l1 is not None:
                    total += l1 * _to_float64(_xp(W).abs(W).sum(axis=(1, 2)))
                if l2 is not None:
                    total += l2 * _to_float64((W * W).sum(axis=(1, 2)))
        return total

    def loss_and_grad(self, X, y, *, l1=None, l2=None, masks=None):
        """Training-mode pass: return per-member losses ``(k,)`` and ``z``; fill the gradients.

        ``l1``, ``l2``: ``(k,)`` float64 arrays or None (no penalty for any member).
        """
        z = self.forward(X, training=True, masks=masks)
        loss, grad_z = _head_loss_and_grad(self.head, z, y)
        self.backward(grad_z)
        if l1 is not None or l2 is not None:
            dtype = self.dtype
            for layer in self.layers:
                if isinstance(layer, _StackedDense):
                    W, dW = layer.W, layer.dW
                    if l1 is not None:
                        dW += l1.astype(dtype)[:, None, None] * _xp(W).sign(W)
                    if l2 is not None:
                        dW += (2 * l2).astype(dtype)[:, None, None] * W
            loss += self.penalty(l1, l2)
        return loss, z

    def apply_max_norm(self, max_norm):
        """Rescale each member's unit weight columns to norm at most ``max_norm[i]`` (inf: none)."""
        bound = max_norm.astype(self.dtype)[:, None]  # (k, 1)
        for layer in self.layers:
            if isinstance(layer, _StackedDense):
                W = layer.W
                xp = _xp(W)
                norms = xp.sqrt((W * W).sum(axis=1))  # (k, n_out)
                W *= xp.minimum(1, bound / xp.maximum(norms, 1e-30))[:, None, :]

    def predict(self, X, *, max_bytes=None):
        """The members' predictions at inference, ``(k, n, n_outputs)``.

        Members are evaluated in chunks whose working memory (four ``(n, max_width)``
        activation arrays per member) fits in ``max_bytes`` (default 2**23 bytes, at
        least one member per chunk).
        """
        X = self._check_input(X, "StackedNetwork.predict")
        n = X.shape[0]
        per_member = 4 * n * self._max_width() * np.dtype(self.dtype).itemsize
        chunk = _chunk_size(per_member, max_bytes, "StackedNetwork.predict")
        out = None
        for start in range(0, self.k, chunk):
            members = slice(start, min(start + chunk, self.k))
            part = self.head.predict(self.forward(X, members=members))  # (c, n, n_outputs)
            if out is None:
                out = self.xp.empty((self.k, n, self.n_outputs), dtype=part.dtype)
            out[members] = part
        return out

    def _max_width(self):
        return max([self.n_inputs] + [getattr(la, "n_out", 0) for la in self.layers])

    def _check_input(self, X, owner):
        X = self.xp.asarray(X, dtype=self.dtype)
        if X.ndim != 2 or X.shape[1] != self.n_inputs:
            raise ValueError(f"The 'X' parameter of {owner} must have shape (n, {self.n_inputs}); "
                             f"got {tuple(X.shape)}.")
        return X

    # ------------------------------------------------------ thinned networks
    def sample_masks(self, m, rng=None):
        """Draw ``m`` thinned sub-networks of every member.

        Member ``i`` (index ``members[i]``) draws its masks as
        ``Network.sample_masks(m, child_seed(rng, members[i]))`` would. Returns one
        ``(k, m, n_l)`` array per dropout layer.
        """
        self._check_thinnable("StackedNetwork.sample_masks")
        m = check_int(m, "m", low=1, owner="StackedNetwork.sample_masks")
        seed = as_seed_sequence(rng)
        per_member = [self._template.sample_masks(m, child_seed(seed, index))
                      for index in self.members]
        return [self.xp.stack([masks[j] for masks in per_member])
                for j in range(len(self.dropout_layers))]

    def predict_thinned(self, X, masks, *, chunk_size=None):
        """Thinned sub-networks of every member, as :meth:`Network.predict_thinned`.

        ``masks`` holds one ``(k, m, n_l)`` array per dropout layer (as
        :meth:`sample_masks` returns). Returns :class:`ThinnedPredictions` with
        ``members`` of shape ``(k, m, n, n_outputs)`` and ``full`` of shape ``(k, n,
        n_outputs)``; each member is evaluated as its own network.
        """
        owner = "StackedNetwork.predict_thinned"
        self._check_thinnable(owner)
        X = self._check_input(X, owner)
        if len(masks) != len(self.dropout_layers):
            raise ValueError(f"The 'masks' parameter of {owner} must hold one array per dropout "
                             f"layer ({len(self.dropout_layers)}); got {len(masks)}.")
        m = None
        for j, (mask, width) in enumerate(zip(masks, self.dropout_widths)):
            # 0/1 entries and the shape (k, m, n_j), checked here so that errors name this
            # method (each member's own call then checks its slice again).
            text = f"(k, m, n) = ({self.k}, {'m' if m is None else m}, {width})"
            mask = check_mask(mask, f"masks[{j}]", shape=(self.k, m, width), shape_text=text,
                              owner=owner, xp=self.xp, dtype=bool)
            m = mask.shape[1]
        results = [self.member(i).predict_thinned(X, [mask[i] for mask in masks],
                                                  chunk_size=chunk_size)
                   for i in range(self.k)]
        return ThinnedPredictions(members=self.xp.stack([r.members for r in results]),
                                  full=self.xp.stack([r.full for r in results]))

    def _check_thinnable(self, owner):
        if not self.dropout_layers:
            raise ValueError(f"{owner} needs a network with a Dropout layer; this one has none, "
                             "so its only sub-network is the full network (predict).")
        if self.masks is not None:
            raise ValueError(f"{owner} needs members trained with drawn dropout masks; these "
                             "members are fixed sub-networks (masks were given), whose only "
                             "network is their own (predict).")

    def __repr__(self):
        return f"StackedNetwork(k={self.k}, member=\n{self._template!r})"


def _architecture(net):
    return (type(net.head), net.xp, np.dtype(net.dtype),
            tuple(_layer_key(layer) for layer in net.layers))


def _check_members(members, k, owner):
    if members is None:
        return tuple(range(k))
    members = tuple(members)
    if len(members) != k:
        raise ValueError(f"The 'members' parameter of {owner} must hold one index per member "
                         f"(k = {k}); got {len(members)}.")
    checked = tuple(check_int(i, "members", low=0, owner=owner) for i in members)
    if len(set(checked)) != k:
        raise ValueError(f"The 'members' parameter of {owner} must hold distinct indices; "
                         f"got {list(checked)}.")
    return checked


def build_stacked_mlp(n_inputs, hidden_layer_sizes, n_outputs, members, *, rng=None,
                      masks=None, **params):
    """A :class:`StackedNetwork` of :func:`build_mlp` members.

    Parameters
    ----------
    n_inputs, hidden_layer_sizes, n_outputs
        As :func:`build_mlp`.
    members : int or sequence of int
        ``k`` (members ``0, ..., k-1``) or the members' indices.
    rng : None, int or SeedSequence
        The root seed: member ``i``'s initial weights are those of
        ``build_mlp(..., rng=child_seed(rng, i, 0))``. Pass the same root to
        :func:`train_stacked`. (A Generator is turned into a root once, here.)
    masks : list of arrays, optional
        Fixed masks, as :class:`StackedNetwork`.
    **params
        The other parameters of :func:`build_mlp` (``task``, ``keep_prob``,
        ``batch_norm``, ``dtype``...).
    """
    owner = "build_stacked_mlp"
    if isinstance(members, numbers.Integral) and not isinstance(members, bool):
        members = range(check_int(members, "members", low=1, owner=owner))
    members = list(members)
    if not members:
        raise ValueError(f"The 'members' parameter of {owner} must be k >= 1 or a non-empty "
                         "sequence of member indices; got an empty sequence.")
    members = _check_members(members, len(members), owner)
    seed = as_seed_sequence(rng)
    networks = [build_mlp(n_inputs, hidden_layer_sizes, n_outputs, rng=child_seed(seed, i, 0),
                          **params) for i in members]
    return StackedNetwork(networks, members=members, masks=masks)


# ---------------------------------------------------------------------------------
# Heads with a member axis
# ---------------------------------------------------------------------------------

def _head_loss_and_grad(head, z, y):
    """Per-member mean loss ``(k,)`` and ``dL/dz`` ``(k, B, K)``, as the head does for one."""
    xp = _xp(z)
    if isinstance(head, MSELoss):
        residual = z - y  # (k, B, K)
        loss = _to_float64((residual * residual).mean(axis=(1, 2)))
        return loss, residual * (2.0 / (residual.shape[1] * residual.shape[2]))
    log_p = _log_softmax(z)  # (k, B, K)
    loss = _to_float64(-_pick(log_p, y).mean(axis=1))
    grad = xp.exp(log_p)
    k, B = y.shape
    grad[xp.arange(k)[:, None], xp.arange(B)[None, :], y] -= 1
    grad *= 1.0 / B
    return loss, grad


def _head_loss(head, z, y):
    if isinstance(head, MSELoss):
        residual = z - y
        return _to_float64((residual * residual).mean(axis=(1, 2)))
    return _to_float64(-_pick(_log_softmax(z), y).mean(axis=1))


def _head_metric(head, z, y):
    if isinstance(head, MSELoss):
        return _head_loss(head, z, y)
    return _to_float64((z.argmax(axis=-1) == y).mean(axis=1))


def _log_softmax(z):
    xp = _xp(z)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def _pick(log_p, y):
    """``log_p[i, b, y[i, b]]``, shape ``(k, B)``."""
    return _xp(log_p).take_along_axis(log_p, y[..., None], axis=-1)[..., 0]


def _to_float64(a):
    from .._backend import to_numpy
    return to_numpy(a).astype(np.float64)


# ---------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------

def stacked_training_bytes(stack, batch_size, *, optimizer="sgd", n_validation=0,
                           restore_best_weights=False, fixed_masks=False):
    """Working memory, in bytes, that one member adds to a stack in :func:`train_stacked`.

    Counted per member, in entries of the stack's dtype: the parameters, their
    gradients and the optimizer's state (``4 P`` for SGD with momentum, ``6 P`` for
    Adam, whose step makes temporaries; plus ``P`` for the best weights kept by
    early stopping); the training pass on a batch of ``B`` rows (its input, and for
    every hidden layer of width ``n`` about six ``B x n`` arrays alive at once:
    the layer's output, cached activations, dropout mask and scaled output, and
    the backward temporaries; twice the output width for the head); the raw random
    words of the dropout masks (``B n / 2`` 8-byte words per dropout layer); and a
    validation pass of ``n_validation`` rows (four ``n_validation x max_width``
    arrays, plus that member's copy of the validation rows). The shared training
    data, index arrays and per-member Python objects are not counted. This is an
    estimate: ``tests/test_nn_stacked.py`` checks that measured peaks stay below it.
    """
    owner = "stacked_training_bytes"
    if not isinstance(stack, StackedNetwork):
        raise TypeError(f"The 'stack' parameter of {owner} must be a StackedNetwork; got "
                        f"{type(stack).__name__}.")
    batch_size = check_int(batch_size, "batch_size", low=1, owner=owner)
    check_choice(optimizer, "optimizer", ("sgd", "adam"), owner=owner)
    n_validation = check_int(n_validation, "n_validation", low=0, owner=owner)
    check_bool(restore_best_weights, "restore_best_weights", owner=owner)
    check_bool(fixed_masks, "fixed_masks", owner=owner)
    P = stack._flat_params.shape[1]
    state = (6 if optimizer == "adam" else 4) * P + (P if restore_best_weights else 0)
    state += 4 * sum(layer.n_features for layer in stack.layers
                     if isinstance(layer, _StackedBatchNorm))
    widths = [getattr(layer, "n_out", 0) for layer in stack.layers
              if isinstance(layer, _StackedDense)]
    step = batch_size * (2 * stack.n_inputs + 6 * sum(widths[:-1]) + 2 * widths[-1])
    itemsize = np.dtype(stack.dtype).itemsize
    words = 0 if fixed_masks else 8 * sum(batch_size * n // 2 + 1 for n in stack.dropout_widths)
    validation = n_validation * (4 * stack._max_width() + stack.n_inputs)
    return (state + step + validation) * itemsize + words


def _chunk_size(per_member_bytes, max_bytes, owner):
    budget = DEFAULT_MAX_BYTES if max_bytes is None else check_int(
        max_bytes, "max_bytes", low=1, owner=owner)
    return max(1, budget // max(1, per_member_bytes))


def train_stacked(stack, X, y, config=None, *, rng=None, rows=None, validation_data=None,
                  validation_rows=None, l1=None, l2=None, max_norm=None, max_bytes=None,
                  stack_size=None, n_jobs=None):
    """Train every member of ``stack`` in place, as :func:`train` would train it alone.

    Parameters
    ----------
    stack : StackedNetwork
    X : array of shape (n, n_inputs)
        In the stack's namespace and dtype.
    y : array
        ``(n, n_outputs)`` regression targets or ``(n,)`` integer labels.
    config : TrainingConfig, optional
        Shared by all members, except for the settings given per member below.
        Its ``early_stopping`` is copied for each member.
    rng : None, int or SeedSequence
        The root seed (the one given to :func:`build_stacked_mlp`): member ``i``
        (index ``stack.members[j]``) trains with the streams of
        ``train(..., rng=child_seed(rng, i, 1))``: its own shuffling, dropout masks and
        augmentation.
    rows : integer array of shape (k, n_train), optional
        Member ``j`` trains on ``X[rows[j]], y[rows[j]]`` (for example a bootstrap
        sample); by default every member trains on all of ``X``.
    validation_data : tuple (X_val, y_val), optional
        Evaluated at inference after every epoch, as in :func:`train`.
    validation_rows : integer array of shape (k, n_val), optional
        Member ``j`` is validated on ``X_val[validation_rows[j]]``; by default every
        member on all of ``X_val``.
    l1, l2, max_norm : float or sequence of k values, optional
        Per-member penalties and max-norm bounds (``None`` entries of ``max_norm``:
        no bound), replacing those of ``config``.
    max_bytes : int, optional
        Working-memory budget of one stack (default 2**23 bytes): members are
        trained in as few stacks as fit it (:func:`stacked_training_bytes`), of
        even sizes, at least one member each.
    stack_size : int, optional
        The most members trained together, overriding ``max_bytes``.
    n_jobs : int, optional
        Stacks trained at the same time, in threads (default 1); NumPy releases the
        GIL in its products and element-wise loops. Run under
        ``threadpoolctl.threadpool_limits(1)`` to give each job one BLAS thread
        (measured faster than BLAS threads for the 784-512-512-10 network; see
        ``docs/nn.md``). There are then at least ``n_jobs`` stacks, so that every
        job has one. ``config.augment`` must then be safe to call from several
        threads. The results are the same for any ``n_jobs``.

    Returns
    -------
    list of History
        One per member, as :func:`train` returns.

    Raises
    ------
    ValueError, TypeError
        For a bad configuration, data, or per-member argument whose member count is
        not ``stack.k``, before any training step.
    """
    owner = "train_stacked"
    if not isinstance(stack, StackedNetwork):
        raise TypeError(f"The 'stack' parameter of {owner} must be a StackedNetwork; "
                        f"got {type(stack).__name__}.")
    config = _check_config(config, owner)
    k, xp = stack.k, stack.xp
    template = stack._template
    _check_data(stack, X, y, validation_data, owner)
    rows = _check_rows(rows, "rows", k, X.shape[0], owner)
    n = X.shape[0] if rows is None else rows.shape[1]
    has_batch_norm = any(isinstance(layer, _StackedBatchNorm) for layer in stack.layers)
    if has_batch_norm:
        _check_batch_norm_batches(config.batch_size, n, owner=owner,
                                  condition="the network has BatchNorm")
    _check_finite(xp, X, "X")
    _check_targets(template, y, "y")
    n_val = 0
    if validation_data is not None:
        X_val, y_val = validation_data
        _check_finite(xp, X_val, "validation_data")
        _check_targets(template, y_val, "validation_data")
        validation_rows = _check_rows(validation_rows, "validation_rows", k, X_val.shape[0], owner)
        n_val = X_val.shape[0] if validation_rows is None else validation_rows.shape[1]
    elif validation_rows is not None:
        raise ValueError(f"The 'validation_rows' parameter of {owner} needs validation_data; "
                         "got None.")
    stopper = config.early_stopping
    check_monitor(stopper, template.head, validation_data)
    l1 = _per_member(l1, config.l1, "l1", k, owner)
    l2 = _per_member(l2, config.l2, "l2", k, owner)
    max_norm = _per_member(max_norm, config.max_norm, "max_norm", k, owner, optional=True)
    if stack_size is None:
        per_member = stacked_training_bytes(
            stack, min(config.batch_size, n), optimizer=config.optimizer, n_validation=n_val,
            restore_best_weights=stopper is not None and stopper.restore_best_weights,
            fixed_masks=stack.masks is not None)
        stack_size = _chunk_size(per_member, max_bytes, owner)
    stack_size = check_int(stack_size, "stack_size", low=1, owner=owner)
    n_jobs = 1 if n_jobs is None else check_int(n_jobs, "n_jobs", low=1, owner=owner)
    # As few stacks as the budget allows (and one per job at least), of even sizes.
    n_chunks = max(-(-k // stack_size), min(n_jobs, k))
    bounds = [k * c // n_chunks for c in range(n_chunks + 1)]
    chunks = [list(range(a, b)) for a, b in zip(bounds[:-1], bounds[1:])]
    seed = as_seed_sequence(rng)

    def run(positions):
        return _train_chunk(stack, positions, X, y, config, seed, rows, validation_data,
                            validation_rows, l1, l2, max_norm, has_batch_norm, n)

    if n_jobs == 1 or len(chunks) == 1:
        results = [run(positions) for positions in chunks]
    else:
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            results = list(pool.map(run, chunks))
    histories = [None] * k
    for positions, chunk_histories in zip(chunks, results):
        for p, history in zip(positions, chunk_histories):
            histories[p] = history
    return histories


def _check_rows(rows, name, k, n_rows, owner):
    if rows is None:
        return None
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[0] != k or rows.shape[1] < 1:
        raise ValueError(f"The {name!r} parameter of {owner} must have shape (k, n) with "
                         f"k = {k} members and n >= 1; got {tuple(rows.shape)}.")
    if not np.issubdtype(rows.dtype, np.integer):
        raise TypeError(f"The {name!r} parameter of {owner} must hold integer row indices; "
                        f"got dtype {rows.dtype}.")
    low, high = int(rows.min()), int(rows.max())
    if low < 0 or high >= n_rows:
        raise ValueError(f"The {name!r} parameter of {owner} must hold row indices in "
                         f"[0, {n_rows - 1}]; got {low if low < 0 else high}.")
    return rows


def _per_member(value, default, name, k, owner, *, optional=False):
    """A ``(k,)`` float64 array of a per-member setting (``inf`` for no max-norm), or None
    when no member uses it."""
    values = [default] * k if value is None else value
    if isinstance(values, numbers.Real) or values is None:
        values = [values] * k
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise TypeError(f"The {name!r} parameter of {owner} must be a number or a sequence of "
                        f"one per member (k = {k}); got {values!r}.")
    values = list(values)
    if len(values) != k:
        raise ValueError(f"The {name!r} parameter of {owner} must be one value or one per member "
                         f"(k = {k}); got {len(values)} values.")
    out = []
    for v in values:
        if optional and v is None:
            out.append(math.inf)
        elif optional:
            out.append(check_real(v, name, low=0.0, low_inclusive=False, owner=owner))
        else:
            out.append(check_real(v, name, low=0.0, owner=owner))
    out = np.asarray(out, dtype=np.float64)
    unused = np.all(np.isinf(out)) if optional else not np.any(out)
    return None if unused else out


class _MaskDrawer:
    """Each member's training masks from its own generator, as :class:`Dropout` draws them.

    A member's dropout layers draw, one after the other, from its mask stream; with a
    NumPy generator on a 64-bit bit generator the words of one step are taken in one
    call per member (``random_raw`` returns the same words however they are split)
    whenever every layer takes a whole number of words, and then compared with the
    layers' thresholds all at once.
    """

    def __init__(self, stack, rngs):
        self.layers = stack.dropout_layers
        self.widths = stack.dropout_widths
        self.thresholds = [_keep_threshold(layer.keep_prob) for layer in self.layers]
        self.rngs = rngs
        self.fast = all(isinstance(r, np.random.Generator) and type(r.bit_generator) in _RAW_64_BIT
                        for r in rngs)

    def select(self, keep):
        self.rngs = [self.rngs[j] for j in keep]

    def draw(self, batch, xp):
        k = len(self.rngs)
        active = [j for j, layer in enumerate(self.layers) if layer.keep_prob < 1]
        masks = [None] * len(self.layers)
        if not self.fast:
            for j in active:
                layer = Dropout(self.layers[j].keep_prob)
                masks[j] = xp.stack([layer.draw_mask((batch, self.widths[j]), r)
                                     for r in self.rngs])
            return masks
        drawn = [j for j in active if self.thresholds[j] < 2**32]
        counts = [batch * self.widths[j] for j in drawn]
        words = [(c + 1) // 2 for c in counts]
        offsets = np.cumsum([0] + words)
        one_call = all(c % 2 == 0 for c in counts)
        if one_call and offsets[-1] >= _DIRECT_MASK_WORDS:
            # Large members: each member's words are compared where they were drawn,
            # instead of first being copied into one (k, words) array.
            for j in drawn:
                masks[j] = np.empty((k, batch, self.widths[j]), dtype=bool)
            for i, r in enumerate(self.rngs):
                bits = r.bit_generator.random_raw(int(offsets[-1])).view(np.uint32)
                for j, a, c in zip(drawn, offsets[:-1], counts):
                    np.less(bits[2 * a:2 * a + c], np.uint32(self.thresholds[j]),
                            out=masks[j][i].reshape(-1))
        else:
            raw = np.empty((k, offsets[-1]), dtype=np.uint64)
            for i, r in enumerate(self.rngs):
                if one_call:
                    raw[i] = r.bit_generator.random_raw(int(offsets[-1]))
                else:
                    for a, b in zip(offsets[:-1], offsets[1:]):
                        raw[i, a:b] = r.bit_generator.random_raw(int(b - a))
            for j, a, c in zip(drawn, offsets[:-1], counts):
                bits = raw[:, a:a + (c + 1) // 2].view(np.uint32)[:, :c]  # (k, batch * n)
                masks[j] = (bits < np.uint32(self.thresholds[j])).reshape(k, batch,
                                                                         self.widths[j])
        for j in active:
            if masks[j] is None:  # keep_prob within 2**-33 of 1: every unit kept, no draw
                masks[j] = np.ones((k, batch, self.widths[j]), dtype=bool)
        return masks


def _select_optimizer_rows(optimizer, keep):
    """Keep the optimizer state of the members at ``keep`` (rows of its state buffers)."""
    for name in ("_velocity", "_work", "_m", "_v"):
        state = getattr(optimizer, name, None)
        if state is not None:
            setattr(optimizer, name, [a[keep] for a in state])


def _train_chunk(stack, positions, X, y, config, seed, rows, validation_data, validation_rows,
                 l1, l2, max_norm, has_batch_norm, n):
    """Train the members at ``positions`` together; write their final states into ``stack``."""
    xp = stack.xp
    # A chunk (consecutive members) trains in place, on views of the stack's rows; once a
    # member stops, the others go on in a copy.
    work = stack._rows(positions[0], positions[-1] + 1)
    seeds = [child_seed(seed, stack.members[p], 1) for p in positions]
    order_rngs = [numpy_generator(child_seed(s, 0)) for s in seeds]
    drawer = _MaskDrawer(work, [make_generator(child_seed(s, 1), xp) for s in seeds])
    augment_rngs = [numpy_generator(child_seed(s, 2)) for s in seeds]
    optimizer, schedule = config.make_optimizer(), config.make_schedule()
    head = stack.head
    alive = list(range(len(positions)))  # indices into ``positions`` of the members training
    histories = [History() for _ in positions]
    stoppers = None
    if config.early_stopping is not None:
        stoppers = [copy.deepcopy(config.early_stopping) for _ in positions]
        for s in stoppers:
            s.reset()
    index = np.asarray(positions)
    sub = {"l1": None if l1 is None else l1[index], "l2": None if l2 is None else l2[index],
           "max_norm": None if max_norm is None else max_norm[index],
           "rows": None if rows is None else rows[index],
           "validation_rows": None if validation_rows is None else validation_rows[index]}
    batch_size = min(config.batch_size, n)
    fixed = work.masks is not None

    def finish(local):
        """Write member ``local``'s final state into ``stack``; return its History."""
        j = alive.index(local)
        state = work._member_state(j)
        stopper = None if stoppers is None else stoppers[local]
        history = histories[local]
        if stopper is not None:
            history.stopped_epoch = stopper.stopped_epoch if stopper.stopped_epoch > 0 else None
            history.best_epoch = stopper.best_epoch
            if stopper.restore_best_weights and stopper.best_weights is not None:
                state = stopper.best_weights
        stack._set_member_state(positions[local], state)

    for epoch in range(config.max_epochs):
        k = len(alive)
        lr = schedule(epoch)
        if config.shuffle:
            order = np.stack([order_rngs[i].permutation(n) for i in alive])  # (k, n)
        else:
            order = np.broadcast_to(np.arange(n), (k, n))
        if sub["rows"] is not None:
            order = np.take_along_axis(sub["rows"], order, axis=1)  # rows of X, per member
        if not isinstance(X, np.ndarray):
            order = xp.asarray(order)
        total_loss, total_metric, n_seen = np.zeros(k), np.zeros(k), 0
        for start in range(0, n, batch_size):
            idx = order[:, start:start + batch_size]  # (k, b)
            b = idx.shape[1]
            if b < 2 and has_batch_norm:
                continue  # batch statistics need two examples, as train skips a lone row
            # take(): the same rows as X[idx], measured 3x faster for narrow X.
            X_batch, y_batch = xp.take(X, idx, axis=0), xp.take(y, idx, axis=0)  # (k, b, ...)
            if config.augment is not None:
                for j, i in enumerate(alive):
                    X_batch[j] = config.augment(X_batch[j], augment_rngs[i])
            masks = None if fixed else drawer.draw(b, xp)
            loss, z = work.loss_and_grad(X_batch, y_batch, l1=sub["l1"], l2=sub["l2"],
                                         masks=masks)
            optimizer.step(work.flat_parameters(), lr)
            if sub["max_norm"] is not None:
                work.apply_max_norm(sub["max_norm"])
            n_seen += b
            total_loss += b * loss
            total_metric += b * _head_metric(head, z, y_batch)
        values = {"loss": total_loss / n_seen, head.metric_name: total_metric / n_seen}
        if validation_data is not None:
            X_val, y_val = validation_data
            if sub["validation_rows"] is not None:
                vrows = xp.asarray(sub["validation_rows"])
                X_val, y_val = X_val[vrows], y_val[vrows]  # (k, n_val, ...)
            else:
                y_val = xp.broadcast_to(y_val, (k,) + y_val.shape)
            z_val = work.forward(X_val)
            penalty = work.penalty(sub["l1"], sub["l2"])
            values["val_loss"] = _head_loss(head, z_val, y_val) + penalty
            values["val_" + head.metric_name] = _head_metric(head, z_val, y_val)
        stopped = []
        for j, i in enumerate(alive):
            history = histories[i]
            for key, value in values.items():
                history._append(key, float(value[j]))
            history.learning_rate.append(lr)
            history.n_epochs = epoch + 1
            if stoppers is not None:
                current = history.metrics[stoppers[i].monitor][-1]
                if stoppers[i].update(epoch, current, lambda j=j: work._member_state(j)):
                    stopped.append(i)
        if stopped:
            for i in stopped:
                finish(i)
            keep = [j for j, i in enumerate(alive) if i not in stopped]
            alive = [alive[j] for j in keep]
            if not alive:
                break
            work = work._subset(keep)
            drawer.select(keep)
            _select_optimizer_rows(optimizer, xp.asarray(keep))
            for key in ("l1", "l2", "max_norm", "rows", "validation_rows"):
                if sub[key] is not None:
                    sub[key] = sub[key][keep]
    for i in list(alive):
        finish(i)
    return histories


def _xp(x):
    if isinstance(x, np.ndarray):
        return np
    from .._backend import array_namespace
    return array_namespace(x)
