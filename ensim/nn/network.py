"""A network: a stack of layers with an output head, and its thinned sub-networks.

With ``d`` dropout units in all, a network with dropout defines ``2**d`` thinned
sub-networks, one per 0/1 mask. :meth:`Network.sample_masks` draws ``m`` of them and
:meth:`Network.predict_thinned` evaluates them all, next to the weight-scaled full
network (inverted dropout at inference), in memory bounded by a chunk size.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .._backend import array_namespace
from .._validation import (
    check_bool,
    check_choice,
    check_float_dtype,
    check_int,
    check_mask,
    check_real,
    check_sizes,
)
from .layers import BatchNorm, Dense, Dropout, GaussianDropout, Layer, ReLU, Sigmoid, Tanh
from .losses import MSELoss, SoftmaxCrossEntropy

__all__ = ["Network", "ThinnedPredictions", "build_mlp"]

_ACTIVATIONS = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}

#: Working-memory entries a chunk of thinned sub-networks may use by default
#: (see :meth:`Network.predict_thinned`).
_THINNED_CHUNK_ENTRIES = 2**20


@dataclasses.dataclass(frozen=True)
class ThinnedPredictions:
    """Predictions of ``m`` thinned sub-networks and of the weight-scaled full network.

    Attributes
    ----------
    members : array of shape (m, n_test, n_outputs)
        Member ``j``'s prediction: the network run with mask ``j`` (identity head:
        the regression output; softmax head: class probabilities).
    full : array of shape (n_test, n_outputs)
        The full network at inference, whose dropout layers are the identity: the
        weight-scaling approximation to the average over all thinned networks.
    """

    members: object
    full: object

    @property
    def mean(self):
        """The average of the members' predictions, shape ``(n_test, n_outputs)``."""
        return self.members.mean(axis=0)


