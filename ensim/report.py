"""One page for every study in a results folder: ``report.html`` and ``report.md``.

The HTML page is self-contained (figures embedded as PNG data), so it can be
mailed or archived as one file; the Markdown twin links the figures next to it.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import re
from pathlib import Path

from .claims import Claim, claims_to_markdown, count_verdicts

__all__ = ["collect_studies", "markdown_literals", "write_report"]

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
       line-height: 1.45; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.8em 0 1.6em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.holds { color: #007a4d; font-weight: 600; } .fails { color: #b00020; font-weight: 600; }
.inconclusive { color: #8a6d00; font-weight: 600; }
img { max-width: 100%; } .meta { color: #666; font-size: 0.85em; }
"""


def markdown_literals(text: str) -> str:
    """Docstring (reStructuredText) literals ````x```` as Markdown literals ```x```."""
    return re.sub(r"``(.+?)``", r"`\1`", text, flags=re.S)


def _html_paragraphs(text: str) -> str:
    """Markdown-ish paragraphs as HTML: blank-line separated, `x` as <code>."""
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    out = []
    for paragraph in paragraphs:
        escaped = html.escape(" ".join(paragraph.split()))
        out.append("<p>" + re.sub(r"`(.+?)`", r"<code>\1</code>", escaped) + "</p>")
    return "\n".join(out)


def collect_studies(out) -> list[dict]:
    """Every finished study folder under ``out``: title, story, claims, figure, manifest."""
    studies = []
    for manifest_path in sorted(Path(out).glob("*/manifest.json")):
        folder = manifest_path.parent
        try:
            manifest = json.loads(manifest_path.read_text())
            claims = [Claim.from_dict(c) for c in json.loads((folder / "claims.json").read_text())]
        except (OSError, ValueError, TypeError, KeyError):
            continue
        summary = (folder / "summary.md").read_text() if (folder / "summary.md").exists() else ""
        # The story: everything between the title line and the figure.
        body = summary.split("\n", 1)[-1].split("![figure]", 1)[0]
        story = markdown_literals(body).strip()
        studies.append({"name": manifest.get("study", folder.name), "folder": folder,
                        "title": manifest.get("title", folder.name), "story": story,
                        "claims": claims, "manifest": manifest,
                        "figure": folder / "figure.png" if (folder / "figure.png").exists() else None})
    return studies


def _fmt(value) -> str:
    return "—" if value is None or value != value else f"{value:.4g}"


def _html_claims(claims) -> str:
    rows = ["<table><thead><tr><th>claim</th><th>theory</th><th>measured</th><th>interval</th>"
            "<th>verdict</th><th>method</th></tr></thead><tbody>"]
    for c in claims:
        rows.append(
            f"<tr><td>{html.escape(c.statement)}</td><td class='num'>{_fmt(c.theory)}</td>"
            f"<td class='num'>{_fmt(c.estimate)}</td>"
            f"<td class='num'>{100 * (1 - c.alpha):g}% [{_fmt(c.conf_low)}, {_fmt(c.conf_high)}]</td>"
            f"<td class='{c.verdict}'>{c.verdict}"
            f"{' (negative control: expected)' if c.expected == 'fails' and c.as_expected else ''}"
            f"</td><td>{html.escape(c.method)}</td></tr>")
    rows.append("</tbody></table>")
    return "\n".join(rows)


def write_report(out="results") -> tuple[Path, Path]:
    """Write ``out/report.html`` and ``out/report.md``; returns their paths."""
    out = Path(out)
    studies = collect_studies(out)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body, markdown = [], ["# ensim report", "", f"Generated {stamp}.", ""]
    all_claims = [c for study in studies for c in study["claims"]]
    summary_line = (f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'}; claims: "
                    f"{count_verdicts(all_claims)}.")
    markdown += [summary_line, ""]
    toc = ["<ul>"]
    for study in studies:
        toc.append(f"<li><a href='#{html.escape(study['name'])}'>{html.escape(study['title'])}</a>"
                   f" — {html.escape(count_verdicts(study['claims']))}</li>")
        markdown.append(f"* {study['title']} — {count_verdicts(study['claims'])}")
    toc.append("</ul>")
    markdown.append("")
    for study in studies:
        m = study["manifest"]
        meta = (f"study <code>{html.escape(study['name'])}</code>, scale {m.get('scale')}, "
                f"seed {m.get('seed')}, backend {m.get('backend')}, {m.get('n_cells')} cells, "
                f"{sum((m.get('cell_timings_s') or {}).values()):.1f} s of cell time, last run on "
                f"{html.escape(str(m.get('scheduler')))}")
        body.append(f"<section id='{html.escape(study['name'])}'><h2>{html.escape(study['title'])}</h2>")
        body.append(f"<p class='meta'>{meta}</p>{_html_paragraphs(study['story'])}")
        if study["figure"] is not None:
            data = base64.b64encode(study["figure"].read_bytes()).decode()
            body.append(f"<img alt='{html.escape(study['title'])}' src='data:image/png;base64,{data}'>")
        body.append(_html_claims(study["claims"]) + "</section>")
        rel = study["folder"].relative_to(out)
        markdown += [f"## {study['title']}", "", meta.replace("<code>", "`").replace("</code>", "`"),
                     "", study["story"], ""]
        if study["figure"] is not None:
            markdown += [f"![{study['title']}]({rel.as_posix()}/figure.png)", ""]
        markdown += [claims_to_markdown(study["claims"]), ""]
    page = ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>ensim report</title>"
            f"<style>{_CSS}</style></head><body><h1>ensim report</h1><p class='meta'>Generated "
            f"{stamp}.</p><p>{summary_line}</p>{''.join(toc)}{''.join(body)}</body></html>\n")
    out.mkdir(parents=True, exist_ok=True)
    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text(page)
    md_path.write_text("\n".join(markdown))
    return html_path, md_path
