"""NumPy / CuPy selection: one code path for both.

Array code asks for its namespace once (``xp = get_namespace(backend)`` for code
that creates arrays, ``xp = array_namespace(*arrays)`` for code that receives
them, ``namespace_of(x)`` for one array on a hot path, ``generator_namespace(rng)``
for a random generator) and then calls only ``xp.*``. CuPy is imported lazily, on
first request, so NumPy users never pay for it and never need it installed.
Arrays go back to NumPy once, at the edge (SciPy, statsmodels, scikit-learn,
matplotlib), through :func:`to_numpy`.
"""

from __future__ import annotations

import functools

import numpy as np

from ._validation import check_choice

__all__ = [
    "BACKENDS", "array_namespace", "cupy_available", "generator_namespace", "get_namespace",
    "namespace_of", "to_numpy",
]

BACKENDS = ("numpy", "cupy")


def get_namespace(backend: str = "numpy"):
    """Return the array module for ``backend`` (``"numpy"`` or ``"cupy"``).

    Raises
    ------
    ValueError
        For an unknown backend name.
    RuntimeError
        When ``"cupy"`` is asked for and CuPy or a usable CUDA device is missing;
        the message says how to install it.
    """
    check_choice(backend, "backend", BACKENDS)
    if backend == "numpy":
        return np
    return _cupy()


@functools.lru_cache(maxsize=1)
def _cupy():
    try:
        import cupy
    except ImportError as exc:
        raise RuntimeError(
            "backend='cupy' needs CuPy, which is not installed. Install the wheel "
            "matching your CUDA driver: pip install 'ensim-stats[gpu]' (CUDA 12) or "
            "pip install 'ensim-stats[gpu-cuda13]' (CUDA 13); from a checkout, "
            "pip install '.[gpu]' or '.[gpu-cuda13]'.") from exc
    try:
        n_devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA raises its own error types
        raise RuntimeError(f"backend='cupy' needs a CUDA GPU, but CUDA reported: {exc}") from exc
    if n_devices < 1:
        raise RuntimeError("backend='cupy' needs a CUDA GPU, and none was found.")
    return cupy


def cupy_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    try:
        _cupy()
    except RuntimeError:
        return False
    return True


def array_namespace(*arrays):
    """The namespace (``numpy`` or ``cupy``) of the given arrays."""
    from array_api_compat import is_cupy_array

    if any(is_cupy_array(a) for a in arrays):
        return _cupy()
    return np


def namespace_of(x):
    """The namespace of one array ``x``: :func:`array_namespace` with a fast path.

    A NumPy array is answered by one ``isinstance`` check, without the general
    lookup: the network's layers, losses and optimizers ask once per call.
    """
    if isinstance(x, np.ndarray):
        return np
    return array_namespace(x)


def generator_namespace(rng):
    """The namespace (``numpy`` or ``cupy``) a random generator draws arrays in."""
    if isinstance(rng, np.random.Generator):
        return np
    return _cupy()


def to_numpy(array) -> np.ndarray:
    """Return ``array`` as a NumPy array, copying it off the GPU when needed."""
    if hasattr(array, "get") and type(array).__module__.startswith("cupy"):
        return array.get()
    return np.asarray(array)
