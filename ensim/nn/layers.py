"""Layers of the multilayer perceptron, each with an explicit forward and backward pass.

Every layer maps a batch ``x`` of shape ``(batch, n_in)`` to ``(batch, n_out)`` with
``forward(x, training=...)`` and, given the gradient of the loss with respect to
its output, returns the gradient with respect to its input with ``backward``.
Layers with parameters keep them in ``params`` and their gradients, filled by
``backward``, in ``grads`` (same keys, same shapes). Arrays live in one namespace,
NumPy or CuPy, chosen by the arrays a layer is built with.

In inference mode (``training=False``) every layer also accepts inputs with extra
leading axes, ``(..., batch, n_in)``, which is how a stack of thinned sub-networks
is evaluated in one pass (:meth:`ensim.nn.Network.predict_thinned`).
"""

from __future__ import annotations

import math

import numpy as np

from .._backend import generator_namespace, namespace_of
from .._validation import check_choice, check_float_dtype, check_int, check_real

__all__ = ["BatchNorm", "Dense", "Dropout", "GaussianDropout", "Layer", "ReLU", "Sigmoid", "Tanh"]


class Layer:
    """Base class: a layer with no parameters that passes its input through."""

    #: Learnable arrays by name; empty for layers without parameters.
    params: dict
    #: Gradients of the loss with respect to ``params``, filled by ``backward``.
    grads: dict

    def __init__(self):
        self.params = {}
        self.grads = {}

    def forward(self, x, *, training=False):
        """Return the layer's output for input ``x``."""
        return x

    def backward(self, grad_out):
        """Return the gradient with respect to the input of the last ``forward``.

        Layers that cache their input or output for the backward pass keep that
        cache only from a forward pass in training mode; an inference pass clears
        it, and ``backward`` without a training pass since raises ``RuntimeError``.
        """
        return grad_out

    def __repr__(self):
        return f"{type(self).__name__}()"


class Dense(Layer):
    """Affine layer ``y = x W + b``.

    Parameters
    ----------
    n_in, n_out : int
        Widths of the input and the output.
    init : {"he", "glorot"}
        ``"he"``: ``W ~ Normal(0, 2 / n_in)``, for ReLU layers. ``"glorot"``:
        ``W ~ Uniform(-a, a)`` with ``a = sqrt(6 / (n_in + n_out))``, for tanh,
        sigmoid and output layers. Biases start at zero.
    rng : numpy.random.Generator
        The generator the initial weights are drawn from. The draw is made with
        NumPy on every backend, so a seed gives the same network on NumPy and CuPy.
    dtype : data type, default float64
    xp : module, default numpy
        The array namespace (``numpy`` or ``cupy``) the parameters live in.

    Attributes
    ----------
    params : dict
        ``"W"`` of shape ``(n_in, n_out)``; ``"b"`` of shape ``(n_out,)``.
    needs_input_grad : bool
        When False, ``backward`` skips the product ``grad_out @ W.T`` and returns
        None; a network sets it False on this layer when no layer before it has
        parameters (so no gradient is needed below it), True otherwise.
    """

    def __init__(self, n_in, n_out, *, init="he", rng, dtype=np.float64, xp=np):
        super().__init__()
        self.n_in = check_int(n_in, "n_in", low=1, owner="Dense")
        self.n_out = check_int(n_out, "n_out", low=1, owner="Dense")
        self.init = check_choice(init, "init", ("he", "glorot"), owner="Dense")
        dtype = check_float_dtype(dtype, "dtype", owner="Dense")
        if not isinstance(rng, np.random.Generator):
            raise TypeError("The 'rng' parameter of Dense must be a numpy.random.Generator "
                            f"(the source of the initial weights); got {type(rng).__name__}.")
        if init == "he":
            W = rng.standard_normal((n_in, n_out)) * math.sqrt(2.0 / n_in)
        else:
            bound = math.sqrt(6.0 / (n_in + n_out))
            W = rng.uniform(-bound, bound, size=(n_in, n_out))
        self.params = {"W": xp.asarray(W, dtype=dtype),  # (n_in, n_out)
                       "b": xp.zeros(n_out, dtype=dtype)}  # (n_out,)
        self.grads = {name: xp.zeros_like(value) for name, value in self.params.items()}
        self.needs_input_grad = True
        self._x = None

    def forward(self, x, *, training=False):
        if x.shape[-1] != self.n_in:
            raise ValueError(f"The input of Dense({self.n_in}, {self.n_out}) must have "
                             f"{self.n_in} columns; got shape {tuple(x.shape)}.")
        if training and x.ndim != 2:
            raise ValueError(f"Dense({self.n_in}, {self.n_out}) needs a 2-D batch in training "
                             f"mode; got shape {tuple(x.shape)}.")
        W, b = self.params["W"], self.params["b"]
        self._x = x if training else None
        if x.ndim == 2:
            out = x @ W  # (batch, n_out)
            out += b
            return out
        flat = x.reshape(-1, self.n_in) @ W  # (prod(leading), n_out)
        flat += b
        return flat.reshape(*x.shape[:-1], self.n_out)  # (..., batch, n_out)

    def backward(self, grad_out):
        x = _training_cache(self, self._x)  # (batch, n_in)
        namespace_of(x).matmul(x.T, grad_out, out=self.grads["W"])  # (n_in, n_out)
        grad_out.sum(axis=0, out=self.grads["b"])  # (n_out,)
        if not self.needs_input_grad:
            return None
        return grad_out @ self.params["W"].T  # (batch, n_in)

    def __repr__(self):
        return f"Dense({self.n_in}, {self.n_out}, init={self.init!r})"


