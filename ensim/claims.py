"""Claims: one checked statement of a study, with its theory, measurement and verdict.

A study ends by turning its tables into a list of :class:`Claim`, built with the
functions here, so that every verdict in ensim is reached by the same rules:

* :func:`equivalence` — agreement with theory, shown by TOST within a stated margin
  (never by a failure to reject);
* :func:`direction` — a sign or an ordering, shown by an interval that excludes
  the bound;
* :func:`within` — an interval that lies inside a stated range;
* :func:`identity` — an exact identity, up to rounding;
* :func:`all_of` — one claim that every one of several parts holds
  (intersection-union: no multiplicity correction is needed);
* :func:`negative_control` — a wrong statement the same check must reject;
* :func:`holm` — a family of claims with a family-wise correction.

A claim always carries the estimate's interval, so a reader can judge the verdict
without trusting it.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass

import numpy as np

from ._validation import check_real
from .primer import KEYS as PRIMER_KEYS

__all__ = ["KINDS", "VERDICTS", "Claim", "all_of", "claims_to_markdown", "count_verdicts",
           "direction", "equivalence", "holm", "holm_adjusted", "identity", "interval_text",
           "negative_control", "statement_text", "verdict_text", "within"]

#: ``holds``: the measurement agrees with the claim (for an equality, the interval
#: lies inside the stated margin; for an inequality, the interval lies on the
#: claimed side). ``fails``: the interval excludes the claim. ``inconclusive``:
#: neither, so more trials are needed.
VERDICTS = ("holds", "fails", "inconclusive")

#: How a claim was checked (see the builders of this module).
KINDS = ("equivalence", "direction", "within", "identity", "all-of", "")


@dataclass(frozen=True)
class Claim:
    """One statement checked by a study.

    Parameters
    ----------
    statement : str
        The claim in words, e.g. ``"MSE_ens = V/k + (k-1)/k C at k=10, rho=0.5"``.
    theory : float or None
        The value the claim predicts (``None`` for a purely qualitative claim).
    estimate : float
        The measured value.
    conf_low, conf_high : float
        The confidence interval of ``estimate`` at level ``1 - alpha``.
    verdict : {"holds", "fails", "inconclusive"}
    method : str
        How the verdict was reached, e.g. ``"TOST, margin 2% of theory, p=1e-9"``.
    alpha : float
        One minus the interval's confidence level.
    expected : {"holds", "fails"}
        The verdict a correct theory and a working study give. Negative controls
        (a wrong formula that the same check must reject) expect ``"fails"``.
    kind : str
        Which builder checked it (one of :data:`KINDS`).
    p_value : float or None
        The p-value behind a ``holds`` verdict, where one applies (after the
        family-wise correction, for a claim in a family).
    family : str or None
        The family whose claims were corrected together (:func:`holm`).
    decision_interval : (float, float) or None
        The interval the verdict rests on where it is not the reported one: an
        equivalence claim's ``1 - 2 alpha`` interval, which TOST compares with the
        margin (:func:`equivalence`).
    uncorrected_verdict : str or None
        The verdict before the family-wise correction, where :func:`holm` changed
        it (the reported interval, which is not corrected, supports that verdict).
    primer : str or None
        The key of the primer's claim it tests (:data:`ensim.primer.PRIMER_CLAIMS`),
        set with :func:`ensim.primer.tag`; ``None`` for claims of other sources.
    """

    statement: str
    theory: float | None
    estimate: float
    conf_low: float
    conf_high: float
    verdict: str
    method: str = ""
    alpha: float = 0.05
    expected: str = "holds"
    kind: str = ""
    p_value: float | None = None
    family: str | None = None
    decision_interval: tuple[float, float] | None = None
    uncorrected_verdict: str | None = None
    primer: str | None = None

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"The 'verdict' parameter of Claim must be one of {VERDICTS}; "
                             f"got {self.verdict!r}.")
        if self.expected not in ("holds", "fails"):
            raise ValueError("The 'expected' parameter of Claim must be 'holds' or 'fails'; "
                             f"got {self.expected!r}.")
        if self.kind not in KINDS:
            raise ValueError(f"The 'kind' parameter of Claim must be one of {KINDS}; "
                             f"got {self.kind!r}.")
        # NaN stands for a value that could not be measured (shown as "—"); anything else
        # must be a number, and an interval must not be inverted.
        for name in ("estimate", "conf_low", "conf_high"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"The {name!r} parameter of Claim must be a real number (NaN "
                                f"if it could not be measured); got {value!r}.")
        if self.conf_low > self.conf_high:
            raise ValueError(f"The interval of a Claim must have conf_low <= conf_high; got "
                             f"[{self.conf_low:g}, {self.conf_high:g}] for {self.statement!r}.")
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner="Claim")
        if self.p_value is not None:
            check_real(self.p_value, "p_value", low=0.0, high=1.0, owner="Claim")
        if self.uncorrected_verdict not in (None, *VERDICTS):
            raise ValueError(f"The 'uncorrected_verdict' parameter of Claim must be None or "
                             f"one of {VERDICTS}; got {self.uncorrected_verdict!r}.")
        if self.primer is not None and self.primer not in PRIMER_KEYS:
            raise ValueError(f"The 'primer' parameter of Claim must be None or one of "
                             f"{', '.join(PRIMER_KEYS)}; got {self.primer!r}.")
        if self.decision_interval is not None:
            low, high = (float(v) for v in self.decision_interval)  # a list, from JSON
            if not low <= high:
                raise ValueError(f"The 'decision_interval' of a Claim must have low <= high; "
                                 f"got [{low:g}, {high:g}] for {self.statement!r}.")
            object.__setattr__(self, "decision_interval", (low, high))

    @property
    def as_expected(self) -> bool:
        """True when the verdict is the expected one (inconclusive never is)."""
        return self.verdict == self.expected

    @property
    def is_control(self) -> bool:
        """True for a negative control (a claim expected to fail)."""
        return self.expected == "fails"

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN becomes ``None``)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> Claim:
        """The claim of a :meth:`to_dict` dict. A primer key this version does not know
        (results written by another version) loads as no mark."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: (math.nan if v is None and k in ("estimate", "conf_low", "conf_high")
                      else v) for k, v in data.items() if k in known}
        if values.get("primer") not in (None, *PRIMER_KEYS):
            values["primer"] = None
        return cls(**values)


