"""ensim: an ensemble-vs-dropout statistics simulator.

Averaging ``k`` models whose errors have variance ``V`` and pairwise covariance
``C`` gives ``MSE_ens = V/k + (k-1)/k * C``. ensim measures that claim, and the
claims built on it about bagging and dropout, by Monte Carlo and by training real
models, and reports every number with its interval and its theory.

Subpackages and modules: :mod:`ensim.nn` (a from-scratch MLP with inverted
dropout and batch normalization), :mod:`ensim.decompose` (measured ``V``, ``C``
and error decompositions), :mod:`ensim.ensembles` (bagged scikit-learn models),
:mod:`ensim.data`, :mod:`ensim.stats`, :mod:`ensim.study` (studies: run one with
:func:`ensim.run`) and :mod:`ensim.plotting`.
"""

import importlib

from .claims import Claim
from .errors import DISTS, EquicorrelatedErrors, ErrorModel, GeneralErrors
from .montecarlo import FewTrialsWarning, SimulationResult, simulate
from .stats import equivalence_test, fit_inverse_k
from .study import Study, StudyResult, run
from .theory import covariance_bounds, ensemble_mse, ensemble_mse_general, forest_variance

__version__ = "0.1.0"

# Names whose modules import scikit-learn are loaded on first use, so that
# ``import ensim`` stays light. (``decompose`` is both a module and its main
# function: use ``from ensim.decompose import decompose``.)
_LAZY = {
    "bias_variance": "ensim.decompose",
    "make_ensemble": "ensim.ensembles",
    "member_predictions": "ensim.ensembles",
    "fit_repeats": "ensim.ensembles",
    "KnownTruth": "ensim.data",
    "DropoutMLPRegressor": "ensim.nn",
    "DropoutMLPClassifier": "ensim.nn",
    "build_mlp": "ensim.nn",
    "train": "ensim.nn",
    "load_dataset": "ensim.data",
}

__all__ = [
    "DISTS",
    "Claim",
    "DropoutMLPClassifier",
    "DropoutMLPRegressor",
    "EquicorrelatedErrors",
    "ErrorModel",
    "FewTrialsWarning",
    "GeneralErrors",
    "KnownTruth",
    "SimulationResult",
    "Study",
    "StudyResult",
    "__version__",
    "bias_variance",
    "build_mlp",
    "covariance_bounds",
    "ensemble_mse",
    "ensemble_mse_general",
    "equivalence_test",
    "fit_inverse_k",
    "fit_repeats",
    "forest_variance",
    "load_dataset",
    "make_ensemble",
    "member_predictions",
    "run",
    "simulate",
    "train",
]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ensim' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
