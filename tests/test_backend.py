"""ensim._backend: the namespace of an array and of a random generator."""

import numpy as np

from ensim._backend import (
    array_namespace,
    generator_namespace,
    get_namespace,
    namespace_of,
)


def test_namespace_of_one_array_matches_array_namespace(xp):
    x = xp.ones(3)
    assert namespace_of(x) is array_namespace(x) is xp
    # A value that is not a NumPy array takes the general lookup: a list is NumPy's.
    assert namespace_of([1.0, 2.0]) is np


def test_generator_namespace(xp, backend):
    rng = xp.random.default_rng(0)
    assert generator_namespace(rng) is get_namespace(backend)
    # The namespace it names draws arrays of its own kind.
    assert namespace_of(generator_namespace(rng).ones(2)) is xp
