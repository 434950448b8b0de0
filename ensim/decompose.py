"""Measured V, C, bias and the exact decompositions of an ensemble's squared error.

An ensemble of ``k`` members predicts the average of their predictions. Given
the members' predictions on ``n_test`` test points and the targets ``y`` there,
this module measures what the primer's formula ``MSE_ens = V/k + (k-1)/k C``
assumes: each member's error variance and bias, the covariance between members'
errors, and the decompositions of the ensemble's error that hold *exactly* on
measured data (they are identities of the empirical distribution, not
approximations):

* the primer's formula with the bias kept, in second moments and centred;
* bias-variance-covariance (Ueda & Nakano, 1996);
* ambiguity (Krogh & Vedelsby, 1995), also known as the diversity prediction
  theorem;
* bias-variance-diversity for squared loss (Wood et al., 2023).

Layouts
-------
``(k, n_test)``
    One trained ensemble: member ``i``'s prediction at test point ``t``.
    :func:`decompose` returns a :class:`EnsembleDecomposition`.
``(n_repeats, k, n_test)``
    The same ensemble retrained ``n_repeats`` times (the layout of the Decompose
    package of Wood et al.). :func:`decompose` returns a
    :class:`RepeatedDecomposition`.
``(n_repeats, n_test)``
    A single model retrained ``n_repeats`` times: :func:`bias_variance` returns the
    same :class:`RepeatedDecomposition`, with ``k = 1`` (``decompose`` accepts
    ``k = 1`` in both layouts above too).

Targets ``y`` are one per test point, or with repeats several noisy draws per test
point, shape ``(n_targets, n_test)``, whose spread estimates the noise (as in
scikit-learn's gallery example "Single estimator versus bagging").

Names: the ensemble's own terms are ``loss``, ``bias2`` (squared) and
``ensemble_variance``, what scikit-learn's gallery example and mlxtend call error,
bias and variance; ``member_*`` is a mean over the members (``member_variance``,
``member_bias2``, ``member_loss``: the Decompose package's ``average_*``);
``*_per_member`` holds one value per member; signed terms say so
(``bias_signed``, ``mean_error``). ``docs/decompose.md`` maps every name to
mlxtend's, Decompose's and the gallery example's.

Three views of covariance
-------------------------
``"test_points"``
    Over the test points of one trained ensemble: what a user measures on a
    held-out set, and the covariance with which the primer's identity holds
    exactly.
``"training_sets"``
    At each ``x``, across training sets: the sampling covariance of two members of
    the same ensemble, whose ratio to the variance is the sampling correlation
    ``rho(x)`` of Hastie, Tibshirani & Friedman (ESL, 2nd ed., section 15.2).
``"ensemble_randomness"``
    At each ``x``, given the training set, over the ensemble's own randomness
    (bootstrap draws, feature sampling, initialisation). It is zero for bagging
    and random forests, whose members are drawn independently given the data
    (ESL exercise 15.5). Measure it by retraining on one fixed training set
    (``repeats="ensemble_seeds"``).

All moments over repeats and over test points are those of the empirical
distribution (divisor ``n``, not ``n - 1``): that is what makes the identities
exact. Each term is measured from its own definition: the ensemble's error from
the ensemble's prediction, cross moments and covariances from products of pairs
of members, so each identity's two sides are computed apart and checking it
(``identities()``) can fail when a term is wrong. Work is done in chunks of test
points, so memory stays a small fraction of the input whatever its size.
"""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass

import numpy as np

from ._backend import array_namespace, to_numpy
from ._validation import check_array, check_choice, check_int

__all__ = [
    "REPEATS",
    "Identity",
    "RepeatedDecomposition",
    "EnsembleDecomposition",
    "bias_variance",
    "decompose",
    "ensemble_mse_curve",
]

#: What the first axis of a 3-D ``predictions`` array repeats: fresh training sets
#: (with fresh ensemble randomness), or fresh ensemble randomness on one fixed
#: training set.
REPEATS = ("training_sets", "ensemble_seeds")

# Elements of the (n_repeats, k, chunk) working arrays: 2**22 float64 = 32 MiB.
_CHUNK_ELEMENTS = 2**22