# ------------------------------------------------------------------- verdicts
# Every verdict in ensim is made by one of these three rules (a study may only turn one
# into "inconclusive", saying why in the claim's method).


def _verdict_equivalence(p_value, tost_low, tost_high, target, margin, alpha) -> str:
    """TOST: ``holds`` if ``p < alpha``; ``fails`` if the ``1 - 2 alpha`` interval lies
    entirely outside ``target -/+ margin``; otherwise ``inconclusive``."""
    if p_value < alpha:
        return "holds"
    if tost_high < target - margin or tost_low > target + margin:
        return "fails"
    return "inconclusive"


def _verdict_interval(low, high, lower, upper) -> str:
    """``holds`` if ``[low, high]`` lies inside ``(lower, upper)``, ``fails`` if it lies
    entirely outside, otherwise ``inconclusive`` (either bound may be infinite)."""
    if lower < low and high < upper:
        return "holds"
    if high < lower or low > upper:
        return "fails"
    return "inconclusive"


def _with_p(method: str, p_value: float) -> str:
    return f"{method}, p = {p_value:.2g}" if method else f"p = {p_value:.2g}"


# ------------------------------------------------------------------- builders


def equivalence(statement: str, estimate: float, stderr: float, target: float,
                margin: float, *, alpha: float = 0.05, dof: float | None = None,
                method: str = "", theory: float | None = None) -> Claim:
    """Claim ``estimate == target`` within ``margin``, checked by TOST.

    The claim holds when equivalence is shown at level ``alpha`` (both one-sided
    tests reject), fails when the ``1 - 2 alpha`` interval lies outside the margin,
    and is inconclusive otherwise. The reported interval is the two-sided
    ``1 - alpha`` one. ``dof`` makes the tests Student-t (a standard error from few
    independent units); ``theory`` is shown as the claim's theory (default
    ``target``).
    """
    from .stats import equivalence_test, normal_conf_int

    test = equivalence_test(estimate, stderr, target, margin, alpha, dof=dof)
    tost_low, tost_high = normal_conf_int(test.estimate, test.stderr, 2 * alpha, dof)
    low, high = normal_conf_int(test.estimate, test.stderr, alpha, dof)
    verdict = _verdict_equivalence(test.p_value, tost_low, tost_high, test.target,
                                   test.margin, alpha)
    kind = "z" if dof is None else f"t, {dof:g} dof"
    text = f"{method}; TOST ({kind})" if method else f"TOST ({kind}), margin {margin:.3g}"
    # The verdict rests on the 1 - 2 alpha interval, not the 1 - alpha one reported.
    text += (f", {1 - 2 * alpha:.0%} interval [{tost_low:.4g}, {tost_high:.4g}] against "
             f"{test.target:.4g} ± {test.margin:.3g}")
    return Claim(statement, float(target) if theory is None else theory, test.estimate,
                 float(low), float(high), verdict, _with_p(text, test.p_value), alpha,
                 kind="equivalence", p_value=test.p_value,
                 decision_interval=(float(tost_low), float(tost_high)))