class Network:
    """A feed-forward network: layers applied in order, then an output head.

    Parameters
    ----------
    layers : sequence of Layer
        Applied in order; the output width of one ``Dense`` must match the input
        width of the next.
    head : MSELoss or SoftmaxCrossEntropy
        Maps the last layer's output to a prediction and a loss.

    Attributes
    ----------
    dropout_layers : list of Dropout
        The dropout layers, in order; a mask set has one entry for each.
    dropout_widths : list of int
        The number of units each dropout layer masks (its mask's last dimension).

    Notes
    -----
    Layers with parameters may come before the first ``Dense`` layer (a
    ``BatchNorm`` on the input, say); the backward pass runs down to the first
    layer with parameters, and only when that layer is a ``Dense`` does it skip the
    gradient with respect to the input data.
    """

    def __init__(self, layers, head):
        self.layers = list(layers)
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"The 'layers' parameter of Network must hold ensim.nn layers; "
                                f"item {i} is a {type(layer).__name__}.")
        if not isinstance(head, (MSELoss, SoftmaxCrossEntropy)):
            raise TypeError("The 'head' parameter of Network must be an MSELoss or a "
                            f"SoftmaxCrossEntropy; got {head!r}.")
        self.head = head
        dense = [layer for layer in self.layers if isinstance(layer, Dense)]
        if not dense:
            raise ValueError("The 'layers' parameter of Network must contain at least one Dense layer.")
        width = None
        for i, layer in enumerate(self.layers):
            n_in = getattr(layer, "n_in", getattr(layer, "n_features", None))
            if n_in is not None and width is not None and n_in != width:
                raise ValueError(f"Layer {i} ({layer!r}) of Network expects {n_in} inputs, but "
                                 f"the layer before it gives {width}.")
            width = getattr(layer, "n_out", width if n_in is None else n_in)
        self.n_inputs, self.n_outputs = dense[0].n_in, dense[-1].n_out
        self._first_dense = dense[0]
        # Backpropagation stops at the first layer with parameters: nothing before it
        # has gradients to fill, so that layer needs no gradient for its input.
        self._first_trainable = next(i for i, layer in enumerate(self.layers) if layer.params)
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Dense):
                layer.needs_input_grad = i != self._first_trainable
        self.dropout_layers = [layer for layer in self.layers if isinstance(layer, Dropout)]
        self.dropout_widths = self._widths_at_dropout()
        self._flatten_parameters()

    def _flatten_parameters(self):
        """Make every parameter, and every gradient, a view into one contiguous buffer.

        An optimizer then updates all parameters with a few whole-buffer operations
        instead of a few per array (see :meth:`flat_parameters`). Parameters must
        therefore be changed in place (``W[...] = ...``), never rebound.
        """
        xp = self.xp
        names = [(layer, name) for layer in self.layers for name in layer.params]
        total = sum(layer.params[name].size for layer, name in names)
        flat_params = xp.empty(total, dtype=self.dtype)  # (n_parameters,)
        flat_grads = xp.zeros(total, dtype=self.dtype)  # (n_parameters,)
        offset = 0
        for layer, name in names:
            value = layer.params[name]
            end = offset + value.size
            layer.params[name] = flat_params[offset:end].reshape(value.shape)
            layer.params[name][...] = value
            layer.grads[name] = flat_grads[offset:end].reshape(value.shape)
            offset = end
        self._flat = (flat_params, flat_grads)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_flat"]  # views do not survive pickling; rebuilt on load
        return state

    def __setstate__(self, state):
        state.pop("_dropout_widths", None)   # its name in pickles made before it was public
        self.__dict__.update(state)
        self.dropout_widths = self._widths_at_dropout()
        self._flatten_parameters()

    def _widths_at_dropout(self):
        widths, width = [], self.n_inputs
        for layer in self.layers:
            if isinstance(layer, Dropout):
                widths.append(width)
            width = getattr(layer, "n_out", width)
        return widths

    @property
    def xp(self):
        """The array namespace of the parameters."""
        return array_namespace(self._first_dense.params["W"])

    @property
    def dtype(self):
        """The floating-point type of the parameters."""
        return self._first_dense.params["W"].dtype

    # ----------------------------------------------------------------- passes
    def forward(self, X, *, training=False, masks=None, rng=None):
        """Return the raw output ``z`` of the last layer, shape ``(batch, n_outputs)``.

        Parameters
        ----------
        X : array of shape (batch, n_inputs)
        training : bool
            Training mode: dropout draws masks from ``rng`` and batch normalization
            uses (and updates) batch statistics.
        masks : sequence of arrays, optional
            One 0/1 mask per dropout layer (shape ``(n,)`` or ``(batch, n)``;
            None entries draw or skip as usual), to run a chosen thinned network.
        rng : numpy.random.Generator or cupy.random.Generator, optional
            The source of training masks.
        """
        if masks is not None and len(masks) != len(self.dropout_layers):
            raise ValueError(f"The 'masks' parameter of Network.forward must hold one mask per "
                             f"dropout layer ({len(self.dropout_layers)}); got {len(masks)}.")
        h, k = X, 0
        for layer in self.layers:
            if isinstance(layer, Dropout):
                h = layer.forward(h, training=training, rng=rng,
                                  mask=None if masks is None else masks[k])
                k += 1
            elif isinstance(layer, GaussianDropout):
                h = layer.forward(h, training=training, rng=rng)
            else:
                h = layer.forward(h, training=training)
        return h

    def backward(self, grad_z):
        """Backpropagate ``dL/dz`` through every layer, filling each layer's ``grads``."""
        g = grad_z
        for layer in reversed(self.layers[self._first_trainable:]):
            g = layer.backward(g)

    def predict(self, X):
        """The full network's prediction at inference (the head applied to ``z``)."""
        return self.head.predict(self.forward(X))

    # ------------------------------------------------------------- parameters
    def flat_parameters(self):
        """One ``(params, grads)`` pair: 1-D views of all parameters and all gradients.

        Every array of :meth:`parameters` is a slice of these two buffers, so an
        optimizer stepping on this pair updates the whole network at once.
        """
        return [self._flat]

    def parameters(self):
        """``(param, grad)`` array pairs of every learnable array, in a fixed order."""
        return [(layer.params[name], layer.grads[name])
                for layer in self.layers for name in layer.params]

    def dense_weights(self):
        """The weight matrices ``W`` of the dense layers (what the penalties apply to)."""
        return [layer.params["W"] for layer in self.layers if isinstance(layer, Dense)]

    def _state_arrays(self):
        """The live arrays a checkpoint holds: parameters and batch-norm running statistics."""
        arrays = []
        for layer in self.layers:
            arrays.extend(layer.params.values())
            if isinstance(layer, BatchNorm):
                arrays.extend([layer.running_mean, layer.running_var])
        return arrays

    def get_weights(self):
        """Copies of every parameter and batch-norm running statistic."""
        return [value.copy() for value in self._state_arrays()]

    def set_weights(self, weights):
        """Copy ``weights`` (as returned by :meth:`get_weights`) into the network, in place."""
        targets = self._state_arrays()
        if len(weights) != len(targets):
            raise ValueError(f"The 'weights' parameter of Network.set_weights must hold "
                             f"{len(targets)} arrays; got {len(weights)}.")
        for i, (target, value) in enumerate(zip(targets, weights)):
            if tuple(getattr(value, "shape", ())) != tuple(target.shape):
                raise ValueError(f"The 'weights' parameter of Network.set_weights must hold "
                                 f"arrays shaped as get_weights() returns them; array {i} has "
                                 f"shape {tuple(getattr(value, 'shape', ()))}, not "
                                 f"{tuple(target.shape)}.")
        for target, value in zip(targets, weights):
            target[...] = value

    # -------------------------------------------------------------- objective
    def penalty(self, *, l1=0.0, l2=0.0):
        """``l1 * sum|W| + l2 * sum W**2`` over the dense weight matrices (not biases)."""
        _check_penalties(l1, l2, "Network.penalty")
        xp = self.xp
        total = 0.0
        for W in self.dense_weights():
            if l1:
                total += l1 * float(xp.abs(W).sum())
            if l2:
                total += l2 * float((W * W).sum())
        return total

    def loss_and_grad(self, X, y, *, l1=0.0, l2=0.0, masks=None, rng=None):
        """One training-mode pass: return ``(loss, z)`` and fill every layer's ``grads``.

        The loss is the head's mean loss on the batch plus :meth:`penalty`; the
        penalty's gradient ``l1 * sign(W) + 2 * l2 * W`` is added to the gradients
        of the weight matrices (an ordinary penalty in the loss, not decoupled
        weight decay).
        """
        _check_penalties(l1, l2, "Network.loss_and_grad")
        z = self.forward(X, training=True, masks=masks, rng=rng)
        loss, grad_z = self.head.loss_and_grad(z, y)
        self.backward(grad_z)
        if l1 or l2:
            xp = self.xp
            for layer in self.layers:
                if isinstance(layer, Dense):
                    W, dW = layer.params["W"], layer.grads["W"]
                    if l1:
                        dW += l1 * xp.sign(W)
                    if l2:
                        dW += (2 * l2) * W
            loss += self.penalty(l1=l1, l2=l2)
        return loss, z

    def apply_max_norm(self, max_norm):
        """Rescale each unit's incoming weight vector ``W[:, j]`` to norm at most ``max_norm``."""
        if type(max_norm) not in (float, int) or not 0 < max_norm < math.inf:   # once a step
            check_real(max_norm, "max_norm", low=0.0, low_inclusive=False,
                       owner="Network.apply_max_norm")
        xp = self.xp
        for W in self.dense_weights():
            norms = xp.sqrt((W * W).sum(axis=0))  # (n_out,)
            W *= xp.minimum(1, max_norm / xp.maximum(norms, 1e-30))

    # ------------------------------------------------------ thinned networks
    def sample_masks(self, m, rng=None):
        """Draw ``m`` thinned sub-networks: one 0/1 mask set each.

        Parameters
        ----------
        m : int >= 1
            Number of sub-networks.
        rng : None, int, SeedSequence or Generator
            A NumPy generator, or a seed for one.

        Returns
        -------
        list of arrays
            One array of shape ``(m, n_k)`` per dropout layer ``k``, in the
            parameters' namespace and dtype; row ``j`` of every array together is
            sub-network ``j``. Each entry is 1 with probability ``keep_prob``.

        Raises
        ------
        ValueError
            When the network has no dropout layer: its only sub-network is the full
            network (:meth:`predict`).
        """
        from .._random import as_seed_sequence, numpy_generator
        self._check_has_dropout("Network.sample_masks")
        m = check_int(m, "m", low=1, owner="Network.sample_masks")
        if not isinstance(rng, np.random.Generator):
            rng = numpy_generator(as_seed_sequence(rng))
        xp, dtype = self.xp, self.dtype
        return [xp.asarray(layer.draw_mask((m, n), rng), dtype=dtype)
                for layer, n in zip(self.dropout_layers, self.dropout_widths)]

    def predict_thinned(self, X, masks, *, chunk_size=None):
        """Evaluate ``m`` thinned sub-networks and the full network on ``X``.

        Each sub-network is the network at inference with its dropout layers
        replaced by ``x * M_j / keep_prob``. Work that no mask precedes (the layers
        before the first dropout layer) is computed once for all members. A mask
        that directly precedes a dense layer ``(n_in, n_out)`` with ``n_out <
        n_test`` is folded into that layer's weights (``(x * s) W = x (diag(s) W)``,
        ``n_in * n_out`` products per member instead of ``n_test * n_in``); any
        other mask scales the activations.

        Parameters
        ----------
        X : array of shape (n_test, n_inputs)
        masks : list of arrays
            As returned by :meth:`sample_masks`: one ``(m, n_k)`` 0/1 array per
            dropout layer (boolean, or numbers exactly 0 or 1).
        chunk_size : int, optional
            Members evaluated together (in batched matrix products). A member's
            working memory is counted as ``4 * n_test * max_width`` entries (the
            activation arrays alive at once, ``max_width`` the widest layer or
            input) plus the folded weights ``n_in * n_out`` of the widest dense
            layer a mask is folded into. By default, the most members (at least 1)
            whose working memory fits in 2**20 entries (8 MiB in float64): stacking
            more members into larger products was measured slower than a
            cache-sized loop (``docs/benchmarks-nn.md``). When one member needs
            more, members are evaluated one at a time; a larger ``n_test`` can be
            split by the caller. Beyond the chunks, the call holds the shared
            and full-network passes on ``X`` and the result.

        Returns
        -------
        ThinnedPredictions

        Raises
        ------
        ValueError
            When the network has no dropout layer (its only sub-network is the full
            network: use :meth:`predict`), when ``X`` is not ``(n_test, n_inputs)``,
            or when a mask has the wrong shape or an entry other than 0 and 1 (masks
            are boolean, or numbers that are exactly 0 or 1).
        TypeError
            When ``masks`` is not a list of numeric or boolean arrays.
        """
        self._check_has_dropout("Network.predict_thinned")
        shape = tuple(getattr(X, "shape", ()))
        if len(shape) != 2 or shape[1] != self.n_inputs:
            raise ValueError(f"The 'X' parameter of Network.predict_thinned must have shape "
                             f"(n_test, {self.n_inputs}); got shape {shape}.")
        masks = self._check_mask_sets(masks)
        m, n_test = masks[0].shape[0], X.shape[0]
        first = next(i for i, layer in enumerate(self.layers) if isinstance(layer, Dropout))
        fold = self._folded_dense_layers(first, n_test)
        if chunk_size is None:
            per_member = self._thinned_entries_per_member(n_test, fold)
            chunk_size = max(1, _THINNED_CHUNK_ENTRIES // max(1, per_member))
        chunk_size = check_int(chunk_size, "chunk_size", low=1, owner="Network.predict_thinned")
        shared = X
        for layer in self.layers[:first]:
            shared = layer.forward(shared)  # (n_test, width)
        z_full = shared
        for layer in self.layers[first:]:
            z_full = layer.forward(z_full)
        full = self.head.predict(z_full)  # (n_test, n_outputs)
        del z_full
        xp = self.xp
        members = xp.empty((m, n_test, self.n_outputs), dtype=full.dtype)
        for start in range(0, m, chunk_size):
            chunk = [mask[start:start + chunk_size] for mask in masks]
            z = self._forward_thinned(shared, self.layers[first:], chunk, fold)
            members[start:start + chunk_size] = self.head.predict(z)
            del z
        return ThinnedPredictions(members=members, full=full)

    def _folded_dense_layers(self, first, n_test):
        """Ids of the dense layers (from layer ``first`` on) a mask is folded into.

        A mask directly before a dense layer is folded into its weights when that is
        less work than scaling the activations, ``n_in * n_out < n_test * n_in``.
        """
        layers = self.layers
        return {id(layers[i]) for i in range(first + 1, len(layers))
                if isinstance(layers[i], Dense) and isinstance(layers[i - 1], Dropout)
                and layers[i].n_out < n_test}

    def _thinned_entries_per_member(self, n_test, fold):
        """Working-memory entries of one member in :meth:`_forward_thinned`.

        Up to four activation arrays of ``n_test * max_width`` entries are alive at
        once (a layer's input, its output and temporaries; softmax's are the most),
        plus the member's copy of the largest folded weight matrix.
        """
        max_width = max([self.n_inputs] + [getattr(layer, "n_out", 0) for layer in self.layers])
        folded = [layer.n_in * layer.n_out for layer in self.layers if id(layer) in fold]
        return 4 * n_test * max_width + max(folded, default=0)

    def _forward_thinned(self, h, layers, masks, fold):
        """Inference pass of a chunk of ``c`` members from the shared input ``h``.

        ``h`` is ``(n, width)`` while it is shared and ``(c, n, width)`` once the
        members diverge (an array of this pass's own, so it may be scaled in place);
        ``scale`` is a pending ``(c, width)`` mask scale, folded into the next dense
        layer's weights when that layer is in ``fold`` and applied to ``h`` otherwise.
        """
        xp = self.xp
        k, scale = 0, None
        for layer in layers:
            if isinstance(layer, Dropout):
                new = masks[k] * (1.0 / layer.keep_prob)  # (c, width)
                scale = new if scale is None else scale * new
                k += 1
                continue
            if scale is not None and id(layer) in fold:
                W_members = scale[:, :, None] * layer.params["W"]  # (c, n_in, n_out)
                h = xp.matmul(h, W_members)  # (c, n, n_out)
                del W_members
                h += layer.params["b"]
                scale = None
                continue
            if scale is not None:
                h = _scale_members(h, scale)  # (c, n, width)
                scale = None
            h = layer.forward(h)
        if scale is not None:
            h = _scale_members(h, scale)
        return h

    def _check_has_dropout(self, owner):
        if not self.dropout_layers:
            gaussian = any(isinstance(layer, GaussianDropout) for layer in self.layers)
            kind = ("none (its GaussianDropout layers draw noise, not masks)" if gaussian
                    else "none")
            raise ValueError(f"{owner} needs a network with a Bernoulli Dropout layer; this one "
                             f"has {kind}, so its only sub-network is the full network "
                             "(Network.predict).")

    def _check_mask_sets(self, masks):
        """Each mask set as a 0/1 array of the parameters' dtype, or a clear error."""
        owner = "Network.predict_thinned"
        if isinstance(masks, (str, bytes)) or not hasattr(masks, "__len__"):
            raise TypeError(f"The 'masks' parameter of {owner} must be a list of arrays, one "
                            f"per dropout layer; got {type(masks).__name__}.")
        if len(masks) != len(self.dropout_layers):
            raise ValueError(f"The 'masks' parameter of {owner} must hold one array per dropout "
                             f"layer ({len(self.dropout_layers)}); got {len(masks)}.")
        checked = []
        for k, (mask, n) in enumerate(zip(masks, self.dropout_widths)):
            # Every layer's array has the first one's number of sub-networks.
            m = checked[0].shape[0] if checked else None
            text = (f"({'m' if m is None else m}, {n}) (one row per sub-network, one column "
                    f"per unit of dropout layer {k})")
            checked.append(check_mask(mask, f"masks[{k}]", shape=(m, n), shape_text=text,
                                      owner=owner, xp=self.xp, dtype=self.dtype))
        return checked

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"Network([\n  {inner}\n], head={type(self.head).__name__}())"

    # ------------------------------------------------- hidden representations
    def _hidden_block_ends(self):
        """Indices in :attr:`layers` of the activation layers: where each hidden block ends."""
        return [i for i, layer in enumerate(self.layers)
                if isinstance(layer, (ReLU, Tanh, Sigmoid))]

    def _check_inputs(self, X, owner):
        shape = tuple(getattr(X, "shape", ()))
        if len(shape) != 2 or shape[1] != self.n_inputs:
            raise ValueError(f"The 'X' parameter of {owner} must have shape "
                             f"(n_test, {self.n_inputs}); got shape {shape}.")

    def hidden_activations(self, X):
        """The output of every hidden block at inference, in order.

        A hidden block ends with its activation (``ReLU``, ``Tanh`` or
        ``Sigmoid``); its output is the activation's output, before any dropout
        layer that follows (at inference dropout is the identity, so this is also
        what the next layer receives).

        Parameters
        ----------
        X : array of shape (n_test, n_inputs)

        Returns
        -------
        list of arrays
            One ``(n_test, n_units)`` array per hidden block (an empty list for a
            network without activation layers).
        """
        self._check_inputs(X, "Network.hidden_activations")
        ends = set(self._hidden_block_ends())
        out, h = [], X
        for i, layer in enumerate(self.layers[:max(ends, default=-1) + 1]):
            h = layer.forward(h)
            if i in ends:
                out.append(h)  # (n_test, n_units)
        return out

    def forward_without_units(self, X, block, units=None, *, chunk_size=None):
        """The raw output ``z`` at inference with one unit of a hidden block removed.

        Removing unit ``u`` of hidden block ``block`` sets that unit's output (see
        :meth:`hidden_activations`) to 0 and leaves every other unit as it is:
        the same network as one whose weights out of the unit are zeroed. For a
        network trained with dropout this is the weight-scaled network with one
        unit missing. It is *not* the thinned network that
        :meth:`predict_thinned` gives for a mask that drops only that unit, which
        also scales every kept unit by ``1 / keep_prob``.

        Parameters
        ----------
        X : array of shape (n_test, n_inputs)
        block : int
            The hidden block, counted from 0 (``len(hidden_activations(X))``
            blocks in all).
        units : sequence of int, optional
            The units removed, one at a time (default: every unit of the block).
        chunk_size : int, optional
            Removals evaluated together; by default as many as fit in 2**20
            working-memory entries (``4 * n_test * max_width`` each, at least one).

        Returns
        -------
        array of shape (n_removed, n_test, n_outputs)
            Entry ``j`` is the raw output of the network without unit ``units[j]``
            (apply ``head.predict`` for predictions, ``head.loss`` for the loss).

        Raises
        ------
        ValueError
            When ``X`` is not ``(n_test, n_inputs)``, ``block`` is not a hidden
            block or a unit is not one of the block's.
        TypeError
            When ``block``, a unit or ``chunk_size`` is not an integer.
        """
        owner = "Network.forward_without_units"
        self._check_inputs(X, owner)
        ends = self._hidden_block_ends()
        if not ends:
            raise ValueError(f"{owner} needs a network with a hidden block (an activation "
                             "layer); this one has none.")
        block = check_int(block, "block", low=0, high=len(ends) - 1, owner=owner)
        end = ends[block]
        h = X
        for layer in self.layers[:end + 1]:
            h = layer.forward(h)  # (n_test, width)
        n_test, width = h.shape
        if units is None:
            units = range(width)
        if isinstance(units, (str, bytes)) or not hasattr(units, "__len__"):
            raise TypeError(f"The 'units' parameter of {owner} must be a sequence of unit "
                            f"indices; got {type(units).__name__}.")
        units = [check_int(u, "units", low=0, high=width - 1, owner=owner) for u in units]
        max_width = max([self.n_inputs] + [getattr(layer, "n_out", 0) for layer in self.layers])
        if chunk_size is None:
            chunk_size = max(1, _THINNED_CHUNK_ENTRIES // (4 * n_test * max_width))
        chunk_size = check_int(chunk_size, "chunk_size", low=1, owner=owner)
        xp = self.xp
        out = xp.empty((len(units), n_test, self.n_outputs), dtype=h.dtype)
        for start in range(0, len(units), chunk_size):
            chunk = units[start:start + chunk_size]
            z = xp.repeat(h[None], len(chunk), axis=0)  # (c, n_test, width)
            z[xp.arange(len(chunk)), :, xp.asarray(chunk)] = 0
            for layer in self.layers[end + 1:]:
                z = layer.forward(z)  # (c, n_test, width of the layer)
            out[start:start + len(chunk)] = z
        return out


def _check_penalties(l1, l2, owner):
    """``l1, l2 >= 0`` and finite; cheap for plain floats, as in every training step."""
    for name, value in (("l1", l1), ("l2", l2)):
        if type(value) not in (float, int) or not 0 <= value < math.inf:
            check_real(value, name, low=0.0, owner=owner)


def _scale_members(h, scale):
    """``h * scale`` per member: ``h`` shared ``(n, width)`` or per member ``(c, n, width)``
    (then scaled in place), ``scale`` ``(c, width)``."""
    if h.ndim == 2:
        return h * scale[:, None, :]  # (c, n, width)
    h *= scale[:, None, :]
    return h


def build_mlp(n_inputs, hidden_layer_sizes, n_outputs, *, task="regression",
              activation="relu", keep_prob=1.0, input_keep_prob=1.0, batch_norm=False,
              batch_norm_convention="pytorch", rng=None, dtype=np.float64, backend="numpy",
              dropout="bernoulli"):
    """Build a multilayer perceptron.

    Each hidden block is ``Dense -> [BatchNorm] -> activation -> [Dropout]``
    (batch normalization between the affine map and the non-linearity, dropout
    on the block's output); an optional dropout layer acts on the input; the last
    layer is a ``Dense`` to ``n_outputs`` followed by the head.

    Parameters
    ----------
    n_inputs, n_outputs : int
        Widths of the input and the output (``n_outputs`` = number of classes for
        classification).
    hidden_layer_sizes : sequence of int
        Width of each hidden layer.
    task : {"regression", "classification"}
        Identity output with squared error, or softmax with cross-entropy.
    activation : {"relu", "tanh", "sigmoid"}
        Hidden non-linearity; ReLU layers get He initialisation, the others Glorot.
    keep_prob, input_keep_prob : float in (0, 1]
        Keep probability of the hidden and the input dropout layers; 1 omits the
        layer.
    batch_norm : bool
        Insert a :class:`BatchNorm` in every hidden block.
    batch_norm_convention : {"pytorch", "keras"}
    rng : None, int, SeedSequence or Generator
        Source of the initial weights.
    dtype : data type
    backend : {"numpy", "cupy"}
    dropout : {"bernoulli", "gaussian"}, default "bernoulli"
        The kind of every dropout layer: :class:`Dropout` (Bernoulli masks,
        inverted scaling) or :class:`GaussianDropout` (multiplicative ``N(1, (1 -
        p) / p)`` noise with the same keep probabilities). Gaussian layers have no
        thinned sub-networks: :meth:`Network.sample_masks` needs Bernoulli ones.

    Returns
    -------
    Network
    """
    from .._backend import get_namespace
    from .._random import as_seed_sequence, numpy_generator

    owner = "build_mlp"
    n_inputs = check_int(n_inputs, "n_inputs", low=1, owner=owner)
    check_choice(task, "task", ("regression", "classification"), owner=owner)
    n_outputs = check_int(n_outputs, "n_outputs", low=1, owner=owner)
    if task == "classification" and n_outputs < 2:
        raise ValueError(f"The 'n_outputs' parameter of {owner} must be the number of classes, "
                         f"at least 2, when task='classification'; got {n_outputs}.")
    hidden = check_sizes(hidden_layer_sizes, "hidden_layer_sizes", owner=owner, empty=True)
    check_bool(batch_norm, "batch_norm", owner=owner)
    check_choice(batch_norm_convention, "batch_norm_convention", ("pytorch", "keras"),
                 owner=owner)
    dtype = check_float_dtype(dtype, "dtype", owner=owner)
    check_choice(activation, "activation", tuple(_ACTIVATIONS), owner=owner)
    for name, value in (("keep_prob", keep_prob), ("input_keep_prob", input_keep_prob)):
        check_real(value, name, low=0.0, high=1.0, low_inclusive=False, owner=owner)
    check_choice(dropout, "dropout", ("bernoulli", "gaussian"), owner=owner)
    drop = Dropout if dropout == "bernoulli" else GaussianDropout
    xp = get_namespace(backend)
    init_rng = rng if isinstance(rng, np.random.Generator) else numpy_generator(as_seed_sequence(rng))
    init = "he" if activation == "relu" else "glorot"
    layers = [drop(input_keep_prob)] if input_keep_prob < 1 else []
    width = n_inputs
    for n_hidden in hidden:
        layers.append(Dense(width, n_hidden, init=init, rng=init_rng, dtype=dtype, xp=xp))
        if batch_norm:
            layers.append(BatchNorm(n_hidden, convention=batch_norm_convention, dtype=dtype, xp=xp))
        layers.append(_ACTIVATIONS[activation]())
        if keep_prob < 1:
            layers.append(drop(keep_prob))
        width = n_hidden
    layers.append(Dense(width, n_outputs, init="glorot", rng=init_rng, dtype=dtype, xp=xp))
    head = MSELoss() if task == "regression" else SoftmaxCrossEntropy()
    return Network(layers, head)
