"""The report gathers every study: parse the HTML, check order, figures, links and claims."""

import base64
import dataclasses
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

import ensim
from ensim.claims import (
    Claim,
    claims_to_markdown,
    count_verdicts,
    negative_control,
)
from ensim.report import write_report

TINY = str(Path(__file__).parent / "data" / "tiny_study.py")


class ReportParser(HTMLParser):
    """Collects, per <section id=...>: images, links, story tags, and each table row's cells
    (with the verdict cells' classes)."""

    def __init__(self):
        super().__init__()
        self.sections, self.order, self.current, self.row, self.cell = {}, [], None, None, None
        self.in_claims = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.order.append(attrs["id"])
            self.current = self.sections.setdefault(
                attrs["id"], {"images": [], "rows": [], "links": [], "tags": [], "classes": []})
        elif self.current is None:
            return
        elif tag == "img":
            self.current["images"].append(attrs["src"])
        elif tag == "a":
            self.current["links"].append(attrs["href"])
        elif tag == "table" and attrs.get("class") == "claims":
            self.in_claims = True
            self.current["tags"].append(tag)
        elif tag == "tr" and self.in_claims:
            self.row = []
        elif tag == "td" and self.row is not None:
            self.cell = attrs.get("class", "")
            self.row.append("")
            if "verdict" in self.cell:
                self.current["classes"].append(self.cell)
        else:
            self.current["tags"].append(tag)

    def handle_endtag(self, tag):
        if tag == "tr" and self.row:
            self.current["rows"].append(self.row)
            self.row = None
        elif tag == "td":
            self.cell = None
        elif tag == "table":
            self.in_claims = False
        elif tag == "section":
            self.current = None

    def handle_data(self, data):
        if self.cell is not None:
            self.row[-1] += data