def direction(statement: str, estimate: float, *, stderr: float | None = None,
              dof: float | None = None, interval=None, p_value: float | None = None,
              side: str = "above", bound: float = 0.0, alpha: float = 0.05,
              method: str = "", theory: float | None = None) -> Claim:
    """Claim that ``estimate`` lies above (or below) ``bound``.

    The claim holds when the two-sided ``1 - alpha`` interval excludes ``bound`` on
    the claimed side, fails when it excludes it on the other side, and is
    inconclusive otherwise. Give ``stderr`` (and ``dof`` for Student-t), or an
    ``interval`` computed elsewhere (e.g. Welch's t) with its two-sided
    ``p_value``. The p-value reported is the two-sided one, so that ``p < alpha``
    on the claimed side is the same as the interval criterion.
    """
    from .stats import _quantile_distribution, normal_conf_int

    if side not in ("above", "below"):
        raise ValueError(f"The 'side' parameter of direction must be 'above' or 'below'; "
                         f"got {side!r}.")
    if interval is None:
        if stderr is None:
            raise TypeError("direction needs either 'stderr' or 'interval'.")
        if math.isnan(estimate) or math.isnan(stderr):   # not measured: shown as "—"
            return Claim(statement, theory, math.nan, math.nan, math.nan, "inconclusive",
                         f"{method}; not measured (NaN)" if method else "not measured (NaN)",
                         alpha, kind="direction")
        low, high = normal_conf_int(estimate, stderr, alpha, dof)
        if stderr > 0:
            dist = _quantile_distribution(dof)
            p_value = float(min(1.0, 2 * dist.sf(abs(float(estimate) - bound) / stderr)))
        else:
            p_value = 0.0 if estimate != bound else 1.0
    else:
        low, high = (float(v) for v in interval)
    verdict = (_verdict_interval(low, high, bound, math.inf) if side == "above"
               else _verdict_interval(low, high, -math.inf, bound))
    rule = f"holds if the interval is {side} {bound:g}"
    text = f"{method}; {rule}" if method else rule
    if p_value is not None:   # two-sided: small when the estimate is far from the bound,
        text += f", two-sided p = {p_value:.2g} for ≠ {bound:g}"    # on either side
    return Claim(statement, theory, float(estimate), float(low), float(high), verdict, text,
                 alpha, kind="direction", p_value=p_value)


def within(statement: str, estimate: float, low: float, high: float, lower: float,
           upper: float, *, theory: float | None = None, alpha: float = 0.05,
           method: str = "") -> Claim:
    """Claim that a quantity lies in ``(lower, upper)``: its interval ``[low, high]`` must."""
    if not lower <= upper:
        raise ValueError(f"The bounds of within must have lower <= upper; got lower = "
                         f"{lower!r} and upper = {upper!r} for {statement!r}.")
    verdict = _verdict_interval(low, high, lower, upper)
    rule = f"interval inside [{lower:g}, {upper:g}]"
    return Claim(statement, theory, float(estimate), float(low), float(high), verdict,
                 f"{method}, {rule}" if method else rule, alpha, kind="within")


def identity(statement: str, residual: float, *, tol: float = 1e-10, alpha: float = 0.05,
             method: str = "") -> Claim:
    """Claim an exact identity: the largest relative ``residual`` must be below ``tol``."""
    residual = float(residual)
    if residual < 0:
        raise ValueError(f"The 'residual' parameter of identity must be a size, >= 0 (the "
                         f"largest relative residual); got {residual:g} for {statement!r}.")
    verdict = "holds" if residual < tol else "fails"
    rule = f"largest relative residual < {tol:g}"
    return Claim(statement, 0.0, residual, 0.0, residual, verdict,
                 f"{rule}; {method}" if method else rule, alpha, kind="identity")


