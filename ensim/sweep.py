"""The sweep runner: a study's grid of cells, run locally or on Dask, resumable.

A study (see ``docs/studies.md``) is a grid of independent cells. :func:`run_study`

1. derives each cell's seed from the root seed and the cell's *parameters*
   (:func:`ensim._random.key_from_params`), so adding a cell to a grid leaves
   every other cell's numbers unchanged;
2. loads the cells a previous run of the same configuration finished, and
   recomputes any cell file that is damaged (and says so);
3. runs the rest in this process, on ``n_jobs`` local processes (joblib) or on a
   Dask cluster, writing each cell to disk atomically the moment it finishes,
   so an interruption (Ctrl-C, a crash, ``kill -9``) loses only unfinished cells;
4. assembles ``table.csv`` in grid order (so the table is identical however the
   cells were scheduled), draws the figure, checks the claims and writes
   ``summary.md``, ``claims.json`` and ``manifest.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import logging
import os
import pkgutil
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ._backend import BACKENDS, get_namespace
from ._random import as_seed_sequence, child_seed, key_from_params
from ._validation import check_choice, check_int
from .claims import Claim, claims_to_markdown, count_verdicts
from .report import markdown_literals

__all__ = ["SweepError", "available_studies", "load_study", "run_study"]

log = logging.getLogger("ensim")

_FORMAT_VERSION = 1


def _tqdm_disable(progress):
    """tqdm's ``disable`` for ``progress``: True shows, False hides, None shows on a terminal."""
    return None if progress is None else not progress


class SweepError(ValueError):
    """A sweep cannot start or continue: bad options, an unusable folder or cluster."""


# --------------------------------------------------------------------- studies


def available_studies() -> dict[str, str]:
    """``{name: module}`` for every study installed in ``ensim.studies``."""
    import ensim.studies as package

    found = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"ensim.studies.{info.name}")
        if isinstance(getattr(module, "NAME", None), str) and hasattr(module, "run_cell"):
            found[module.NAME] = module.__name__
    return found


def load_study(name: str):
    """Import a study by its name (as listed by ``ensim list``) or by a ``.py`` path.

    A path lets a forked copy of a study run through the same runner
    (``ensim run ./my_study.py``); its code is shipped to worker processes by value.
    """
    if name.endswith(".py"):
        return _load_study_file(Path(name))
    studies = available_studies()
    if name not in studies:
        raise SweepError(f"Unknown study {name!r}; choose one of: {', '.join(studies)}, "
                         "or give the path of a study file (.py).")
    return importlib.import_module(studies[name])


def _load_study_file(path: Path):
    import importlib.util

    if not path.is_file():
        raise SweepError(f"No study file at {path}.")
    module_name = f"ensim_study_file_{hashlib.blake2b(str(path.resolve()).encode(), digest_size=6).hexdigest()}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise SweepError(f"Could not import the study file {path}: {type(exc).__name__}: {exc}") from exc
    missing = [a for a in ("NAME", "QUICK", "FULL", "cells", "run_cell", "plot", "claims")
               if not hasattr(module, a)]
    if missing:
        raise SweepError(f"{path} is not a study: it lacks {', '.join(missing)} (see docs/studies.md).")
    # Worker processes cannot import this module by name: send its code by value
    # (joblib's process pool and Dask both pickle callables with cloudpickle).
    import cloudpickle

    cloudpickle.register_pickle_by_value(module)
    return module


def study_title(module) -> str:
    """The first line of a study's docstring."""
    return (module.__doc__ or module.NAME).strip().splitlines()[0].strip()


# ----------------------------------------------------------------- cell files


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _cell_id(params: dict) -> str:
    return hashlib.blake2b(_canonical(params).encode(), digest_size=10).hexdigest()


def _checksum(params, rows) -> str:
    return hashlib.sha256(_canonical({"params": params, "rows": rows}).encode()).hexdigest()


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _read_cell(path: Path, params: dict):
    """The rows of a finished cell file, or ``None`` with a reason if it is damaged."""
    try:
        data = json.loads(path.read_text())
        rows, elapsed = data["rows"], float(data["elapsed_s"])
        if data["params"] != json.loads(json.dumps(params)):  # as JSON reads it back
            return None, "its parameters do not match the grid"
        if data["checksum"] != _checksum(params, rows):
            return None, "its checksum does not match its contents"
        return (rows, elapsed), None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"it cannot be read ({type(exc).__name__}: {exc})"


