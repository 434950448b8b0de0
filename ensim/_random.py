"""Seeds, streams and generators.

Every stochastic function in ensim takes one ``rng`` argument: an ``int``, a
:class:`numpy.random.SeedSequence`, a :class:`numpy.random.Generator` or ``None``.
It is normalised once, with :func:`as_seed_sequence`, into a ``SeedSequence``
from which every independent stream is derived by its *key*: block ``i`` of a
Monte Carlo run, member ``j`` of an ensemble, or a sweep cell named by its
parameters. Keys make a stream depend only on *what* it is for, never on the
order in which work happens, so results are the same for any chunking, number of
jobs or scheduler. Seeds are never combined as ``seed + i``.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import reprlib

import numpy as np

__all__ = [
    "as_seed_sequence",
    "child_seed",
    "key_from_name",
    "key_from_params",
    "make_generator",
    "numpy_generator",
]


def as_seed_sequence(rng=None) -> np.random.SeedSequence:
    """Normalise ``rng`` into a :class:`~numpy.random.SeedSequence`.

    Parameters
    ----------
    rng : None, int, sequence of int, SeedSequence or Generator
        ``None`` draws fresh entropy from the operating system; an ``int`` (>= 0),
        a list of them, or a ``SeedSequence`` is used as is; a ``Generator`` gives up 128 bits of
        its stream as the entropy, so the same generator state gives the same
        result and the generator moves on.
    """
    if rng is None or isinstance(rng, np.random.SeedSequence):
        return np.random.SeedSequence() if rng is None else rng
    if isinstance(rng, np.random.Generator):
        return np.random.SeedSequence(rng.integers(0, 2**63, size=2, dtype=np.uint64).tolist())
    if _is_int(rng):
        if rng < 0:
            raise ValueError(f"The 'rng' parameter must be a non-negative integer seed; got {rng}.")
        return np.random.SeedSequence(int(rng))
    if isinstance(rng, (list, tuple)):
        kind = type(rng).__name__
        if not rng:
            raise ValueError(f"The 'rng' parameter must be {_VALID_RNG}; got an empty {kind}.")
        for x in rng:
            if not _is_int(x):
                raise TypeError(f"The 'rng' parameter must be {_VALID_RNG}; got the {kind} "
                                f"{reprlib.repr(rng)}, whose entry {x!r} is not an integer.")
            if x < 0:
                raise ValueError(f"The 'rng' parameter must be {_VALID_RNG}; got the {kind} "
                                 f"{reprlib.repr(rng)}, whose entry {x} is negative.")
        return np.random.SeedSequence([int(x) for x in rng])
    raise TypeError(f"The 'rng' parameter must be {_VALID_RNG}; got {reprlib.repr(rng)} "
                    f"of type {type(rng).__name__}.")


_VALID_RNG = ("None, a non-negative int, a non-empty list of non-negative ints, a "
              "numpy.random.SeedSequence or a numpy.random.Generator")


def _is_int(x) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, (bool, np.bool_))


def child_seed(seed: np.random.SeedSequence, *key: int) -> np.random.SeedSequence:
    """The child of ``seed`` named by ``key`` (one or more non-negative ints).

    ``child_seed(s, i)`` is exactly ``s.spawn(i + 1)[i]`` but costs O(1) and does
    not advance ``s``: children are addressed, not counted.
    """
    return np.random.SeedSequence(seed.entropy, spawn_key=tuple(seed.spawn_key) + tuple(key),
                                  pool_size=seed.pool_size)


def key_from_params(params: dict) -> tuple[int, ...]:
    """A stream key derived from a mapping of parameters (order-insensitive).

    The parameters are written as canonical JSON and hashed (BLAKE2b), so the key
    depends on the values alone: adding a cell to a grid changes no other cell.
    """
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
    return tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))


def key_from_name(name: str) -> tuple[int, ...]:
    """A stream key derived from a name (``"data"``, ``"init"``): BLAKE2b of its UTF-8 bytes."""
    if not isinstance(name, str):
        raise TypeError(f"A stream name must be a string; got {name!r} of type "
                        f"{type(name).__name__}.")
    digest = hashlib.blake2b(name.encode(), digest_size=16, person=b"ensim-stream").digest()
    return tuple(int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4))


def numpy_generator(seed: np.random.SeedSequence) -> np.random.Generator:
    """A NumPy generator on SFC64, the fastest bit generator NumPy ships."""
    return np.random.Generator(np.random.SFC64(seed))


def make_generator(seed: np.random.SeedSequence, xp=np):
    """A generator for namespace ``xp`` seeded from ``seed``.

    NumPy gets :func:`numpy_generator`; CuPy gets ``cupy.random.default_rng``
    seeded with 64 bits of ``seed``'s state. Both expose ``standard_normal``,
    ``standard_exponential``, ``standard_gamma`` and ``random``, which are all the
    laws in :mod:`ensim.errors` use. The two backends give different numbers for
    the same seed; CuPy results are checked statistically, never bit for bit.
    """
    if xp is np:
        return numpy_generator(seed)
    return xp.random.default_rng(int(seed.generate_state(1, np.uint64)[0]))
