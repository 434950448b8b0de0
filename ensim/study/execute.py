"""Running a study: plan (check everything, touch nothing), connect, compute, assemble.

:func:`run` is the in-memory core: it returns a :class:`StudyResult` (tables,
claims, configuration, figure) and, with ``out=None``, writes nothing anywhere.
With ``out`` it keeps a resumable cell store in ``out/<study>/`` and publishes the
results there (:mod:`ensim.study.publish`).

The order of work is what makes a run safe: every option is checked, the study
loaded, its configuration and grid built, its folder checked (reading only) and
the scheduler connected *before* anything in the output folder is created,
changed or deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._backend import BACKENDS, get_namespace
from .._random import as_seed_sequence
from .._validation import check_bool, check_int
from .spec import Streams, Study, StudyError
from .store import CellStore, cell_id, normalise_tables, run_identity

__all__ = ["Plan", "StudyResult", "check_options", "connect", "execute", "plan", "run"]

log = logging.getLogger("ensim")

#: Seconds allowed for connecting to a Dask scheduler, all attempts included.
CONNECT_DEADLINE_S = 20.0
#: Seconds a connection attempt waits, at most, for an earlier attempt in the same
#: process that was abandoned at its deadline and is still unwinding inside Dask.
ABANDONED_WAIT_S = 30.0
#: Connection attempts that outlived a whole wait of ABANDONED_WAIT_S: not waited for
#: again (a weak set: an attempt that does end at last drops out).
_NEVER_ENDING = weakref.WeakSet()


@dataclass(frozen=True)
class StudyResult:
    """What a run of a study measured.

    Attributes
    ----------
    study : Study
    config : the study's Config
        The configuration that ran.
    scale : str
        ``"quick"``, ``"full"`` or ``"custom"`` (a configuration or overrides).
    seed : int
        The root seed.
    backend : str
    tables : dict of str to pandas.DataFrame
        Every table the study declares, one row per measurement, cells in grid
        order (the same for any ``n_jobs`` or scheduler).
    claims : list of Claim
    n_cells, n_loaded, n_computed : int
        Cells in the grid, loaded from a previous run, computed now.
    elapsed_s : float
        Wall time of the run (loading, computing and assembling).
    folder : Path or None
        Where the results were written (``None`` in memory).
    """

    study: Study
    config: Any
    scale: str
    seed: int
    backend: str
    tables: dict
    claims: list
    n_cells: int
    n_loaded: int
    n_computed: int
    elapsed_s: float
    where: str = "local (1 job)"
    seed_entropy: str = ""
    cell_timings_s: dict = field(default_factory=dict, repr=False)
    n_damaged: int = 0
    folder: Path | None = None

    def figure(self, stamp: bool = True):
        """The study's figure drawn from these tables (a new matplotlib Figure).

        With ``stamp`` (the default, and what ``publish`` saves) it is stamped below
        its panels with the study, the scale and the seed (:func:`ensim.plotting.stamp`),
        which freezes its layout: pass ``stamp=False`` for a figure to edit further
        (relabel, add panels) with its constrained layout still live.
        """
        from ..plotting import stamp as add_stamp

        figure = self.study.plot(self.tables, self.config)
        if not stamp:
            return figure

        scale = {"quick": "quick scale (smaller than the full study, whose results the "
                          "text quotes)",
                 "full": "full scale",
                 "custom": "custom configuration"}.get(self.scale, f"{self.scale} scale")
        return add_stamp(figure, f"ensim {self.study.name} · {scale} · seed {self.seed}")

    def summary(self) -> str:
        """Counts, time and every claim's verdict, as plain text."""
        from ..claims import count_verdicts, statement_text

        lines = [f"{self.study.name} ({self.scale} scale, seed {self.seed}): {self.n_cells} "
                 f"cells, {self.n_loaded} loaded, {self.n_computed} computed, "
                 f"{self.elapsed_s:.1f} s", f"claims: {count_verdicts(self.claims)}"]
        lines += [f"  [{c.verdict}{' as expected' if c.expected == 'fails' and c.as_expected else ''}]"
                  f" {statement_text(c)}" for c in self.claims]
        return "\n".join(lines)

    def __repr__(self):
        return (f"StudyResult({self.study.name!r}, scale={self.scale!r}, seed={self.seed}, "
                f"tables={ {k: len(v) for k, v in self.tables.items()} }, "
                f"claims={len(self.claims)})")


# -------------------------------------------------------------------- options


