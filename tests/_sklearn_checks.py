"""scikit-learn's common estimator checks, with its array API check run apart.

scikit-learn's array API check (array API dispatch on, NumPy inputs, same results)
needs SCIPY_ARRAY_API=1, which SciPy reads once, when it is imported: set in the
test process it would switch SciPy's array API mode on for the whole run, and unset,
scikit-learn skips the check. So :func:`common_checks` parametrizes every other
check in-process, and :func:`run_array_api_checks` runs the array API ones in one
subprocess with the variable set.
"""

import functools
import os
import pickle
import subprocess
import sys

import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks


def _check_pair(param):
    """``(estimator, check)`` of one of parametrize_with_checks' parameters."""
    return tuple(getattr(param, "values", param))


def _is_array_api_check(check):
    while isinstance(check, functools.partial):
        check = check.func
    return check.__name__ == "check_array_api_input"


def common_checks(estimators, expected_failed_checks=None):
    """``(decorator, array_api_checks)``: a parametrize decorator for ``(estimator, check)``
    without the array API checks, and those checks as ``(estimator, check)`` pairs.
    ``expected_failed_checks`` is scikit-learn's: a function of the estimator giving
    ``{check name: reason}`` for the checks it is known to fail."""
    checks = parametrize_with_checks(estimators, expected_failed_checks=expected_failed_checks)
    array_api = [_check_pair(p) for p in checks.args[1] if _is_array_api_check(_check_pair(p)[1])]
    decorator = pytest.mark.parametrize(
        checks.args[0], [p for p in checks.args[1] if not _is_array_api_check(_check_pair(p)[1])],
        **checks.kwargs)
    return decorator, array_api


def run_array_api_checks(pairs):
    """Run ``(estimator, check)`` pairs in one subprocess with SCIPY_ARRAY_API=1; a skip
    inside it (SkipTest) or a warning (-W error, as in the test run) fails."""
    script = ("import pickle, sys\n"
              "for estimator, check in pickle.loads(sys.stdin.buffer.read()):\n"
              "    check(estimator)\n"
              "print('checked', flush=True)\n")
    proc = subprocess.run([sys.executable, "-W", "error", "-c", script],
                          input=pickle.dumps(pairs), capture_output=True,
                          env={**os.environ, "SCIPY_ARRAY_API": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().strip() == "checked"