class ReLU(Layer):
    """Rectified linear unit, ``y = max(x, 0)``; its gradient at 0 is taken as 0."""

    def __init__(self):
        super().__init__()
        self._active = None

    def forward(self, x, *, training=False):
        y = namespace_of(x).maximum(x, 0)  # (batch, n)
        self._active = y > 0 if training else None  # (batch, n)
        return y

    def backward(self, grad_out):
        return grad_out * _training_cache(self, self._active)


class Tanh(Layer):
    """Hyperbolic tangent, with ``dy/dx = 1 - y**2``."""

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x, *, training=False):
        y = namespace_of(x).tanh(x)
        self._y = y if training else None
        return y

    def backward(self, grad_out):
        y = _training_cache(self, self._y)
        return grad_out * (1 - y * y)


class Sigmoid(Layer):
    """Logistic function ``y = 1 / (1 + exp(-x))``, with ``dy/dx = y (1 - y)``.

    Computed as ``(1 + tanh(x / 2)) / 2``, which never overflows.
    """

    def __init__(self):
        super().__init__()
        self._y = None

    def forward(self, x, *, training=False):
        xp = namespace_of(x)
        y = 0.5 * (1 + xp.tanh(0.5 * x))
        self._y = y if training else None
        return y

    def backward(self, grad_out):
        y = _training_cache(self, self._y)
        return grad_out * y * (1 - y)


