"""ensim._validation: the elementwise checks shared by the public entry points."""

import numpy as np
import pytest

from ensim._validation import check_mask, check_real_array


@pytest.mark.parametrize("mask", [np.array([[True, False]]), np.array([[1, 0]]),
                                  np.array([[1.0, 0.0]], dtype=np.float32), [[1, 0]]])
def test_check_mask_accepts_booleans_and_exact_zeros_and_ones(mask):
    checked = check_mask(mask, "mask", shape=(None, 2), dtype=np.float32)
    assert checked.dtype == np.float32
    np.testing.assert_array_equal(checked, [[1.0, 0.0]])


@pytest.mark.parametrize("mask, error, text", [
    ([[1.0, 0.5]], ValueError,
     "must hold only 0 or 1 (a keep/drop mask); got 0.5 at index (0, 1)."),
    ([[np.nan, 1.0]], ValueError, "got nan at index (0, 0)."),
    ([[2, -1]], ValueError, "got 2 at index (0, 0) (2 such entries)."),
    ([[1.0, 0.0, 1.0]], ValueError, "must have shape (any, 2); got shape (1, 3)."),
    ([1.0, 0.0], ValueError, "must have shape (any, 2); got shape (2,)."),
    ([["1", "0"]], TypeError, "of booleans or numbers; got dtype <U1."),
    ([[1 + 0j, 0j]], TypeError, "got dtype complex128."),
])
def test_check_mask_refuses(mask, error, text):
    with pytest.raises(error) as info:
        check_mask(mask, "mask", shape=(None, 2), owner="f")
    assert str(info.value).startswith("The 'mask' parameter of f ")
    assert text in str(info.value)


def test_check_real_array_names_the_first_bad_entry():
    np.testing.assert_array_equal(check_real_array([0.0, 2.5], "x", low=0.0), [0.0, 2.5])
    with pytest.raises(ValueError, match=r"'x' parameter must be finite and in \[0, inf\]; "
                                         r"got -1 at index 2 \(2 such entries\)\."):
        check_real_array([0.0, 1.0, -1.0, np.nan], "x", low=0.0)
    with pytest.raises(ValueError, match=r"in \(0, 1\); got 1\.$"):
        check_real_array(1.0, "x", low=0.0, high=1.0, low_inclusive=False,
                         high_inclusive=False)
    with pytest.raises(TypeError, match="got boolean values"):
        check_real_array(np.array([True]), "x")
    with pytest.raises(TypeError, match="got dtype <U1 values"):
        check_real_array(["a"], "x")
