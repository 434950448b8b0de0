"""The sweep runner: resume after kill -9, damaged cells, equal tables, seed stability."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ensim.sweep import SweepError, load_study, run_study

TINY = str(Path(__file__).parent / "data" / "tiny_study.py")


@pytest.fixture(scope="module")
def tiny():
    return load_study(TINY)


def read_table(folder):
    return (Path(folder) / "table.csv").read_text()


def test_run_writes_the_results_folder(tiny, tmp_path):
    folder = run_study(tiny, out=tmp_path, seed=3, progress=False)
    assert folder == tmp_path / "tiny"
    for name in ("table.csv", "figure.png", "figure.pdf", "summary.md", "claims.json",
                 "manifest.json"):
        assert (folder / name).stat().st_size > 0, name
    table = pd.read_csv(folder / "table.csv")
    assert list(table["i"]) == list(range(6))
    assert list(table.columns) == ["i", "scale", "pair", "var", "mean"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["seed_entropy"] == "3" and manifest["n_cells_computed"] == 6
    assert len(manifest["cell_timings_s"]) == 6 and "numpy" in manifest["versions"]
    assert manifest["config"] == dataclasses.asdict(tiny.FULL)
    claims = json.loads((folder / "claims.json").read_text())
    assert claims[0]["statement"] == "the cell means average to zero"


def test_tables_equal_for_one_and_two_jobs(tiny, tmp_path):
    one = run_study(tiny, out=tmp_path / "a", seed=1, n_jobs=1, progress=False)
    two = run_study(tiny, out=tmp_path / "b", seed=1, n_jobs=2, progress=False)
    assert read_table(one) == read_table(two)
    other = run_study(tiny, out=tmp_path / "c", seed=2, progress=False)
    assert read_table(other) != read_table(one)   # the seed matters


def test_tables_equal_on_a_local_dask_cluster(tiny, tmp_path):
    pytest.importorskip("distributed")
    local = run_study(tiny, out=tmp_path / "a", seed=1, progress=False)
    dask = run_study(tiny, out=tmp_path / "b", seed=1, dask_workers=2, progress=False)
    assert read_table(local) == read_table(dask)
    assert "Dask" in json.loads((dask / "manifest.json").read_text())["scheduler"]


def test_adding_a_cell_changes_no_other_cell(tiny, tmp_path, monkeypatch):
    base = pd.read_csv(run_study(tiny, out=tmp_path / "a", seed=5, progress=False) / "table.csv")
    monkeypatch.setattr(tiny, "FULL", dataclasses.replace(tiny.FULL, extra_cell=True))
    more = pd.read_csv(run_study(tiny, out=tmp_path / "b", seed=5, progress=False) / "table.csv")
    assert len(more) == len(base) + 1
    pd.testing.assert_frame_equal(more[more.i >= 0].reset_index(drop=True), base)


def test_damaged_cell_files_are_recomputed_and_reported(tiny, tmp_path, capsys):
    folder = run_study(tiny, out=tmp_path, seed=1, progress=False)
    reference = read_table(folder)
    files = sorted((folder / "cells").glob("*.json"))
    text = files[0].read_text()
    files[0].write_text(text[: len(text) // 2])                       # truncated
    data = json.loads(files[1].read_text())
    data["rows"][0]["mean"] += 1.0                                    # altered contents
    files[1].write_text(json.dumps(data))
    untouched = {f: f.stat().st_mtime_ns for f in files[2:]}
    capsys.readouterr()
    run_study(tiny, out=tmp_path, seed=1, progress=False)
    err = capsys.readouterr().err
    assert files[0].name in err and files[1].name in err and "recomputing" in err
    assert "checksum" in err
    assert read_table(folder) == reference
    assert {f: f.stat().st_mtime_ns for f in files[2:]} == untouched
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["n_cells_computed"] == 2 and manifest["n_cells_damaged"] == 2


def test_other_configuration_is_never_mixed(tiny, tmp_path):
    folder = run_study(tiny, out=tmp_path, seed=1, progress=False)
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(SweepError, match="another configuration.*seed 1 \\(on disk\\) vs 2"):
        run_study(tiny, out=tmp_path, seed=2, progress=False)
    with pytest.raises(SweepError, match="scale 'full' \\(on disk\\) vs 'quick'"):
        run_study(tiny, out=tmp_path, seed=1, quick=True, progress=False)
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before
    fresh = run_study(tiny, out=tmp_path, seed=2, fresh=True, progress=False)
    assert json.loads((fresh / "run.json").read_text())["seed"] == 2


@pytest.mark.parametrize("kwargs, words", [
    (dict(n_jobs=0), ["'n_jobs'", "got 0"]),
    (dict(backend="jax"), ["'backend'", "'jax'"]),
    (dict(seed=-3), ["'seed'", "-3"]),
    (dict(scheduler="tcp://127.0.0.1:1", dask_workers=2), ["not both"]),
    (dict(n_jobs=2, dask_workers=2), ["'n_jobs'", "Dask"]),
])
def test_bad_options_fail_before_any_work(tiny, tmp_path, kwargs, words):
    with pytest.raises(SweepError) as info:
        run_study(tiny, out=tmp_path, progress=False, **kwargs)
    for word in words:
        assert word in str(info.value)
    assert not (tmp_path / "tiny").exists()


def test_unknown_study_and_non_study_file(tmp_path):
    with pytest.raises(SweepError, match="Unknown study 'nope'.*formula-check"):
        load_study("nope")
    bad = tmp_path / "bad.py"
    bad.write_text("NAME = 'bad'\n")
    with pytest.raises(SweepError, match="lacks QUICK, FULL, cells, run_cell"):
        load_study(str(bad))


def test_unreachable_scheduler_fails_fast(tiny, tmp_path):
    pytest.importorskip("distributed")
    start = time.monotonic()
    with pytest.raises(SweepError, match="tcp://127.0.0.1:9"):
        run_study(tiny, out=tmp_path, scheduler="tcp://127.0.0.1:9", progress=False)
    assert time.monotonic() - start < 30


def test_kill_9_then_resume_gives_the_uninterrupted_table(tmp_path):
    """SIGKILL a run part-way; the rerun loads the finished cells and computes the rest."""
    command = [sys.executable, "-m", "ensim", "run", TINY, "--quick", "--seed", "4",
               "--no-progress"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command + ["--out", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cells = tmp_path / "killed" / "tiny" / "cells"
    deadline = time.monotonic() + 60
    while len(list(cells.glob("*.json"))) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = {f: f.stat().st_mtime_ns for f in cells.glob("*.json")}
    assert 5 <= len(done) < 24, "the run was not interrupted part-way"
    assert not (tmp_path / "killed" / "tiny" / "table.csv").exists()

    rerun = subprocess.run(command + ["--out", str(tmp_path / "killed")], env=env, check=True,
                           capture_output=True, text=True)
    assert "damaged" not in rerun.stderr
    assert {f: f.stat().st_mtime_ns for f in done} == done          # not recomputed
    manifest = json.loads((tmp_path / "killed" / "tiny" / "manifest.json").read_text())
    assert manifest["n_cells_loaded"] == len(done)
    assert manifest["n_cells_computed"] == 24 - len(done)

    subprocess.run(command + ["--out", str(tmp_path / "whole")], env=env, check=True,
                   capture_output=True)
    assert read_table(tmp_path / "killed" / "tiny") == read_table(tmp_path / "whole" / "tiny")


def test_ctrl_c_keeps_finished_cells_and_exits_130(tmp_path):
    command = [sys.executable, "-m", "ensim", "run", TINY, "--quick", "--no-progress",
               "--out", str(tmp_path)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    cells = tmp_path / "tiny" / "cells"
    deadline = time.monotonic() + 60
    while len(list(cells.glob("*.json"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted; finished cells are saved" in err and "Traceback" not in err
    kept = list(cells.glob("*.json"))
    assert 3 <= len(kept) < 24
    assert all(json.loads(f.read_text())["rows"] for f in kept)   # whole files only


def test_changed_study_code_is_not_mixed_with_old_cells(tmp_path):
    source = Path(TINY).read_text()
    study_file = tmp_path / "my_study.py"
    study_file.write_text(source)
    run_study(load_study(str(study_file)), out=tmp_path / "out", progress=False)
    study_file.write_text(source.replace("n_samples: int = 2000", "n_samples: int = 3000"))
    with pytest.raises(SweepError, match="study's code has changed"):
        run_study(load_study(str(study_file)), out=tmp_path / "out", progress=False)


def test_resumed_table_equals_fresh_table(tiny, tmp_path):
    first = read_table(run_study(tiny, out=tmp_path, seed=2, progress=False))
    again = read_table(run_study(tiny, out=tmp_path, seed=2, progress=False))   # all loaded
    assert again == first
