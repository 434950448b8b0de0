"""The ``ensim`` command: list, show, run and report studies.

Exit codes: 0 success, 1 a study failed while running, 2 bad usage (unknown
study, setting or option, unusable folder or cluster; nothing was written), 130
interrupted (finished cells are kept; rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main", "main_for_study"]

#: Where results land unless ``--out`` says otherwise: ``results/<scale>/<study>/``.
DEFAULT_ROOT = "results"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (and exit code 2)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _int_option(low: int, *, all_cores: bool = False):
    """An argparse type: an integer >= ``low`` (or -1 for all cores, if allowed)."""
    valid = f">= {low}" + (", or -1 for all cores" if all_cores else "")

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {valid}; got {text!r}") from None
        if value < low and not (all_cores and value == -1):
            raise argparse.ArgumentTypeError(f"must be an integer {valid}; got {value}")
        return value

    return parse


def _add_run_options(parser, *, single: bool) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small scale: every study in minutes on 2 cores (default: full)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        dest="settings",
                        help="change one setting of the study's configuration (repeatable; "
                             "lists comma-separated); 'ensim show STUDY' lists them"
                             + ("" if single else "; needs a single study"))
    parser.add_argument("--out", metavar="DIR",
                        help=f"results folder (default: {DEFAULT_ROOT}/quick, "
                             f"{DEFAULT_ROOT}/full, or {DEFAULT_ROOT}/custom with --set)")
    parser.add_argument("--seed", type=_int_option(0), default=0, metavar="N",
                        help="root seed (default: 0)")
    parser.add_argument("--n-jobs", type=_int_option(1, all_cores=True), default=1, metavar="N",
                        help="local worker processes, -1 for all cores (default: 1)")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                        help="array backend (default: numpy)")
    dist = parser.add_mutually_exclusive_group()
    dist.add_argument("--scheduler", metavar="ADDRESS",
                      help="run the cells on the Dask cluster at ADDRESS (tcp://HOST:PORT)")
    dist.add_argument("--dask-workers", type=_int_option(1), metavar="N",
                      help="start a local Dask cluster with N worker processes for the run")
    parser.add_argument("--fresh", action="store_true",
                        help="discard finished cells and start over (default: resume)")
    parser.add_argument("--verbose", "-v", action="store_true", help="log each cell's timing")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ensim", description=(
        "Ensemble-vs-dropout statistics simulator: run studies that measure the ensemble "
        "error formula MSE_ens = V/k + (k-1)/k C and the regularizers built on it, and "
        "write figures, tables and a report."),
        epilog="Example: ensim run all --quick   (then open results/quick/report.html)")
    from ensim import __version__

    parser.add_argument("--version", action="version", version=f"ensim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("list", help="list the available studies")
    show = sub.add_parser("show", help="a study's story and settings (for --set)")
    show.add_argument("study", help="study name from 'ensim list', or a study file (.py)")
    run = sub.add_parser("run", help="run a study (or all), resuming finished cells",
                         description="Run a study, or 'all' studies, and write "
                                     "DIR/<study>/ (tables, figure, summary, claims, "
                                     "manifest) and DIR/report.html.")
    run.add_argument("study", nargs="?", default="all",
                     help="study name from 'ensim list', a study file (.py), or 'all' (default)")
    _add_run_options(run, single=False)
    report = sub.add_parser("report", help="gather every study's results into one page")
    report.add_argument("--out", default=DEFAULT_ROOT, metavar="DIR",
                        help=f"a results folder, or a folder of them (default: {DEFAULT_ROOT})")
    return parser


def _fail(message: str) -> int:
    print(f"ensim: error: {message}", file=sys.stderr)
    return 2


def _list() -> int:
    from ensim.study import available_studies

    for name, study in available_studies().items():
        print(f"{name:<24} {study.title}")
    return 0


def _show(name) -> int:
    from ensim.study import resolve

    study = resolve(name)
    print(f"{study.name}: {study.title}\n")
    if study.story:
        print(f"{study.story}\n")
    print(f"backends: {', '.join(study.backends)}; tables: {', '.join(study.tables)}; "
          f"pairing key: {', '.join(study.pairing) if study.pairing else 'every parameter'}\n")
    quick, full = study.quick, study.full
    names = list(study.fields)
    width = max(len(n) for n in names)
    print(f"{'setting':<{width}}  {'quick':<22} full")
    for key in names:
        print(f"{key:<{width}}  {getattr(quick, key)!r:<22} {getattr(full, key)!r}")
    # A study from a file runs by its path, not by its name.
    target = name if str(name).endswith(".py") else study.name
    print(f"\nChange one with: ensim run {target} --set {names[0]}=VALUE")
    return 0


def _report(out) -> int:
    from ensim.report import find_result_folders, write_report

    folders = find_result_folders(out)
    if not folders:
        return _fail(f"no published studies in {out!r}; run a study first")
    for folder in folders:
        html_path, md_path = write_report(folder)
        print(f"ensim: report in {html_path} and {md_path}")
    return 0


def _run(args, studies) -> int:
    from ensim.report import write_report
    from ensim.study import StudyError, connect, execute, parse_override, plan, publish

    if args.out is not None and not args.out.strip():
        raise StudyError("The --out folder must not be empty; give a path, or leave --out "
                         f"out for {DEFAULT_ROOT}/<scale>.")
    if args.settings and len(studies) != 1:
        raise StudyError("--set changes one study's settings; name a single study.")
    overrides = dict(parse_override(studies[0], text) for text in args.settings)
    scale = "quick" if args.quick else "full"
    label = "custom" if overrides else scale
    out = Path(args.out) if args.out is not None else Path(DEFAULT_ROOT) / label
    progress = False if args.no_progress else None
    # Everything is checked, every study's folder included, before anything is written.
    plans = [plan(study, scale=scale, overrides=overrides, seed=args.seed,
                  backend=args.backend, out=out, fresh=args.fresh) for study in studies]
    with connect(n_jobs=args.n_jobs, scheduler=args.scheduler,
                 dask_workers=args.dask_workers) as executor:
        for the_plan in plans:
            print(f"ensim: {the_plan.study.name}: running at {the_plan.scale} scale on "
                  f"{executor.where}...", file=sys.stderr)
            result = execute(the_plan, executor, progress=progress, verbose=args.verbose)
            publish(result)
            from ensim.claims import count_verdicts

            print(f"ensim: {result.study.name}: {result.n_cells} cells ({result.n_loaded} "
                  f"loaded, {result.n_computed} computed) in {result.elapsed_s:.1f} s; claims: "
                  f"{count_verdicts(result.claims)}; results in {result.folder}/")
    html_path, _ = write_report(out)
    print(f"ensim: report in {html_path}")
    return 0


def _dispatch(args, studies=None) -> int:
    from ensim.study import StudyError, available_studies, load_study

    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, format="ensim: %(message)s")
    else:
        logging.basicConfig(level=logging.WARNING, format="ensim: %(message)s")
    try:
        if args.command == "list":
            return _list()
        if args.command == "show":
            return _show(args.study)
        if args.command == "report":
            return _report(args.out)
        if studies is None:
            studies = (list(available_studies().values()) if args.study == "all"
                       else [load_study(args.study)])
        return _run(args, studies)
    except StudyError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print("\nensim: interrupted; finished cells are saved. Rerun the same command to "
              "resume.", file=sys.stderr)
        return 130


def main(argv=None) -> int:
    """Entry point of the ``ensim`` command."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return _dispatch(args)


def main_for_study(study, argv=None):
    """``python my_study.py [options]``: ``ensim run`` for one :class:`~ensim.study.Study`."""
    prog = f"python {Path(sys.argv[0]).name}" if sys.argv and sys.argv[0] else study.name
    parser = _Parser(prog=prog, description=f"Run the study {study.name!r}: {study.title} "
                                            "(the options of 'ensim run').")
    _add_run_options(parser, single=True)
    args = parser.parse_args(argv)
    args.command, args.study = "run", study.name
    sys.exit(_dispatch(args, [study]))
