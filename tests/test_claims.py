"""Claim builders: every verdict rule, the p-values behind them, Holm families."""

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from ensim.claims import (
    Claim,
    all_of,
    direction,
    equivalence,
    holm,
    identity,
    interval_text,
    negative_control,
    verdict_text,
    within,
)


def test_equivalence_verdicts():
    # z TOST, margin 0.1: the 90% interval inside the margin holds, wholly outside fails.
    assert equivalence("c", 1.01, 0.01, 1.0, 0.1).verdict == "holds"
    assert equivalence("c", 1.5, 0.01, 1.0, 0.1).verdict == "fails"
    assert equivalence("c", 1.05, 0.2, 1.0, 0.1).verdict == "inconclusive"
    claim = equivalence("c", 1.01, 0.01, 1.0, 0.1, dof=4)
    assert claim.kind == "equivalence" and "t, 4 dof" in claim.method
    half = (claim.conf_high - claim.conf_low) / 2
    assert half == pytest.approx(sps.t.ppf(0.975, 4) * 0.01, rel=1e-12)   # 1 - alpha interval
    # The larger one-sided p-value is the upper test's, H0: diff >= +margin.
    assert claim.p_value == pytest.approx(sps.t.cdf((0.01 - 0.1) / 0.01, 4), rel=1e-9)


def test_direction_verdicts_and_p_value():
    above = direction("d", 0.5, stderr=0.1, side="above")
    assert above.verdict == "holds"
    assert above.p_value == pytest.approx(2 * sps.norm.sf(5.0), rel=1e-9)
    assert direction("d", -0.5, stderr=0.1, side="above").verdict == "fails"
    assert direction("d", 0.1, stderr=0.1, side="above").verdict == "inconclusive"
    assert direction("d", -0.5, stderr=0.1, side="below").verdict == "holds"
    assert direction("d", 2.0, interval=(1.5, 2.5), p_value=0.01, bound=1.0).verdict == "holds"
    with pytest.raises(ValueError, match="'side'"):
        direction("d", 1.0, stderr=1.0, side="up")
    with pytest.raises(TypeError, match="stderr"):
        direction("d", 1.0)


def test_within_identity_and_all_of():
    assert within("w", 1.0, 0.8, 1.2, 0.5, 1.5).verdict == "holds"
    assert within("w", 2.0, 1.8, 2.2, 0.5, 1.5).verdict == "fails"
    assert within("w", 1.4, 1.2, 1.6, 0.5, 1.5).verdict == "inconclusive"
    assert identity("i", 1e-14).verdict == "holds"
    assert identity("i", 1e-6).verdict == "fails"          # negative control of the rule
    good = [equivalence("p", 1.0 + e, 0.01, 1.0, 0.1) for e in (0.0, 0.02)]
    unclear = equivalence("p", 1.05, 0.2, 1.0, 0.1)
    wrong = equivalence("p", 1.5, 0.01, 1.0, 0.1)
    assert all_of("all", good).verdict == "holds"
    combined = all_of("all", [*good, unclear], labels=["a", "b", "c"])
    assert combined.verdict == "inconclusive" and combined.statement.endswith("least favourable c")
    assert all_of("all", [*good, unclear, wrong]).verdict == "fails"


def test_holm_adjusts_p_values_as_by_hand():
    # p = 0.01, 0.04, 0.03 over 3 claims: Holm multiplies the sorted p-values by 3, 2, 1
    # and keeps them monotone: 0.03, max(0.06, 0.03) = 0.06, max(0.04, 0.06) = 0.06.
    claims = [direction(f"c{i}", 1.0, interval=(0.5, 1.5), p_value=p)
              for i, p in enumerate((0.01, 0.04, 0.03))]
    assert [c.verdict for c in claims] == ["holds"] * 3
    adjusted = holm(claims, "family")
    assert [c.p_value for c in adjusted] == pytest.approx([0.03, 0.06, 0.06], rel=1e-12)
    assert [c.verdict for c in adjusted] == ["holds", "inconclusive", "inconclusive"]
    assert all(c.family == "family" and "Holm-adjusted" in c.method for c in adjusted)
    # A direction claim that fails (its effect on the other side) stays failed only if
    # its adjusted two-sided p-value is below alpha, as a claim that holds.
    failed = direction("f", -1.0, stderr=0.1, side="above")
    assert holm([failed], "one")[0].verdict == "fails"
    barely = [direction(f"b{i}", -1.0, interval=(-1.5, -0.5), p_value=p, side="above")
              for i, p in enumerate((0.03, 0.04))]        # Holm: 0.06, 0.06
    assert [c.verdict for c in barely] == ["fails"] * 2
    assert [c.verdict for c in holm(barely, "two")] == ["inconclusive"] * 2
    # An equivalence claim's fails rests on its 1 - 2 alpha interval, not on its p-value.
    far = equivalence("e", 2.0, 0.1, 1.0, 0.1)
    assert far.verdict == "fails" and holm([far, far], "eq")[0].verdict == "fails"
    with pytest.raises(ValueError, match="needs a p-value"):
        holm([within("w", 1.0, 0.8, 1.2, 0.5, 1.5)], "bad")


