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
    "check_bool",
    "check_choice",
    "check_float_dtype",
    "check_covariance",
    "check_int",
    "check_mask",
    "check_real",
    "check_real_array",
    "check_sizes",
    "check_values",
    "covariance_range",
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


def check_bool(value, name: str, *, owner: str | None = None) -> bool:
    """Return ``value`` as a ``bool`` or raise ``TypeError``.

    Only ``True`` and ``False`` (Python's or NumPy's) are flags: a string such as
    ``"no"`` or a number such as ``2`` would otherwise count as true.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{_prefix(name, owner)} must be True or False; "
                        f"got {value!r} of type {type(value).__name__}.")
    return bool(value)


def check_sizes(value, name: str, *, owner: str | None = None, empty: bool = False) -> tuple:
    """Return layer widths as a tuple of ints >= 1: an int is one width, a sequence many.

    ``empty`` allows ``()`` (no hidden layer). A string, a float or ``None`` is a
    ``TypeError`` naming the value as given.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        value = (value,)
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list, range,
                                                                  np.ndarray)):
        raise TypeError(f"{_prefix(name, owner)} must be an int or a sequence of ints (one "
                        f"width per layer); got {value!r} of type {type(value).__name__}.")
    if not empty and len(value) == 0:
        raise ValueError(f"{_prefix(name, owner)} must hold at least one width; got an empty "
                         "sequence.")
    return tuple(check_int(width, name, low=1, owner=owner) for width in value)


def check_float_dtype(value, name: str = "dtype", *, owner: str | None = None):
    """Return ``value`` as ``numpy.float32`` or ``numpy.float64`` (a type), or raise ``TypeError``.

    Networks compute in one of the two; an integer or boolean dtype would truncate
    the weights, and half precision is not supported.
    """
    try:
        dtype = np.dtype(value)
    except TypeError as exc:
        raise TypeError(f"{_prefix(name, owner)} must be float32 or float64; got "
                        f"{value!r}.") from exc
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{_prefix(name, owner)} must be float32 or float64; got {dtype}.")
    return dtype.type


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
        where = "" if low is None and high is None and range_text is None else f" and in {text}"
        raise ValueError(f"{_prefix(name, owner)} must be finite{where}; got {value}.")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        raise ValueError(f"{_prefix(name, owner)} must be in {text}; got {value:g}.")
    return value


def check_values(values, name: str, *, owner: str | None = None, integer: bool = False,
                 low=None, high=None, low_inclusive: bool = True, high_inclusive: bool = True,
                 choices=None, minimum: int = 1, distinct: bool = True) -> list:
    """Return the entries of the tuple or list ``values`` checked one by one, or raise.

    Each entry is a :func:`check_int` (``integer``), a :func:`check_choice`
    (``choices``) or else a :func:`check_real` with the given bounds; there must be
    at least ``minimum`` of them and, with ``distinct``, no value twice (a grid).
    """
    if not isinstance(values, (tuple, list)) or len(values) < minimum:
        raise TypeError(f"{_prefix(name, owner)} must be a tuple of at least {minimum} "
                        f"value{'s' if minimum != 1 else ''}; got {values!r}.")
    if choices is not None:
        checked = [check_choice(v, name, choices, owner=owner) for v in values]
    elif integer:
        checked = [check_int(v, name, low=low, high=high, owner=owner) for v in values]
    else:
        checked = [check_real(v, name, low=low, high=high, low_inclusive=low_inclusive,
                              high_inclusive=high_inclusive, owner=owner) for v in values]
    if distinct and len(set(checked)) != len(checked):
        raise ValueError(f"{_prefix(name, owner)} lists a value twice; got {tuple(values)!r}.")
    return checked


def check_real_array(value, name: str, *, low: float | None = None, high: float | None = None,
                     low_inclusive: bool = True, high_inclusive: bool = True,
                     owner: str | None = None, xp=None):
    """Return ``value`` as a float64 array whose every entry is finite and in range, or raise.

    The elementwise :func:`check_real`, for a scalar or an array (NumPy unless ``xp``
    is given). The error names the first bad entry, its index and how many there
    are, so a bad standard error in a long vector can be found.
    """
    xp = np if xp is None else xp
    array = xp.asarray(value)
    if array.dtype.kind == "b" or array.dtype.kind not in "iuf":
        kind = "boolean" if array.dtype.kind == "b" else f"dtype {array.dtype}"
        raise TypeError(f"{_prefix(name, owner)} must be a real number or an array of real "
                        f"numbers; got {kind} values.")
    array = xp.asarray(array, dtype=xp.float64)
    text = _interval(low, high, low_inclusive, high_inclusive)
    bad = ~xp.isfinite(array)
    if low is not None:
        bad |= (array < low) if low_inclusive else (array <= low)
    if high is not None:
        bad |= (array > high) if high_inclusive else (array >= high)
    n_bad = int(xp.sum(bad))
    if n_bad:
        where = "" if low is None and high is None else f" and in {text}"
        _raise_entries(name, owner, f"must be finite{where}", array, bad, n_bad)
    return array