def all_of(statement: str, parts: list, *, method: str = "", labels=None) -> Claim:
    """One claim that every one of ``parts`` holds (an intersection-union test).

    "All of them" needs no multiplicity correction: the claim holds when every part
    holds at level ``alpha``, fails when any part fails, and is inconclusive
    otherwise. It reports the least favourable part (a failing one, else the one
    with the largest p-value), named by ``labels`` when given, and carries the
    parts' primer key where they all share one.
    """
    parts = _check_claims(parts, "parts", "all_of")
    if not parts:
        raise ValueError("all_of needs at least one part.")
    if labels is not None and len(labels) != len(parts):
        raise ValueError(f"The 'labels' parameter of all_of must hold one label per part "
                         f"({len(parts)}); got {len(labels)}.")
    verdicts = [p.verdict for p in parts]
    verdict = ("holds" if all(v == "holds" for v in verdicts)
               else "fails" if "fails" in verdicts else "inconclusive")
    worst = max(range(len(parts)), key=lambda i: (verdicts[i] == "fails",
                                                  parts[i].p_value or 0.0))
    part = parts[worst]
    where = f"; least favourable {labels[worst]}" if labels is not None else ""
    largest = f"largest p = {part.p_value:.2g}" if part.p_value is not None else ""
    largest = f"; {largest}" if method and largest else largest
    # The part's decision interval (TOST's) and overridden verdict come along, so that
    # the row shows what decides it; so does the parts' primer key, where they share one.
    marks = {p.primer for p in parts}
    return Claim(f"{statement}{where}", part.theory, part.estimate, part.conf_low,
                 part.conf_high, verdict, f"{method}{largest}", part.alpha, kind="all-of",
                 p_value=part.p_value, decision_interval=part.decision_interval,
                 uncorrected_verdict=part.uncorrected_verdict,
                 primer=marks.pop() if len(marks) == 1 else None)


def _check_claims(claims, name, owner) -> list:
    claims = list(claims)
    bad = [c for c in claims if not isinstance(c, Claim)]
    if bad:
        raise TypeError(f"The {name!r} parameter of {owner} must hold Claim objects; got a "
                        f"{type(bad[0]).__name__}.")
    return claims


def negative_control(claim: Claim) -> Claim:
    """Mark ``claim`` as a negative control: a wrong statement the check must reject
    (it tests the check, so it carries no primer key)."""
    return dataclasses.replace(claim, expected="fails", primer=None)


