"""Publishing a result: tables, figure, summary, claims and manifest in the study's folder.

``OUT/<study>/`` receives

* ``table-<name>.csv`` — each declared table (tidy: a row per measurement);
* ``figure.png`` and ``figure.pdf`` — with fixed metadata, so the same data give
  the same files;
* ``claims.json`` — every claim, machine-readable;
* ``summary.md`` — the story, the figure and the claims, for a reader;
* ``manifest.json`` — the title, story and order the report uses, the
  configuration, seed entropy, versions, backend, scheduler, hardware, counts
  and per-cell timings.

Every file is written atomically with the same permissions (0644 under the usual
umask). ``ensim report`` reads only ``manifest.json``, ``claims.json`` and the
figures, never the Markdown.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import platform
import sys
from pathlib import Path

from ..claims import claims_to_markdown, count_verdicts
from .store import write_atomic

__all__ = ["publish", "table_file"]

_SCALE_NOTE = {
    "quick": ("Quick scale: a smaller configuration meant to run every study in minutes "
              "(fewer replicates, and often smaller models trained for less). Its intervals "
              "are wide and its models differ from the full scale's, so a claim can be "
              "inconclusive, or even hold or fail, where the full scale finds otherwise; do "
              "not quote quick results as the study's findings. The text below describes "
              "the full-scale configuration and quotes its results; the figure and the "
              "claims are this run's."),
    "full": "Full scale: the configuration the study's findings are quoted at.",
    "custom": ("Custom configuration (the settings below differ from the named scales): "
               "verdicts hold for this configuration only. The text below describes the "
               "full-scale configuration and quotes its results; the figure and the claims "
               "are this run's."),
}


def table_file(name: str) -> str:
    """The file name of a table: ``table-<name>.csv``."""
    return f"table-{name}.csv"


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("ensim-stats", "numpy", "scipy", "statsmodels", "pandas", "scikit-learn",
                 "matplotlib", "joblib", "dask", "distributed", "cupy"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    from .. import __version__

    out["ensim"] = __version__
    return out


def _hardware(backend) -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cpu_count": os.cpu_count()}
    if backend == "cupy":
        with contextlib.suppress(Exception):
            import cupy

            props = cupy.cuda.runtime.getDeviceProperties(0)
            name = props["name"]
            info["gpu"] = name.decode() if isinstance(name, bytes) else name
    return info


def _save_figure(figure, folder: Path) -> None:
    import matplotlib.pyplot as plt

    png, pdf = io.BytesIO(), io.BytesIO()
    figure.savefig(png, format="png", dpi=150, metadata={"Software": None})
    figure.savefig(pdf, format="pdf", metadata={"CreationDate": None, "Creator": None,
                                                "Producer": None})
    plt.close(figure)
    write_atomic(folder / "figure.png", png.getvalue())
    write_atomic(folder / "figure.pdf", pdf.getvalue())


def _changed_settings(result) -> dict:
    """The settings that differ from the named scale the run is closest to."""
    study, config = result.study, result.config
    values = dataclasses.asdict(config)
    diffs = {}
    for scale in (study.quick, study.full):
        base = dataclasses.asdict(scale)
        changed = {k: v for k, v in values.items() if base[k] != v}
        if not diffs or len(changed) < len(diffs):
            diffs = changed
    return diffs


def _settings_vs_full(result) -> dict:
    """``{name: (this run's value, the full scale's)}`` for every setting that differs."""
    full = dataclasses.asdict(result.study.full)
    return {k: (v, full[k]) for k, v in dataclasses.asdict(result.config).items()
            if full[k] != v}


def _why_inconclusive(claims, scale) -> str:
    """A paragraph on why claims are inconclusive: intervals too wide at this scale, or
    (whatever the scale) Holm's correction, though the claim's own interval decides."""
    open_ = [c for c in claims if c.verdict == "inconclusive" and not c.is_control]
    by_holm = [c for c in open_ if c.uncorrected_verdict is not None]
    wide = len(open_) - len(by_holm)
    parts = []
    if wide and scale != "full":
        parts.append(f"{wide} claim(s) are inconclusive because at this scale their intervals "
                     "reach across the margin or the bound; more replicates (`--set`, or the "
                     "full scale) narrow them.")
    if by_holm:
        parts.append(f"{len(by_holm)} claim(s) are inconclusive only after Holm's family-wise "
                     "correction: their own interval, which is not corrected and is the one "
                     "shown, would decide them (the verdict says which way), but their "
                     "adjusted p-value is not below the level their method states.")
    return "\n\n" + " ".join(parts) if parts else ""


def summary_markdown(result) -> str:
    """The study's page in Markdown: title, scale, story, figure, claims."""
    study = result.study
    note = _SCALE_NOTE[result.scale]
    if result.scale == "custom":
        note += " Settings: " + ", ".join(f"`{k} = {v!r}`" for k, v in
                                          _changed_settings(result).items()) + "."
    elif result.scale == "quick":
        changed = _settings_vs_full(result)
        if changed:
            note += " Settings that differ from the full scale: " + ", ".join(
                f"`{k} = {v!r}` (full: `{full!r}`)" for k, (v, full) in changed.items()) + "."
    why = _why_inconclusive(result.claims, result.scale)
    tables = ", ".join(f"[{table_file(name)}]({table_file(name)})" for name in study.tables)
    return "\n".join([
        f"# {study.title}", "", f"*{note}*{why}", "", study.story, "",
        "![figure](figure.png)", "",
        f"Tables: {tables}; figure as [PDF](figure.pdf); "
        "[manifest](manifest.json) (configuration, versions, timings).", "",
        f"## Claims ({count_verdicts(result.claims)})", "",
        "Each interval is labelled with its level; an equality is shown by TOST, which "
        "decides on the narrower interval shown first; families of claims are "
        "Holm-corrected; a negative control must be rejected. The report's \"How to read a "
        "claim\" explains each.", "",
        claims_to_markdown(result.claims)])


