"""Closed forms: the primer's worked examples and a brute-force reference."""

import itertools

import numpy as np
import pytest

from ensim import covariance_bounds, ensemble_mse, ensemble_mse_general, forest_variance


def brute_force_mse(V, C, k):
    """(1/k^2) * (sum of all k^2 entries of the covariance matrix), entry by entry."""
    total = sum(V if i == j else C for i, j in itertools.product(range(k), repeat=2))
    return total / k**2


@pytest.mark.parametrize("V, C, k", [(1.0, 0.0, 1), (2.0, 0.5, 2), (3.0, -1.0, 4),
                                     (1.0, 1.0, 10), (5.0, -5 / 9, 10), (0.7, 0.2, 37)])
def test_formula_matches_brute_force_sum(V, C, k):
    assert ensemble_mse(V, C, k) == pytest.approx(brute_force_mse(V, C, k), rel=1e-12)


def test_primer_extremes():
    # Perfectly correlated errors: averaging gives zero benefit (MSE_ens = V).
    assert ensemble_mse(4.0, 4.0, 25) == pytest.approx(4.0)
    # Uncorrelated errors: MSE_ens = V / k.
    assert ensemble_mse(4.0, 0.0, 25) == pytest.approx(4.0 / 25)
    # The lower edge C = -V/(k-1): the errors cancel.
    assert ensemble_mse(4.0, -4.0 / 24, 25) == pytest.approx(0.0, abs=1e-15)


def test_general_form_reduces_to_equicorrelated_and_adds_squared_bias():
    V, C, k = 2.0, 0.3, 6
    sigma = (V - C) * np.eye(k) + C
    assert ensemble_mse_general(sigma) == pytest.approx(ensemble_mse(V, C, k))
    bias = np.linspace(-1, 2, k)
    assert ensemble_mse_general(sigma, bias) == pytest.approx(ensemble_mse(V, C, k) + 0.5**2)


def test_forest_variance_is_the_formula_with_rho():
    assert forest_variance(0.3, 2.0, 50) == pytest.approx(ensemble_mse(2.0, 0.6, 50))


def test_covariance_bounds():
    assert covariance_bounds(2.0, 5) == (-0.5, 2.0)
    assert covariance_bounds(2.0, 1) == (-2.0, 2.0)


@pytest.mark.parametrize("args, exc, words", [
    ((1.0, 1.5, 3), ValueError, ["'covariance'", "[-V/(k-1), V]", "1.5"]),
    ((1.0, -0.6, 3), ValueError, ["'covariance'", "-0.5", "-0.6"]),
    ((-1.0, 0.0, 3), ValueError, ["'V'", "-1"]),
    ((1.0, 0.0, 0), ValueError, ["'k'", "got 0"]),
    ((1.0, 0.0, 2.5), TypeError, ["'k'", "integer"]),
    ((float("nan"), 0.0, 3), ValueError, ["'V'", "finite"]),
    ((1.0, float("inf"), 3), ValueError, ["'covariance'", "finite"]),
])
def test_bad_input_names_parameter_and_value(args, exc, words):
    with pytest.raises(exc) as info:
        ensemble_mse(*args)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("sigma, bias, words", [
    ([[1.0, 2.0], [2.0, 1.0]], 0.0, ["positive semi-definite"]),
    ([[1.0, 0.5], [0.4, 1.0]], 0.0, ["symmetric"]),
    ([[1.0, 0.0, 0.0]], 0.0, ["square"]),
    ([[1.0, 0.0], [0.0, 1.0]], [0.1, 0.2, 0.3], ["'bias'", "(2,)"]),
])
def test_general_form_validates_its_input(sigma, bias, words):
    with pytest.raises(ValueError) as info:
        ensemble_mse_general(sigma, bias)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("rho, n_trees", [(-1.0, 50), (1.2, 10), (-0.2, 10)])
def test_forest_variance_rejects_impossible_correlations(rho, n_trees):
    with pytest.raises(ValueError, match="'rho'"):
        forest_variance(rho, 1.0, n_trees)
    assert forest_variance(-1.0 / 9, 1.0, 10) == pytest.approx(0.0, abs=1e-15)