def check_options(*, seed=0, backend="numpy", n_jobs=1, scheduler=None, dask_workers=None,
                  progress=None) -> None:
    """Validate the runner's options; raises :class:`StudyError` naming the bad one."""
    try:
        check_int(seed, "seed", low=0)
        check_int(n_jobs, "n_jobs", low=-1)
        if n_jobs == 0:
            raise ValueError("The 'n_jobs' parameter must be >= 1 or -1 (all cores); got 0.")
        if backend not in BACKENDS:
            raise ValueError(f"The 'backend' parameter must be one of {', '.join(BACKENDS)}; "
                             f"got {backend!r}.")
        if dask_workers is not None:
            check_int(dask_workers, "dask_workers", low=1)
    except (TypeError, ValueError) as exc:
        raise StudyError(str(exc)) from exc
    if progress is not None and not isinstance(progress, bool):
        raise StudyError(f"The 'progress' parameter must be True, False or None (on a "
                         f"terminal); got {progress!r}.")
    if scheduler is not None:
        if not isinstance(scheduler, str) or not scheduler.strip():
            raise StudyError("The scheduler address must be a non-empty string like "
                             f"tcp://HOST:8786; got {scheduler!r}.")
        if dask_workers is not None:
            raise StudyError("Give either a scheduler address or a number of local Dask "
                             "workers, not both.")
    if (scheduler is not None or dask_workers is not None) and n_jobs != 1:
        raise StudyError("The 'n_jobs' option applies to local runs; on Dask the cluster's "
                         "workers set the parallelism.")


def _check_backend(study: Study, backend: str) -> None:
    if backend not in study.backends:
        raise StudyError(f"Study {study.name!r} runs on the backend(s) "
                         f"{', '.join(study.backends)}; got {backend!r}.")
    try:
        get_namespace(backend)       # CuPy and a GPU, when asked for
    except (ImportError, RuntimeError, ValueError) as exc:
        raise StudyError(str(exc)) from exc


# ----------------------------------------------------------------------- plan


@dataclass
class Plan:
    """A checked run that has not touched anything yet (see :func:`plan`)."""

    study: Study
    config: Any
    scale: str
    seed: int
    backend: str
    grid: list
    store: CellStore | None
    fresh: bool = False

    @property
    def identity(self) -> dict:
        return run_identity(self.study, self.config, self.scale, self.seed, self.backend)


def plan(study, *, scale="quick", config=None, overrides=None, seed=0, backend="numpy",
         out=None, fresh=False) -> Plan:
    """Check a run of ``study`` and return its :class:`Plan`; reads, never writes.

    Raises :class:`StudyError` for an unknown study, a bad configuration or
    override, a backend the study does not support, a grid without its pairing
    key, an unusable output folder, or a folder holding a run of another identity
    (unless ``fresh``).
    """
    from .registry import resolve

    study = resolve(study)
    check_options(seed=seed, backend=backend)
    try:
        fresh = check_bool(fresh, "fresh")
    except TypeError as exc:
        raise StudyError(str(exc)) from exc
    _check_backend(study, backend)
    config, label = study.configure(scale, config, overrides)
    grid = study.check_grid(config)
    store = None
    if out is not None:
        if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
            raise StudyError(f"The output folder must be a non-empty path; got {out!r}.")
        store = CellStore(Path(out) / study.name,
                          run_identity(study, config, label, seed, backend))
        store.check(fresh=fresh)
    return Plan(study, config, label, seed, backend, grid, store, fresh)


# ------------------------------------------------------------------ executors


def _execute_cell(study, config, params, streams, backend):
    """Run one cell where the scheduler put it; returns ``(params, tables, elapsed_s)``."""
    start = time.perf_counter()
    tables = normalise_tables(study, study.run_cell(config, params, streams, backend))
    return params, tables, time.perf_counter() - start


def _execute_pickled(payload, params, streams, backend):
    import cloudpickle

    study, config = cloudpickle.loads(payload)
    return _execute_cell(study, config, params, streams, backend)


class _Local:
    def __init__(self, n_jobs):
        self.n_jobs = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
        self.where = f"local ({self.n_jobs} job{'s' if self.n_jobs != 1 else ''})"

    def map(self, study, config, jobs, backend):
        if self.n_jobs == 1:
            for params, streams in jobs:
                yield _execute_cell(study, config, params, streams, backend)
            return
        from joblib import Parallel, delayed

        yield from Parallel(n_jobs=self.n_jobs, return_as="generator_unordered")(
            delayed(_execute_cell)(study, config, params, streams, backend)
            for params, streams in jobs)


class _Dask:
    def __init__(self, client, where):
        self.client, self.where = client, where

    def map(self, study, config, jobs, backend):
        import cloudpickle
        from distributed import as_completed

        # Dask pickles arguments with plain pickle where it can, which refers to a study
        # file's Config class by a module name that workers cannot import: cloudpickle
        # the study and its configuration together, by value where registered.
        payload = self.client.scatter(cloudpickle.dumps((study, config)), broadcast=True)
        futures = [self.client.submit(_execute_pickled, payload, params, streams, backend,
                                      pure=False) for params, streams in jobs]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


