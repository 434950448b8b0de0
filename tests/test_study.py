"""Studies as objects: in-memory runs, configuration overrides, pairing, named tables."""

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import ensim
from ensim.study import Study, StudyError, available_studies, load_study, parse_override

DATA = Path(__file__).parent / "data"
TINY = str(DATA / "tiny_study.py")
PAIRED = str(DATA / "paired_study.py")

# Small configurations of every shipped study (seconds each), for the equality tests.
SMALL = {
    "formula-check": dict(ks=(1, 5), rhos=(0.0, 0.5), dists=("gaussian",), n_trials=3000),
    "bagging-bias-variance": dict(n_repeats=8, n_test=30, n_groups=4),
    "ensemble-size": dict(n_repeats=2, k_max=8, n_test=40),
    "forest-correlation": dict(max_features=(1, 10), n_features=10, n_trees=4, n_repeats=8,
                               n_seeds=6, n_test=10, n_groups=4),
    "dropout-ensemble": dict(n_replicates=4, k=2, n_thinned=4, n_fresh_masks=4, hidden=(8,),
                             n_train_friedman=60, n_test_friedman=30, n_train_digits=60,
                             n_test_digits=20, n_points=3, max_epochs=2),
    "co-adaptation": dict(n_seeds=3, keep_probs=(1.0, 0.5), hidden=(16, 12), max_epochs=3),
}


def ensim_cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "ensim", *args], capture_output=True,
                          text=True, cwd=cwd, stdin=subprocess.DEVNULL,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_every_shipped_study_is_a_study_in_the_declared_order():
    studies = available_studies()
    assert list(studies)[0] == "formula-check"
    assert set(SMALL) <= set(studies)
    orders = [s.order for s in studies.values()]
    assert orders == sorted(orders)
    for study in studies.values():
        assert isinstance(study, Study) and study.title and study.story
        assert "``" not in study.story                  # Markdown, not reStructuredText
        assert study.source and Path(study.source).is_file()


def test_in_memory_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = ensim.run(TINY, scale="full", seed=3)
    assert result.folder is None and list(tmp_path.iterdir()) == []
    assert set(result.tables) == {"cells", "draws"}
    cells, draws = result.tables["cells"], result.tables["draws"]
    assert list(cells.columns) == ["i", "scale", "pair", "var", "mean"]
    assert list(draws.columns) == ["i", "scale", "pair", "j", "x"] and len(draws) == 3 * 6
    assert result.n_computed == 6 and result.n_loaded == 0 and result.scale == "full"
    assert result.claims[0].statement == "the cell means average to zero"
    import matplotlib.pyplot as plt

    figure = result.figure()
    assert figure.axes and figure.axes[0].lines
    stamp = figure.texts[-1].get_text()                  # the study, scale and seed
    assert stamp.startswith("ensim ") and "full scale" in stamp and "seed" in stamp
    assert figure.get_layout_engine().__class__.__name__ == "PlaceHolderLayoutEngine"
    plt.close(figure)
    live = result.figure(stamp=False)                    # control: no stamp, layout live
    assert not any(t.get_text().startswith("ensim ") for t in live.texts)
    assert live.get_layout_engine().__class__.__name__ == "ConstrainedLayoutEngine"
    plt.close(live)


def _tiny_configurations():
    """Every shipped study's small configuration: the ones above, and those its own tests
    use."""
    import importlib

    out = dict(SMALL)
    for name in ("weight-scaling", "dropout-ridge", "regularizers", "keep-prob",
                 "early-stopping-l2", "batch-norm"):
        out[name] = importlib.import_module("test_" + name.replace("-", "_")).TINY
    return out


_ALL_SMALL = _tiny_configurations()
# Two studies in the default run (the engine's, and one with three tables of trained
# networks); every shipped study with -m slow.
_DEFAULT_EQUALITY = ("formula-check", "dropout-ensemble")


def test_every_shipped_study_has_a_small_configuration():
    assert set(_ALL_SMALL) == set(available_studies())


@pytest.mark.parametrize("name", [n if n in _DEFAULT_EQUALITY else
                                  pytest.param(n, marks=pytest.mark.slow) for n in _ALL_SMALL])