def _json_ready(value):
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value


def _normalise_rows(rows) -> list[dict]:
    if isinstance(rows, dict):
        rows = [rows]
    return [{str(k): _json_ready(v) for k, v in row.items()} for row in rows]


# ------------------------------------------------------------------ execution


def _execute_cell(run_cell, config, params, seed, backend):
    """Run one cell where the scheduler put it; returns ``(params, rows, elapsed_s)``."""
    start = time.perf_counter()
    rows = _normalise_rows(run_cell(config, params, seed, backend))
    return params, rows, time.perf_counter() - start


def _local_results(run_cell, config, jobs, backend, n_jobs):
    if n_jobs == 1:
        for params, seed in jobs:
            yield _execute_cell(run_cell, config, params, seed, backend)
        return
    from joblib import Parallel, delayed

    yield from Parallel(n_jobs=n_jobs, return_as="generator_unordered")(
        delayed(_execute_cell)(run_cell, config, params, seed, backend) for params, seed in jobs)


@contextlib.contextmanager
def _dask_client(scheduler, dask_workers):
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise SweepError("Running on Dask needs the 'dist' extra: pip install 'ensim[dist]'.") from exc
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="5s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise SweepError(f"Could not connect to the Dask scheduler at {scheduler}: {exc}") from exc
        with client:
            yield client
        return
    with LocalCluster(n_workers=dask_workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def _execute_pickled(payload, params, seed, backend):
    import cloudpickle

    run_cell, config = cloudpickle.loads(payload)
    return _execute_cell(run_cell, config, params, seed, backend)


def _dask_results(client, run_cell, config, jobs, backend):
    import cloudpickle
    from distributed import as_completed

    # Dask pickles arguments with plain pickle where it can, which refers to a study
    # file's Config class by a module name that workers cannot import; cloudpickle
    # the study's function and configuration together, by value where registered.
    payload = client.scatter(cloudpickle.dumps((run_cell, config)), broadcast=True)
    futures = [client.submit(_execute_pickled, payload, params, seed, backend, pure=False)
               for params, seed in jobs]
    try:
        for future in as_completed(futures):
            yield future.result()
    finally:
        for future in futures:
            future.cancel()


# -------------------------------------------------------------------- helpers


def _identity(module, config, scale, seed, backend) -> dict:
    """What makes two runs the same run: results from different identities never mix.

    Besides the options and the configuration, the identity holds ensim's version
    and a hash of the study's source, so cells computed by other code are not
    silently reused.
    """
    from . import __version__

    source = Path(module.__file__).read_bytes() if getattr(module, "__file__", None) else b""
    identity = {"study": module.NAME, "scale": scale, "seed": seed, "backend": backend,
                "config": dataclasses.asdict(config), "format": _FORMAT_VERSION,
                "ensim_version": __version__,
                "study_code": hashlib.sha256(source).hexdigest()[:16]}
    return json.loads(json.dumps(identity))  # as it reads back from disk (tuples -> lists)


def _describe_difference(old: dict, new: dict) -> str:
    diffs = []
    for key in ("study", "scale", "seed", "backend", "format", "ensim_version"):
        if old.get(key) != new.get(key):
            diffs.append(f"{key} {old.get(key)!r} (on disk) vs {new.get(key)!r}")
    if old.get("study_code") != new.get("study_code"):
        diffs.append("the study's code has changed since")
    old_cfg, new_cfg = old.get("config", {}), new.get("config", {})
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if old_cfg.get(key) != new_cfg.get(key):
            diffs.append(f"config.{key} {old_cfg.get(key)!r} (on disk) vs {new_cfg.get(key)!r}")
    return "; ".join(diffs) or "unknown difference"


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("ensim", "numpy", "scipy", "statsmodels", "pandas", "scikit-learn",
                 "matplotlib", "joblib", "dask", "distributed", "cupy"):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def _hardware(backend) -> dict:
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "processor": platform.processor() or None, "cpu_count": os.cpu_count()}
    if backend == "cupy":
        with contextlib.suppress(Exception):
            import cupy

            props = cupy.cuda.runtime.getDeviceProperties(0)
            info["gpu"] = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    return info


def check_writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise SweepError(f"Cannot write results to {folder}: {exc.strerror or exc}.") from exc