class Dropout(Layer):
    """Inverted dropout with keep probability ``keep_prob``.

    In training, each unit of each example is kept with probability ``p =
    keep_prob``: a mask ``M ~ Bernoulli(p)`` of the input's shape is drawn, and the
    output is ``y = x * M / p``, so that ``E[y] = x``. At inference the layer is the
    identity (the weight-scaled full network). The backward pass sends gradients
    only through the kept units, scaled by the same ``1 / p``.

    A mask can also be given to ``forward``, in training or inference mode, to run
    one chosen thinned sub-network deterministically: a mask of shape ``(n,)``
    drops the same units for every example, a mask of shape ``(batch, n)`` is
    applied example by example.

    Parameters
    ----------
    keep_prob : float in (0, 1]
        Probability that a unit is kept (the primer's ``p``; PyTorch's ``p`` is
        ``1 - keep_prob``). ``keep_prob = 1`` disables dropout.

    Attributes
    ----------
    mask : array of bool or None
        The mask of the last training or masked forward pass, 1 where a unit was
        kept.
    """

    def __init__(self, keep_prob):
        super().__init__()
        self.keep_prob = check_real(keep_prob, "keep_prob", low=0.0, high=1.0,
                                    low_inclusive=False, owner="Dropout")
        self.mask = None

    def draw_mask(self, shape, rng):
        """Draw a boolean mask of ``shape`` with ``P(True) = keep_prob`` from ``rng``.

        A NumPy generator, whatever its bit generator, supplies 32 uniform random
        bits per entry, kept when below ``t = round(keep_prob * 2**32)``: ``P(True)
        = t / 2**32``, which is ``keep_prob`` to within ``2**-33`` (all entries are
        kept when ``t = 2**32``). A CuPy generator compares uniform floats with
        ``keep_prob``.
        """
        threshold = _keep_threshold(self.keep_prob)
        if threshold == 2**32:
            return generator_namespace(rng).ones(shape, dtype=bool)
        if isinstance(rng, np.random.Generator):
            return (_uniform_uint32(rng, math.prod(shape)) < np.uint32(threshold)).reshape(shape)
        return rng.random(shape) < self.keep_prob

    def forward(self, x, *, training=False, mask=None, rng=None):
        """Apply the mask to ``x``.

        Parameters
        ----------
        x : array of shape (batch, n)
        training : bool
            Draw a fresh mask from ``rng`` when True and no ``mask`` is given.
        mask : array of shape (n,) or (batch, n), optional
            A 0/1 (or boolean) mask to apply instead of drawing one.
        rng : numpy.random.Generator or cupy.random.Generator, optional
            Required when a mask has to be drawn.
        """
        if mask is not None:
            self.mask = self._check_mask(mask, x)  # (batch, n) or (n,)
        elif training and self.keep_prob < 1:
            if rng is None:
                raise ValueError("Dropout needs a random generator 'rng' to draw a mask in "
                                 "training mode; got None.")
            self.mask = self.draw_mask(x.shape, rng)  # (batch, n)
        else:
            self.mask = None
            return x
        y = x * self.mask  # (batch, n): A * M
        y *= 1.0 / self.keep_prob  # A * M / p
        return y

    def backward(self, grad_out):
        if self.mask is None:
            return grad_out
        grad_in = grad_out * self.mask
        grad_in *= 1.0 / self.keep_prob
        return grad_in

    def _check_mask(self, mask, x):
        xp = namespace_of(x)
        mask = xp.asarray(mask)
        if mask.shape not in (x.shape, x.shape[-1:]):
            raise ValueError(f"The 'mask' parameter of Dropout must have shape {tuple(x.shape)} "
                             f"or {tuple(x.shape[-1:])}; got {tuple(mask.shape)}.")
        if bool(xp.any((mask != 0) & (mask != 1))):
            raise ValueError("The 'mask' parameter of Dropout must hold only 0 and 1.")
        return mask != 0

    def __repr__(self):
        return f"Dropout(keep_prob={self.keep_prob:g})"


#: Defaults of the two running-statistics conventions:
#: (momentum, eps, running variance unbiased?). PyTorch's ``momentum`` weighs the
#: new batch, Keras's weighs the old running value.
_BATCHNORM_CONVENTIONS = {"pytorch": (0.1, 1e-5, True), "keras": (0.99, 1e-3, False)}


