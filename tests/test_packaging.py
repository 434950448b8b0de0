"""A plain (non-editable) install must ship every subpackage and every study."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_and_study_is_shipped():
    # pyproject ships the packages that setuptools finds under ensim/: every folder of
    # Python files there must be a package, or a plain install would leave it out.
    tomllib = pytest.importorskip("tomllib")
    setuptools = pytest.importorskip("setuptools")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    include = config["packages"]["find"]["include"]
    shipped = set(setuptools.find_packages(str(ROOT), include=include))
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "ensim").rglob("*.py")
               if "__pycache__" not in p.parts}
    assert folders <= shipped, f"not shipped: {sorted(folders - shipped)}"
    assert {"ensim", "ensim.nn", "ensim.study", "ensim.studies"} <= shipped
    assert not any(name.startswith(("tests", "benchmarks")) for name in shipped)
