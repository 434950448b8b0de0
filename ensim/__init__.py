"""ensim: an ensemble-vs-dropout statistics simulator.

Averaging ``k`` models whose errors have variance ``V`` and pairwise covariance
``C`` gives ``MSE_ens = V/k + (k-1)/k * C``. ensim measures that claim, and the
claims built on it about bagging and dropout, by Monte Carlo and by training real
models, and reports every number with its interval and its theory.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
