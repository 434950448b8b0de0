"""One page for every study in a results folder: ``report.html`` and ``report.md``.

The page reads only what publishing stored (each study's ``manifest.json``,
``claims.json`` and figure), orders the studies as they declare (the formula
check first, then the studies as the story goes), renders their stories with a
Markdown library, and embeds the figures, so the HTML file can be mailed or
archived on its own; links to the tables, PDF figures and manifests work next to
the results folder. The Markdown twin links the figures instead.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
from pathlib import Path

from .claims import (Claim, claims_to_markdown, count_verdicts, format_number, interval_text,
                     statement_text, verdict_text)

__all__ = ["collect_studies", "find_result_folders", "primer_section", "render_markdown",
           "write_report"]

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1150px; margin: 2em auto; color: #222;
       line-height: 1.45; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.8em 0 1.6em; font-size: 0.88em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.interval { white-space: nowrap; font-variant-numeric: tabular-nums; }
.holds { color: #007a4d; font-weight: 600; } .fails { color: #b00020; font-weight: 600; }
.inconclusive { color: #8a6d00; font-weight: 600; }
.control-ok { color: #007a4d; } .control-bad { color: #b00020; font-weight: 600; }
img { max-width: 100%; } .meta, .links, .top { color: #555; font-size: 0.85em; }
.figure { width: 96vw; margin-left: calc(50% - 48vw); overflow-x: auto; text-align: center; }
.figure img { max-width: none; }
.scale { background: #f4f4f4; border-left: 3px solid #999; padding: 0.4em 0.8em; }
section { border-top: 1px solid #ccc; margin-top: 2.5em; }
code { background: #f4f4f4; padding: 0 0.2em; border-radius: 3px; }
"""


def render_markdown(text: str) -> str:
    """Markdown (lists, emphasis, code, tables) as HTML, with the Markdown library."""
    import markdown

    return markdown.markdown(text, extensions=["tables", "sane_lists"])


def collect_studies(out) -> list[dict]:
    """Every published study folder directly under ``out``, in the declared order."""
    studies = []
    for manifest_path in Path(out).glob("*/manifest.json"):
        folder = manifest_path.parent
        try:
            manifest = json.loads(manifest_path.read_text())
            raw = json.loads((folder / "claims.json").read_text())
            claims = [Claim.from_dict(c) for c in raw]
        except (OSError, ValueError, TypeError, KeyError):
            continue
        studies.append({"name": manifest.get("study", folder.name), "folder": folder,
                        "title": manifest.get("title", folder.name),
                        "story": manifest.get("story", ""), "claims": claims,
                        # Written by a version that marked claims testing the primer?
                        "marks_recorded": all("primer" in c for c in raw),
                        "manifest": manifest, "order": manifest.get("order", 100),
                        "figure": folder / "figure.png" if (folder / "figure.png").exists()
                        else None})
    return sorted(studies, key=lambda s: (s["order"], s["name"]))


def find_result_folders(root) -> list[Path]:
    """``root`` if it holds published studies, else its sub-folders that do (one level)."""
    root = Path(root)
    if any(root.glob("*/manifest.json")):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*/manifest.json"))) \
        if root.is_dir() else []


def _verdict_class(claim: Claim) -> str:
    if claim.is_control:
        return "control-ok" if claim.as_expected else "control-bad"
    return claim.verdict