def test_holm_adjusted_is_statsmodels_holm():
    from statsmodels.stats.multitest import multipletests

    from ensim.claims import holm_adjusted

    rng = np.random.default_rng(0)
    cases = [rng.uniform(size=m) ** 3 for m in (1, 2, 5, 11, 40)]
    cases += [np.array([0.01, 0.01, 0.2, 1.0, 0.0, 0.01]),        # ties, 0 and 1
              np.array([0.3, 0.3, 0.3]), np.array([0.5, 0.6, 0.9, 0.95])]   # capped at 1
    for p in cases:
        expected = multipletests(p, method="holm")[1]
        np.testing.assert_array_equal(holm_adjusted(p), expected)
    assert holm_adjusted(0.3).tolist() == [0.3]                  # a single p, as a scalar
    # Negative control: Bonferroni (every p times m), a correction it must not be.
    p = np.array([0.01, 0.04, 0.03])
    assert not np.allclose(holm_adjusted(p), np.minimum(3 * p, 1))


def test_negative_control_and_round_trip():
    control = negative_control(equivalence("wrong", 1.5, 0.01, 1.0, 0.1))
    assert control.is_control and control.as_expected
    assert not negative_control(equivalence("weak", 1.05, 0.2, 1.0, 0.1)).as_expected
    data = control.to_dict()
    assert data["kind"] == "equivalence" and not math.isnan(data["p_value"])


def test_an_unmeasured_direction_is_inconclusive_not_an_error():
    # NaN stands for a value that could not be measured (shown as "—"): the claim says
    # so, and the study's other claims are still written.
    claim = direction("d", math.nan, stderr=0.1)
    assert claim.verdict == "inconclusive" and "not measured" in claim.method
    assert math.isnan(claim.conf_low) and math.isnan(claim.conf_high)
    assert direction("d", 1.0, stderr=0.1).verdict == "holds"      # control
    # Bounds that coincide cannot be held inside, but can be missed.
    assert within("w", 1.0, 0.9, 1.1, 1.0, 1.0).verdict == "inconclusive"
    assert within("w", 3.0, 2.9, 3.1, 1.0, 1.0).verdict == "fails"


def test_holm_records_the_verdict_it_overrode_and_says_so():
    # p = 0.01, 0.04, 0.03: Holm leaves the first holding and makes the others
    # inconclusive, though their own (uncorrected) intervals clear the bound.
    claims = [direction(f"c{i}", 1.0, interval=(0.5, 1.5), p_value=p)
              for i, p in enumerate((0.01, 0.04, 0.03))]
    adjusted = holm(claims, "family")
    assert [c.uncorrected_verdict for c in adjusted] == [None, "holds", "holds"]
    assert verdict_text(adjusted[0]) == "holds"                  # control: not overridden
    assert verdict_text(adjusted[1]) == ("inconclusive (would be 'holds' before Holm's "
                                         "correction)")
    assert "adjusted p < 0.05" in adjusted[1].method
    barely = [direction(f"b{i}", -1.0, interval=(-1.5, -0.5), p_value=p, side="above")
              for i, p in enumerate((0.03, 0.04))]
    assert {c.uncorrected_verdict for c in holm(barely, "two")} == {"fails"}
    # An interval that already reached across the bound was not decided before either.
    unclear = direction("u", 0.1, stderr=0.1)
    assert holm([unclear, *claims], "f")[0].uncorrected_verdict is None
    with pytest.raises(ValueError, match="'uncorrected_verdict'"):
        dataclasses.replace(claims[0], uncorrected_verdict="maybe")


def test_equivalence_shows_the_interval_it_decides_on_first():
    # 1.055 +/- 0.025, margin 0.1: the 95% interval [1.006, 1.104] crosses 1.1, while
    # the 90% one TOST decides on, [1.014, 1.096], lies inside the margin: it holds.
    claim = equivalence("c", 1.055, 0.025, 1.0, 0.1)
    assert claim.verdict == "holds" and claim.conf_high > 1.1     # the 95% one crosses
    low, high = claim.decision_interval
    z90 = sps.norm.ppf(0.95)
    assert (low, high) == pytest.approx((1.055 - z90 * 0.025, 1.055 + z90 * 0.025), rel=1e-12)
    assert high < 1.1 < claim.conf_high
    text = interval_text(claim)
    assert text.startswith("90% [1.014, 1.096] (decides), 95% [")
    assert interval_text(direction("d", 1.0, stderr=0.1)) == "95% [0.804, 1.196]"
    # An identity's [0, residual] is a rounding bound: shown as no interval at all.
    assert interval_text(identity("i", 1e-15)) == "none: an exact check"
    back = Claim.from_dict(json.loads(json.dumps(claim.to_dict())))   # a list in JSON
    assert back == claim and isinstance(back.decision_interval, tuple)
    with pytest.raises(ValueError, match="'decision_interval'"):
        dataclasses.replace(claim, decision_interval=(2.0, 1.0))