STORY = """A test story.

* a list item with *emphasis*
* and a second one

| a | b |
|---|---|
| 1 | 2 |
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    tiny = ensim.study.load_study(TINY)
    story_study = dataclasses.replace(tiny, doc="A tiny study for testing the runner.\n\n" + STORY)
    ensim.run(story_study, scale="full", out=out)
    ensim.run("formula-check", out=out, ks=(1, 2, 5), rhos=(0.0, 0.5),
              dists=("gaussian", "rademacher"), n_trials=3000, rel_margin=0.2)
    return out


def test_report_holds_every_study_in_order_with_figures_links_and_claims(results):
    html_path, md_path = write_report(results)
    page = html_path.read_text()
    parser = ReportParser()
    parser.feed(page)
    assert parser.order == ["formula-check", "tiny"]        # declared order, not alphabetical
    for name, section in parser.sections.items():
        claims = json.loads((results / name / "claims.json").read_text())
        assert len(section["rows"]) == len(claims)
        # A claim that states what the primer predicts says so.
        assert [row[0] for row in section["rows"]] == [
            c["statement"] + (f" [tests the primer: {c['primer']}]" if c["primer"] else "")
            for c in claims]
        for row, claim, cls in zip(section["rows"], claims, section["classes"]):
            if claim["expected"] == "fails" and claim["verdict"] == "fails":
                # A rejected negative control is the expected outcome, not a failure.
                assert "control-ok" in cls and "fails" not in cls.split()
                assert row[4].startswith("rejected, as expected")
            else:
                assert row[4].split(" ")[0] == claim["verdict"] and claim["verdict"] in cls
            # Each interval on one line; an equivalence claim's TOST interval, on which
            # its verdict rests, first.
            decides = r"90% \[[^\]\n]+\] \(decides\)" if claim["decision_interval"] else ""
            shown = ("none: an exact check" if claim["kind"] == "identity"
                     else decides + r"95% \[[^\]\n]+\]")
            assert re.fullmatch(shown, row[3]), row[3]
        (image,) = section["images"]
        prefix = "data:image/png;base64,"
        assert image.startswith(prefix)
        png = base64.b64decode(image[len(prefix):])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert png == (results / name / "figure.png").read_bytes()
        links = section["links"]
        assert "#top" in links
        manifest = json.loads((results / name / "manifest.json").read_text())
        for target in [*manifest["tables"].values(), "figure.pdf", "manifest.json"]:
            assert f"{name}/{target}" in links and (results / name / target).exists()
    assert "white-space: nowrap" in page
    # A run unlike the full scale says how, beside text that quotes the full scale; a
    # full-scale run says nothing of the kind.
    assert page.count("unlike the full scale") == 1
    assert "<code>n_trials = 3000</code> (full 1000000)" in page
    # Figures are shown at 100 dpi (saved at 150), in a box that scrolls sideways.
    png = (results / "formula-check" / "figure.png").read_bytes()
    assert f"width='{round(int.from_bytes(png[16:20], 'big') / 1.5)}'" in page
    tags = parser.sections["tiny"]["tags"]
    assert {"ul", "li", "em", "th"} <= set(tags)            # the story's Markdown, rendered
    assert "*emphasis*" not in page
    assert "<code>" in page                                 # formula-check's `literals`
    markdown = md_path.read_text()
    for text in (page, markdown):          # the guide to the claims' words, once, up front
        assert text.count("How to read a claim") == 1
        first = "formula-check/figure.png" if text is markdown else "<section id='formula-check'"
        assert text.index("How to read a claim") < text.index(first)
        assert "Holm's correction" in text and "Negative control" in text
    assert "formula-check/figure.png" in markdown and "tiny/figure.png" in markdown
    assert markdown.count("| claim | theory |") == 2
    assert markdown.index("## Does averaging") < markdown.index("## A tiny study")


def test_the_primer_section_counts_the_claims_marked_for_each_primer_claim(results):
    from ensim.claims import direction
    from ensim.primer import PRIMER_CLAIMS, primer_claim, tag
    from ensim.report import collect_studies, primer_section

    html_path, md_path = write_report(results)
    markdown = md_path.read_text()
    section = markdown[markdown.index("## The primer, measured"):
                       markdown.index("**How to read a claim")]
    rows = [line for line in section.splitlines()
            if line.startswith("| ") and not line.startswith("| the primer says")]
    # Of the primer's studies only formula-check ran: its one primer claim, with the
    # verdicts of its marked claims (not the z-score claim's, nor the controls').
    (row,) = rows
    claims = [Claim.from_dict(c)
              for c in json.loads((results / "formula-check" / "claims.json").read_text())]
    marked = [c for c in claims if c.primer == "ensemble-formula"]
    assert 0 < len(marked) < len([c for c in claims if not c.is_control])
    assert not any(c.primer for c in claims if c.is_control)
    entry = primer_claim("ensemble-formula")
    assert row == (f"| {entry.says} | [formula-check](#formula-check) | "
                   f"{count_verdicts(marked)} | {entry.full_scale} |")
    # Two scales here (full and custom): no scale is named, and no quick-run caveat.
    assert "this run (" not in section and "| this run: verdicts" in section
    assert "A quick run's intervals" not in section
    page = html_path.read_text()
    assert "id='primer'" in page and page.index("id='primer'") < page.index("<section")
    # No study of the primer: no section. A study whose claims carry other keys (the
    # negative control of the counting): its primer claim has none of this run's claims.
    studies = collect_studies(results)
    assert primer_section([s for s in studies if s["name"] == "tiny"]) == ""
    fake = {"name": "formula-check", "manifest": {"scale": "quick"},
            "claims": [dataclasses.replace(marked[0], primer="bagging")]}
    text = primer_section([fake])
    assert "this run (quick scale)" in text and "A quick run's intervals" in text
    assert "| no claim of this run is marked as testing it |" in text
    # Results written before claims were marked say so, instead.
    old = dict(fake, claims=[dataclasses.replace(c, primer=None) for c in marked],
               marks_recorded=False)
    assert "| not marked in these results (written by a version of ensim" in primer_section([old])
    # One study of a row written before marks, one after: the count says whose it leaves out.
    bn = {"name": "batch-norm", "manifest": {"scale": "quick"}, "marks_recorded": False,
          "claims": []}
    reg = {"name": "regularizers", "manifest": {"scale": "quick"},
           "claims": [tag(direction("bn lowers it", -1.0, stderr=0.1, side="below"),
                          "batch-norm-faster")]}
    row = next(line for line in primer_section([bn, reg]).splitlines()
               if line.startswith("| Batch normalization allows higher"))
    assert "| 1 hold, 0 fail, 0 inconclusive (not counting batch-norm: written before" in row
    assert len([e for e in PRIMER_CLAIMS if "formula-check" in e.studies]) == 1


def test_claims_round_trip_and_counts():
    ok = Claim("a", 1.0, 1.01, 0.99, 1.03, "holds", "TOST")
    control = negative_control(Claim("b", 0.0, 1.0, 0.9, 1.1, "fails", "TOST"))
    unclear = Claim("c", None, float("nan"), float("nan"), float("nan"), "inconclusive")
    assert Claim.from_dict(json.loads(json.dumps(control.to_dict()))) == control
    assert control.expected == "fails" and control.as_expected and not unclear.as_expected
    assert count_verdicts([ok, control, unclear]) == (
        "1 hold, 0 fail, 1 inconclusive; negative controls rejected as expected: 1 of 1")
    from ensim.claims import identity

    exact = identity("an identity", 1e-16)
    assert count_verdicts([ok, exact, unclear]) == (
        "2 hold (1 of them exact checks), 0 fail, 1 inconclusive")
    assert count_verdicts([ok, identity("broken", 1.0)]) == "1 hold, 1 fail, 0 inconclusive"
    table = claims_to_markdown([ok, control])
    assert "rejected, as expected (negative control)" in table
    assert "95%&nbsp;[0.99,&nbsp;1.03]" in table
    with pytest.raises(ValueError, match="'verdict' parameter of Claim"):
        dataclasses.replace(ok, verdict="maybe")
