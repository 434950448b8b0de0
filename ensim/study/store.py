"""The resumable cell store: one checksummed file per finished cell, and the run's identity.

A study's folder holds ``run.json`` (what makes two runs the same run) and
``cells/``, one JSON file per finished cell, each written atomically the moment
the cell finishes. A later run of the same identity loads them; a cell file that
does not match its checksum or the grid is set aside as ``*.damaged`` and
recomputed; a folder of another identity is never mixed in.

Nothing here touches a folder until :meth:`CellStore.open` is called: checking
(:meth:`CellStore.check`) only reads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .spec import StudyError

__all__ = ["CellStore", "cell_id", "run_identity", "write_atomic"]

#: Version of the cell-file layout; cells of another version are never reused.
FORMAT_VERSION = 2


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def cell_id(params: dict) -> str:
    """The file name stem of a cell: a hash of its parameters."""
    return hashlib.blake2b(_canonical(params).encode(), digest_size=10).hexdigest()


def _checksum(params, tables) -> str:
    return hashlib.sha256(_canonical({"params": params, "tables": tables}).encode()).hexdigest()


def _file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give: 0666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The file gets the permissions of an ordinary new file (0644 under the usual
    umask), like every other file a run writes.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _json_ready(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def normalise_tables(study, result) -> dict[str, list[dict]]:
    """``run_cell``'s return value as ``{table: [row, ...]}`` with plain Python values."""
    if isinstance(result, dict) and result and set(result) <= set(study.tables):
        mapping = result
    elif len(study.tables) == 1 and isinstance(result, (list, tuple, dict)):
        mapping = {study.tables[0]: result}      # the rows of a one-table study
    else:
        got = sorted(result) if isinstance(result, dict) else type(result).__name__
        raise StudyError(f"Study {study.name!r}: run_cell must return {{table: rows}} with "
                         f"tables from {study.tables}; got {got}.")
    out = {}
    for name in study.tables:
        rows = mapping.get(name, [])
        if isinstance(rows, dict):
            rows = [rows]
        out[name] = [{str(k): _json_ready(v) for k, v in row.items()} for row in rows]
    return out


def library_code_hash() -> str:
    """A hash of ensim's own source files (every ``*.py`` of the package, by relative path).

    An installed release and a checkout being edited can both carry the same version
    number; this tells their code apart. It costs one read of about 0.8 MB, once per
    process.
    """
    return code_hash(Path(__file__).resolve().parent.parent)


