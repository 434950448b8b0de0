"""Central finite differences for gradient checks (float64 only)."""

import numpy as np


def numerical_gradient(f, array, eps=1e-6):
    """d f() / d array by central differences, perturbing ``array`` in place."""
    grad = np.zeros_like(array)
    flat, flat_grad = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        original = flat[i]
        flat[i] = original + eps
        f_plus = f()
        flat[i] = original - eps
        f_minus = f()
        flat[i] = original
        flat_grad[i] = (f_plus - f_minus) / (2 * eps)
    return grad