def test_in_memory_tables_equal_the_cli_files_byte_for_byte(name, tmp_path):
    result = ensim.run(name, seed=4, **_ALL_SMALL[name])
    settings = [f"--set={key}={','.join(map(str, v)) if isinstance(v, tuple) else v}"
                for key, v in _ALL_SMALL[name].items()]
    out = ensim_cli("run", name, "--quick", "--seed", "4", "--no-progress", "--out", "r",
                    *settings, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "r" / name
    for table, frame in result.tables.items():
        assert (folder / f"table-{table}.csv").read_text() == frame.to_csv(index=False), table
    claims = pd.read_json(folder / "claims.json")
    assert list(claims.verdict) == [c.verdict for c in result.claims]
    # Its claims mark exactly the primer claims that name this study (ensim.primer).
    from ensim.primer import PRIMER_CLAIMS

    assert {c.primer for c in result.claims} - {None} == {
        e.key for e in PRIMER_CLAIMS if name in e.studies}
    # The text summary says which, once each.
    assert result.summary().count("[tests the primer: ") == sum(
        c.primer is not None for c in result.claims)


def test_overrides_change_the_config_and_the_identity(tmp_path):
    base = ensim.run(TINY, scale="full", out=tmp_path / "a")
    changed = ensim.run(TINY, scale="full", out=tmp_path / "b", n_samples=500, scales=[1, 4])
    assert changed.config == dataclasses.replace(load_study(TINY).full, n_samples=500,
                                                 scales=(1.0, 4.0))
    assert changed.scale == "custom" and base.scale == "full"
    assert set(changed.tables["cells"].scale) == {1.0, 4.0}
    identity = (tmp_path / "b" / "tiny" / "run.json").read_text()
    assert '"n_samples": 500' in identity and '"scale": "custom"' in identity
    # The same overrides into the first folder: another identity, refused before any work.
    with pytest.raises(StudyError, match="another configuration.*config.n_samples 2000"):
        ensim.run(TINY, scale="full", out=tmp_path / "a", n_samples=500)


@pytest.mark.parametrize("overrides, words", [
    (dict(n_smaples=5), ["no setting 'n_smaples'", "n_cells, n_samples, sleep_s"]),
    (dict(n_samples=2.5), ["'n_samples'", "an integer", "2.5"]),
    (dict(n_samples=True), ["'n_samples'", "an integer", "True"]),
    (dict(sleep_s="slow"), ["'sleep_s'", "a real number", "'slow'"]),
    (dict(extra_cell=1), ["'extra_cell'", "a boolean"]),
    (dict(scales=3.0), ["'scales'", "list of real numbers"]),
    (dict(scales=["a"]), ["'scales'", "'a'"]),
])
def test_bad_overrides_are_refused_before_any_file_is_touched(overrides, words, tmp_path):
    with pytest.raises(StudyError) as info:
        ensim.run(TINY, scale="full", out=tmp_path / "r", **overrides)
    for word in words:
        assert word in str(info.value)
    assert not (tmp_path / "r").exists()


def _always_bad(value):
    """Values no study setting of ``value``'s type may take: each must be refused."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [-1]                                    # counts, sizes and seeds are >= 0
    if isinstance(value, float):
        return [math.nan, math.inf, -math.inf]
    if isinstance(value, tuple) and value and not isinstance(value[0], bool):
        if isinstance(value[0], int):
            return [(-1,)]
        if isinstance(value[0], float):
            return [(math.nan,)]
        if isinstance(value[0], str):
            return [("no-such-value",)]
    return []


@pytest.mark.parametrize("name", sorted(available_studies()))
def test_every_study_refuses_impossible_settings_before_any_work(name, tmp_path):
    # Each study's Config checks its values when built, so that a run given one dies at
    # once with the setting named, not after hours of cells, in a claim.
    study = load_study(name)
    tried = 0
    for field in dataclasses.fields(study.config):
        bad = _always_bad(getattr(study.quick, field.name))
        if field.name == "alpha":
            bad += [0.0, 0.5]                          # the TOSTs need 0 < alpha < 0.5
        for value in bad:
            tried += 1
            with pytest.raises(StudyError, match=repr(field.name)):
                ensim.study.plan(study, overrides={field.name: value}, out=tmp_path / "r")
    assert tried >= 5
    assert not (tmp_path / "r").exists()


def test_fresh_must_be_a_flag(tmp_path):
    # A string would be true, and a resumable run would drop its finished cells.
    with pytest.raises(StudyError, match="'fresh'.*True or False.*'no'"):
        ensim.run(TINY, out=tmp_path / "r", fresh="no")
    assert not (tmp_path / "r").exists()


def test_command_line_settings_are_typed_like_the_fields():
    study = load_study(TINY)
    assert parse_override(study, "n_samples=50") == ("n_samples", 50)
    assert parse_override(study, "sleep_s=0.5") == ("sleep_s", 0.5)
    assert parse_override(study, "extra_cell=true") == ("extra_cell", True)
    assert parse_override(study, "scales=1,2.5") == ("scales", [1.0, 2.5])
    assert parse_override(study, "scales=[1, 2]") == ("scales", [1, 2])
    formula = load_study("formula-check")
    assert parse_override(formula, "dists=gaussian,rademacher") == (
        "dists", ["gaussian", "rademacher"])
    assert parse_override(formula, "ks=1,10") == ("ks", [1, 10])
    with pytest.raises(StudyError, match="KEY=VALUE"):
        parse_override(study, "n_samples")
    with pytest.raises(StudyError, match="no setting 'x'"):
        parse_override(study, "x=1")
    # A value that does not parse stays text, and the type check then names it.
    key, value = parse_override(study, "n_samples=many")
    with pytest.raises(StudyError, match="'n_samples'.*an integer.*'many'"):
        ensim.run(TINY, scale="full", **{key: value})


def test_a_backend_the_study_does_not_support_is_refused(tmp_path):
    with pytest.raises(StudyError, match="'ensemble-size' runs on the backend.*numpy.*'cupy'"):
        ensim.run("ensemble-size", backend="cupy", out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_pairing_shares_a_replicates_streams_between_arms():
    table = ensim.run(PAIRED, scale="full").tables["cells"]
    for _, replicate in table.groupby("replicate"):
        assert replicate.split.nunique() == 1 and replicate.init.nunique() == 1
        assert replicate.own.nunique() == len(replicate)          # each arm its own stream
    first = table.groupby("replicate").first()
    assert first.split.nunique() == len(first) and first.init.nunique() == len(first)
    # Adding an arm changes no other arm's numbers.
    more = ensim.run(PAIRED, scale="full", arms=(0.5, 0.8, 1.0)).tables["cells"]
    kept = more[more.keep_prob != 0.8].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, table)


def test_without_a_pairing_key_every_cell_is_its_own_replicate():
    study = load_study(PAIRED)
    unpaired = dataclasses.replace(study, pairing=None)
    table = ensim.run(unpaired, scale="full").tables["cells"]
    assert table.split.nunique() == len(table) and table.init.nunique() == len(table)


def test_a_grid_without_its_pairing_key_is_refused():
    study = dataclasses.replace(load_study(PAIRED), pairing=("replicate", "fold"))
    with pytest.raises(StudyError, match="lacks the pairing parameter.*fold"):
        ensim.run(study)


def test_study_declarations_are_checked():
    tiny = load_study(TINY)
    with pytest.raises(StudyError, match="lower-case letters"):
        dataclasses.replace(tiny, name="My Study")
    with pytest.raises(StudyError, match="frozen dataclass"):
        dataclasses.replace(tiny, config=dict)
    with pytest.raises(StudyError, match="'backends'"):
        dataclasses.replace(tiny, backends=("jax",))
    with pytest.raises(StudyError, match="'tables'"):
        dataclasses.replace(tiny, tables=("cells", "cells"))
    with pytest.raises(StudyError, match="run_cell must return"):
        ensim.run(dataclasses.replace(tiny, tables=("cells", "draws", "more"),
                                      run_cell=lambda c, p, s, b: [{"x": 1}]), scale="full")


def test_a_study_file_runs_by_path_and_as_a_script(tmp_path):
    script = tmp_path / "my_study.py"
    script.write_text(Path(TINY).read_text())
    out = ensim_cli("run", str(script), "--no-progress", "--out", "a", cwd=tmp_path)
    assert "6 cells (0 loaded, 6 computed)" in out.stdout
    assert out.returncode == 0, out.stderr
    direct = subprocess.run([sys.executable, str(script), "--no-progress", "--out", "b"],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert direct.returncode == 0, direct.stderr
    for table in ("cells", "draws"):
        assert ((tmp_path / "a" / "tiny" / f"table-{table}.csv").read_text()
                == (tmp_path / "b" / "tiny" / f"table-{table}.csv").read_text())


def test_python_dash_m_ensim_works_from_the_repository_root():
    root = Path(__file__).resolve().parents[1]
    out = ensim_cli("list", cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "formula-check"