def holm_adjusted(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the order given.

    With the ``m`` p-values sorted, ``p_(1) <= ... <= p_(m)``, the adjusted
    ``p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))`` (Holm 1979), the arithmetic of
    statsmodels' ``multipletests(method="holm")``, without its garbage collection
    (0.1-0.5 s a call in a study's process).
    """
    p = np.atleast_1d(np.asarray(p_values, dtype=float)).ravel()
    order = np.argsort(p, kind="stable")
    m = p.size
    stepped = np.maximum.accumulate(p[order] * np.arange(m, 0, -1))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


def holm(claims: list, family: str, *, alpha: float | None = None) -> list:
    """Apply Holm's family-wise correction (:func:`holm_adjusted`) to ``claims``.

    Each claim's p-value is replaced by its Holm-adjusted one; a claim holds only
    if its adjusted p-value is below ``alpha`` (the claims' own, by default), so the
    probability that any claim of the family holds wrongly stays below ``alpha``.
    A direction claim's p-value is two-sided, so its ``fails`` (the effect lies
    on the other side) needs an adjusted p-value below ``alpha`` too: otherwise
    both verdicts become ``inconclusive``. An equivalence claim's ``fails`` rests
    on its ``1 - 2 alpha`` interval lying outside the margin, a test of its own
    that this correction does not cover.
    """
    claims = _check_claims(claims, "claims", "holm")
    if not claims:
        return claims
    if alpha is not None:
        check_real(alpha, "alpha", low=0.0, high=0.5, low_inclusive=False, high_inclusive=False,
                   owner="holm")
    missing = [c.statement for c in claims if c.p_value is None]
    if missing:
        raise ValueError(f"Every claim of a family needs a p-value; {missing[0]!r} has none.")
    alpha = claims[0].alpha if alpha is None else alpha
    adjusted = holm_adjusted([c.p_value for c in claims])
    out = []
    for claim, p in zip(claims, adjusted):
        verdict, before = claim.verdict, None
        p_based = verdict == "holds" or (verdict == "fails" and claim.kind == "direction")
        if p_based and not p < alpha:
            verdict, before = "inconclusive", verdict
        out.append(dataclasses.replace(
            claim, p_value=float(p), verdict=verdict, family=family,
            uncorrected_verdict=before,
            method=f"{claim.method}; Holm-adjusted p = {p:.2g} over the {len(claims)} "
                   f"claims of the family {family!r} ("
                   + ("a verdict" if claim.kind == "direction" else "'holds'")
                   + f" needs an adjusted p < {alpha:g})"))
    return out


# -------------------------------------------------------------------- display


def count_verdicts(claims) -> str:
    """E.g. ``"12 hold, 0 fail, 1 inconclusive; negative controls rejected as expected: 1 of 1"``;
    ``"12 hold (2 of them exact checks), ..."`` where identities are among the holds."""
    claims = _check_claims(claims, "claims", "count_verdicts")
    controls = [c for c in claims if c.is_control]
    checks = [c for c in claims if not c.is_control]
    # Identities hold by algebra: say how many of the holds are not statistical.
    exact = sum(c.verdict == "holds" and c.kind == "identity" for c in checks)
    hold = f"hold ({exact} of them exact checks)" if exact else "hold"
    text = ", ".join(f"{sum(c.verdict == v for c in checks)} {w}"
                     for v, w in (("holds", hold), ("fails", "fail"),
                                  ("inconclusive", "inconclusive")))
    if controls:
        n_ok = sum(c.as_expected for c in controls)
        text += f"; negative controls rejected as expected: {n_ok} of {len(controls)}"
    return text


def format_number(value) -> str:
    """Four significant digits; ``—`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4g}"


def verdict_text(claim: Claim) -> str:
    """The verdict as a reader should take it (a rejected negative control is good news).

    A verdict that Holm's correction made inconclusive says what the claim's own,
    uncorrected interval shows, so that the interval beside it cannot be misread.
    """
    if claim.is_control:
        return {"fails": "rejected, as expected (negative control)",
                "holds": "NOT rejected (negative control: the check is too weak)",
                "inconclusive": "inconclusive (negative control not rejected)"}[claim.verdict]
    if claim.uncorrected_verdict is not None:
        return f"{claim.verdict} (would be '{claim.uncorrected_verdict}' before Holm's correction)"
    return claim.verdict


def interval_text(claim: Claim, space: str = " ", join: str = ", ") -> str:
    """The claim's interval as shown, e.g. ``"95% [0.9, 1.1]"``; an equivalence claim's
    ``1 - 2 alpha`` interval, on which TOST decides, comes first, then ``join``; an
    identity (an exact check, its measured value the residual) has none.
    ``space`` joins a level to its interval (``"&nbsp;"`` keeps them on one line in
    Markdown)."""
    def one(level, low, high):
        return (f"{100 * level:g}%{space}[{format_number(low)},{space}"
                f"{format_number(high)}]")

    if claim.kind == "identity":      # [0, residual] is a rounding bound, not an interval
        return "none: an exact check"
    shown = one(1 - claim.alpha, claim.conf_low, claim.conf_high)
    if claim.decision_interval is None:
        return shown
    return f"{one(1 - 2 * claim.alpha, *claim.decision_interval)} (decides){join}{shown}"


def statement_text(claim: Claim) -> str:
    """The claim's statement, followed by the primer claim it tests, if any."""
    return claim.statement + (f" [tests the primer: {claim.primer}]" if claim.primer else "")


def claims_to_markdown(claims) -> str:
    """A Markdown table of ``claims``: statement, theory, measured, interval, verdict."""
    lines = ["| claim | theory | measured | interval | verdict | method |",
             "|---|---|---|---|---|---|"]
    for c in claims:
        lines.append(f"| {statement_text(c)} | {format_number(c.theory)} | "
                     f"{format_number(c.estimate)} | {interval_text(c, '&nbsp;')} | "
                     f"**{verdict_text(c)}** | {c.method} |")
    return "\n".join(lines) + "\n"
