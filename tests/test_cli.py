"""The ensim command: help, list, one-line errors with exit code 2, a real run."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY = str(Path(__file__).parent / "data" / "tiny_study.py")


def ensim(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ensim", *args], capture_output=True,
                          text=True, cwd=cwd, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_help_and_list():
    out = ensim("--help")
    assert out.returncode == 0
    for word in ("list", "show", "run", "report", "MSE_ens"):
        assert word in out.stdout
    run_help = ensim("run", "--help").stdout
    for option in ("--quick", "--set", "--out", "--seed", "--n-jobs", "--backend",
                   "--scheduler", "--dask-workers", "--fresh", "--verbose"):
        assert option in run_help
    listing = ensim("list")
    assert listing.returncode == 0
    names = [line.split()[0] for line in listing.stdout.splitlines()]
    assert names[0] == "formula-check" and not any(n.startswith("bench") for n in names)


def test_show_lists_a_studys_settings():
    out = ensim("show", "formula-check")
    assert out.returncode == 0
    assert "n_trials" in out.stdout and "100000" in out.stdout and "1000000" in out.stdout
    assert "numpy, cupy" in out.stdout and "--set" in out.stdout
    assert "How to read the figure" in out.stdout          # the story, below the title
    assert "ensim run formula-check --set" in out.stdout


def test_show_of_a_study_file_names_the_file(tmp_path):
    from ensim.studies import formula_check

    path = tmp_path / "my_study.py"
    path.write_text(Path(formula_check.__file__).read_text())
    out = ensim("show", str(path))
    assert out.returncode == 0, out.stderr
    assert f"ensim run {path} --set" in out.stdout


@pytest.mark.parametrize("args, words", [
    (["run", "no-such-study"], ["Unknown study 'no-such-study'", "formula-check"]),
    (["run", "formula-check", "--n-jobs", "0"], ["--n-jobs", "got 0"]),
    (["run", "formula-check", "--seed", "-1"], ["--seed", "-1"]),
    (["run", "formula-check", "--backend", "torch"], ["--backend", "'torch'"]),
    (["run", "formula-check", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["run", "formula-check", "--scheduler", "tcp://x:1", "--dask-workers", "2"],
     ["not allowed with argument"]),
    (["run", "formula-check", "--dask-workers", "2", "--n-jobs", "2"], ["'n_jobs'", "Dask"]),
    (["run", "formula-check", "--out", "/dev/null/results"], ["Cannot write results to /dev/null"]),
    (["run", "formula-check", "--out", ""], ["--out folder must not be empty"]),
    (["run", "formula-check", "--set", "n_trails=5"], ["no setting 'n_trails'", "n_trials"]),
    (["run", "formula-check", "--set", "n_trials=1e5"], ["'n_trials'", "an integer", "'1e5'"]),
    (["run", "formula-check", "--set", "n_trials"], ["KEY=VALUE"]),
    (["run", "all", "--set", "n_trials=5"], ["name a single study"]),
    (["run", "ensemble-size", "--backend", "cupy"], ["'ensemble-size' runs on", "numpy"]),
    (["report", "--out", "/nonexistent/dir"], ["no published studies"]),
    pytest.param(["run", "formula-check", "--backend", "cupy"], ["backend='cupy' needs CuPy"],
                 marks=pytest.mark.skipif(importlib.util.find_spec("cupy") is not None,
                                          reason="CuPy is installed")),
])
def test_bad_usage_is_one_line_and_exit_code_2(args, words, tmp_path):
    out = ensim(*args, cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "results").exists()


def test_run_and_report_end_to_end(tmp_path):
    out = ensim("run", TINY, "--verbose", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "results in results/full/tiny/" in out.stdout
    assert "report in results/full/report.html" in out.stdout
    assert "6 cells (0 loaded, 6 computed) in" in out.stdout
    assert out.stderr.count("cell {") == 6                      # --verbose: each cell's timing
    assert "cell/s" not in out.stderr and "%|" not in out.stderr  # no bar off a terminal
    manifest = json.loads((tmp_path / "results" / "full" / "tiny" / "manifest.json").read_text())
    assert manifest["n_cells"] == 6 and manifest["scheduler"] == "local (1 job)"
    again = ensim("run", TINY, "--seed", "9", cwd=tmp_path)
    assert again.returncode == 2 and "seed 0 (on disk) vs 9" in again.stderr
    # Quick, full and custom runs land in folders of their own, and the report covers each.
    quick = ensim("run", TINY, "--quick", "--set", "sleep_s=0", cwd=tmp_path)
    assert quick.returncode == 0 and "results/custom/tiny/" in quick.stdout, quick.stderr
    report = ensim("report", cwd=tmp_path)
    assert report.returncode == 0
    for scale in ("full", "custom"):
        assert (tmp_path / "results" / scale / "report.md").exists()
        assert f"results/{scale}/report.html" in report.stdout
