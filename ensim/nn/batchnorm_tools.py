"""Tools to take batch normalization apart.

* :class:`PopulationBatchNorm`: batch normalization without the mini-batch noise in
  its output, normalizing with fixed statistics (those of the whole training set,
  refreshed by :func:`set_population_statistics`) instead of each batch's.
* :class:`NoisyBatchNorm`: batch normalization followed by a random shift and scale
  per unit, drawn anew at each step (the "noisy batch norm" of Santurkar, Tsipras,
  Ilyas and Madry, 2018).
* :func:`reestimate_batch_norm`: the running statistics of every batch-norm layer
  recomputed on data in evaluation mode (dropout off), after training.
* :func:`gradient_shift`: the internal covariate shift as Santurkar et al. define
  it, the change of a layer's gradient when the layers before it are updated on the
  same batch.
* :func:`dropout_variance_ratio` and :func:`batch_norm_input_variance_ratios`: the
  "variance shift" of a batch-norm layer that follows dropout (Li, Chen, Hu and
  Yang, 2019), in theory and measured in a network.
* :func:`build_normalized_mlp` and :func:`sgd_train`: a ReLU network with a chosen
  normalization and weight scale, and a plain-SGD loop with a per-step hook.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import check_choice, check_int, check_real
from .layers import BatchNorm, Dense, Dropout, ReLU
from .losses import SoftmaxCrossEntropy
from .network import Network

__all__ = ["NORMALIZATIONS", "NoisyBatchNorm", "PopulationBatchNorm",
           "batch_norm_input_variance_ratios", "build_normalized_mlp", "dropout_variance_ratio",
           "gradient_shift", "population_statistics", "reestimate_batch_norm",
           "set_population_statistics", "sgd_train", "variance_ratio"]

#: The normalizations :func:`build_normalized_mlp` knows.
NORMALIZATIONS = ("none", "batch", "population", "noisy")


class PopulationBatchNorm(BatchNorm):
    """Batch normalization whose output uses fixed statistics instead of each batch's.

    The output is ``y = gamma * (x - mean) / sqrt(var + eps) + beta`` with ``mean``
    and ``var`` set by :meth:`set_statistics` (by :func:`set_population_statistics`:
    those of the whole training set), in training and at inference alike, so the
    output of an example does not depend on the other examples of its batch: the
    mini-batch noise of the forward pass is gone. The gradient is that of batch
    normalization through the batch statistics, as in batch renormalization (Ioffe,
    2017) with ``r = sigma_B / sigma`` and ``d = (mu_B - mu) / sigma`` unclipped and
    held constant: ``y = gamma * (x_hat_B * r + d) + beta`` is the same output, and
    the backward pass is batch norm's with its gradient scaled by ``r``. (Treating
    the statistics as constants instead lets the weights drift along directions the
    normalization removes, the failure Ioffe and Szegedy, 2015, section 2, describe.)
    ``running_mean`` and ``running_var`` hold the statistics in use and are not
    updated by training steps.
    """

    def set_statistics(self, mean, var):
        """Normalize with ``mean`` and (biased) ``var``, arrays of shape ``(n,)``."""
        self.running_mean[...] = mean
        self.running_var[...] = var

    def forward(self, x, *, training=False):
        if x.shape[-1] != self.n_features:
            raise ValueError(f"The input of PopulationBatchNorm({self.n_features}) must have "
                             f"{self.n_features} columns; got shape {tuple(x.shape)}.")
        inv_std = (self.running_var + self.eps) ** -0.5  # (n,)
        x_hat = (x - self.running_mean) * inv_std  # (batch, n)
        if training:
            if x.ndim != 2 or x.shape[0] < 2:
                raise ValueError("PopulationBatchNorm needs a 2-D batch of at least 2 examples "
                                 f"in training mode; got shape {tuple(x.shape)}.")
            mu, var = x.mean(axis=0), x.var(axis=0)  # (n,), batch statistics
            inv_std_batch = (var + self.eps) ** -0.5
            self._x_hat = (x - mu) * inv_std_batch  # (batch, n): x_hat_B
            self._inv_std = inv_std_batch
            self._r = inv_std / inv_std_batch  # (n,): sigma_B / sigma
            self._x_hat_out = x_hat
        else:
            self._x_hat = None
        return x_hat * self.params["gamma"] + self.params["beta"]

    def backward(self, grad_out):
        from .layers import _training_cache

        x_hat_batch = _training_cache(self, self._x_hat)
        self.grads["beta"][...] = grad_out.sum(axis=0)
        self.grads["gamma"][...] = (grad_out * self._x_hat_out).sum(axis=0)
        g = grad_out * (self.params["gamma"] * self._r)  # dL/dx_hat_B
        grad_in = g - g.mean(axis=0) - x_hat_batch * (g * x_hat_batch).mean(axis=0)
        return grad_in * self._inv_std

    def __repr__(self):
        return f"PopulationBatchNorm({self.n_features})"


class NoisyBatchNorm(BatchNorm):
    """Batch normalization followed by a random per-unit scale and shift.

    In training, ``y = s * BN(x) + m`` with ``m ~ U(-shift, shift)`` and ``s ~
    U(scale_low, scale_high)`` drawn independently for each unit by
    :meth:`draw_noise` (a training loop calls it once per step, so that every
    example of a batch, and every pass on that batch, sees the same noise). At
    inference the layer is plain batch normalization. The noise makes the
    distribution of the layer's output move from step to step, which is what
    Santurkar et al. (2018) add to test whether batch norm works by keeping it
    still.

    Parameters
    ----------
    n_features : int
    rng : numpy.random.Generator
        Source of the noise.
    shift : float >= 0, default 0.5
    scale_low, scale_high : float, default 1 and 1.25
        ``0 < scale_low <= scale_high``.
    **kwargs
        Passed to :class:`BatchNorm`.
    """

    def __init__(self, n_features, *, rng, shift=0.5, scale_low=1.0, scale_high=1.25, **kwargs):
        super().__init__(n_features, **kwargs)
        self.shift = check_real(shift, "shift", low=0.0, owner="NoisyBatchNorm")
        self.scale_low = check_real(scale_low, "scale_low", low=0.0, low_inclusive=False,
                                    owner="NoisyBatchNorm")
        self.scale_high = check_real(scale_high, "scale_high", low=scale_low,
                                     owner="NoisyBatchNorm")
        self.rng = rng
        self.noise_shift = np.zeros(n_features)  # (n,)
        self.noise_scale = np.ones(n_features)  # (n,)

    def draw_noise(self):
        """Draw the shift and scale of the next step."""
        self.noise_shift[...] = self.rng.uniform(-self.shift, self.shift, self.n_features)
        self.noise_scale[...] = self.rng.uniform(self.scale_low, self.scale_high, self.n_features)

    def forward(self, x, *, training=False):
        y = super().forward(x, training=training)
        if not training:
            return y
        return y * self.noise_scale + self.noise_shift

    def backward(self, grad_out):
        return super().backward(grad_out * self.noise_scale)

    def __repr__(self):
        return f"NoisyBatchNorm({self.n_features}, shift={self.shift:g})"


def build_normalized_mlp(n_inputs, hidden_layer_sizes, n_outputs, *, normalization="none",
                         init_scale=1.0, keep_prob=1.0, rng, noise_rng=None):
    """A ReLU classifier whose hidden blocks are ``Dense -> [norm] -> ReLU -> [Dropout]``.

    Parameters
    ----------
    n_inputs, n_outputs : int
    hidden_layer_sizes : sequence of int
    normalization : {"none", "batch", "population", "noisy"}
        None, :class:`BatchNorm`, :class:`PopulationBatchNorm` or
        :class:`NoisyBatchNorm` (with its defaults) in every hidden block.
    init_scale : float > 0
        Hidden weights are ``init_scale`` times He's (``Normal(0, 2 / n_in)``); the
        output layer is Glorot's. The draws do not depend on ``init_scale`` or on
        the normalization: one ``rng`` gives the same directions for every arm.
    keep_prob : float in (0, 1]
        Dropout after every hidden ReLU (none when 1).
    rng : numpy.random.Generator
        Source of the initial weights.
    noise_rng : numpy.random.Generator, optional
        Source of the noise of ``"noisy"``; required for it.

    Returns
    -------
    Network
        With a softmax cross-entropy head.
    """
    owner = "build_normalized_mlp"
    check_choice(normalization, "normalization", NORMALIZATIONS, owner=owner)
    init_scale = check_real(init_scale, "init_scale", low=0.0, low_inclusive=False, owner=owner)
    check_real(keep_prob, "keep_prob", low=0.0, high=1.0, low_inclusive=False, owner=owner)
    if normalization == "noisy" and noise_rng is None:
        raise ValueError(f"The 'noise_rng' parameter of {owner} is required when "
                         "normalization='noisy'; got None.")
    layers, width = [], check_int(n_inputs, "n_inputs", low=1, owner=owner)
    for n_hidden in hidden_layer_sizes:
        dense = Dense(width, n_hidden, init="he", rng=rng)
        dense.params["W"] *= init_scale
        layers.append(dense)
        if normalization == "batch":
            layers.append(BatchNorm(n_hidden))
        elif normalization == "population":
            layers.append(PopulationBatchNorm(n_hidden))
        elif normalization == "noisy":
            layers.append(NoisyBatchNorm(n_hidden, rng=noise_rng))
        layers.append(ReLU())
        if keep_prob < 1:
            layers.append(Dropout(keep_prob))
        width = n_hidden
    layers.append(Dense(width, n_outputs, init="glorot", rng=rng))
    return Network(layers, SoftmaxCrossEntropy())


def population_statistics(network, X):
    """The mean and biased variance of every batch-norm layer's input over all of ``X``.

    One pass in evaluation mode (dropout off), in which each batch-norm layer
    normalizes with the statistics just computed for it: what the network computes
    when the whole of ``X`` is one batch. Returns a list of ``(mean, var)`` pairs,
    one per :class:`BatchNorm` (or subclass), in order.
    """
    stats, h = [], X
    for layer in network.layers:
        if isinstance(layer, BatchNorm):
            mean, var = h.mean(axis=0), h.var(axis=0)  # (n,), (n,)
            stats.append((mean, var))
            h = (h - mean) * (layer.params["gamma"] / np.sqrt(var + layer.eps)) \
                + layer.params["beta"]
        else:
            h = layer.forward(h, training=False)
    return stats


def set_population_statistics(network, X):
    """Set every :class:`PopulationBatchNorm` of ``network`` to the statistics over ``X``."""
    layers = [layer for layer in network.layers if isinstance(layer, BatchNorm)]
    for layer, (mean, var) in zip(layers, population_statistics(network, X)):
        if isinstance(layer, PopulationBatchNorm):
            layer.set_statistics(mean, var)


def reestimate_batch_norm(network, X):
    """Replace every batch-norm layer's running statistics by those over ``X``.

    The statistics are taken in evaluation mode (dropout off), layer after layer
    (:func:`population_statistics`); the running variance is the unbiased one for
    the ``"pytorch"`` convention, the biased one for ``"keras"``, as a training
    step would store it. After training with dropout before batch normalization,
    this removes the "variance shift" of Li et al. (2019).
    """
    n = X.shape[0]
    layers = [layer for layer in network.layers if isinstance(layer, BatchNorm)]
    for layer, (mean, var) in zip(layers, population_statistics(network, X)):
        layer.running_mean[...] = mean
        layer.running_var[...] = var * (n / (n - 1)) if layer.unbiased_running_var else var


def gradient_shift(network, X, y, learning_rate):
    """Internal covariate shift as Santurkar et al. (2018) measure it, at one step.

    For every dense layer ``i`` after the first: ``G`` is the gradient of the loss
    on the batch ``(X, y)`` with respect to its weights ``W_i``, and ``G'`` the same
    gradient after every parameter of the layers before ``i`` has taken its
    gradient step ``theta <- theta - learning_rate * dL/dtheta`` (same batch, the
    layers from ``i`` on unchanged). The network, its running statistics and the
    noise of any :class:`NoisyBatchNorm` are the same in both passes and are
    restored afterwards, and on return the layers hold the gradients ``G`` of the
    batch (as after ``network.loss_and_grad(X, y)``).

    Returns
    -------
    list of dict
        One per dense layer after the first: ``{"layer": position among the dense
        layers (from 0), "l2": ||G - G'||, "cosine": <G, G'> / (||G|| ||G'||),
        "grad_norm": ||G||}``.
    """
    learning_rate = check_real(learning_rate, "learning_rate", low=0.0, low_inclusive=False,
                               owner="gradient_shift")
    saved = network.get_weights()
    network.loss_and_grad(X, y)
    entries = [(i, layer, name) for i, layer in enumerate(network.layers)
               for name in layer.params]
    grads = {(i, name): layer.grads[name].copy() for i, layer, name in entries}
    dense = [i for i, layer in enumerate(network.layers) if isinstance(layer, Dense)]
    out = []
    for position, i in enumerate(dense[1:], start=1):
        network.set_weights(saved)
        for j, layer, name in entries:
            if j < i:
                layer.params[name] -= learning_rate * grads[(j, name)]
        network.loss_and_grad(X, y)
        G, G2 = grads[(i, "W")], network.layers[i].grads["W"]
        norm, norm2 = float(np.linalg.norm(G)), float(np.linalg.norm(G2))
        cosine = float((G * G2).sum() / (norm * norm2)) if norm > 0 and norm2 > 0 else math.nan
        out.append({"layer": position, "l2": float(np.linalg.norm(G - G2)), "cosine": cosine,
                    "grad_norm": norm})
    network.set_weights(saved)
    for j, layer, name in entries:
        layer.grads[name][...] = grads[(j, name)]
    return out


def sgd_train(network, X, y, *, learning_rate, batch_size, n_epochs, rng, on_step=None,
              population_data=None, mask_rng=None, drop_last=True):
    """Plain SGD (``theta <- theta - learning_rate * g``) over shuffled mini-batches.

    Before each step, every :class:`NoisyBatchNorm` draws its noise and, when
    ``population_data`` is given, every :class:`PopulationBatchNorm` is set to the
    statistics over it. ``on_step(step, network, X_batch, y_batch)`` is called just
    before the update of each step (from 0); it may return True to stop. Training
    stops as well when the loss stops being finite (divergence). ``rng`` shuffles
    the rows; ``mask_rng`` draws the dropout masks (required with dropout). With
    ``drop_last`` the rows left over after the last full batch of an epoch are
    skipped.

    Returns
    -------
    dict
        ``{"steps": steps taken, "diverged": bool, "losses": list of batch losses}``.
    """
    owner = "sgd_train"
    learning_rate = check_real(learning_rate, "learning_rate", low=0.0, low_inclusive=False,
                               owner=owner)
    batch_size = check_int(batch_size, "batch_size", low=1, owner=owner)
    check_int(n_epochs, "n_epochs", low=0, owner=owner)
    if batch_size < 2 and any(isinstance(layer, BatchNorm) for layer in network.layers):
        raise ValueError(f"The 'batch_size' parameter of {owner} must be >= 2 when the network "
                         f"has batch normalization; got {batch_size}.")
    noisy = [layer for layer in network.layers if isinstance(layer, NoisyBatchNorm)]
    population = any(isinstance(layer, PopulationBatchNorm) for layer in network.layers)
    if population and population_data is None:
        raise ValueError(f"The 'population_data' parameter of {owner} is required for a "
                         "network with PopulationBatchNorm; got None.")
    if network.dropout_layers and mask_rng is None:
        raise ValueError(f"The 'mask_rng' parameter of {owner} is required for a network with "
                         "dropout; got None.")
    (flat, flat_grad), = network.flat_parameters()
    n, step, losses = X.shape[0], 0, []
    last = n - (n % batch_size if drop_last else 0)
    with np.errstate(all="ignore"):
        for _ in range(n_epochs):
            order = rng.permutation(n)
            for start in range(0, last, batch_size):
                rows = order[start:start + batch_size]
                if rows.shape[0] < 2:
                    continue
                for layer in noisy:
                    layer.draw_noise()
                if population:
                    set_population_statistics(network, population_data)
                loss, _ = network.loss_and_grad(X[rows], y[rows], rng=mask_rng)
                losses.append(loss)
                if not (math.isfinite(loss) and np.all(np.isfinite(flat_grad))):
                    return {"steps": step, "diverged": True, "losses": losses}
                if on_step is not None and on_step(step, network, X[rows], y[rows]):
                    flat -= learning_rate * flat_grad
                    return {"steps": step + 1, "diverged": False, "losses": losses}
                flat -= learning_rate * flat_grad
                step += 1
    if population:
        set_population_statistics(network, population_data)
    return {"steps": step, "diverged": False, "losses": losses}


def dropout_variance_ratio(a, keep_prob, W=None):
    """Theoretical test-over-training variance of a batch-norm input after dropout.

    The input is ``h = (a * M / p) @ W`` with ``M ~ Bernoulli(p)`` independent of
    the activations ``a`` (rows are examples; ``W`` the identity when None). In
    training ``Var(h_j) = w_j' C w_j + (1/p - 1) sum_i W_ij**2 E[a_i**2]``, with
    ``C`` the covariance of ``a``; at test (no dropout) only the first term. The
    ratio per column ``j`` is returned, shape ``(n_out,)``; for zero-mean
    uncorrelated ``a`` it is ``p`` (Li et al., 2019). Moments are taken over the
    rows of ``a`` (biased).
    """
    p = check_real(keep_prob, "keep_prob", low=0.0, high=1.0, low_inclusive=False,
                   owner="dropout_variance_ratio")
    a = np.asarray(a, dtype=float)
    if W is None:
        W = np.eye(a.shape[1])
    centred = a - a.mean(axis=0)
    test = ((centred @ W) ** 2).mean(axis=0)  # (n_out,): w' C w
    extra = (1 / p - 1) * ((a * a).mean(axis=0) @ (W * W))  # (n_out,)
    return test / (test + extra)


def variance_ratio(test, train):
    """``Var(test) / Var(train)`` per column and the standard error of its log.

    The two samples are taken as independent; ``se(log s**2) = sqrt((m4 / s**4 - 1)
    / n)`` by the delta method (``m4`` the fourth central moment), so the log-ratio
    has the two in quadrature. Returns ``(ratio, se_log)``, arrays over columns.
    """
    def log_var_se(x):
        c = x - x.mean(axis=0)
        s2 = (c * c).mean(axis=0)
        return s2, np.sqrt(((c**4).mean(axis=0) / s2**2 - 1) / x.shape[0])

    s_test, se_test = log_var_se(np.asarray(test, dtype=float))
    s_train, se_train = log_var_se(np.asarray(train, dtype=float))
    return s_test / s_train, np.sqrt(se_test**2 + se_train**2)


def batch_norm_input_variance_ratios(network, X, rng, *, n_draws=4):
    """The variance shift of every batch-norm layer that dropout precedes, measured.

    For each batch-norm layer with a dropout layer before it (and only dense layers
    between them), the layer's input is computed twice on ``X`` with every layer in
    evaluation mode: without dropout ("test"), and with that one dropout layer
    drawing masks from ``rng`` (``n_draws`` masks per row, "training"). Returns one
    dict per such layer: ``{"index": the batch-norm layer's position among the
    batch-norm layers, "measured": Var(test) / Var(training) per unit, "theory":
    :func:`dropout_variance_ratio` of the activations entering the dropout and the
    dense maps between}``.
    """
    check_int(n_draws, "n_draws", low=1, owner="batch_norm_input_variance_ratios")
    out, h, bn_index = [], X, 0
    dropout_at = None
    for i, layer in enumerate(network.layers):
        if isinstance(layer, Dropout):
            dropout_at, a = i, h
        elif isinstance(layer, BatchNorm):
            if dropout_at is not None and all(isinstance(layer_, Dense) for layer_ in
                                              network.layers[dropout_at + 1:i]):
                between = network.layers[dropout_at + 1:i]
                W = np.eye(a.shape[1])
                for dense in between:
                    W = W @ dense.params["W"]
                dropped = np.concatenate([a * network.layers[dropout_at].draw_mask(a.shape, rng)
                                          / network.layers[dropout_at].keep_prob
                                          for _ in range(n_draws)])
                for dense in between:
                    dropped = dense.forward(dropped)
                ratio, _ = variance_ratio(h, dropped)
                keep = network.layers[dropout_at].keep_prob
                out.append({"index": bn_index, "measured": ratio,
                            "theory": dropout_variance_ratio(a, keep, W)})
            bn_index += 1
            dropout_at = None
        elif not isinstance(layer, Dense):
            dropout_at = None
        h = layer.forward(h, training=False)
    return out