@functools.lru_cache(maxsize=4)
def code_hash(root: Path) -> str:
    """A hash of the names and contents of every ``*.py`` file under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def run_identity(study, config, label, seed, backend) -> dict:
    """What makes two runs the same run: results of different identities never mix.

    Besides the options and the configuration, the identity holds ensim's version,
    a hash of ensim's own code (:func:`library_code_hash`) and a hash of the study's
    source, so cells computed by other code are not silently reused. The scheduler
    and ``n_jobs`` are not part of it: they do not change the numbers.
    """
    from .. import __version__

    source = Path(study.source).read_bytes() if study.source else b""
    identity = {"study": study.name, "scale": label, "seed": seed, "backend": backend,
                "config": dataclasses.asdict(config), "format": FORMAT_VERSION,
                "ensim_version": __version__, "ensim_code": library_code_hash(),
                "study_code": hashlib.sha256(source).hexdigest()[:16]}
    return json.loads(json.dumps(identity))   # as it reads back from disk (tuples -> lists)


def _describe_difference(old: dict, new: dict) -> str:
    diffs = []
    for key in ("study", "scale", "seed", "backend", "format", "ensim_version"):
        if old.get(key) != new.get(key):
            diffs.append(f"{key} {old.get(key)!r} (on disk) vs {new.get(key)!r}")
    if old.get("ensim_code") != new.get("ensim_code"):
        diffs.append("ensim's own code has changed since")
    if old.get("study_code") != new.get("study_code"):
        diffs.append("the study's code has changed since")
    old_cfg, new_cfg = old.get("config") or {}, new.get("config") or {}
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if old_cfg.get(key) != new_cfg.get(key):
            diffs.append(f"config.{key} {old_cfg.get(key)!r} (on disk) vs {new_cfg.get(key)!r}")
    return "; ".join(diffs) or "unknown difference"


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return path


class CellStore:
    """The cells of one study's run in ``folder``.

    Parameters
    ----------
    folder : path
        The study's results folder (``OUT/<study>``).
    identity : dict
        :func:`run_identity` of the run.
    """

    def __init__(self, folder, identity: dict):
        self.folder = Path(folder)
        self.identity = identity
        self.cells_dir = self.folder / "cells"
        self.n_damaged = 0

    def check(self, *, fresh: bool = False) -> None:
        """Raise :class:`StudyError` if the run may not use the folder. Only reads."""
        base = _nearest_existing(self.folder)
        if not base.is_dir():
            raise StudyError(f"Cannot write results to {self.folder}: {base} is not a folder.")
        if not os.access(base, os.W_OK | os.X_OK):
            raise StudyError(f"Cannot write results to {self.folder}: {base} is not writable.")
        run_file = self.folder / "run.json"
        if fresh or not run_file.exists():
            return
        try:
            old = json.loads(run_file.read_text())
        except (OSError, ValueError):
            old = {}
        if old != self.identity:
            raise StudyError(
                f"{self.folder} holds a run with another configuration or code, which "
                f"cannot be resumed ({_describe_difference(old, self.identity)}). "
                "Use --fresh to replace it, or --out to write elsewhere.")

    def open(self, *, fresh: bool = False) -> None:
        """Create the folder and write ``run.json``; with ``fresh``, drop old cells first."""
        if fresh and self.cells_dir.exists():
            shutil.rmtree(self.cells_dir)
        try:
            self.cells_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:   # a folder the checks could not foresee (/proc, a full disk)
            raise StudyError(f"Cannot write results to {self.folder}: {exc}.") from exc
        write_atomic(self.folder / "run.json",
                     json.dumps(self.identity, indent=2, sort_keys=True) + "\n")

    def load(self, grid: list[dict]) -> tuple[dict, list[str]]:
        """``({cell id: (tables, elapsed_s)}, damaged)`` for the grid's finished cells.

        A damaged file is renamed ``<id>.json.damaged`` (never deleted) and its
        cell counts as unfinished.
        """
        finished, damaged = {}, []
        for params in grid:
            cid = cell_id(params)
            path = self.cells_dir / f"{cid}.json"
            if not path.exists():
                continue
            loaded, reason = self._read(path, params)
            if loaded is None:
                damaged.append(f"{path.name} ({reason})")
                os.replace(path, path.with_name(path.name + ".damaged"))
            else:
                finished[cid] = loaded
        self.n_damaged = len(damaged)
        return finished, damaged

    @staticmethod
    def _read(path: Path, params: dict):
        try:
            data = json.loads(path.read_text())
            tables, elapsed = data["tables"], float(data["elapsed_s"])
            if data["params"] != json.loads(json.dumps(params)):   # as JSON reads it back
                return None, "its parameters do not match the grid"
            if data["checksum"] != _checksum(params, tables):
                return None, "its checksum does not match its contents"
            return (tables, elapsed), None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"it cannot be read ({type(exc).__name__}: {exc})"

    def save(self, params: dict, tables: dict, elapsed_s: float) -> None:
        """Write one finished cell, atomically."""
        record = {"params": params, "tables": tables, "elapsed_s": elapsed_s,
                  "checksum": _checksum(params, tables)}
        # Keys in the study's order (the checksum sorts them), so that a resumed table
        # has the same columns in the same order.
        write_atomic(self.cells_dir / f"{cell_id(params)}.json", json.dumps(record) + "\n")
