"""Parameter checks shared by every public entry point.

Every error reads the same way, naming the owner, the parameter, the valid range
and the value received::

    The 'covariance' parameter of EquicorrelatedErrors must be in
    [-V/(k-1), V] = [-0.25, 1]; got 1.7.

Checks run before any work starts, so a bad call never leaves partial results.
"""

from __future__ import annotations

import math
import numbers
import reprlib

import numpy as np

__all__ = [
    "check_array",
    "check_choice",
    "check_int",
    "check_real",
]


def _prefix(name: str, owner: str | None) -> str:
    return f"The {name!r} parameter" + (f" of {owner}" if owner else "")


def check_int(value, name: str, *, low: int | None = None, high: int | None = None,
              owner: str | None = None) -> int:
    """Return ``value`` as an ``int`` in ``[low, high]`` or raise.

    Booleans are refused: ``True`` is not a count.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{_prefix(name, owner)} must be an integer; "
                        f"got {value!r} of type {type(value).__name__}.")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{_prefix(name, owner)} must be in "
                         f"{_interval(low, high, True, True)}; got {value}.")
    return value


def check_real(value, name: str, *, low: float | None = None, high: float | None = None,
               low_inclusive: bool = True, high_inclusive: bool = True,
               range_text: str | None = None, owner: str | None = None) -> float:
    """Return ``value`` as a finite ``float`` inside the given interval or raise.

    ``range_text`` replaces the printed interval when the bounds are derived from
    other parameters (``"[-V/(k-1), V] = [-0.25, 1]"``).
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{_prefix(name, owner)} must be a real number; "
                        f"got {value!r} of type {type(value).__name__}.")
    value = float(value)
    text = range_text or _interval(low, high, low_inclusive, high_inclusive)
    if not math.isfinite(value):
        raise ValueError(f"{_prefix(name, owner)} must be finite and in {text}; got {value}.")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        raise ValueError(f"{_prefix(name, owner)} must be in {text}; got {value:g}.")
    return value


def check_choice(value, name: str, choices, *, owner: str | None = None):
    """Return ``value`` if it is one of ``choices`` or raise ``ValueError``."""
    if not isinstance(value, str) or value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{_prefix(name, owner)} must be one of {options}; got {value!r}.")
    return value


def check_array(value, name: str, *, ndim: int | None = None, owner: str | None = None,
                xp=None, allow_bool: bool = True):
    """Return ``value`` as a finite float64 array (NumPy unless ``xp`` is given).

    Raises ``TypeError`` for values that are not real numbers (complex numbers
    included: their imaginary part would be lost; strings; booleans too when
    ``allow_bool`` is false), ``ValueError`` for ragged nested lists, for the
    wrong number of dimensions and for NaN or infinite entries, naming how many
    there are.
    """
    xp = np if xp is None else xp
    not_real = TypeError(f"{_prefix(name, owner)} must be an array of real numbers; "
                         f"got {type(value).__name__}.")
    try:
        array = xp.asarray(value)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValueError) and "inhomogeneous" in str(exc):
            raise ValueError(f"{_prefix(name, owner)} must be a rectangular array of real "
                             f"numbers; got a ragged {type(value).__name__} (its rows have "
                             f"different lengths): {reprlib.repr(value)}.") from exc
        raise not_real from exc
    kind = array.dtype.kind
    if kind == "c":
        raise TypeError(f"{_prefix(name, owner)} must be an array of real numbers; got "
                        f"complex values (dtype {array.dtype}), whose imaginary part "
                        "would be lost.")
    if kind in "USV" or (kind == "b" and not allow_bool):
        what = "booleans" if kind == "b" else "strings" if kind in "US" else "raw bytes"
        raise TypeError(f"{_prefix(name, owner)} must be an array of real numbers (integer "
                        f"or floating point); got {what} (dtype {array.dtype}).")
    try:
        array = xp.asarray(array, dtype=xp.float64)
    except (TypeError, ValueError) as exc:
        raise not_real from exc
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{_prefix(name, owner)} must be a {ndim}-D array; "
                         f"got shape {tuple(array.shape)}.")
    n_bad = int(xp.sum(~xp.isfinite(array)))
    if n_bad:
        raise ValueError(f"{_prefix(name, owner)} must hold only finite values; "
                         f"got {n_bad} NaN or infinite entr{'y' if n_bad == 1 else 'ies'}.")
    return array


def _interval(low, high, low_inclusive, high_inclusive) -> str:
    def text(x):  # integers exactly (10**6, not 1e+06)
        return str(x) if isinstance(x, int) else f"{x:g}"

    left = ("[" if low_inclusive else "(") + ("-inf" if low is None else text(low))
    right = ("inf" if high is None else text(high)) + ("]" if high_inclusive else ")")
    return f"{left}, {right}"
