"""The ``ensim`` command: list, run and report studies.

Exit codes: 0 success, 1 a study failed while running, 2 bad usage (unknown
study or option, unusable folder or cluster), 130 interrupted (finished cells
are kept; rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main", "main_for_study"]


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


def _add_run_options(parser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="small scale: every study in about a minute on 2 cores")
    parser.add_argument("--out", default="results", metavar="DIR",
                        help="results directory (default: results)")
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
        epilog="Example: ensim run all --quick   (then open results/report.html)")
    from ensim import __version__

    parser.add_argument("--version", action="version", version=f"ensim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.add_parser("list", help="list the available studies")
    run = sub.add_parser("run", help="run a study (or all), resuming finished cells",
                         description="Run a study, or 'all' studies, and write "
                                     "DIR/<study>/ (table.csv, figure.png/pdf, summary.md, "
                                     "manifest.json) and DIR/report.html.")
    run.add_argument("study", nargs="?", default="all",
                     help="study name from 'ensim list', a study file (.py), or 'all' (default)")
    _add_run_options(run)
    report = sub.add_parser("report", help="gather every study's results into one page")
    report.add_argument("--out", default="results", metavar="DIR",
                        help="results directory (default: results)")
    return parser


def _run(modules, args) -> int:
    from ensim.report import write_report
    from ensim.sweep import run_study

    for module in modules:
        name = module.NAME
        print(f"ensim: running {name} ({'quick' if args.quick else 'full'} scale)...",
              file=sys.stderr)
        folder = run_study(module, quick=args.quick, out=args.out, seed=args.seed,
                           n_jobs=args.n_jobs, backend=args.backend, scheduler=args.scheduler,
                           dask_workers=args.dask_workers, fresh=args.fresh,
                           progress=False if args.no_progress else None, verbose=args.verbose)
        print(f"ensim: {name}: results in {folder}/")
    html_path, _ = write_report(args.out)
    print(f"ensim: report in {html_path}")
    return 0


def _dispatch(args, parser) -> int:
    from ensim.sweep import (SweepError, available_studies, check_options, check_run_folder,
                             load_study, study_title)

    if args.verbose if hasattr(args, "verbose") else False:
        logging.basicConfig(level=logging.INFO, format="ensim: %(message)s")
    if args.command == "list":
        for name, module in available_studies().items():
            print(f"{name:<24} {study_title(sys.modules[module])}")
        return 0
    if args.command == "report":
        from ensim.report import write_report

        if not Path(args.out).is_dir():
            parser.exit(2, f"ensim: error: no results directory {args.out!r}; run a study first\n")
        html_path, md_path = write_report(args.out)
        print(f"ensim: report in {html_path} and {md_path}")
        return 0
    studies = available_studies()
    names = list(studies) if args.study == "all" else [args.study]
    try:
        modules = [load_study(name) for name in names]
        check_options(n_jobs=args.n_jobs, backend=args.backend, seed=args.seed,
                      scheduler=args.scheduler, dask_workers=args.dask_workers)
        for module in modules:  # every study's folder, before any study runs
            check_run_folder(module, quick=args.quick, out=args.out, seed=args.seed,
                             backend=args.backend, fresh=args.fresh)
        return _run(modules, args)
    except SweepError as exc:
        parser.exit(2, f"ensim: error: {exc}\n")
    except KeyboardInterrupt:
        print("\nensim: interrupted; finished cells are saved. Rerun the same command to resume.",
              file=sys.stderr)
        return 130


def main(argv=None) -> int:
    """Entry point of the ``ensim`` command."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return _dispatch(args, parser)


def main_for_study(name: str, argv=None) -> int:
    """Entry point for ``python studies/<study>.py [options]``: ``ensim run <name>``."""
    parser = _Parser(prog=f"python {sys.argv[0]}" if sys.argv and sys.argv[0] else name,
                     description=f"Run the {name!r} study (the options of 'ensim run').")
    _add_run_options(parser)
    args = parser.parse_args(argv)
    args.command, args.study = "run", name
    sys.exit(_dispatch(args, parser))