class BatchNorm(Layer):
    """Batch normalization over the batch axis of a ``(batch, n)`` input.

    Training: ``mu_B`` and the biased ``sigma2_B`` are the batch mean and variance
    of each feature, ``x_hat = (x - mu_B) / sqrt(sigma2_B + eps)`` and
    ``y = gamma * x_hat + beta``. The running statistics are updated at each
    training step and used instead of the batch statistics at inference.

    Parameters
    ----------
    n_features : int
        Number of features ``n``.
    convention : {"pytorch", "keras"}
        How the running statistics are kept. ``"pytorch"`` (as
        ``torch.nn.BatchNorm1d``): ``running = (1 - momentum) * running + momentum *
        batch`` with default ``momentum = 0.1``, ``eps = 1e-5``, and the *unbiased*
        batch variance (times ``m / (m - 1)`` for a batch of ``m``) in the running
        variance. ``"keras"`` (as ``keras.layers.BatchNormalization``): ``running =
        momentum * running + (1 - momentum) * batch`` with default ``momentum =
        0.99``, ``eps = 1e-3``, and the biased batch variance.
    momentum : float in [0, 1], optional
        In the meaning of the chosen convention; its default when None.
    eps : float > 0, optional
        Added to the variance; the convention's default when None.
    dtype : data type, default float64
    xp : module, default numpy

    Attributes
    ----------
    params : dict
        ``"gamma"`` (ones) and ``"beta"`` (zeros), each of shape ``(n,)``.
    running_mean, running_var : arrays of shape (n,)
        Start at 0 and 1.
    """

    def __init__(self, n_features, *, convention="pytorch", momentum=None, eps=None,
                 dtype=np.float64, xp=np):
        super().__init__()
        self.n_features = check_int(n_features, "n_features", low=1, owner="BatchNorm")
        self.convention = check_choice(convention, "convention", tuple(_BATCHNORM_CONVENTIONS),
                                       owner="BatchNorm")
        default_momentum, default_eps, self.unbiased_running_var = _BATCHNORM_CONVENTIONS[convention]
        self.momentum = check_real(default_momentum if momentum is None else momentum,
                                   "momentum", low=0.0, high=1.0, owner="BatchNorm")
        self.eps = check_real(default_eps if eps is None else eps, "eps", low=0.0,
                              low_inclusive=False, owner="BatchNorm")
        self.params = {"gamma": xp.ones(n_features, dtype=dtype),  # (n,)
                       "beta": xp.zeros(n_features, dtype=dtype)}  # (n,)
        self.grads = {name: xp.zeros_like(value) for name, value in self.params.items()}
        self.running_mean = xp.zeros(n_features, dtype=dtype)  # (n,)
        self.running_var = xp.ones(n_features, dtype=dtype)  # (n,)
        self._x_hat = self._inv_std = None

    def forward(self, x, *, training=False):
        if x.shape[-1] != self.n_features:
            raise ValueError(f"The input of BatchNorm({self.n_features}) must have "
                             f"{self.n_features} columns; got shape {tuple(x.shape)}.")
        gamma, beta = self.params["gamma"], self.params["beta"]
        if not training:
            inv_std = 1 / namespace_of(x).sqrt(self.running_var + self.eps)  # (n,)
            self._x_hat = None
            return (x - self.running_mean) * (gamma * inv_std) + beta
        m = x.shape[0]
        if x.ndim != 2 or m < 2:
            raise ValueError("BatchNorm needs a 2-D batch of at least 2 examples in training "
                             f"mode; got shape {tuple(x.shape)}.")
        mu = x.sum(axis=0)  # (n,)
        mu *= 1.0 / m
        x_hat = x - mu  # (batch, n), centred for now
        var = (x_hat * x_hat).sum(axis=0)  # (n,)
        var *= 1.0 / m  # biased
        inv_std = (var + self.eps) ** -0.5  # (n,)
        x_hat *= inv_std  # (batch, n)
        self._x_hat, self._inv_std = x_hat, inv_std
        self._update_running(mu, var, m)
        y = x_hat * gamma
        y += beta
        return y

    def _update_running(self, mu, var, m):
        update_running_statistics(self, mu, var, m)

    def backward(self, grad_out):
        gamma, inv_std = self.params["gamma"], self._inv_std
        x_hat = _training_cache(self, self._x_hat)
        self.grads["beta"][...] = grad_out.sum(axis=0)  # (n,)
        self.grads["gamma"][...] = (grad_out * x_hat).sum(axis=0)  # (n,)
        # dL/dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat)), with g = gamma * grad_out
        m = grad_out.shape[0]
        grad_in = x_hat * (self.grads["gamma"] * (-1.0 / m))  # (batch, n)
        grad_in += grad_out
        grad_in -= self.grads["beta"] * (1.0 / m)
        grad_in *= gamma * inv_std
        return grad_in

    def __repr__(self):
        return f"BatchNorm({self.n_features}, convention={self.convention!r})"


def _keep_threshold(keep_prob):
    """``round(keep_prob * 2**32)``: a 32-bit uniform integer below it has probability
    within ``2**-33`` of ``keep_prob`` (the product is exact, a power of two)."""
    return round(keep_prob * 2.0**32)


#: Bit generators whose ``random_raw`` words carry 64 random bits (MT19937's carry 32).
_RAW_64_BIT = tuple(getattr(np.random, name) for name in ("PCG64", "PCG64DXSM", "Philox", "SFC64")
                    if hasattr(np.random, name))


def _uniform_uint32(rng, n):
    """``n`` independent uniform 32-bit integers from the NumPy generator ``rng``.

    For the bit generators known to give 64 random bits per raw word, both halves
    of ``n / 2`` raw words are used (about twice as fast as ``Generator.integers``);
    any other bit generator, MT19937 included, goes through ``Generator.integers``,
    which draws 32 bits at a time whatever the word size.
    """
    if type(rng.bit_generator) in _RAW_64_BIT:
        return rng.bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]  # (n,)
    return rng.integers(0, 2**32, size=n, dtype=np.uint32)  # (n,)


def _training_cache(layer, cache):
    """Return ``cache`` or raise: ``layer.backward`` needs a training forward pass first."""
    if cache is None:
        raise RuntimeError(f"{type(layer).__name__}.backward needs a forward pass in training "
                           "mode first (an inference pass keeps nothing for backward).")
    return cache