def test_summary_says_which_claims_holm_left_undecided():
    from ensim.study.publish import _why_inconclusive

    claims = holm([direction(f"c{i}", 1.0, interval=(0.5, 1.5), p_value=p)
                   for i, p in enumerate((0.01, 0.04, 0.03))], "family")
    wide = direction("w", 0.1, stderr=0.1)
    text = _why_inconclusive([*claims, wide], "quick")
    assert "1 claim(s) are inconclusive because at this scale" in text
    assert "2 claim(s) are inconclusive only after Holm's" in text
    full = _why_inconclusive([*claims, wide], "full")
    assert "at this scale" not in full and "2 claim(s)" in full
    assert _why_inconclusive([claims[0]], "quick") == ""


def test_all_of_shows_the_interval_its_least_favourable_part_decides_on():
    # The part at 1.055 +/- 0.025 holds on its 90% interval [1.014, 1.096] while its 95%
    # one crosses the margin: the combined row must show the 90% one, which decides.
    parts = [equivalence("a", 1.0, 0.01, 1.0, 0.1), equivalence("b", 1.055, 0.025, 1.0, 0.1)]
    combined = all_of("all", parts, labels=["a", "b"])
    assert combined.verdict == "holds" and combined.statement.endswith("least favourable b")
    assert combined.decision_interval == parts[1].decision_interval
    assert interval_text(combined).startswith("90% [1.014, 1.096] (decides), 95% [")
    # A direction part has no decision interval (control), and an overridden verdict
    # comes along.
    undecided = holm([direction(f"d{i}", 1.0, interval=(0.5, 1.5), p_value=p)
                      for i, p in enumerate((0.04, 0.03))], "f")
    combined = all_of("all", undecided)
    assert combined.decision_interval is None and combined.uncorrected_verdict == "holds"


def test_a_claim_names_the_primer_claim_it_tests():
    from ensim.claims import statement_text
    from ensim.primer import KEYS, PRIMER_CLAIMS, primer_claim, tag

    claim = direction("dropout lowers it", -1.0, stderr=0.1, side="below")
    marked = tag(claim, "dropout-decorrelates")
    assert marked.primer == "dropout-decorrelates" and claim.primer is None
    assert dataclasses.replace(marked, primer=None) == claim     # nothing else changes
    assert Claim.from_dict(json.loads(json.dumps(marked.to_dict()))) == marked
    assert statement_text(marked) == "dropout lowers it [tests the primer: dropout-decorrelates]"
    assert statement_text(claim) == "dropout lowers it"
    # A negative control tests the check, not the primer: it stays unmarked.
    control = negative_control(direction("a wrong formula", 1.0, stderr=0.1, side="below"))
    assert tag([claim, control], "bagging") == [tag(claim, "bagging"), control]
    # Results written before claims were marked, or with a key this version does not
    # know, load with no mark (a refused key would drop the study from the report).
    old = {k: v for k, v in marked.to_dict().items() if k != "primer"}
    assert Claim.from_dict(old).primer is None
    assert Claim.from_dict({**marked.to_dict(), "primer": "random-forest"}).primer is None
    # Unknown keys are refused when a claim is made, naming the parameter and the keys.
    with pytest.raises(ValueError, match=r"'primer' parameter of Claim .* bagging.*got 'bagg'"):
        dataclasses.replace(claim, primer="bagg")
    with pytest.raises(ValueError, match=r"'key' parameter of tag .*ensemble-formula.*got 7"):
        tag(claim, 7)
    for bad in ((claim,), None, [claim, 3]):
        with pytest.raises(TypeError, match="'claims' parameter of tag must be a Claim"):
            tag(bad, "l2")
    with pytest.raises(ValueError, match="marked 'l2' already; tag cannot mark it 'l1'"):
        tag(tag(claim, "l2"), "l1")
    assert tag(tag(claim, "l2"), "l2") == tag(claim, "l2")
    assert len(KEYS) == len(set(KEYS)) == len(PRIMER_CLAIMS)
    assert primer_claim("l2").studies == ("regularizers",)


def test_controls_carry_no_primer_key_and_all_of_keeps_a_shared_one():
    from ensim.primer import tag

    a = tag(direction("a", -1.0, stderr=0.1, side="below"), "l2")
    b = tag(direction("b", -2.0, stderr=0.1, side="below"), "l2")
    assert negative_control(a).primer is None and negative_control(a).is_control
    assert all_of("both", [a, b]).primer == "l2"
    # Parts of two primer claims, or a part with none: the whole states neither.
    assert all_of("mixed", [a, tag(direction("c", 1.0, stderr=0.1), "l1")]).primer is None
    assert all_of("partly", [a, direction("d", -1.0, stderr=0.1, side="below")]).primer is None


def test_every_study_a_primer_claim_names_exists():
    from ensim.primer import PRIMER_CLAIMS
    from ensim.study import available_studies

    names = set(available_studies())
    assert all(name in names for entry in PRIMER_CLAIMS for name in entry.studies)
    # (The study tests check that a run's claims carry exactly these keys.)
