"""Optimizers and learning-rate schedules.

An optimizer updates a fixed list of ``(param, grad)`` array pairs in place,
``step(pairs, lr)``, following PyTorch's update rules so that results can be
compared with ``torch.optim.SGD`` and ``torch.optim.Adam``. A schedule maps the
epoch number (from 0) to the learning rate used throughout that epoch.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .._backend import namespace_of
from .._validation import check_int, check_real

__all__ = ["SGD", "Adam", "ConstantLR", "ExponentialLR", "StepLR"]

#: Elements of each array that a NumPy optimizer step updates at a time: every pass
#: of the step runs over one such slice of the parameters, gradients and state while
#: it is in cache (measured 1.2-1.3x faster than whole-array passes for a network of
#: 670,000 parameters, ``docs/benchmarks-nn.md``). The arithmetic of each element is
#: the same either way, so the results are too, bit for bit.
_STEP_SLICE = 2**16


def _slices(*arrays):
    """The arrays (of one shape) as matching flat slices of ``_STEP_SLICE`` elements.

    NumPy arrays that are all C-contiguous and larger than one slice are cut; any
    other arrays (CuPy's, which gain nothing from it, or strided ones) come whole.
    """
    first = arrays[0]
    if (type(first) is not np.ndarray or first.size <= _STEP_SLICE
            or not all(a.flags.c_contiguous for a in arrays)):
        yield arrays
        return
    flats = [a.reshape(-1) for a in arrays]  # views: the arrays are contiguous
    for start in range(0, first.size, _STEP_SLICE):
        yield tuple(f[start:start + _STEP_SLICE] for f in flats)


class SGD:
    """Stochastic gradient descent with optional (Nesterov) momentum.

    With gradient ``g``, velocity ``v`` (starting at 0), momentum ``mu`` and
    learning rate ``lr``: ``v <- mu v + g``; then ``theta <- theta - lr v``, or with
    Nesterov ``theta <- theta - lr (g + mu v)`` (``torch.optim.SGD``, dampening 0).

    Parameters
    ----------
    momentum : float in [0, 1)
    nesterov : bool
        Needs ``momentum > 0``.
    """

    def __init__(self, *, momentum=0.0, nesterov=False):
        self.momentum = check_real(momentum, "momentum", low=0.0, high=1.0,
                                   high_inclusive=False, owner="SGD")
        if nesterov and self.momentum == 0:
            raise ValueError("The 'nesterov' parameter of SGD needs momentum > 0; got momentum=0.")
        self.nesterov = bool(nesterov)
        self._velocity = None

    def step(self, pairs, lr):
        """Update every ``param`` in place from its ``grad``."""
        if self.momentum == 0:
            for param, grad in pairs:
                for p, g in _slices(param, grad):
                    p -= lr * g
            return
        first = self._velocity is None
        if first:
            self._velocity = [grad.copy() for _, grad in pairs]  # v_1 = g_1, as PyTorch
            self._work = [grad.copy() for _, grad in pairs]
        for v_all, work_all, (param_all, grad_all) in zip(self._velocity, self._work, pairs):
            for v, work, param, grad in _slices(v_all, work_all, param_all, grad_all):
                if not first:
                    v *= self.momentum
                    v += grad
                if self.nesterov:  # work = g + mu v
                    namespace_of(v).multiply(v, self.momentum, out=work)
                    work += grad
                    work *= lr
                else:
                    namespace_of(v).multiply(v, lr, out=work)
                param -= work


class Adam:
    """Adam (Kingma and Ba, 2015), as ``torch.optim.Adam`` without weight decay.

    ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g**2``, and at step ``t``
    ``theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)`` with the bias-corrected
    ``m_hat = m / (1 - b1**t)`` and ``v_hat = v / (1 - b2**t)``.

    Parameters
    ----------
    beta1, beta2 : float in [0, 1)
    eps : float > 0
    """

    def __init__(self, *, beta1=0.9, beta2=0.999, eps=1e-8):
        self.beta1 = check_real(beta1, "beta1", low=0.0, high=1.0, high_inclusive=False, owner="Adam")
        self.beta2 = check_real(beta2, "beta2", low=0.0, high=1.0, high_inclusive=False, owner="Adam")
        self.eps = check_real(eps, "eps", low=0.0, low_inclusive=False, owner="Adam")
        self._t = 0
        self._m = self._v = None

    def step(self, pairs, lr):
        """Update every ``param`` in place from its ``grad``."""
        if self._m is None:
            self._m = [grad * 0 for _, grad in pairs]
            self._v = [grad * 0 for _, grad in pairs]
        self._t += 1
        b1, b2 = self.beta1, self.beta2
        step_size = lr / (1 - b1**self._t)
        root_correction = math.sqrt(1 - b2**self._t)
        for m_all, v_all, (param_all, grad_all) in zip(self._m, self._v, pairs):
            for m, v, param, grad in _slices(m_all, v_all, param_all, grad_all):
                m *= b1
                m += (1 - b1) * grad
                v *= b2
                v += (1 - b2) * (grad * grad)
                # sqrt(v_hat) + eps = (sqrt(v) / root_correction) + eps
                denom = (v ** 0.5) * (1 / root_correction)
                denom += self.eps
                param -= step_size * (m / denom)


@dataclasses.dataclass(frozen=True)
class ConstantLR:
    """The learning rate ``lr`` at every epoch."""

    lr: float

    def __post_init__(self):
        check_real(self.lr, "lr", low=0.0, low_inclusive=False, owner=type(self).__name__)

    def __call__(self, epoch):
        return self.lr


@dataclasses.dataclass(frozen=True)
class StepLR:
    """``lr * gamma ** floor(epoch / step_size)``, as ``torch.optim.lr_scheduler.StepLR``."""

    lr: float
    step_size: int = 10
    gamma: float = 0.1

    def __post_init__(self):
        check_real(self.lr, "lr", low=0.0, low_inclusive=False, owner="StepLR")
        check_int(self.step_size, "step_size", low=1, owner="StepLR")
        check_real(self.gamma, "gamma", low=0.0, high=1.0, low_inclusive=False, owner="StepLR")

    def __call__(self, epoch):
        return self.lr * self.gamma ** (epoch // self.step_size)


@dataclasses.dataclass(frozen=True)
class ExponentialLR:
    """``lr * gamma ** epoch``, as ``torch.optim.lr_scheduler.ExponentialLR``."""

    lr: float
    gamma: float = 0.95

    def __post_init__(self):
        check_real(self.lr, "lr", low=0.0, low_inclusive=False, owner="ExponentialLR")
        check_real(self.gamma, "gamma", low=0.0, high=1.0, low_inclusive=False, owner="ExponentialLR")

    def __call__(self, epoch):
        return self.lr * self.gamma**epoch