def _connect_client(address: str, deadline_s: float):
    """A Dask client for ``address``, or :class:`StudyError` within ``deadline_s``.

    Dask's own timeout does not cover a listener that accepts the connection and
    never answers, so the attempt runs in a daemon thread with an overall deadline.
    An attempt abandoned at its deadline goes on unwinding inside Dask for a few
    seconds (its own timeout is half the deadline) and holds up Dask's client machinery
    meanwhile, so a later attempt in the same process first waits for such attempts to
    end, for at most :data:`ABANDONED_WAIT_S` in all, before its own deadline starts.
    An attempt still running after such a wait is not waited for by later attempts.
    """
    from distributed import Client

    # One budget for all of them: attempts that never end (were Dask to hang) must not
    # make every later attempt wait longer and longer. An attempt that outlives a whole
    # budget is taken for one that never ends, and no later attempt waits for it again.
    until = time.monotonic() + ABANDONED_WAIT_S
    unwinding = [t for t in threading.enumerate()
                 if t.name == "ensim-connect" and t not in _NEVER_ENDING]
    for thread in unwinding:
        thread.join(max(0.0, until - time.monotonic()))
    _NEVER_ENDING.update(t for t in unwinding if t.is_alive())   # alive: the budget is spent
    box = {}

    def attempt():
        try:
            box["client"] = Client(address, timeout=f"{max(deadline_s / 2, 1):g}s",
                                   set_as_default=False)
        except BaseException as exc:        # noqa: BLE001 - reported below
            box["error"] = exc

    thread = threading.Thread(target=attempt, name="ensim-connect", daemon=True)
    thread.start()
    thread.join(deadline_s)
    prefix = f"Could not connect to the Dask scheduler at {address}"
    if thread.is_alive():
        raise StudyError(f"{prefix}: no answer within {deadline_s:g} s.")
    error = box.get("error")
    if isinstance(error, (MemoryError, TypeError, ValueError, KeyError, AttributeError,
                          UnicodeDecodeError)) or (
            error is not None and "deserial" in str(error).lower()):
        raise StudyError(f"{prefix}: something answers there, but not a Dask scheduler "
                         f"({type(error).__name__}: {_one_line(error)}).")
    if error is not None:
        raise StudyError(f"{prefix}: {_one_line(error)}")
    return box["client"]


