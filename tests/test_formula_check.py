"""The formula-check study on a small grid: its table, claims and negative controls."""

import json

import numpy as np
import pandas as pd
import pytest

import ensim


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    result = ensim.run("formula-check", out=tmp_path_factory.mktemp("fc"),
                       ks=(1, 2, 5, 20), rhos=(-0.05, 0.0, 0.5, 1.0),
                       dists=("gaussian", "exponential"), n_trials=40_000, rel_margin=0.1)
    return result.folder, result.config


def test_table_has_every_cell_with_its_theory(small_run):
    folder, config = small_run
    table = pd.read_csv(folder / "table-cells.csv")
    main = table[table.series == "rho"]
    assert len(main) == len(config.dists) * len(config.rhos) * len(config.ks)
    V = config.variance
    expected = V / main.k + (main.k - 1) / main.k * main.rho * V
    assert (main.theory - expected).abs().max() < 1e-12
    edge = table[table.series == "lower-edge"]
    assert len(edge) == len(config.dists) * 3 and edge.theory.abs().max() == 0.0


def test_claims_hold_and_negative_controls_fail(small_run):
    """Every claim holds at this scale: 14 TOST claims over 42 cell TOSTs (32 cells of
    the rho series, 6 of the lower edge, 4 WLS fits), margins of 10% at 40,000 trials.

    A cell's TOST fails falsely only if its estimate is more than (margin - 1.645 SE)
    away from the truth. The tightest cell (exponential, rho = 1, k = 2) has a margin
    of 6.84 SE, leaving 5.2 SE: false-failure probability about 1e-7 for it, and less
    for the others (the WLS fits have 15 SE or more), about 1e-6 for all 42. The
    z-score claim pools only 32 cells, too few for its interval to
    fit inside [0.5, 1.5]: it may be inconclusive but must not fail, which needs
    its 95% chi-square interval wholly outside [0.5, 1.5]: mean z^2 above 2.32 or
    below 0.29, probability about 6e-5 for 32 N(0, 1) z-scores. The negative
    controls (V/k, and V/k + C) must fail the same checks.
    """
    folder, _ = small_run
    claims = json.loads((folder / "claims.json").read_text())
    controls = [c for c in claims if c["expected"] == "fails"]
    (z_claim,) = [c for c in claims if c["statement"].startswith("z-scores")]
    assert z_claim["verdict"] != "fails"
    checks = [c for c in claims if c["expected"] == "holds" and c is not z_claim]
    assert len(controls) == 2 and all(c["verdict"] == "fails" for c in controls)
    assert checks and all(c["verdict"] == "holds" for c in checks), [
        (c["statement"], c["verdict"]) for c in checks if c["verdict"] != "holds"]


def test_the_z_histogram_counts_only_random_cells():
    # Rademacher factors make some cells deterministic (every trial the same squared
    # error: k = 1, and rho = 1): their z is rounding noise and must not be drawn.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = ensim.run("formula-check", ks=(1, 2, 5), rhos=(0.0, 1.0), dists=("rademacher",),
                       n_trials=2000, lower_edge=False, fit_rho=0.0)
    cells = result.tables["cells"]
    random = cells[cells.stderr / cells.mse > 1e-6]
    assert len(random) == 2 and len(cells) == 6
    figure = result.figure()
    ax = figure.axes[-1]
    (label,) = [t.get_text() for t in ax.get_legend().get_texts() if "cells" in t.get_text()]
    assert label.startswith("2 random cells") and "4 deterministic" in label
    heights = np.array([p.get_height() for p in ax.patches])
    widths = np.array([p.get_width() for p in ax.patches])
    assert np.sum(heights * widths) == pytest.approx(1.0)        # a density of the 2 z-scores
    assert "WLS" in figure.axes[-2].get_title() and "V = 2" in figure._suptitle.get_text()
    # The 4 deterministic cells are drawn open (exact checks), the 2 random ones filled.
    from matplotlib.colors import to_hex

    points = [(line.get_markerfacecolor(), len(line.get_xdata()))
              for line in figure.axes[0].get_lines() if line.get_marker() == "o"]
    open_ = sum(n for face, n in points if face == "none")
    assert open_ == 4 and sum(n for _, n in points) == 6
    assert "exact check" in figure.axes[0].get_legend().get_title().get_text()
    # The fit panel's colours (laws) are not the colours that mean values of rho.
    rho_colors = {to_hex(line.get_color()) for line in figure.axes[0].get_lines()}
    fit_colors = {to_hex(line.get_color()) for line in figure.axes[-2].get_lines()
                  if line.get_marker() in ("o", "s")}
    assert fit_colors and not fit_colors & rho_colors
    plt.close(figure)
    # A series whose every cell is exact (rho = 1) is claimed as an identity, a mixed one
    # (rho = 0: k = 1 exact, k = 2 and 5 random) by TOSTs; the counts say which.
    by_rho = {c.statement.split("ρ = ")[1].split(")")[0]: c for c in result.claims
              if c.statement.startswith("MSE_ens = V/k")}
    assert by_rho["1"].kind == "identity" and by_rho["1"].verdict == "holds"
    assert by_rho["0"].kind == "all-of"
    assert "(1 of them exact checks)" in ensim.claims.count_verdicts(result.claims)