def publish(result, folder=None) -> Path:
    """Write a :class:`~ensim.study.StudyResult` into ``folder`` (its own by default)."""
    folder = Path(folder if folder is not None else result.folder)
    folder.mkdir(parents=True, exist_ok=True)
    study = result.study
    for name in study.tables:
        write_atomic(folder / table_file(name), result.tables[name].to_csv(index=False))
    import matplotlib

    matplotlib.use("Agg")
    _save_figure(result.figure(), folder)
    write_atomic(folder / "claims.json",
                 json.dumps([c.to_dict() for c in result.claims], indent=2) + "\n")
    write_atomic(folder / "summary.md", summary_markdown(result))
    manifest = {
        "study": study.name, "title": study.title, "story": study.story,
        "order": study.order, "scale": result.scale,
        "scale_note": _SCALE_NOTE[result.scale],
        "config": dataclasses.asdict(result.config),
        "changed_settings": _changed_settings(result) if result.scale == "custom" else {},
        "settings_vs_full": {k: list(v) for k, v in _settings_vs_full(result).items()},
        "seed": result.seed, "seed_entropy": result.seed_entropy,
        "backend": result.backend, "scheduler": result.where,
        "tables": {name: table_file(name) for name in study.tables},
        "figures": ["figure.png", "figure.pdf"],
        "versions": _versions(), "hardware": _hardware(result.backend),
        "n_cells": result.n_cells, "n_cells_loaded": result.n_loaded,
        "n_cells_computed": result.n_computed, "n_cells_damaged": result.n_damaged,
        "elapsed_s": result.elapsed_s, "cell_timings_s": result.cell_timings_s,
        "claims_summary": count_verdicts(result.claims),
        "command": " ".join(sys.argv),
    }
    write_atomic(folder / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
    return folder