@contextlib.contextmanager
def connect(*, n_jobs=1, scheduler=None, dask_workers=None, deadline_s: float | None = None):
    """Where cells run: this process, ``n_jobs`` local processes, or a Dask cluster.

    A scheduler that cannot be reached, never answers, or is not a Dask scheduler
    is a :class:`StudyError` within ``deadline_s`` seconds (default
    :data:`CONNECT_DEADLINE_S`); so is one without workers (connecting and waiting
    for a worker share the deadline, at least 1 s being left for the wait).
    """
    check_options(n_jobs=n_jobs, scheduler=scheduler, dask_workers=dask_workers)
    deadline_s = CONNECT_DEADLINE_S if deadline_s is None else deadline_s
    if scheduler is None and dask_workers is None:
        yield _Local(n_jobs)
        return
    try:
        import distributed
    except ImportError as exc:
        raise StudyError("Running on Dask needs the 'dist' extra: pip install "
                         "'ensim-stats[dist]' (or '.[dist]' from a checkout).") from exc
    if scheduler is not None:
        start = time.monotonic()
        client = _connect_client(scheduler.strip(), deadline_s)
        with client:
            # One deadline for both: connecting and finding a worker.
            left = max(deadline_s - (time.monotonic() - start), 1.0)
            try:
                client.wait_for_workers(1, timeout=left)
            except (TimeoutError, OSError) as exc:
                raise StudyError(f"The Dask scheduler at {scheduler} has no workers "
                                 f"(waited {time.monotonic() - start:.0f} s); start some with "
                                 f"'dask worker {scheduler}'.") from exc
            yield _Dask(client, scheduler)
        return
    with distributed.LocalCluster(n_workers=dask_workers, threads_per_worker=1,
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield _Dask(client, f"local Dask cluster ({dask_workers} workers)")


# -------------------------------------------------------------------- execute


def _tqdm_disable(progress):
    """tqdm's ``disable``: True shows, False hides, None shows on a terminal only."""
    return None if progress is None else not progress


def assemble(study: Study, grid: list, finished: dict) -> dict:
    """Every declared table as a DataFrame: the cells' rows in grid order, params first."""
    import pandas as pd

    tables = {}
    for name in study.tables:
        records = [{**params, **row} for params in grid
                   for row in finished[cell_id(params)][0][name]]
        tables[name] = pd.DataFrame.from_records(records)
    return tables


def execute(plan: Plan, executor, *, progress=None, verbose=False) -> StudyResult:
    """Run a :class:`Plan` on an executor from :func:`connect`; returns the result.

    With a store, the folder is opened (created; with ``fresh``, old cells
    dropped), finished cells are loaded, and each new cell is written the moment
    it finishes, so an interruption loses only unfinished cells.
    """
    from ..claims import Claim

    study, grid, store = plan.study, plan.grid, plan.store
    start = time.perf_counter()
    finished, damaged = {}, []
    if store is not None:
        store.open(fresh=plan.fresh)
        finished, damaged = store.load(grid)
        for item in damaged:      # said even without logging: data was damaged on disk
            print(f"ensim: {study.name}: damaged cell file {item}; set aside as .damaged, "
                  "recomputing it.", file=sys.stderr)
    root = as_seed_sequence(plan.seed)
    pending = [(p, Streams.for_cell(root, p, study.pairing))
               for p in grid if cell_id(p) not in finished]
    n_loaded = len(finished)
    from tqdm.auto import tqdm

    with tqdm(total=len(grid), initial=n_loaded, unit="cell", desc=study.name,
              disable=_tqdm_disable(progress), dynamic_ncols=True) as bar:
        for params, tables, elapsed in executor.map(study, plan.config, pending, plan.backend):
            if store is not None:
                store.save(params, tables, elapsed)
            finished[cell_id(params)] = (tables, elapsed)
            bar.update(1)
            if verbose:
                log.info("%s cell %s done in %.3f s", study.name, params, elapsed)
    tables = assemble(study, grid, finished)
    claims = list(study.claims(tables, plan.config))
    bad = [c for c in claims if not isinstance(c, Claim)]
    if bad:
        raise StudyError(f"Study {study.name!r}: claims must return Claim objects; got "
                         f"{type(bad[0]).__name__}.")
    return StudyResult(
        study=study, config=plan.config, scale=plan.scale, seed=plan.seed,
        backend=plan.backend, tables=tables, claims=claims, n_cells=len(grid),
        n_loaded=n_loaded, n_computed=len(pending), elapsed_s=time.perf_counter() - start,
        where=executor.where, seed_entropy=str(root.entropy),
        cell_timings_s={cell_id(p): finished[cell_id(p)][1] for p in grid},
        n_damaged=len(damaged), folder=None if store is None else store.folder)


def run(study, *, scale: str = "quick", config=None, seed: int = 0, n_jobs: int = 1,
        backend: str = "numpy", scheduler: str | None = None,
        dask_workers: int | None = None, out=None, fresh: bool = False,
        progress: bool | None = False, **overrides) -> StudyResult:
    """Run a study and return its tables, claims and figure.

    Parameters
    ----------
    study : str, module or Study
        A study's name (``ensim list``), the path of a study file, a study module
        or a :class:`~ensim.study.Study`.
    scale : {"quick", "full"}
        The named configuration to start from (ignored when ``config`` is given).
    config : the study's Config, optional
        A configuration of your own (``dataclasses.replace(study.quick, ...)``).
    seed : int
        Root seed: each replicate's streams are children of it keyed by the
        cell's pairing parameters, so results do not depend on scheduling.
    n_jobs : int
        Local worker processes (``-1``: all cores).
    backend : {"numpy", "cupy"}
        Array backend, among those the study supports.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://HOST:PORT``).
    dask_workers : int, optional
        Start a local Dask cluster with this many processes for the run.
    out : path, optional
        Keep a resumable cell store and publish tables, figure, summary, claims and
        manifest in ``out/<study name>/``. ``None`` (default): write nothing.
    fresh : bool
        With ``out``: drop the finished cells of an earlier run and start over.
    progress : bool or None
        Progress bar (``None``: on a terminal only).
    **overrides
        Configuration fields to change, checked against the Config's fields and
        types (``n_repeats=50``).

    Returns
    -------
    StudyResult

    Raises
    ------
    StudyError
        A bad option, configuration or folder, or an unusable scheduler; raised
        before anything is written.

    Examples
    --------
    >>> import ensim
    >>> result = ensim.run("formula-check", n_trials=2000, ks=(1, 10), rhos=(0.0, 0.5),
    ...                    dists=("gaussian",))
    >>> sorted(result.tables)
    ['cells']
    >>> len(result.tables["cells"])
    5
    """
    check_options(seed=seed, backend=backend, n_jobs=n_jobs, scheduler=scheduler,
                  dask_workers=dask_workers, progress=progress)
    the_plan = plan(study, scale=scale, config=config, overrides=overrides, seed=seed,
                    backend=backend, out=out, fresh=fresh)
    with connect(n_jobs=n_jobs, scheduler=scheduler, dask_workers=dask_workers) as executor:
        result = execute(the_plan, executor, progress=progress)
    if out is not None:
        from .publish import publish

        publish(result)
    return result