def check_options(*, n_jobs=1, backend="numpy", seed=0, scheduler=None, dask_workers=None):
    """Validate runner options; raises :class:`SweepError` naming the bad option."""
    try:
        check_int(n_jobs, "n_jobs", low=-1)
        if n_jobs == 0:
            raise ValueError("The 'n_jobs' parameter must be >= 1 or -1 (all cores); got 0.")
        check_choice(backend, "backend", BACKENDS)
        check_int(seed, "seed", low=0)
        if dask_workers is not None:
            check_int(dask_workers, "dask_workers", low=1)
        get_namespace(backend)  # CuPy and a GPU, when asked for
    except (TypeError, ValueError, RuntimeError) as exc:
        raise SweepError(str(exc)) from exc
    if scheduler is not None and dask_workers is not None:
        raise SweepError("Give either a scheduler address or a number of local Dask workers, "
                         "not both.")
    if (scheduler is not None or dask_workers is not None) and n_jobs != 1:
        raise SweepError("The 'n_jobs' option applies to local runs; on Dask the cluster's "
                         "workers set the parallelism.")
    if scheduler is not None and not isinstance(scheduler, str):
        raise SweepError(f"The scheduler address must be a string like tcp://HOST:8786; got {scheduler!r}.")


def check_run_folder(module, *, quick=False, out="results", seed=0, backend="numpy",
                     fresh=False) -> tuple[Path, dict]:
    """The study's results folder and the run's identity, if the run may use the folder.

    Raises :class:`SweepError` when ``out`` cannot be written, or when the folder
    holds a run of another identity and ``fresh`` is false. Touches nothing else.
    """
    config = module.QUICK if quick else module.FULL
    identity = _identity(module, config, "quick" if quick else "full", seed, backend)
    folder = Path(out) / module.NAME
    check_writable(Path(out))
    run_file = folder / "run.json"
    if run_file.exists() and not fresh:
        try:
            old = json.loads(run_file.read_text())
        except (OSError, ValueError):
            old = {}
        if old != identity:
            raise SweepError(
                f"{folder} holds a run with another configuration "
                f"({_describe_difference(old, identity)}). "
                "Use --fresh to replace it, or --out to write elsewhere.")
    return folder, identity


# ----------------------------------------------------------------------- main