def check_mask(value, name: str, *, shape=None, shape_text: str | None = None,
               owner: str | None = None, xp=None, dtype=None):
    """Return ``value`` as a 0/1 mask array of ``dtype`` (default float64), or raise.

    A mask is boolean, or numeric with every entry exactly 0 or 1 (a dropout
    mask keeps a unit or drops it; 0.5 or NaN is neither). ``shape`` is the
    expected shape, ``None`` for an axis of any length; ``shape_text`` is how the
    error prints it (``"(m, 4)"``). ``TypeError`` for a non-numeric array,
    ``ValueError`` for a wrong shape or a value other than 0 and 1.
    """
    xp = np if xp is None else xp
    try:
        array = xp.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{_prefix(name, owner)} must be a 0/1 mask array; "
                        f"got {type(value).__name__}.") from exc
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{_prefix(name, owner)} must be a 0/1 mask array of booleans or "
                        f"numbers; got dtype {array.dtype}.")
    if shape is not None:
        shape = tuple(shape)
        fits = array.ndim == len(shape) and all(
            want is None or got == want for got, want in zip(array.shape, shape))
        if not fits:
            expected = shape_text or _shape_text(shape)
            raise ValueError(f"{_prefix(name, owner)} must have shape {expected}; "
                             f"got shape {tuple(array.shape)}.")
    if array.dtype.kind != "b":
        bad = ~((array == 0) | (array == 1))          # NaN compares unequal to both
        n_bad = int(xp.sum(bad))
        if n_bad:
            _raise_entries(name, owner, "must hold only 0 or 1 (a keep/drop mask)",
                           xp.asarray(array, dtype=xp.float64), bad, n_bad)
    return xp.asarray(array, dtype=xp.float64 if dtype is None else dtype)


def _shape_text(shape) -> str:
    """``(any, 3)`` for the expected shape ``(None, 3)``; ``(4,)`` for ``(4,)``."""
    names = ["any" if n is None else str(n) for n in shape]
    return "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"


def _raise_entries(name, owner, requirement, array, bad, n_bad):
    """``ValueError`` naming the first bad entry of ``array``, its index and the count."""
    if array.ndim == 0:
        raise ValueError(f"{_prefix(name, owner)} {requirement}; got {float(array):g}.")
    from ._backend import to_numpy            # imported here: _backend imports this module

    first = int(np.argmax(to_numpy(bad).ravel()))
    index = tuple(int(i) for i in np.unravel_index(first, array.shape))
    where = index[0] if len(index) == 1 else index
    more = f" ({n_bad} such entries)" if n_bad > 1 else ""
    raise ValueError(f"{_prefix(name, owner)} {requirement}; got "
                     f"{float(array.ravel()[first]):g} at index {where}{more}.")


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


def covariance_range(variance: float, k: int) -> tuple[float, float]:
    """``[-V/(k-1), V]``, or ``[-V, V]`` for ``k = 1``: the pairwise covariances of
    ``k`` members of variance ``V`` (see :func:`ensim.theory.covariance_bounds`,
    which checks its arguments and explains the bounds)."""
    low = -variance if k == 1 else -variance / (k - 1)
    return low, variance


def check_covariance(variance: float, covariance, k: int, owner: str | None = None) -> float:
    """Return ``covariance`` as a ``float`` in :func:`covariance_range` or raise.

    ``variance`` and ``k`` must already be checked. A value within rounding of an
    edge is accepted and clipped onto it.
    """
    low, high = covariance_range(variance, k)
    text = f"[-V/(k-1), V] = [{low:g}, {high:g}]" if k > 1 else f"[-V, V] = [{low:g}, {high:g}]"
    # Rounding in C = rho * V must not push a valid edge value out of range.
    slack = 8 * np.finfo(float).eps * max(variance, 1e-300)
    covariance = check_real(covariance, "covariance", range_text=text, owner=owner)
    if not low - slack <= covariance <= high + slack:
        raise ValueError(f"{_prefix('covariance', owner)} must be in {text}; got {covariance:g}.")
    return min(max(covariance, low), high)


def _interval(low, high, low_inclusive, high_inclusive) -> str:
    def text(x):  # integers exactly (10**6, not 1e+06)
        return str(x) if isinstance(x, int) else f"{x:g}"

    left = ("[" if low_inclusive else "(") + ("-inf" if low is None else text(low))
    right = ("inf" if high is None else text(high)) + ("]" if high_inclusive else ")")
    return f"{left}, {right}"