def _html_claims(claims) -> str:
    rows = ["<table class='claims'><thead><tr><th>claim</th><th>theory</th><th>measured</th>"
            "<th>interval</th><th>verdict</th><th>method</th></tr></thead><tbody>"]
    for c in claims:
        interval = html.escape(interval_text(c, join="\n")).replace("\n", "<br>")
        rows.append(
            f"<tr><td>{html.escape(statement_text(c))}</td>"
            f"<td class='num'>{format_number(c.theory)}</td>"
            f"<td class='num'>{format_number(c.estimate)}</td>"
            f"<td class='interval'>{interval}</td>"
            f"<td class='verdict {_verdict_class(c)}' data-verdict='{c.verdict}' "
            f"data-expected='{c.expected}'>{html.escape(verdict_text(c))}</td>"
            f"<td>{html.escape(c.method)}</td></tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _meta(study) -> str:
    m = study["manifest"]
    return (f"study <code>{html.escape(study['name'])}</code>, {html.escape(str(m.get('scale')))}"
            f" scale, seed {m.get('seed')}, backend {html.escape(str(m.get('backend')))}, "
            f"{m.get('n_cells')} cells ({m.get('n_cells_loaded', 0)} loaded, "
            f"{m.get('n_cells_computed', 0)} computed), "
            f"{sum((m.get('cell_timings_s') or {}).values()):.1f} s of cell time, last run on "
            f"{html.escape(str(m.get('scheduler')))}" + _differences(m))


def _differences(manifest) -> str:
    """"; unlike the full scale: ..." for a run whose settings differ from it (the story
    quotes the full scale's results)."""
    differ = manifest.get("settings_vs_full") or {}
    if not differ or manifest.get("scale") == "full":
        return ""
    items = ", ".join(f"<code>{html.escape(k)} = {html.escape(repr(v[0]))}</code> (full "
                      f"{html.escape(repr(v[1]))})" for k, v in differ.items())
    return f"; unlike the full scale: {items}"


def _links(study, out: Path) -> list[tuple[str, str]]:
    rel = study["folder"].relative_to(out).as_posix()
    tables = study["manifest"].get("tables") or {}
    links = [(f"table {name}", f"{rel}/{file}") for name, file in tables.items()]
    if (study["folder"] / "figure.pdf").exists():
        links.append(("figure (PDF)", f"{rel}/figure.pdf"))
    links += [("summary", f"{rel}/summary.md"), ("manifest", f"{rel}/manifest.json")]
    return links


def primer_section(studies) -> str:
    """"The primer, measured" in Markdown: each claim of the primer that a study of this
    run tests, with this run's verdicts on the claims marked as testing it beside what
    the full scale finds (:data:`ensim.primer.PRIMER_CLAIMS`); "" when none does."""
    from .primer import PRIMER_CLAIMS

    present = {s["name"]: s for s in studies}
    scales = sorted({str(s["manifest"].get("scale")) for s in studies})
    here = f"this run ({scales[0]} scale)" if len(scales) == 1 else "this run"
    rows = [f"| the primer says | measured in | {here}: verdicts of the claims that test it "
            "| at full scale |", "|---|---|---|---|"]
    for entry in PRIMER_CLAIMS:
        ran = [name for name in entry.studies if name in present]
        if not ran:
            continue
        unmarked = [name for name in ran if not present[name].get("marks_recorded", True)]
        marked = [c for name in ran for c in present[name]["claims"] if c.primer == entry.key]
        if marked:
            verdicts = count_verdicts(marked) + (
                f" (not counting {', '.join(unmarked)}: written before claims were marked)"
                if unmarked else "")
        elif len(unmarked) == len(ran):
            verdicts = ("not marked in these results (written by a version of ensim that did "
                        "not mark them; rerun the study)")
        else:
            verdicts = "no claim of this run is marked as testing it"
        where = ", ".join(f"[{name}](#{name})" for name in ran)
        rows.append(f"| {entry.says} | {where} | {verdicts} | {entry.full_scale} |")
    if len(rows) == 2:
        return ""
    quick = ("A quick run's intervals are wide, so its verdicts can be inconclusive, or "
             "differ, where the full scale decides. " if "quick" in scales else "")
    return "\n".join([
        "## The primer, measured", "",
        "Each claim of the regularization primer that this run tests. The third column "
        "counts the verdicts of the run's claims that state what the primer predicts (each "
        "study's claims table marks them \"tests the primer\"): a claim that holds "
        "supports the primer, one that fails contradicts it. The last column is a written "
        "summary of what the full scale finds (seed 0), in which \"holds\", \"partly\" "
        "or \"fails\" judge the primer's claim as a whole, weighing its parts, rather "
        "than count them. " + quick, "", *rows])


#: The words the claims tables use, for a reader who meets them first in the report.
READING_GUIDE = """\
**How to read a claim.** Each row gives the value the claim predicts (theory), the
measured value, its interval and a verdict. A claim *holds* when its interval lies
where the claim says, *fails* when it lies entirely on the other side, and is
*inconclusive* otherwise: more replicates (or the full scale) are needed. Every
interval is a 95% confidence interval unless it says otherwise.

* **Equality within a margin (TOST).** Agreement with theory is never shown by a
  failure to reject. Two one-sided tests reject "the difference is at least the
  margin" on each side; this is the same as the 90% interval lying inside
  ±margin, so that interval is shown first, marked "(decides)", beside the 95% one.
* **Direction.** "X > 0" holds when the 95% interval lies above 0, and fails when it
  lies below.
* **Exact check (identity).** An algebraic identity checked on the computed numbers;
  its measured value is the largest rounding residual (relative, or absolute where
  its method says so), and it has no interval.
* **Holm's correction.** Claims tested as a family (for example eleven regularizers
  each against none) have their p-values adjusted (Holm 1979), so that the chance
  that any claim of the family holds wrongly stays below 5%. The intervals shown
  are not adjusted: a claim whose own interval clears the bound can stay
  inconclusive, and its verdict then says which way its interval points.
* **All of (intersection-union).** One claim that every one of several parts holds;
  it holds only when every part does, so no correction is needed, and the row
  shows the least favourable part.
* **Negative control.** A statement known to be wrong, checked exactly as the real
  one: it must be rejected ("rejected, as expected"), which shows that the check
  can fail.
* **Paired over seeds (or replicates).** Arms share data, splits and initial
  weights, so differences are taken seed by seed and given a Student-t interval on
  their number minus one degrees of freedom: with 2 or 3 seeds those intervals are
  wide.
* **Jackknife.** The standard error of a ratio (such as `ρ = C/V`) from recomputing
  it with each replicate left out in turn.
* **Brier score.** The squared error of a predicted probability vector against the
  one-hot label, summed over the classes: a classifier's `V` and `C` are taken on
  it.
"""


def write_report(out) -> tuple[Path, Path]:
    """Write ``out/report.html`` and ``out/report.md``; returns their paths."""
    from .study.store import write_atomic

    out = Path(out)
    studies = collect_studies(out)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    all_claims = [c for study in studies for c in study["claims"]]
    summary_line = (f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'}; claims: "
                    f"{count_verdicts(all_claims)}.")
    scales = sorted({str(s["manifest"].get("scale")) for s in studies})
    notes = sorted({s["manifest"].get("scale_note", "") for s in studies} - {""})
    body, markdown = [], ["# ensim report", "", f"Generated {stamp}.", "", summary_line, ""]
    markdown += [f"*{n}*" for n in notes] + [""]
    toc = ["<nav id='contents'><h2>Contents</h2><ol>"]
    for study in studies:
        toc.append(f"<li><a href='#{html.escape(study['name'])}'>{html.escape(study['title'])}"
                   f"</a> — {html.escape(count_verdicts(study['claims']))}</li>")
        markdown.append(f"1. [{study['title']}](#{study['name']}) — "
                        f"{count_verdicts(study['claims'])}")
    toc.append("</ol></nav>")
    primer = primer_section(studies)
    if primer:
        toc.append(f"<div id='primer' class='primer'>{render_markdown(primer)}</div>")
        markdown += ["", primer]
    toc.append(f"<div id='reading' class='guide'>{render_markdown(READING_GUIDE)}</div>")
    markdown += ["", READING_GUIDE]
    for study in studies:
        name = html.escape(study["name"])
        links = _links(study, out)
        body.append(f"<section id='{name}'><h2>{html.escape(study['title'])}</h2>")
        body.append(f"<p class='meta'>{_meta(study)}</p>")
        body.append(f"<p class='links'>{' · '.join(f'<a href={html.escape(h)!r}>{html.escape(t)}</a>' for t, h in links)}</p>")
        body.append(render_markdown(study["story"]))
        if study["figure"] is not None:
            png = study["figure"].read_bytes()
            data = base64.b64encode(png).decode()
            # Shown at 100 dpi (figures are saved at 150): wide figures keep their text
            # readable and scroll sideways in a narrow window instead of shrinking.
            width = round(int.from_bytes(png[16:20], "big") / 1.5)
            body.append(f"<div class='figure'><img alt='{html.escape(study['title'])}' "
                        f"width='{width}' src='data:image/png;base64,{data}'></div>")
        body.append(f"<h3>Claims ({html.escape(count_verdicts(study['claims']))})</h3>")
        body.append(_html_claims(study["claims"]))
        body.append("<p class='top'><a href='#top'>back to the top</a></p></section>")
        rel = study["folder"].relative_to(out).as_posix()
        markdown += [f"## {study['title']}", "",
                     _meta(study).replace("<code>", "`").replace("</code>", "`"), "",
                     " · ".join(f"[{t}]({h})" for t, h in links), "", study["story"], ""]
        if study["figure"] is not None:
            markdown += [f"![{study['title']}]({rel}/figure.png)", ""]
        markdown += [claims_to_markdown(study["claims"]), "[back to the top](#ensim-report)", ""]
    scale_text = "".join(f"<p class='scale'>{html.escape(n)}</p>" for n in notes)
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>ensim report ({html.escape(', '.join(scales))})</title>"
            f"<style>{_CSS}</style></head><body><h1 id='top'>ensim report</h1>"
            f"<p class='meta'>Generated {stamp} from <code>{html.escape(str(out))}</code>.</p>"
            f"<p>{html.escape(summary_line)}</p>{scale_text}{''.join(toc)}{''.join(body)}"
            "</body></html>\n")
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / "report.html", out / "report.md"
    write_atomic(html_path, page)
    write_atomic(md_path, "\n".join(markdown))
    return html_path, md_path