# ---------------------------------------------------------------------------------
# Result objects
# ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    """One exact identity, evaluated on measured data.

    Parameters
    ----------
    name : str
        Short name, e.g. ``"ambiguity"``.
    equation : str
        The identity in symbols, e.g. ``"MSE_ens = mean member MSE - ambiguity"``.
    lhs, rhs : float or ndarray
        Its two sides, computed from separately measured terms: neither side is
        solved back from the other, so :meth:`holds` is a real check.
    """

    name: str
    equation: str
    lhs: float | np.ndarray
    rhs: float | np.ndarray

    @property
    def relative_error(self) -> float:
        """``max |lhs - rhs| / max |lhs|`` (absolute error where ``lhs`` is 0)."""
        lhs, rhs = np.asarray(self.lhs, dtype=float), np.asarray(self.rhs, dtype=float)
        scale = float(np.max(np.abs(lhs))) if lhs.size else 0.0
        error = float(np.max(np.abs(lhs - rhs))) if lhs.size else 0.0
        return error / scale if scale > 0 else error

    def holds(self, rtol: float = 1e-10) -> bool:
        """True when :attr:`relative_error` is at most ``rtol``."""
        return self.relative_error <= rtol


def _identities_table(identities) -> list[str]:
    lines = ["", "identity                          relative error  equation"]
    for ident in identities:
        lines.append(f"{ident.name:<33} {ident.relative_error:<15.2e} {ident.equation}")
    return lines


def _pair_share(k, value):
    """``value``, or 0 for a single model: a term over pairs of members ``i != j``
    enters an identity with a weight ``(k - 1) / k`` that is 0 when ``k = 1``, where
    the term itself is undefined (NaN)."""
    return 0.0 if k == 1 else value


def _mean_defined(values) -> float:
    """Mean over the finite entries (NaN where a ratio is undefined); NaN if none is."""
    values = np.asarray(values, dtype=float)
    defined = values[np.isfinite(values)]
    return float(defined.mean()) if defined.size else math.nan


@dataclass(frozen=True)
class EnsembleDecomposition:
    """Errors of one trained ensemble, measured over its test points.

    Symbols: member ``i`` (of ``k``) predicts ``q_i(t)`` at test point ``t`` (of
    ``n_test``); its error is ``e_i(t) = q_i(t) - y(t)``; the ensemble predicts
    ``qbar(t) = mean_i q_i(t)``. Averages over ``t`` are written ``<.>``.

    Names: ``member_*`` is a mean over the members, ``*_per_member`` holds one value
    per member. For one ensemble (``decompose`` of a ``(k, n_test)`` array) the
    scalar fields are floats. Inside a :class:`RepeatedDecomposition` they are
    arrays of shape ``(n_repeats,)``, one value per trained ensemble, and the
    matrices are averaged over repeats. With ``k = 1`` (a single model) the terms
    over pairs of members (``cross_moment``, ``covariance``, ``rho``) are NaN.

    Attributes
    ----------
    k, n_test : int
        Members and test points.
    mse_ensemble : float
        ``<(qbar - y)^2>``, the ensemble's mean squared error.
    mse_per_member : ndarray, shape (k,)
        ``<e_i^2>``, each member's mean squared error (its second moment).
    mean_error_per_member : ndarray, shape (k,)
        ``b_i = <e_i>``, each member's mean error (signed).
    mean_square : float
        ``S = mean_i <e_i^2>``, the mean member second moment.
    cross_moment : float
        ``X = mean_{i != j} <e_i e_j>``, the mean cross moment, summed from the
        products of pairs of members' errors (not from ``mse_ensemble``).
    mean_error : float
        ``b = mean_i b_i = <qbar - y>``, the ensemble's mean error over the test
        points (signed: its square is what enters the identities).
    member_variance : float
        ``V = mean_i <(e_i - b_i)^2>``, the mean member error variance over the test
        points (not the ensemble's).
    covariance : float
        ``C = mean_{i != j} <(e_i - b_i)(e_j - b_j)>``, the mean pairwise error
        covariance (view ``"test_points"``), summed from the products of pairs of
        members' centred errors.
    rho : float
        ``C / V``.
    ambiguity : float
        ``<mean_i (q_i - qbar)^2>``, the spread of members around the ensemble.
    second_moment_matrix, covariance_matrix, correlation_matrix : ndarray or None
        The ``k x k`` matrices ``<e_i e_j>``, ``<(e_i - b_i)(e_j - b_j)>`` and the
        correlations; ``None`` where they were not asked for.

    Notes
    -----
    Three identities hold exactly, each side computed from separately measured
    terms (the left from the ensemble's prediction, the right from the members):

    * the primer's formula with the bias kept, in second moments:
      ``MSE_ens = S / k + (k-1)/k * X``;
    * the same, centred: ``MSE_ens = b^2 + V/k + (k-1)/k * C``;
    * ambiguity (Krogh & Vedelsby):
      ``MSE_ens = mean_i <e_i^2> - ambiguity``.

    The primer's ``MSE_ens = V/k + (k-1)/k C`` is the centred form with zero mean
    error.
    """

    k: int
    n_test: int
    mse_ensemble: float | np.ndarray
    mse_per_member: np.ndarray
    mean_error_per_member: np.ndarray
    mean_square: float | np.ndarray
    cross_moment: float | np.ndarray
    mean_error: float | np.ndarray
    member_variance: float | np.ndarray
    covariance: float | np.ndarray
    rho: float | np.ndarray
    ambiguity: float | np.ndarray
    second_moment_matrix: np.ndarray | None = None
    covariance_matrix: np.ndarray | None = None
    correlation_matrix: np.ndarray | None = None

    view = "test_points"
    _TERMS = ("mse_ensemble", "mean_square", "cross_moment", "mean_error", "member_variance",
              "covariance", "rho", "ambiguity")

    def identities(self) -> list[Identity]:
        """The three exact identities, each side from separately stored terms."""
        k = self.k
        return [
            Identity("primer, second moments", "MSE_ens = S/k + (k-1)/k * X",
                     self.mse_ensemble,
                     self.mean_square / k + _pair_share(k, (k - 1) / k * self.cross_moment)),
            Identity("primer with bias", "MSE_ens = b^2 + V/k + (k-1)/k * C",
                     self.mse_ensemble,
                     self.mean_error**2 + self.member_variance / k
                     + _pair_share(k, (k - 1) / k * self.covariance)),
            Identity("ambiguity (Krogh-Vedelsby)", "MSE_ens = mean member MSE - ambiguity",
                     self.mse_ensemble, np.mean(self.mse_per_member, axis=-1) - self.ambiguity),
        ]

    def to_frame(self):
        """The terms as a table: one row per term, columns ``term``, ``value``, ``view``.

        Inside a :class:`RepeatedDecomposition`, ``value`` is the mean over repeats.
        """
        import pandas as pd

        return pd.DataFrame({"term": list(self._TERMS),
                             "value": [float(np.mean(getattr(self, n))) for n in self._TERMS],
                             "view": self.view})

    def summary(self) -> str:
        """A small text table of the terms and of the identities' residuals."""
        head = (f"Test-point decomposition: k={self.k} members, n_test={self.n_test} "
                "(S = mean_square, X = cross_moment, b = mean_error, V = member_variance)")
        return "\n".join([head, _frame_text(self.to_frame())]
                         + _identities_table(self.identities()))


@dataclass(frozen=True)
class RepeatedDecomposition:
    """Errors of an ensemble (or a single model) retrained ``n_repeats`` times, pointwise.

    Symbols at test point ``x``: ``q_ri(x)`` is member ``i``'s prediction in repeat
    ``r``; ``qbar_r = mean_i q_ri`` the ensemble's; ``qbar_i = E q_ri`` member
    ``i``'s mean over repeats, where ``E`` and ``Var`` / ``Cov`` are the mean and
    (divisor ``n_repeats``) moments over repeats; ``y_s`` the ``n_targets`` noisy
    targets and ``ybar`` their mean; ``f`` the noise-free truth (``f = ybar`` when
    the truth is not given).

    Names: the ensemble's own terms (``loss``, ``bias2``, ``ensemble_variance``)
    are what scikit-learn's gallery example and mlxtend's ``bias_variance_decomp``
    call error, bias and variance, and what the Decompose package calls
    ``expected_ensemble_loss``, ``ensemble_bias`` (with the noise) and
    ``ensemble_variance``; ``member_*`` is a mean over the ``k`` members (the
    Decompose package's ``average_*``). A single model is ``k = 1``
    (:func:`bias_variance`), with the same fields: its ``member_variance`` is its
    ``ensemble_variance``, its ``diversity`` 0, and the terms over pairs of members
    (``covariance``, ``rho``) are NaN. See ``docs/decompose.md`` for the table of
    names.

    Attributes
    ----------
    n_repeats, k, n_test, n_targets : int
        Repeats, members, test points, and noisy targets per test point.
    repeats : {"training_sets", "ensemble_seeds"}
        What the repeats redraw. It names the view of :attr:`covariance`:
        ``"training_sets"`` or ``"ensemble_randomness"``.
    test_points : EnsembleDecomposition
        View ``"test_points"``, one value per repeat (fields of shape
        ``(n_repeats,)``), measured against ``ybar``.
    loss : ndarray, shape (n_test,)
        ``E mean_s (qbar_r - y_s)^2``, the ensemble's expected squared error.
    bias2 : ndarray
        ``(E qbar_r - f)^2``, the ensemble's squared bias.
    bias_signed : ndarray
        ``E qbar_r - f = mean_i qbar_i - f``, the ensemble's (and the average
        member's) bias with its sign; ``bias2 = bias_signed**2``.
    ensemble_variance : ndarray
        ``Var qbar_r``, the variance of the ensemble's prediction.
    noise : ndarray
        ``mean_s (y_s - f)^2``: with the truth, an unbiased estimate of the noise
        variance; without it, ``mean_s (y_s - ybar)^2``, the spread of the targets
        (divisor ``n_targets``, as in scikit-learn's gallery example), which is 0
        for one target.
    noise_cross : ndarray
        ``2 bias_signed (f - ybar)``: zero in expectation over the test noise, and
        zero when ``f`` is not given; kept so that the identities hold exactly.
    member_loss : ndarray
        ``E mean_i mean_s (q_ri - y_s)^2``, the average member's expected squared
        error.
    member_bias2 : ndarray
        ``mean_i (qbar_i - f)^2``, the members' mean squared bias (Wood et al.'s
        average bias).
    member_variance : ndarray
        ``sigma^2(x) = mean_i Var q_ri``, the members' mean variance (Wood et al.'s
        average variance), not the ensemble's.
    covariance : ndarray
        ``mean_{i != j} Cov(q_ri, q_rj)``, the mean pairwise covariance across
        repeats (Ueda & Nakano's ``covar``), summed from the products of pairs of
        members' deviations (not from ``Var qbar_r``). NaN for ``k = 1``.
    rho : ndarray
        ``covariance / member_variance``: the sampling correlation ``rho(x)`` of ESL
        section 15.2 when the repeats are training sets.
    diversity : ndarray
        ``E mean_i (q_ri - qbar_r)^2``, Wood et al.'s diversity (the expected
        ambiguity).
    within_set_variance, between_set_variance, rho_ratio : ndarray or None
        For repeats over training sets ``Z``: ``E_Z Var[T | Z]`` estimated by the
        spread of members within a repeat (``k / (k-1) * diversity``),
        ``Var_Z E[T | Z]`` estimated by ``R / (R-1) * ensemble_variance - within / k``
        (``R = n_repeats``; both unbiased when members are drawn independently
        given ``Z``, unlike the other terms, which are moments of the empirical
        distribution), and
        ``rho_ratio = between / (between + within)``, ESL's formula for ``rho(x)``
        when members are drawn independently given ``Z``. ``None`` for
        ``repeats="ensemble_seeds"`` and for ``k = 1``.
    covariance_matrix : ndarray or None
        ``k x k``: ``Cov(q_ri, q_rj)`` averaged over ``x``, when asked for.

    Notes
    -----
    Pointwise exact identities (each side from separately measured terms: the
    ensemble's loss and variance from ``qbar_r``, the covariance from pairs of
    members):

    * bias-variance of the ensemble (as in scikit-learn's gallery example and
      mlxtend): ``loss = noise + bias2 + ensemble_variance + noise_cross``;
    * bias-variance-covariance (Ueda & Nakano):
      ``loss = noise + bias2 + member_variance / k + (1 - 1/k) covariance + noise_cross``;
    * ESL's ensemble variance:
      ``Var qbar = rho sigma^2 + (1 - rho) / k * sigma^2``;
    * ambiguity, in expectation (Krogh & Vedelsby):
      ``loss = member_loss - diversity``;
    * bias-variance-diversity (Wood et al., 2023):
      ``loss = noise + member_bias2 + member_variance - diversity + noise_cross``.

    Caveat on the third view: from repeats over training sets alone, a covariance
    between members *given* the training set cannot be told apart from the
    between-set variance (both make the members of one repeat move together), so
    ``rho_ratio`` and ``rho`` estimate the same quantity whatever the ensemble. The
    covariance given the training set is measured by redrawing only the ensemble's
    randomness on one fixed training set (``repeats="ensemble_seeds"``).
    """

    n_repeats: int
    k: int
    n_test: int
    n_targets: int
    repeats: str
    test_points: EnsembleDecomposition
    loss: np.ndarray
    bias2: np.ndarray
    bias_signed: np.ndarray
    ensemble_variance: np.ndarray
    noise: np.ndarray
    noise_cross: np.ndarray
    member_loss: np.ndarray
    member_bias2: np.ndarray
    member_variance: np.ndarray
    covariance: np.ndarray
    rho: np.ndarray
    diversity: np.ndarray
    within_set_variance: np.ndarray | None = None
    between_set_variance: np.ndarray | None = None
    rho_ratio: np.ndarray | None = None
    covariance_matrix: np.ndarray | None = None

    _POINTWISE = ("loss", "bias2", "bias_signed", "ensemble_variance", "noise", "noise_cross",
                  "member_loss", "member_bias2", "member_variance", "covariance", "rho",
                  "diversity", "within_set_variance", "between_set_variance", "rho_ratio")

    @property
    def covariance_view(self) -> str:
        """The view that :attr:`covariance` measures."""
        return "training_sets" if self.repeats == "training_sets" else "ensemble_randomness"

    def identities(self) -> list[Identity]:
        """The pointwise exact identities, then the test-point ones over repeats."""
        k = self.k
        sigma2, rho = self.member_variance, self.rho
        defined = np.isfinite(rho)           # rho is undefined where sigma^2 = 0 or k = 1
        esl_rhs = np.where(defined, rho * sigma2 + (1 - rho) / k * sigma2, sigma2 / k)
        return [
            Identity("bias-variance", "loss = noise + bias^2 + ensemble var + noise_cross",
                     self.loss,
                     self.noise + self.bias2 + self.ensemble_variance + self.noise_cross),
            Identity("bias-variance-covariance", "loss = noise + bias^2 + var/k + (1-1/k)"
                     " covar + noise_cross", self.loss,
                     self.noise + self.bias2 + self.member_variance / k
                     + _pair_share(k, (1 - 1 / k) * self.covariance) + self.noise_cross),
            Identity("ESL ensemble variance", "Var qbar = rho s^2 + (1-rho)/k s^2",
                     self.ensemble_variance, esl_rhs),
            Identity("ambiguity (expected)", "loss = member_loss - diversity",
                     self.loss, self.member_loss - self.diversity),
            Identity("bias-variance-diversity", "loss = noise + member bias^2 + member var"
                     " - diversity + noise_cross", self.loss,
                     self.noise + self.member_bias2 + self.member_variance - self.diversity
                     + self.noise_cross),
        ] + self.test_points.identities()

    def pointwise_frame(self):
        """Per-``x`` table: one row per test point, one column per pointwise term."""
        import pandas as pd

        return pd.DataFrame({name: getattr(self, name) for name in self._POINTWISE
                             if getattr(self, name) is not None})

    def to_frame(self):
        """The terms as a table: one row per term (means over ``x`` or over repeats),
        columns ``term``, ``value``, ``view``."""
        import pandas as pd

        rows = []
        for name in self._POINTWISE:
            values = getattr(self, name)
            if values is None:
                continue
            view = {"covariance": self.covariance_view, "rho": self.covariance_view,
                    "within_set_variance": "ensemble_randomness",
                    "between_set_variance": "training_sets",
                    "rho_ratio": "training_sets"}.get(name, "")
            rows.append({"term": name, "value": _mean_defined(values), "view": view})
        frame = pd.DataFrame(rows)
        return pd.concat([frame, self.test_points.to_frame()], ignore_index=True)

    def summary(self) -> str:
        """A small text table of the terms and of the identities' residuals."""
        targets = "" if self.n_targets == 1 else f", {self.n_targets} targets per x"
        head = (f"Repeated decomposition: n_repeats={self.n_repeats} ({self.repeats}), "
                f"k={self.k}, n_test={self.n_test}{targets}; pointwise terms are means "
                "over x, test-point terms means over repeats")
        return "\n".join([head, _frame_text(self.to_frame())]
                         + _identities_table(self.identities()))


def _frame_text(frame) -> str:
    return frame.to_string(index=False, float_format=lambda v: f"{v:.6g}")


# ---------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Targets:
    """The checked targets: their mean at each test point and what the noise terms need."""

    mean: object            # (n_test,) ybar
    spread: object          # (n_test,) mean_s (y_s - ybar)^2, or None for one target
    truth: object           # (n_test,) f, or ybar when the truth is not given
    noise: object           # (n_test,) mean_s (y_s - f)^2
    n_targets: int


def _check_predictions(predictions, *, ndims, owner):
    xp = array_namespace(predictions)
    array = check_array(predictions, "predictions", owner=owner, xp=xp)
    if array.ndim not in ndims:
        layouts = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"The 'predictions' parameter of {owner} must be a {layouts} array; "
                         f"got shape {tuple(array.shape)}.")
    if array.shape[-1] < 1:
        raise ValueError(f"The 'predictions' parameter of {owner} must hold at least 1 test "
                         f"point (its last axis); got shape {tuple(array.shape)}.")
    return xp, array


def _check_targets(xp, y, f, n_test, *, several, owner):
    """``y`` of shape (n_test,), or (n_targets, n_test) where ``several``; ``f`` (n_test,)."""
    per_point = "one target per test point (the last axis of 'predictions')"
    y = check_array(y, "y", owner=owner, xp=xp)
    if several and y.ndim == 2 and y.shape[1] == n_test and y.shape[0] >= 1:
        pass
    elif y.shape != (n_test,):
        if several:
            expected = (f"({n_test},), {per_point}, or (n_targets, {n_test}) with "
                        "n_targets >= 1, several noisy targets per test point")
        elif y.ndim == 2 and y.shape[-1] == n_test:
            expected = (f"({n_test},), {per_point} (several targets per test point apply "
                        "only to repeated predictions, a 3-D array)")
        else:
            expected = f"({n_test},), {per_point}"
        raise ValueError(f"The 'y' parameter of {owner} must have shape {expected}; "
                         f"got shape {tuple(y.shape)}.")
    if f is not None:
        f = check_array(f, "f", owner=owner, xp=xp)
        if f.shape != (n_test,):
            raise ValueError(f"The 'f' parameter of {owner} must have shape ({n_test},), "
                             f"the truth at each test point (the last axis of "
                             f"'predictions'); got shape {tuple(f.shape)}.")
    if y.ndim == 1:
        truth = y if f is None else f
        return _Targets(mean=y, spread=None, truth=truth, noise=(y - truth) ** 2, n_targets=1)
    mean = xp.mean(y, axis=0)
    spread = xp.mean((y - mean) ** 2, axis=0)
    noise = spread if f is None else xp.mean((y - f) ** 2, axis=0)
    return _Targets(mean=mean, spread=spread, truth=mean if f is None else f, noise=noise,
                    n_targets=int(y.shape[0]))


# ---------------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------------

def bias_variance(predictions, y, f=None) -> RepeatedDecomposition:
    """Pointwise bias-variance decomposition of a single model retrained many times.

    The same as :func:`decompose` of ``predictions[:, None, :]`` (``k = 1``), with
    the same result and field names as for an ensemble.

    Parameters
    ----------
    predictions : array-like, shape (n_repeats, n_test)
        The model's predictions after training on each of ``n_repeats`` sets;
        ``n_repeats >= 2``.
    y : array-like, shape (n_test,) or (n_targets, n_test)
        Targets at the test points: one, or several noisy draws at each point,
        whose spread estimates the noise (see :func:`decompose`).
    f : array-like, shape (n_test,), optional
        The noise-free truth. Without it, the bias is measured against the mean of
        the targets.

    Returns
    -------
    RepeatedDecomposition
        With ``k = 1``: ``loss = noise + bias2 + ensemble_variance + noise_cross``
        at every test point; ``member_variance`` equals ``ensemble_variance``.

    Examples
    --------
    >>> from ensim.decompose import bias_variance
    >>> bv = bias_variance([[1.0, 2.0], [3.0, 2.0]], y=[2.0, 2.0])
    >>> bv.loss.tolist(), bv.bias2.tolist(), bv.ensemble_variance.tolist()
    ([1.0, 0.0], [0.0, 0.0], [1.0, 0.0])
    """
    owner = "bias_variance"
    xp, q = _check_predictions(predictions, ndims=(2,), owner=owner)
    check_int(q.shape[0], "n_repeats (rows of 'predictions')", low=2, owner=owner)
    targets = _check_targets(xp, y, f, q.shape[-1], several=True, owner=owner)
    return _repeated_decomposition(xp, q[:, None, :], targets, "training_sets", False)


def decompose(predictions, y, f=None, *, repeats=None, matrices=None):
    """Measure ``V``, ``C``, bias and the exact error decompositions of an ensemble.

    Parameters
    ----------
    predictions : array-like, shape (k, n_test) or (n_repeats, k, n_test)
        Member predictions: of one trained ensemble, or of the same ensemble
        retrained ``n_repeats`` times. NumPy or CuPy; ``k >= 1`` (``k = 1`` is a
        single model: the terms over pairs of members are then NaN) and
        ``n_repeats >= 2``.
    y : array-like, shape (n_test,), or (n_targets, n_test) for a 3-D array
        Targets at the test points. With repeats, ``y`` may hold several noisy
        targets per test point (as scikit-learn's gallery example draws): the
        losses average over them, and their spread estimates the noise.
    f : array-like, shape (n_test,), optional
        The noise-free truth at the test points, where known. It splits the
        repeated decompositions' bias from the noise ``mean_s (y_s - f)^2``.
        Without it the bias is measured against the mean of the targets, and the
        noise is their spread. Only for a 3-D array: one ensemble's test-point
        terms are measured against ``y``.
    repeats : {"training_sets", "ensemble_seeds"}, optional
        Only for a 3-D array: what the repeats redraw, fresh training sets (with
        fresh ensemble randomness, the default) or only the ensemble's randomness on
        one fixed training set. It names the view of the covariance across repeats.
    matrices : bool, optional
        Also compute the ``k x k`` second-moment, covariance and correlation
        matrices (``O(n_repeats k^2 n_test)`` work). Default: True for one
        ensemble, False for repeats.

    Returns
    -------
    EnsembleDecomposition or RepeatedDecomposition
        For a 2-D or a 3-D array; both have ``identities()``, ``to_frame()`` and
        ``summary()``. A single model retrained many times gives a
        :class:`RepeatedDecomposition` with ``k = 1`` and the same fields
        (:func:`bias_variance` takes its ``(n_repeats, n_test)`` array directly).

    Raises
    ------
    ValueError
        For a wrong shape, no members, fewer than two repeats, no test points, a
        ``y`` or ``f`` of the wrong shape, NaN or infinite values, or ``f``,
        ``repeats`` or several targets given with a 2-D array.
    TypeError
        For values that are not real numbers (complex ones included), or a
        ``matrices`` that is not a bool.

    Notes
    -----
    With ``e_i = q_i - y`` the error of member ``i`` and ``<.>`` the mean over test
    points, one ensemble satisfies the primer's formula with the bias kept,

    .. math:: \\mathrm{MSE_{ens}} = \\frac{1}{k}\\,\\mathrm{mean}_i\\langle e_i^2\\rangle
              + \\frac{k-1}{k}\\,\\mathrm{mean}_{i\\ne j}\\langle e_i e_j\\rangle
              = b^2 + \\frac{V}{k} + \\frac{k-1}{k}\\,C,

    exactly. See :class:`EnsembleDecomposition` and
    :class:`RepeatedDecomposition` for every symbol and identity.

    Examples
    --------
    The diversity prediction theorem: four estimates of a true value of 49.

    >>> from ensim.decompose import decompose
    >>> d = decompose([[48.0], [47.0], [51.0], [42.0]], y=[49.0])
    >>> float(d.mse_per_member.mean()), float(d.mse_ensemble), float(d.ambiguity)
    (14.5, 4.0, 10.5)
    """
    owner = "decompose"
    if repeats is not None:
        check_choice(repeats, "repeats", REPEATS, owner=owner)
    if matrices is not None and not isinstance(matrices, bool):
        raise TypeError(f"The 'matrices' parameter of {owner} must be None, True or False; "
                        f"got {matrices!r}.")
    xp, q = _check_predictions(predictions, ndims=(2, 3), owner=owner)
    if q.shape[-2] < 1:
        raise ValueError(f"The 'predictions' parameter of {owner} must hold at least 1 "
                         f"member (axis -2); got shape {tuple(q.shape)}.")
    if q.ndim == 2:
        for name, value in (("f", f), ("repeats", repeats)):
            if value is not None:
                raise ValueError(f"The {name!r} parameter of {owner} applies only to "
                                 "repeated predictions (a 3-D array) and must be None for "
                                 f"one ensemble's 2-D array of shape {tuple(q.shape)}; "
                                 f"got {_brief(value)}.")
        targets = _check_targets(xp, y, None, q.shape[-1], several=False, owner=owner)
        return _test_point_decomposition(xp, q[None], targets.mean, matrices is not False,
                                         squeeze=True)
    if q.shape[0] < 2:
        raise ValueError(f"The 'predictions' parameter of {owner} must hold at least 2 "
                         f"repeats (axis 0); got n_repeats={q.shape[0]}.")
    targets = _check_targets(xp, y, f, q.shape[-1], several=True, owner=owner)
    return _repeated_decomposition(xp, q, targets, repeats or "training_sets", bool(matrices))


def _brief(value) -> str:
    """``repr`` of a string, shape of an array: for error messages."""
    if isinstance(value, str):
        return repr(value)
    shape = getattr(value, "shape", None)
    return f"an array of shape {tuple(np.shape(value) if shape is None else shape)}"


# ---------------------------------------------------------------------------------
# Computation
# ---------------------------------------------------------------------------------

def _chunks(n_repeats, k, n_test):
    width = max(1, _CHUNK_ELEMENTS // (n_repeats * k))
    for start in range(0, n_test, width):
        yield slice(start, min(start + width, n_test))


def _ratio(xp, numerator, denominator):
    """``numerator / denominator``, NaN where the denominator is 0 (no warning)."""
    safe = xp.where(denominator > 0, denominator, 1.0)
    return xp.where(denominator > 0, numerator / safe, xp.nan)


def _pair_sum(xp, a):
    """``sum_{i != j} a_i a_j`` over the member axis 1 of ``a`` (R, k, ...): (R, ...).

    Summed from the products of each member with the members before it, never
    through ``(sum_i a_i)^2``, so a cross moment computed here is measured apart
    from the ensemble's error and the identities that relate them are real checks.
    """
    earlier = xp.zeros_like(a[:, 0])                  # sum of the members before i
    total = xp.zeros_like(a[:, 0])
    for i in range(a.shape[1]):
        total += a[:, i] * earlier
        earlier += a[:, i]
    return 2 * total


def _test_point_sums(xp, q, y):
    """Sums over test points, per repeat, of everything view 1 needs. q: (R, k, c).

    ``centred2`` and ``centred_cross`` are centred on this chunk's own means;
    :func:`_merge_sums` re-centres them on the means of all test points.
    """
    errors = q - y                                    # (R, k, c) member errors e_i
    ensemble = xp.mean(q, axis=1)                     # (R, c) qbar
    error_sum = xp.sum(errors, axis=2)                # (R, k)
    deviations = errors - (error_sum / q.shape[2])[:, :, None]
    return {
        "n": q.shape[2],
        "error": error_sum,
        "error2": xp.sum(errors**2, axis=2),          # (R, k)
        "cross": xp.sum(_pair_sum(xp, errors), axis=1),                     # (R,)
        "centred2": xp.sum(deviations**2, axis=2),    # (R, k)
        "centred_cross": xp.sum(_pair_sum(xp, deviations), axis=1),         # (R,)
        "ensemble_error2": xp.sum((ensemble - y) ** 2, axis=1),              # (R,)
        "ambiguity": xp.sum(xp.mean((q - ensemble[:, None, :]) ** 2, axis=1), axis=1),
    }


def _merge_sums(xp, total, new):
    """Sums over two disjoint sets of test points; the centred ones are merged exactly
    (the pairwise update of Chan, Golub & LeVeque, 1979)."""
    if total is None:
        return new
    n_a, n_b = total["n"], new["n"]
    n = n_a + n_b
    out = {name: total[name] + new[name] for name in total}
    delta = new["error"] / n_b - total["error"] / n_a        # (R, k) difference of means
    out["centred2"] = out["centred2"] + (n_a * n_b / n) * delta**2
    out["centred_cross"] = out["centred_cross"] + (n_a * n_b / n) * _pair_sum(xp, delta)
    return out


def _test_point_result(xp, sums, n_test, k, matrix_terms, squeeze):
    """View 1 from the accumulated sums (each scalar term has shape (R,)).

    Every term is measured from its own sums: the cross moment ``X`` and the
    covariance ``C`` from products of pairs of members' errors, not from the
    ensemble's error, so the identities relating them to ``MSE_ens`` can fail.
    """
    mse_per_member = sums["error2"] / n_test           # (R, k)
    mean_error_per_member = sums["error"] / n_test     # (R, k)
    variance = xp.mean(sums["centred2"], axis=1) / n_test                   # V
    if k == 1:                                         # no pairs of members
        covariance = cross_moment = xp.full(variance.shape, xp.nan)
    else:
        pairs = n_test * k * (k - 1)
        covariance = sums["centred_cross"] / pairs                          # C
        cross_moment = sums["cross"] / pairs                                # X
    terms = dict(mse_ensemble=sums["ensemble_error2"] / n_test,
                 mse_per_member=mse_per_member, mean_error_per_member=mean_error_per_member,
                 mean_square=xp.mean(mse_per_member, axis=1), cross_moment=cross_moment,
                 mean_error=xp.mean(mean_error_per_member, axis=1), member_variance=variance,
                 covariance=covariance, rho=_ratio(xp, covariance, variance),
                 ambiguity=sums["ambiguity"] / n_test)
    terms = {name: to_numpy(value) for name, value in terms.items()}
    if squeeze:
        terms = {name: (float(v[0]) if v.ndim == 1 else v[0]) for name, v in terms.items()}
    return EnsembleDecomposition(k=k, n_test=n_test, **terms, **matrix_terms)


def _test_point_matrices(xp, q, y):
    """The k x k matrices of view 1, averaged over repeats. q: (R, k, n)."""
    n_repeats, k, n_test = q.shape
    second = xp.zeros((k, k))
    centred = xp.zeros((k, k))
    for r in range(n_repeats):
        errors = q[r] - y                                           # (k, n)
        second += errors @ errors.T / n_test
        deviations = errors - xp.mean(errors, axis=1, keepdims=True)
        centred += deviations @ deviations.T / n_test
    second, centred = second / n_repeats, centred / n_repeats
    scale = xp.sqrt(xp.diagonal(centred))
    correlation = _ratio(xp, centred, scale[:, None] * scale[None, :])
    return {"second_moment_matrix": to_numpy(second), "covariance_matrix": to_numpy(centred),
            "correlation_matrix": to_numpy(correlation)}


def _test_point_decomposition(xp, q, y, matrices, squeeze):
    n_repeats, k, n_test = q.shape
    sums = None
    for part in _chunks(n_repeats, k, n_test):
        sums = _merge_sums(xp, sums, _test_point_sums(xp, q[:, :, part], y[part]))
    matrix_terms = _test_point_matrices(xp, q, y) if matrices else {}
    return _test_point_result(xp, sums, n_test, k, matrix_terms, squeeze)


def _pointwise_terms(xp, q, targets, part):
    """Pointwise terms across repeats of the test points ``part``. q: (R, k, c)."""
    n_repeats, k, _ = q.shape
    y, f = targets.mean[part], targets.truth[part]    # (c,) ybar and f
    ensemble = xp.mean(q, axis=1)                     # (R, c) qbar_r
    member_mean = xp.mean(q, axis=0)                  # (k, c) qbar_i
    deviations = q - member_mean                      # (R, k, c) q_ri - qbar_i
    member_var = xp.mean(deviations**2, axis=0)       # (k, c) Var q_ri
    centre = xp.mean(member_mean, axis=0)             # (c,)  E qbar_r
    if k == 1:
        covariance = xp.full(centre.shape, xp.nan)    # no pairs of members
    else:
        # mean_{i != j} Cov(q_i, q_j) from the products of pairs of members' deviations.
        covariance = xp.mean(_pair_sum(xp, deviations), axis=0) / (k * (k - 1))
    bias = centre - f
    loss = xp.mean((ensemble - y) ** 2, axis=0)
    member_loss = xp.mean(xp.mean((q - y) ** 2, axis=1), axis=0)
    if targets.spread is not None:
        # Several targets y_s: mean_s (p - y_s)^2 = (p - ybar)^2 + mean_s (y_s - ybar)^2.
        loss = loss + targets.spread[part]
        member_loss = member_loss + targets.spread[part]
    return {
        "loss": loss,
        "bias2": bias**2,
        "bias_signed": bias,
        "ensemble_variance": xp.mean((ensemble - centre) ** 2, axis=0),
        "noise": targets.noise[part],
        "noise_cross": 2 * bias * (f - y),
        "member_loss": member_loss,
        "member_bias2": xp.mean((member_mean - f) ** 2, axis=0),
        "member_variance": xp.mean(member_var, axis=0),
        "covariance": covariance,
        "diversity": xp.mean(xp.mean((q - ensemble[:, None, :]) ** 2, axis=1), axis=0),
    }


def _training_set_matrix(xp, q):
    """``Cov(q_ri, q_rj)`` over repeats, averaged over test points: (k, k)."""
    n_repeats, k, n_test = q.shape
    total = xp.zeros((k, k))
    for part in _chunks(n_repeats, k, n_test):
        chunk = q[:, :, part]
        deviations = chunk - xp.mean(chunk, axis=0)              # (R, k, c)
        flat = xp.reshape(xp.moveaxis(deviations, 1, 0), (k, -1))  # (k, R c)
        total += flat @ flat.T
    return to_numpy(total / (n_repeats * n_test))


def _repeated_decomposition(xp, q, targets, repeats, matrices):
    n_repeats, k, n_test = q.shape
    y = targets.mean
    sums, parts = None, []
    for part in _chunks(n_repeats, k, n_test):
        chunk = q[:, :, part]
        sums = _merge_sums(xp, sums, _test_point_sums(xp, chunk, y[part]))
        parts.append(_pointwise_terms(xp, chunk, targets, part))
    pointwise = {name: xp.concatenate([p[name] for p in parts]) for name in parts[0]}
    pointwise["rho"] = _ratio(xp, pointwise["covariance"], pointwise["member_variance"])
    if repeats == "training_sets" and k > 1:
        # One-way random-effects ANOVA with the training set as the group: both are
        # unbiased when members are drawn independently given the set.
        within = pointwise["diversity"] * (k / (k - 1))           # E_Z Var[T | Z]
        between = (pointwise["ensemble_variance"] * (n_repeats / (n_repeats - 1))
                   - within / k)                                  # Var_Z E[T | Z]
        pointwise.update(within_set_variance=within, between_set_variance=between,
                         rho_ratio=_ratio(xp, between, between + within))
    matrix_terms = _test_point_matrices(xp, q, y) if matrices else {}
    test_points = _test_point_result(xp, sums, n_test, k, matrix_terms, squeeze=False)
    return RepeatedDecomposition(
        n_repeats=n_repeats, k=k, n_test=n_test, n_targets=targets.n_targets, repeats=repeats,
        test_points=test_points,
        covariance_matrix=_training_set_matrix(xp, q) if matrices else None,
        **{name: to_numpy(value) for name, value in pointwise.items()})


def ensemble_mse_curve(errors, orders) -> np.ndarray:
    """The MSE of an average of ``k`` members for every ``k``, averaged over member orders.

    Which ``k`` members are averaged matters for one curve. For each order in
    ``orders`` (permutations of the ``K`` members) this averages the MSE of the
    first ``k`` members over the ``K`` cyclic shifts of the order, so that every
    member comes first equally often; over random orders its expectation is
    exactly ``S/k + (k-1)/k X`` (see :class:`EnsembleDecomposition`), at ``k = 1``
    it is the mean member MSE and at ``k = K`` the ensemble's MSE.

    Parameters
    ----------
    errors : array of shape (K, n_test)
        Member errors ``q_i - y`` (NumPy).
    orders : sequence of permutations of ``range(K)``

    Returns
    -------
    ndarray of shape (K,)
        Entry ``k - 1`` is the curve at ``k``.
    """
    owner = "ensemble_mse_curve"
    errors = check_array(errors, "errors", ndim=2, owner=owner)
    n_members = errors.shape[0]
    orders = [np.asarray(order) for order in orders]
    if not orders:
        raise ValueError(f"The 'orders' parameter of {owner} must hold at least one order; "
                         "got none.")
    for j, order in enumerate(orders):
        if (order.ndim != 1 or not np.issubdtype(order.dtype, np.integer)
                or not np.array_equal(np.sort(order), np.arange(n_members))):
            raise ValueError(f"The 'orders' parameter of {owner} must hold permutations of "
                             f"range({n_members}) (one per order, each member once); order "
                             f"{j} is {reprlib.repr(order.tolist())}.")
    curves = []
    for order in orders:
        doubled = errors[np.concatenate([order, order])]                  # (2K, n_test)
        prefix = np.concatenate([np.zeros((1, errors.shape[1])), np.cumsum(doubled, axis=0)])
        out = np.empty(n_members)
        for k in range(1, n_members + 1):
            blocks = (prefix[k:k + n_members] - prefix[:n_members]) / k   # (K, n_test)
            out[k - 1] = np.mean(blocks**2)
        curves.append(out)
    return np.mean(curves, axis=0)
