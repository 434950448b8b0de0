"""Shared fixtures: the backend fixture runs a test on every available backend."""

import numpy as np
import pytest

from ensim._backend import cupy_available, get_namespace


def pytest_collection_modifyitems(config, items):
    if cupy_available():
        return
    skip = pytest.mark.skip(reason="needs CuPy and a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def backend(request):
    """The backend name; the CuPy case skips itself where CuPy or a GPU is missing."""
    return request.param


@pytest.fixture
def xp(backend):
    """The array namespace of :func:`backend`."""
    return get_namespace(backend)


@pytest.fixture
def rng():
    """A fixed-seed NumPy generator for tests that need one."""
    return np.random.default_rng(20261125)
