"""ensim: an ensemble-vs-dropout statistics simulator.

Averaging ``k`` models whose errors have variance ``V`` and pairwise covariance
``C`` gives ``MSE_ens = V/k + (k-1)/k * C``. ensim measures that claim, and the
claims built on it about bagging and dropout, by Monte Carlo and by training real
models, and reports every number with its interval and its theory.
"""

from .claims import Claim
from .errors import DISTS, EquicorrelatedErrors, ErrorModel, GeneralErrors
from .montecarlo import SimulationResult, simulate
from .stats import equivalence_test, fit_inverse_k
from .theory import covariance_bounds, ensemble_mse, ensemble_mse_general, forest_variance

__version__ = "0.1.0"

__all__ = [
    "DISTS",
    "Claim",
    "EquicorrelatedErrors",
    "ErrorModel",
    "GeneralErrors",
    "SimulationResult",
    "__version__",
    "covariance_bounds",
    "ensemble_mse",
    "ensemble_mse_general",
    "equivalence_test",
    "fit_inverse_k",
    "forest_variance",
    "simulate",
]