def run_study(study, *, quick: bool = False, out="results", seed: int = 0, n_jobs: int = 1,
              backend: str = "numpy", scheduler: str | None = None,
              dask_workers: int | None = None, fresh: bool = False,
              progress: bool | None = None, verbose: bool = False) -> Path:
    """Run (or resume) a study and write its results folder; returns the folder.

    Parameters
    ----------
    study : str or module
        A study name (see :func:`available_studies`) or a study module.
    quick : bool
        Use the study's ``QUICK`` configuration instead of ``FULL``.
    out : path
        Results directory; the study writes ``out/<study name>/``.
    seed : int
        Root seed; each cell's stream is derived from it and the cell's parameters.
    n_jobs : int
        Local worker processes (``-1``: all cores).
    backend : {"numpy", "cupy"}
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://HOST:PORT``).
    dask_workers : int, optional
        Start a local Dask cluster with this many worker processes for the run.
    fresh : bool
        Discard finished cells (and a run of another configuration) and start over.
    progress : bool or None
        Progress bar; ``None`` shows it only on a terminal.
    verbose : bool
        Log each cell's timing (logger ``"ensim"``, level INFO).

    Raises
    ------
    SweepError
        Bad options, an unwritable folder, a folder holding a run of another
        configuration (unless ``fresh``), an unreachable scheduler.
    """
    check_options(n_jobs=n_jobs, backend=backend, seed=seed, scheduler=scheduler,
                  dask_workers=dask_workers)
    module = load_study(study) if isinstance(study, str) else study
    config = module.QUICK if quick else module.FULL
    scale = "quick" if quick else "full"
    folder, identity = check_run_folder(module, quick=quick, out=out, seed=seed,
                                        backend=backend, fresh=fresh)
    run_file = folder / "run.json"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    cells_dir = folder / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    _write_atomic(run_file, json.dumps(identity, indent=2, sort_keys=True) + "\n")

    grid = [dict(p) for p in module.cells(config)]
    ids = [_cell_id(p) for p in grid]
    if len(set(ids)) != len(ids):
        raise SweepError(f"Study {module.NAME!r} lists the same cell twice.")
    root = as_seed_sequence(seed)

    finished: dict[str, tuple[list, float]] = {}
    damaged = []
    for cell_id, params in zip(ids, grid):
        path = cells_dir / f"{cell_id}.json"
        if not path.exists():
            continue
        loaded, reason = _read_cell(path, params)
        if loaded is None:
            damaged.append(f"{path.name} ({reason})")
            path.unlink()
        else:
            finished[cell_id] = loaded
    for item in damaged:
        log.warning("Damaged cell file %s: recomputing it.", item)
        print(f"ensim: damaged cell file {item}; recomputing it.", file=sys.stderr)

    pending = [(p, child_seed(root, *key_from_params(p)))
               for cell_id, p in zip(ids, grid) if cell_id not in finished]
    n_loaded = len(finished)
    if n_loaded:
        log.info("%s: %d of %d cells already finished; running the other %d.",
                 module.NAME, n_loaded, len(grid), len(pending))

    start = time.perf_counter()
    from tqdm.auto import tqdm

    with contextlib.ExitStack() as stack:
        if scheduler is not None or dask_workers is not None:
            client = stack.enter_context(_dask_client(scheduler, dask_workers))
            results = _dask_results(client, module.run_cell, config, pending, backend)
            where = scheduler or f"local Dask cluster ({dask_workers} workers)"
        else:
            jobs = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
            results = _local_results(module.run_cell, config, pending, backend, jobs)
            where = f"local ({jobs} job{'s' if jobs != 1 else ''})"
        bar = stack.enter_context(tqdm(total=len(grid), initial=n_loaded, unit="cell",
                                       desc=module.NAME, disable=_tqdm_disable(progress),
                                       dynamic_ncols=True))
        for params, rows, elapsed in results:
            cell_id = _cell_id(params)
            record = {"params": params, "rows": rows, "elapsed_s": elapsed,
                      "checksum": _checksum(params, rows)}
            # Keys in the study's order (the checksum uses sorted keys), so that a
            # resumed table has the same columns in the same order.
            _write_atomic(cells_dir / f"{cell_id}.json", json.dumps(record) + "\n")
            finished[cell_id] = (rows, elapsed)
            bar.update(1)
            if verbose:
                log.info("%s cell %s done in %.3f s", module.NAME, _canonical(params), elapsed)
    compute_s = time.perf_counter() - start

    table = _assemble_table(grid, ids, finished)
    table.to_csv(folder / "table.csv", index=False)
    _write_outputs(module, config, table, folder)
    manifest = {
        "study": module.NAME, "title": study_title(module), "scale": scale,
        "config": dataclasses.asdict(config), "seed": seed,
        "seed_entropy": str(root.entropy), "backend": backend, "scheduler": where,
        "versions": _versions(), "hardware": _hardware(backend),
        "n_cells": len(grid), "n_cells_loaded": n_loaded, "n_cells_computed": len(pending),
        "n_cells_damaged": len(damaged), "compute_s": compute_s,
        "cell_timings_s": {cell_id: finished[cell_id][1] for cell_id in ids},
        "command": " ".join(sys.argv),
    }
    _write_atomic(folder / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
    return folder


def _assemble_table(grid, ids, finished):
    import pandas as pd

    records = []
    for cell_id, params in zip(ids, grid):
        for row in finished[cell_id][0]:
            records.append({**params, **row})
    return pd.DataFrame.from_records(records)


def _write_outputs(module, config, table, folder: Path) -> None:
    """Figure, claims and summary, from the table alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure = module.plot(table, config)
    figure.savefig(folder / "figure.png", dpi=150, metadata={"Software": None})
    figure.savefig(folder / "figure.pdf", metadata={"CreationDate": None, "Creator": None,
                                                    "Producer": None})
    plt.close(figure)
    claims: list[Claim] = list(module.claims(table, config))
    _write_atomic(folder / "claims.json",
                  json.dumps([c.to_dict() for c in claims], indent=2) + "\n")
    text = [f"# {study_title(module)}", "",
            markdown_literals((module.__doc__ or "").strip().split("\n\n", 1)[-1].strip()), "",
            "![figure](figure.png)", "",
            f"## Claims ({count_verdicts(claims)})", "", claims_to_markdown(claims)]
    _write_atomic(folder / "summary.md", "\n".join(text))