class GaussianDropout(Layer):
    """Multiplicative Gaussian noise with the variance of inverted dropout.

    In training, each unit of each example is multiplied by its own ``E ~ N(1,
    sigma**2)`` with ``sigma**2 = (1 - p) / p`` and ``p = keep_prob``: the mean and
    variance of the inverted-dropout factor ``M / p`` (Srivastava et al., 2014,
    section 10). So ``E[y] = x`` and, at inference, the layer is the identity, as
    :class:`Dropout` is. The backward pass multiplies the gradient by the same
    noise.

    The noise is an explicit array, as a dropout mask is: :meth:`draw_noise` draws
    it from a passed-in generator, ``forward(x, noise=E)`` applies a given one (in
    training or inference mode), and the last one applied is kept in
    :attr:`noise`, so a training step can be replayed exactly. A network built by
    ``build_mlp(..., dropout="gaussian")`` draws the noise from the training mask
    stream. Thinned sub-networks (:meth:`ensim.nn.Network.sample_masks`) are
    Bernoulli masks and are not defined for this layer.

    Parameters
    ----------
    keep_prob : float in (0, 1]
        The keep probability of the Bernoulli dropout whose variance the noise
        has; ``keep_prob = 1`` means no noise.

    Attributes
    ----------
    noise : array or None
        The multiplicative noise of the last training or noisy forward pass.
    std : float
        ``sqrt((1 - keep_prob) / keep_prob)``.
    """

    def __init__(self, keep_prob):
        super().__init__()
        self.keep_prob = check_real(keep_prob, "keep_prob", low=0.0, high=1.0,
                                    low_inclusive=False, owner="GaussianDropout")
        self.std = math.sqrt((1.0 - self.keep_prob) / self.keep_prob)
        self.noise = None

    def draw_noise(self, shape, rng):
        """Draw ``1 + std * Z`` of ``shape``, ``Z`` standard normal, from ``rng``.

        A NumPy generator draws in float64 (so a seed gives the same noise on
        every backend when the draw is made with NumPy); a CuPy generator draws on
        the device.
        """
        z = rng.standard_normal(shape)
        z *= self.std
        z += 1.0
        return z

    def forward(self, x, *, training=False, noise=None, rng=None):
        """Multiply ``x`` by the noise.

        Parameters
        ----------
        x : array of shape (batch, n)
        training : bool
            Draw fresh noise from ``rng`` when True and no ``noise`` is given.
        noise : array of shape (n,) or (batch, n), optional
            Finite multiplicative noise to apply instead of drawing it.
        rng : numpy.random.Generator or cupy.random.Generator, optional
            Required when noise has to be drawn.
        """
        xp = namespace_of(x)
        if noise is not None:
            self.noise = self._check_noise(noise, x)
        elif training and self.keep_prob < 1:
            if rng is None:
                raise ValueError("GaussianDropout needs a random generator 'rng' to draw noise "
                                 "in training mode; got None.")
            self.noise = xp.asarray(self.draw_noise(x.shape, rng), dtype=x.dtype)  # (batch, n)
        else:
            self.noise = None
            return x
        return x * self.noise  # (batch, n)

    def backward(self, grad_out):
        if self.noise is None:
            return grad_out
        return grad_out * self.noise

    def _check_noise(self, noise, x):
        xp = namespace_of(x)
        noise = xp.asarray(noise, dtype=x.dtype)
        if noise.shape not in (x.shape, x.shape[-1:]):
            raise ValueError(f"The 'noise' parameter of GaussianDropout must have shape "
                             f"{tuple(x.shape)} or {tuple(x.shape[-1:])}; got {tuple(noise.shape)}.")
        if not bool(xp.all(xp.isfinite(noise))):
            raise ValueError("The 'noise' parameter of GaussianDropout must hold only finite values.")
        return noise

    def __repr__(self):
        return f"GaussianDropout(keep_prob={self.keep_prob:g})"


def update_running_statistics(layer, mu, var, m):
    """Fold a batch's mean ``mu`` and biased variance ``var`` (``m`` rows) into a batch-norm
    layer's running statistics, in place, by its convention (PyTorch or Keras momentum,
    unbiased running variance or not). Shared by :class:`BatchNorm` and the stacked
    networks' batch norm, whose statistics carry a leading member axis."""
    if layer.unbiased_running_var:
        var = var * (m / (m - 1))
    weight_new = layer.momentum if layer.convention == "pytorch" else 1 - layer.momentum
    layer.running_mean *= 1 - weight_new
    layer.running_mean += weight_new * mu
    layer.running_var *= 1 - weight_new
    layer.running_var += weight_new * var
