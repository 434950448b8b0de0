"""Output heads: the map from the last layer's output to a prediction, and its loss.

A head turns the network's raw output ``z`` of shape ``(batch, n_outputs)`` into a
prediction (``predict``) and, given targets, into a scalar loss and its gradient
with respect to ``z`` (``loss_and_grad``). Losses are means over the batch, as
PyTorch's ``reduction="mean"``.
"""

from __future__ import annotations

from .._backend import namespace_of

__all__ = ["MSELoss", "SoftmaxCrossEntropy"]


class MSELoss:
    """Identity output with mean squared error, for regression.

    ``L = (1 / (B K)) * sum_{i,k} (z_ik - y_ik)**2`` for a batch of ``B`` rows and
    ``K`` outputs (``torch.nn.MSELoss``); ``dL/dz = 2 (z - y) / (B K)``.
    """

    #: Name of the metric reported alongside the loss.
    metric_name = "mse"

    def predict(self, z):
        """The prediction: ``z`` itself, shape ``(..., batch, K)``."""
        return z

    def loss_and_grad(self, z, y):
        """Return ``(L, dL/dz)`` for outputs ``z`` and targets ``y``, both ``(B, K)``."""
        residual = z - y  # (B, K)
        loss = float((residual * residual).mean())
        return loss, residual * (2.0 / residual.size)

    def loss(self, z, y):
        """The loss ``L`` alone."""
        residual = z - y
        return float((residual * residual).mean())

    def metric(self, z, y):
        """The mean squared error (equal to the loss for this head)."""
        return self.loss(z, y)


class SoftmaxCrossEntropy:
    """Softmax output with cross-entropy loss, for classification.

    With logits ``z`` of shape ``(B, K)`` and integer labels ``y`` in ``[0, K)``:
    ``L = (1 / B) * sum_i (logsumexp(z_i) - z_{i, y_i})``, computed after
    subtracting each row's maximum so that no exponential overflows; ``dL/dz =
    (softmax(z) - onehot(y)) / B`` (``torch.nn.CrossEntropyLoss``).
    """

    metric_name = "accuracy"

    def predict(self, z):
        """Class probabilities ``softmax(z)`` along the last axis, shape ``(..., B, K)``."""
        xp = namespace_of(z)
        shifted = z - z.max(axis=-1, keepdims=True)
        e = xp.exp(shifted)
        return e / e.sum(axis=-1, keepdims=True)

    def _log_softmax(self, z):
        xp = namespace_of(z)
        shifted = z - z.max(axis=-1, keepdims=True)  # (B, K)
        return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))

    def loss_and_grad(self, z, y):
        """Return ``(L, dL/dz)`` for logits ``z`` ``(B, K)`` and integer labels ``y`` ``(B,)``."""
        xp = namespace_of(z)
        log_p = self._log_softmax(z)  # (B, K)
        rows = xp.arange(z.shape[0])
        loss = float(-log_p[rows, y].mean())
        grad = xp.exp(log_p)  # (B, K): softmax
        grad[rows, y] -= 1
        grad *= 1.0 / z.shape[0]
        return loss, grad

    def loss(self, z, y):
        """The loss ``L`` alone."""
        xp = namespace_of(z)
        return float(-self._log_softmax(z)[xp.arange(z.shape[0]), y].mean())

    def metric(self, z, y):
        """Accuracy: the fraction of rows whose largest logit is the label."""
        return float((z.argmax(axis=-1) == y).mean())
