"""Claims: one checked statement of a study, with its theory, measurement and verdict.

A study ends by turning its table into a list of :class:`Claim`. The runner writes
them to ``summary.md`` and ``claims.json``; ``ensim report`` gathers them into one
page. A claim always carries the estimate's interval, so a reader can judge the
verdict without trusting it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

__all__ = ["VERDICTS", "Claim", "claims_to_markdown", "count_verdicts", "negative_control"]

#: ``holds``: the measurement agrees with the claim (for an equality, the interval
#: lies inside the stated margin; for an inequality, the interval lies on the
#: claimed side). ``fails``: the interval excludes the claim. ``inconclusive``:
#: neither, so more trials are needed.
VERDICTS = ("holds", "fails", "inconclusive")


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
        (a wrong formula that the same check must reject) expect ``"fails"``; see
        :func:`negative_control`.
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

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"The 'verdict' parameter of Claim must be one of {VERDICTS}; "
                             f"got {self.verdict!r}.")
        if self.expected not in ("holds", "fails"):
            raise ValueError("The 'expected' parameter of Claim must be 'holds' or 'fails'; "
                             f"got {self.expected!r}.")

    @property
    def as_expected(self) -> bool:
        """True when the verdict is the expected one (inconclusive never is)."""
        return self.verdict == self.expected

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN becomes ``None``)."""
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "Claim":
        return cls(**{k: (math.nan if v is None and k in ("estimate", "conf_low", "conf_high")
                          else v) for k, v in data.items()})


def negative_control(claim: Claim) -> Claim:
    """Mark ``claim`` as a negative control: a wrong statement the check must reject."""
    return dataclasses.replace(claim, expected="fails")


def count_verdicts(claims) -> str:
    """E.g. ``"12 hold, 0 fail, 1 inconclusive; negative controls failing as they should: 1 of 1"``."""
    claims = list(claims)
    controls = [c for c in claims if c.expected == "fails"]
    checks = [c for c in claims if c.expected == "holds"]
    text = ", ".join(f"{sum(c.verdict == v for c in checks)} {w}"
                     for v, w in (("holds", "hold"), ("fails", "fail"),
                                  ("inconclusive", "inconclusive")))
    if controls:
        n_ok = sum(c.as_expected for c in controls)
        text += f"; negative controls failing as they should: {n_ok} of {len(controls)}"
    return text


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.4g}"


def claims_to_markdown(claims) -> str:
    """A Markdown table of ``claims``: statement, theory, measured, interval, verdict."""
    lines = ["| claim | theory | measured | interval | verdict | method |",
             "|---|---|---|---|---|---|"]
    for c in claims:
        level = f"{100 * (1 - c.alpha):g}%"
        verdict = f"**{c.verdict}**" + (" (negative control: expected)" if c.expected == "fails"
                                        and c.as_expected else "")
        lines.append(f"| {c.statement} | {_fmt(c.theory)} | {_fmt(c.estimate)} | "
                     f"{level} [{_fmt(c.conf_low)}, {_fmt(c.conf_high)}] | "
                     f"{verdict} | {c.method} |")
    return "\n".join(lines) + "\n"
