"""The documentation's code runs: the study template of docs/studies.md and the README's
Python blocks, in order."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ensim

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path):
    return re.findall(r"```python\n(.*?)```", (ROOT / path).read_text(), flags=re.S)


def test_the_study_template_runs_by_path_and_as_a_script(tmp_path):
    (template,) = python_blocks("docs/studies.md")
    script = tmp_path / "my_study.py"
    script.write_text(template)
    result = ensim.run(str(script))
    assert result.study.name == "my-study" and result.n_computed == len(result.tables["cells"])
    # Four equivalences at 10% margins hold, and the negative control is rejected; each
    # TOST fails by chance with probability below 1e-6 at this scale (SE about 1% of 1/k).
    assert [c.verdict for c in result.claims] == ["holds"] * 4 + ["fails"]
    out = subprocess.run([sys.executable, str(script), "--quick", "--no-progress"],
                         capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "results" / "quick" / "my-study" / "table-cells.csv").read_text() == \
        result.tables["cells"].to_csv(index=False)


@pytest.mark.slow    # the README trains a 256-256 network on digits: 30 s to 2 min
def test_the_readme_python_blocks_run_in_order(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sklearn")
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    blocks = python_blocks("README.md")
    assert len(blocks) >= 3
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)   # noqa: S102 - our own docs
    assert list(tmp_path.iterdir()) == []                      # in memory: nothing written
    # A number the README says a print gives (`print(...)  # 0.28`) is what it prints.
    promised = re.findall(r"^print\(.*\)\s+#\s*(-?[0-9][0-9.e-]*)\s*$", "\n".join(blocks),
                          flags=re.M)
    assert promised
    printed = capsys.readouterr().out.split()
    for value in promised:
        assert value in printed, f"README promises {value}; printed {printed[:20]}"


def test_the_readme_shows_the_primer_table_of_ensim_primer():
    from ensim.primer import PRIMER_CLAIMS, primer_markdown

    readme = (ROOT / "README.md").read_text()
    assert primer_markdown() in readme
    table = primer_markdown().splitlines()
    assert len(table) == 2 + len(PRIMER_CLAIMS)
    assert all(line.count("|") == 4 for line in table)   # no "|" inside a cell
