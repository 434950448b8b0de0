"""The report gathers every study: parse the HTML, check figures and claim tables."""

import base64
import dataclasses
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ensim.claims import Claim, claims_to_markdown, count_verdicts, negative_control
from ensim.report import write_report
from ensim.sweep import load_study, run_study

TINY = str(Path(__file__).parent / "data" / "tiny_study.py")


class ReportParser(HTMLParser):
    """Collects, per <section id=...>: images, and the cells of each table row."""

    def __init__(self):
        super().__init__()
        self.sections, self.current, self.row, self.in_cell = {}, None, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.current = self.sections.setdefault(attrs["id"], {"images": [], "rows": []})
        elif tag == "img" and self.current is not None:
            self.current["images"].append(attrs["src"])
        elif tag == "tr" and self.current is not None:
            self.row = []
        elif tag == "td" and self.row is not None:
            self.in_cell = True
            self.row.append("")

    def handle_endtag(self, tag):
        if tag == "tr" and self.row:
            self.current["rows"].append(self.row)
            self.row = None
        elif tag == "td":
            self.in_cell = False
        elif tag == "section":
            self.current = None

    def handle_data(self, data):
        if self.in_cell:
            self.row[-1] += data


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    run_study(load_study(TINY), out=out, seed=0, progress=False)
    formula = load_study("formula-check")
    tiny_config = formula.Config(ks=(1, 2, 5), rhos=(0.0, 0.5), dists=("gaussian", "rademacher"),
                                 n_trials=3000, rel_margin=0.2)
    original = formula.QUICK
    formula.QUICK = tiny_config
    try:
        run_study(formula, out=out, quick=True, progress=False)
    finally:
        formula.QUICK = original
    return out


def test_report_holds_every_study_figure_and_claims(results):
    html_path, md_path = write_report(results)
    parser = ReportParser()
    parser.feed(html_path.read_text())
    assert set(parser.sections) == {"tiny", "formula-check"}
    for name, section in parser.sections.items():
        claims = json.loads((results / name / "claims.json").read_text())
        assert len(section["rows"]) == len(claims)
        assert [row[0] for row in section["rows"]] == [c["statement"] for c in claims]
        assert [row[4].split(" ")[0] for row in section["rows"]] == [c["verdict"] for c in claims]
        (image,) = section["images"]
        prefix = "data:image/png;base64,"
        assert image.startswith(prefix)
        png = base64.b64decode(image[len(prefix):])
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        assert png == (results / name / "figure.png").read_bytes()
    markdown = md_path.read_text()
    assert "formula-check/figure.png" in markdown and "tiny/figure.png" in markdown
    assert markdown.count("| claim | theory |") == 2


def test_claims_round_trip_and_counts():
    ok = Claim("a", 1.0, 1.01, 0.99, 1.03, "holds", "TOST")
    control = negative_control(Claim("b", 0.0, 1.0, 0.9, 1.1, "fails", "TOST"))
    unclear = Claim("c", None, float("nan"), float("nan"), float("nan"), "inconclusive")
    assert Claim.from_dict(json.loads(json.dumps(control.to_dict()))) == control
    assert control.expected == "fails" and control.as_expected and not unclear.as_expected
    assert count_verdicts([ok, control, unclear]) == (
        "1 hold, 0 fail, 1 inconclusive; negative controls failing as they should: 1 of 1")
    table = claims_to_markdown([ok, control])
    assert "negative control: expected" in table and "95% [0.99, 1.03]" in table
    with pytest.raises(ValueError, match="'verdict' parameter of Claim"):
        dataclasses.replace(ok, verdict="maybe")
