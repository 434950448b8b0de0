"""The three decomposition studies at a tiny scale: protocol, determinism, verdicts."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

import ensim
from ensim.claims import interval_text

matplotlib.use("Agg")

TINY = {
    "bagging-bias-variance": dict(n_repeats=8, n_test=30, n_groups=4),
    "ensemble-size": dict(n_repeats=3, k_max=12, n_test=60),
    "forest-correlation": dict(max_features=(1, 10), n_features=10, n_trees=5, n_repeats=20,
                               n_seeds=8, n_test=20, n_groups=5),
}


def run_tiny(name):
    """A tiny configuration of a study, run in memory: ``(study, config, tables)``."""
    result = ensim.run(name, **TINY[name])
    assert result.n_computed == result.n_cells and result.folder is None
    assert all(len(table) for table in result.tables.values())
    return result.study, result.config, result.tables


def changed(tables, name, rows, **values):
    """A copy of ``tables`` with ``values`` written into ``rows`` of table ``name``."""
    out = {key: table.copy() for key, table in tables.items()}
    for column, value in values.items():
        out[name].loc[rows(out[name]), column] = value
    return out


@pytest.mark.parametrize("name", list(TINY))
def test_study_runs_plots_and_claims(name):
    import matplotlib.pyplot as plt

    study, config, tables = run_tiny(name)
    assert study.quick != study.full and study.name == name
    figure = study.plot(tables, config)
    plt.close(figure)
    claims = study.claims(tables, config)
    assert claims and all(isinstance(c, ensim.Claim) for c in claims)
    # Exact identities hold at any scale. Each negative control is wrong by several
    # times its margin, so even this scale (chosen for it) has the power to reject it:
    # "inconclusive" would mean a check too weak to tell a wrong formula apart. The
    # seeds are fixed, so the outcome is too; at them the controls' 90% intervals clear
    # their margins by about 1.5 SE (ensemble-size's V/k, on few repeats) and 2 SE
    # (forest variance σ²/B) to over 6 SE (the other four): other seeds could leave the
    # first two inconclusive now and then, never make them hold.
    for claim in claims:
        if "exact" in claim.statement:
            assert claim.verdict == "holds", claim
        assert claim.statement.startswith("Negative control") == (claim.expected == "fails")
        if claim.expected == "fails":
            assert claim.verdict == "fails", claim
    assert any(claim.expected == "fails" for claim in claims)
    if name == "forest-correlation":   # the margin given Z, in the variance checks' units
        shift = (config.n_trees - 1) * config.given_set_margin
        given = [c for c in claims if "given the training set" in c.statement]
        assert given and all(f"at most {shift:.0%}" in c.method for c in given)
    _, _, again = run_tiny(name)
    for key, table in tables.items():                     # same seed, same numbers
        pd.testing.assert_frame_equal(table, again[key])


def test_ensemble_size_identity_check_catches_inconsistent_moments():
    # At k = k_max the formula is an algebraic identity (V and C average the same members
    # the ensemble's predict averages): a check of the code, not of the primer. It compares
    # the ensemble's own error with V and C measured from pairs of members, so one part in
    # 10^8 off in C must turn it to "fails".
    study, config, tables = run_tiny("ensemble-size")
    exact = [c for c in study.claims(tables, config) if "exactly" in c.statement]
    assert len(exact) == 2 and all(c.verdict == "holds" for c in exact)
    forest = tables["ensembles"].model == "random_forest"
    wrong = changed(tables, "ensembles", lambda t: t.model == "random_forest",
                    C=tables["ensembles"].C[forest] * (1 + 1e-8))
    verdicts = {c.statement: c.verdict for c in study.claims(wrong, config)
                if "exactly" in c.statement}
    assert sorted(verdicts.values()) == ["fails", "holds"], verdicts


def test_bagging_verdicts_can_go_either_way():
    # Each claim must be able to fail: a bag whose pooled correlation were clearly
    # negative fails the positive-correlation claim, and a bag whose variance were
    # sigma^2/k (independent members) makes the negative control hold.
    study, config, tables = run_tiny("bagging-bias-variance")

    def verdict(word, **values):
        new = changed(tables, "summary", lambda t: t.model == "bagged_trees", **values)
        return next(c.verdict for c in study.claims(new, config) if word in c.statement)

    assert verdict("positively correlated") == "holds"
    assert verdict("positively correlated", pooled_rho=-0.5, pooled_rho_stderr=0.01) == "fails"
    assert verdict("Negative control") == "fails"
    assert verdict("Negative control", minus_independent=0.0,
                   minus_independent_stderr=1e-6) == "holds"


def test_ensemble_size_fit_recovers_v_minus_c_in_every_training_set():
    # The curve is averaged over the cyclic shifts of random orders, so every member
    # comes first equally often: at k = 1 it is exactly the mean member MSE V, and at
    # k = k_max exactly the ensemble's MSE.
    _, config, tables = run_tiny("ensemble-size")
    per_set = tables["ensembles"].set_index(["model", "repeat"])
    curves = tables["curves"]
    first = curves[curves.k == 1].set_index(["model", "repeat"])
    last = curves[curves.k == config.k_max].set_index(["model", "repeat"])
    np.testing.assert_allclose(first.mse, per_set.V, rtol=1e-12)
    np.testing.assert_allclose(last.mse, per_set.mse_at_k_max, rtol=1e-12)
    # The OLS slope then recovers V - C in every one of the 6 training sets within the
    # claim's 2% margin. Its relative error has sd 0.4% at this scale (measured over 60
    # sets), so 2% is 5 sd: a chance failure has probability below 1e-5 over 6 sets.
    # (The first k members in one fixed order missed by up to 80% here.)
    slope_error = (per_set.fit_slope - (per_set.V - per_set.C)) / (per_set.V - per_set.C)
    assert slope_error.abs().max() < 0.02, slope_error
    # Negative control: the slope is not V (the C term matters) by far more than 2%.
    assert ((per_set.fit_slope - per_set.V) / per_set.V).abs().min() > 0.02


def test_figures_draw_what_they_say():
    import matplotlib.pyplot as plt

    # Bagging: the formula curve is drawn, and it lies on the measured ensemble variance
    # (an exact identity); the error panels end near the data, not at a fixed 0.1.
    study, config, tables = run_tiny("bagging-bias-variance")
    figure = study.plot(tables, config)
    lines = {line.get_label(): line for line in figure.axes[2].get_lines()}
    np.testing.assert_allclose(lines["ρσ² + (1−ρ)σ²/k"].get_ydata(),
                               lines["bag, measured"].get_ydata(), rtol=1e-10)
    top = figure.axes[3].get_ylim()[1]
    assert top == pytest.approx(1.15 * tables["points"].error.max())
    # One colour per quantity: the tree's variance is the member sigma^2 of the bag's
    # panel, the bag's variance its measured curve, and the two differ.
    tree_var = {l.get_label(): l for l in figure.axes[3].get_lines()}["variance"]
    bag_var = {l.get_label(): l for l in figure.axes[4].get_lines()}["variance (of the bag)"]
    assert tree_var.get_color() == lines["member σ²(x)"].get_color()
    assert bag_var.get_color() == lines["bag, measured"].get_color()
    assert tree_var.get_color() != bag_var.get_color()
    plt.close(figure)
    # Forest: one categorical axis for m in all three panels, every marker in a legend.
    study, config, tables = run_tiny("forest-correlation")
    figure = study.plot(tables, config)
    ticks = [[t.get_text() for t in ax.get_xticklabels()] for ax in figure.axes]
    assert ticks[0] == ticks[1] == ticks[2] == [str(m) for m in config.max_features]
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert any("box" in t for t in legend) and any("negative control" in t for t in legend)
    plt.close(figure)
    # Ensemble size: measured (circles) and fitted (squares) are both in the legend.
    study, config, tables = run_tiny("ensemble-size")
    figure = study.plot(tables, config)
    legend = [t.get_text() for t in figure.axes[1].get_legend().get_texts()]
    assert any("measured" in t for t in legend) and any("fitted" in t for t in legend)
    plt.close(figure)


def test_forest_correlation_margin_given_z_bounds_the_forest_variance():
    """The docstring's bound, from the forest-variance formula: a correlation delta given
    Z raises a B-tree forest's variance by at most (B - 1) delta of it, attained at
    rho = 0; and the Config refuses a margin whose bound exceeds rel_margin."""
    from ensim.studies.forest_correlation import Config
    from ensim.theory import forest_variance

    delta, rhos = 0.01, np.linspace(0.0, 1.0 - 0.01, 991)
    for B in (2, 5, 10, 11):
        shift = np.array([forest_variance(r + delta, 1.0, B) / forest_variance(r, 1.0, B)
                          for r in rhos]) - 1.0
        assert shift.max() <= (B - 1) * delta * (1 + 1e-12)
        assert shift[0] == pytest.approx((B - 1) * delta, rel=1e-12)
        assert shift[-1] < shift[0]                       # smaller where rho is larger
    Config(n_trees=11)                                    # 10 x 0.01 = 0.1: at the limit
    with pytest.raises(ValueError, match=r"'given_set_margin'.*rel_margin / \(n_trees - 1\)"):
        Config(n_trees=12)
    Config(n_trees=12, given_set_margin=0.009)



def test_ensemble_size_words_its_checks_as_what_they_are():
    # The k = k_max formula and the 1/k fit hold by algebra: the story and the claims call
    # them identity and consistency checks, never "a check that can fail"; the tested rho
    # is that of centred errors, not C/V.
    study, config, tables = run_tiny("ensemble-size")
    claims = study.claims(tables, config)
    assert "can fail" not in study.story
    assert "identity" in study.story and "consistency check" in study.story
    assert "squared bias of the averaged member" not in study.story
    fits = [c for c in claims if "OLS" in c.statement]
    exact = [c for c in claims if "exactly" in c.statement]
    assert len(fits) == 4 and all(c.statement.startswith("Consistency check") for c in fits)
    assert len(exact) == 2 and all(c.statement.startswith("Identity check") for c in exact)
    # Identities are shown with no interval (their [0, residual] is a rounding bound).
    assert all(c.kind == "identity" and interval_text(c) == "none: an exact check"
               for c in exact)
    (rho,) = [c for c in claims if "Feature sampling" in c.statement]
    assert "centred" in rho.statement and "ρ = C/V" not in rho.statement


def test_ensemble_size_floor_claim_goes_either_way_and_is_drawn():
    # "A lower rho is not a lower error": the forest's MSE at k = k_max minus bagging's, a
    # Welch direction claim over the unpaired training sets. It must hold when the forest
    # is clearly worse and fail when it is clearly better; a wrong "fails" has probability
    # <= alpha / 2 (stated in its method). Its estimate is the difference of the means.
    import matplotlib.pyplot as plt

    study, config, tables = run_tiny("ensemble-size")
    ens = tables["ensembles"]
    forest, bag = ens.model == "random_forest", ens.model == "bagged_trees"

    def floor(t):
        (claim,) = [c for c in study.claims(t, config) if "lower ρ is not" in c.statement]
        return claim

    claim = floor(tables)
    assert claim.kind == "direction" and f"≤ {config.alpha / 2:g}" in claim.method
    assert claim.estimate == pytest.approx(ens.mse_at_k_max[forest].mean()
                                           - ens.mse_at_k_max[bag].mean(), rel=1e-12)
    shifted = ens.mse_at_k_max[bag].to_numpy()
    for shift, verdict in ((+5.0, "holds"), (-5.0, "fails")):
        new = changed(tables, "ensembles", lambda t: t.model == "random_forest",
                      mse_at_k_max=shifted + shift)
        assert floor(new).verdict == verdict
    # The figure quotes the claim, verdict included, not a bias story no claim tests.
    figure = study.plot(tables, config)
    text = " ".join(t.get_text() for t in figure.axes[1].texts)
    assert f"{claim.estimate:+.2g}" in text and claim.verdict in text
    assert "more biased" not in text and "not a lower error" in text
    plt.close(figure)


def test_forest_variance_panel_draws_what_the_claims_test():
    # The right panel shows measured - formula in % of the measured variance, with the
    # 1 - 2 alpha interval TOST decides on, the +-margin band and each m's verdict; so a
    # figure whose intervals merely overlapped could not be read as "formula confirmed".
    import matplotlib.pyplot as plt

    study, config, tables = run_tiny("forest-correlation")
    summary = tables["summary"].set_index("max_features").sort_index()
    claims = [c for c in study.claims(tables, config)
              if c.statement.startswith("Forest variance =")]
    assert len(claims) == len(config.max_features)
    figure = study.plot(tables, config)
    ax = figure.axes[2]
    scale = 100 / summary.forest_variance.to_numpy()
    measured = ax.containers[0]
    np.testing.assert_allclose(measured.lines[0].get_ydata(),
                               summary.forest_minus_formula.to_numpy() * scale, rtol=1e-12)
    bars = np.array([seg[:, 1] for seg in measured.lines[2][0].get_segments()])
    np.testing.assert_allclose(bars, np.array([c.decision_interval for c in claims])
                               * scale[:, None], rtol=1e-10)
    (band,) = [p for p in ax.patches if p.get_height() > 0]
    assert (band.get_y(), band.get_y() + band.get_height()) == pytest.approx(
        (-100 * config.rel_margin, 100 * config.rel_margin))
    verdicts = [t.get_text().split("\n")[0] for t in ax.texts]
    assert verdicts == [c.verdict for c in claims]
    # The negative control (measured - sigma^2/B) is drawn too, and in the legend.
    np.testing.assert_allclose(ax.containers[1].lines[0].get_ydata(),
                               summary.forest_minus_independent.to_numpy() * scale)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("margin" in t for t in legend) and any("negative control" in t for t in legend)
    # One colour per quantity across the panels: the middle panel's three lines differ,
    # the ratio form (left) takes the between-set variance's colour (middle), the
    # given-Z correlation's colour is no variance's, and the controls share theirs.
    from matplotlib.collections import PathCollection
    from matplotlib.colors import to_hex

    left, middle = figure.axes[0], figure.axes[1]
    lines = {line.get_label(): to_hex(line.get_color()) for line in middle.get_lines()}
    assert len(set(lines.values())) == 3
    between = next(c for label, c in lines.items() if label.startswith("between"))
    ratio, control = (to_hex(c.get_facecolor()[0]) for c in left.collections
                      if isinstance(c, PathCollection))          # diamonds, then the cross
    assert ratio == between
    given = to_hex(left.containers[0].lines[0].get_color())
    assert given not in lines.values() and control not in lines.values()
    assert to_hex(ax.containers[1].lines[0].get_color()) == control
    plt.close(figure)


def test_bagging_rho_panel_draws_the_pooled_rho():
    # The claim's pooled rho is a ratio of means (mean covariance / mean sigma^2), not
    # the mean of the drawn rho(x): the panel draws it as a line with its t interval.
    import matplotlib.pyplot as plt

    from ensim.stats import normal_conf_int

    study, config, tables = run_tiny("bagging-bias-variance")
    bag = tables["summary"].set_index("model").loc["bagged_trees"]
    points = tables["points"][tables["points"].model == "bagged_trees"]
    assert bag.pooled_rho == pytest.approx(points.covariance.mean()
                                           / points.member_variance.mean(), rel=1e-10)
    figure = study.plot(tables, config)
    ax = figure.axes[5]
    (pooled,) = [line for line in ax.get_lines() if "pooled ρ" in line.get_label()]
    assert "ratio of means" in pooled.get_label()
    np.testing.assert_allclose(pooled.get_ydata(), bag.pooled_rho, rtol=1e-12)
    low, high = normal_conf_int(bag.pooled_rho, bag.pooled_rho_stderr, config.alpha,
                                dof=bag.dof)
    (band,) = ax.patches
    assert (band.get_y(), band.get_y() + band.get_height()) == pytest.approx((low, high))
    (claim,) = [c for c in study.claims(tables, config) if "pooled ρ" in c.statement]
    assert (claim.conf_low, claim.conf_high) == pytest.approx((low, high))
    plt.close(figure)
