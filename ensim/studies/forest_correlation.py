"""How correlated are the trees of a random forest, and what does it cost?

The question: a random forest tries `max_features` (`m`) randomly chosen
features at each split to decorrelate its trees. How correlated do they stay,
and does the forest's variance follow `rho sigma^2 + (1 - rho) / B sigma^2`?
This is the experiment of ESL section 15.2 (Hastie, Tibshirani & Friedman,
figures 15.9 and 15.10): `Y = (1/sqrt(50)) sum_{j=1}^{50} X_j + noise` with
Gaussian `X_j` and noise, training sets of size 100, regression trees with at
least 5 points per leaf. For each `m`, forests of `2B` trees are retrained on
many training sets; at each test point `x`, `rho(x)` is the correlation,
across training sets, between two trees of the same forest, and `sigma^2(x)`
the variance of one tree.

Where does that correlation come from? ESL (exercise 15.5) argues that two trees
of one forest are uncorrelated *given* the training set `Z`, since each draws
its own bootstrap sample and features, so that all of `rho` is variance between
training sets: `rho = Var_Z E[T|Z] / (Var_Z E[T|Z] + E_Z Var[T|Z])`. Repeats over
training sets cannot test that premise (a covariance given `Z` moves the trees
of one repeat together just as the training set does), so each `m` also
retrains the forest on one fixed training set with fresh seeds and measures the
correlation given `Z` directly. As a negative control, a forest whose trees
share one bootstrap sample (drawn afresh for each forest) is measured the same
way: its trees are correlated given `Z`, and the check must say so. The
variance-ratio form, computed from the spread of the trees within and between
training sets, then estimates the same `rho` as the direct measurement for any
forest; their agreement is a consistency check of the two estimators, not a test
of ESL's premise.

How small is "uncorrelated given `Z`"? The check is an equivalence test with an
absolute margin `delta` (0.01) on the pooled correlation given `Z`, chosen by what
such a correlation would cost: a forest of `B` trees has variance
`sigma^2 (rho (1 - 1/B) + 1/B)`, at least `sigma^2 / B` (for `rho >= 0`), and a
correlation `delta` given `Z` raises `rho` by at most `delta`, so it raises the
forest's variance above that of trees independent given `Z` by at most
`(B - 1) delta` of it: 9% at `B = 10`, less than the 10% margin within which the
forest-variance checks call two variances equal. (Those checks use the `rho`
measured across training sets, which holds any correlation given `Z`, so they
test the formula, not this premise.) The Config refuses a `delta` with
`(B - 1) delta` above that margin, and each claim's method prints the bound for
the run's `B`.

How to read the figure: every panel puts the same `m` at the same place (one tick
per `m`, the markers of that `m` dodged a little either side of it), and each colour
stands for one quantity in every panel (the variance-ratio form shares the colour of
the variance between training sets, whose share of `sigma^2` it is; negative controls
are vermillion). Left, box plots over test points of `rho(x)` against `m` (ESL
figure 15.9; boxes span the quartiles, whiskers reach the furthest point within 1.5
times the interquartile range, points beyond are drawn as dots), with the
variance-ratio form as diamonds and the pooled correlation given the training set as
triangles (with 95% intervals; the shared-bootstrap control as a cross); middle, the
two variance components and their sum `sigma^2` against `m` (ESL figure 15.10): on
this problem fewer features per split lower both, the variance between training sets
by proportionally more, which is why `rho` falls; right, what the forest-variance
claims test: the measured variance of a forest of `B` trees minus
`rho sigma^2 + (1 - rho) / B sigma^2` (with `rho` and `sigma^2` measured on the
forest's other `B` trees), in percent of the measured variance, with the 90% interval
on which TOST decides, the ±10% margin as a band and each `m`'s verdict after Holm's
correction written below it (a claim holds only when its interval lies inside the
band, and Holm asks more); the negative control, measured minus `sigma^2 / B`
(independent trees), lies far outside the band.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensim._validation import check_int, check_real, check_values
from ensim.claims import direction, equivalence, holm, negative_control
from ensim.data import KnownTruth
from ensim.decompose import decompose
from ensim.ensembles import fit_repeats, make_ensemble
from ensim.stats import jackknife, normal_conf_int
from ensim.study import Study
from ensim.theory import forest_variance


@dataclass(frozen=True)
class Config:
    max_features: tuple = (1, 3, 6, 12, 25, 50)   # m, features tried at each split
    n_features: int = 50           # p (ESL: 50)
    n_train: int = 100             # training points per set (ESL: 100)
    noise_sd: float = 1.0          # sd of the Gaussian noise
    min_samples_leaf: int = 5      # ESL's minimum node size for regression
    n_trees: int = 10              # B; each forest grows 2B trees, split in two halves
    n_repeats: int = 200           # training sets per m
    n_seeds: int = 100             # seeds per m on one fixed training set (and control)
    n_test: int = 200              # test points (ESL: 600)
    n_groups: int = 10             # jackknife groups of repeats (t with n_groups - 1 dof)
    rel_margin: float = 0.10       # equivalence margin for the forest variance, relative
    given_set_margin: float = 0.01   # margin for rho given Z (absolute; see the docstring)
    ratio_rel_margin: float = 0.05   # margin for the ratio form, relative to rho
    alpha: float = 0.05            # intervals are 1 - alpha

    def __post_init__(self):
        owner = "the forest-correlation Config"
        check_int(self.n_features, "n_features", low=1, owner=owner)
        check_values(self.max_features, "max_features", owner=owner, integer=True, low=1,
                     high=self.n_features)
        check_int(self.n_train, "n_train", low=2, owner=owner)
        check_real(self.noise_sd, "noise_sd", low=0.0, owner=owner)
        check_int(self.min_samples_leaf, "min_samples_leaf", low=1, owner=owner)
        check_int(self.n_trees, "n_trees", low=1, owner=owner)
        check_int(self.n_groups, "n_groups", low=2, owner=owner)
        for name in ("n_repeats", "n_seeds"):   # each the jackknife's, in groups
            check_int(getattr(self, name), name, low=max(4, self.n_groups), owner=owner)
        check_int(self.n_test, "n_test", low=2, owner=owner)
        for name in ("rel_margin", "given_set_margin", "ratio_rel_margin"):
            check_real(getattr(self, name), name, low=0.0, low_inclusive=False, owner=owner)
        # A correlation of given_set_margin given Z may raise a forest's variance by up to
        # (n_trees - 1) x given_set_margin of it (see the docstring): no more than the
        # margin within which the study calls two variances equal.
        limit = self.rel_margin / max(self.n_trees - 1, 1)
        if self.given_set_margin > limit:
            raise ValueError(
                f"The 'given_set_margin' parameter of {owner} must be at most rel_margin / "
                f"(n_trees - 1) = {limit:.4g} for n_trees = {self.n_trees} (a correlation of "
                f"that size given Z would raise the forest's variance by more than "
                f"rel_margin = {self.rel_margin:g}); got {self.given_set_margin:g}.")
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)


QUICK = Config(max_features=(1, 6, 25, 50), n_repeats=30, n_seeds=20, n_test=60)
FULL = Config()


def cells(config: Config) -> list[dict]:
    return [{"max_features": int(m)} for m in config.max_features]


def control_max_features(config: Config) -> int:
    """The ``m`` at which the shared-bootstrap control runs: the middle one."""
    ms = sorted(config.max_features)
    return int(ms[len(ms) // 2])


def _pooled(q, y, f, B):
    """Pooled statistics of one set of repeats over training sets q (R, 2B, n)."""
    d = decompose(q, y, f)
    half = decompose(q[:, :B], y, f)
    other = decompose(q[:, B:], y, f)
    rho_half = half.covariance.mean() / half.member_variance.mean()
    formula = forest_variance(np.clip(rho_half, -1, 1), half.member_variance.mean(), B)
    measured = other.ensemble_variance.mean()
    independent = half.member_variance.mean() / B
    rho = d.covariance.mean() / d.member_variance.mean()
    between, within = d.between_set_variance.mean(), d.within_set_variance.mean()
    ratio, swapped = between / (between + within), within / (between + within)
    return [rho, ratio, rho - ratio, rho - swapped, measured, formula, measured - formula,
            independent, measured - independent]


_POOLED = ["rho", "rho_ratio", "rho_minus_ratio", "rho_minus_swapped", "forest_variance",
           "formula", "forest_minus_formula", "independent", "forest_minus_independent"]


def _given_set(q, y, f):
    """Pooled correlation of two trees given the training set, from repeats over seeds."""
    d = decompose(q, y, f, repeats="ensemble_seeds")
    return d.covariance.mean() / d.member_variance.mean()


def run_cell(config: Config, params: dict, streams, backend: str) -> dict:
    from ensim._random import child_seed
    from ensim.data import resample

    seed = streams.seed
    truth = KnownTruth("esl_linear", config.noise_sd, n_features=config.n_features)
    test = truth.sample(config.n_test, rng=child_seed(seed, 0))
    B, m = config.n_trees, params["max_features"]

    def make(s, **extra):
        return make_ensemble("random_forest", 2 * B, rng=s, max_features=m,
                             min_samples_leaf=config.min_samples_leaf, **extra)

    q = fit_repeats(make, lambda s: truth.sample(config.n_train, rng=s), test.X,
                    config.n_repeats, rng=child_seed(seed, 1))     # (R, 2B, n_test)
    d = decompose(q, test.y, test.f)
    rows = [{"rho": float(d.rho[t]), "rho_ratio": float(d.rho_ratio[t]),
             "sigma2": float(d.member_variance[t]), "within": float(d.within_set_variance[t]),
             "between": float(d.between_set_variance[t])} for t in range(config.n_test)]
    stats = jackknife(lambda s: _pooled(s, test.y, test.f, B), q, n_groups=config.n_groups)
    summary = {"dof": stats.dof}
    for name, value, se in zip(_POOLED, stats.estimate, stats.stderr):
        summary[name], summary[name + "_stderr"] = float(value), float(se)
    # View 3: one fixed training set, fresh seeds (bootstrap draws and features).
    fixed = truth.sample(config.n_train, rng=child_seed(seed, 2))
    given = {"rho_given_set": (make, lambda s: fixed)}
    if m == control_max_features(config):
        # Negative control: the trees of each forest share one bootstrap sample.
        given["shared_rho_given_set"] = (lambda s: make(s, bootstrap=False),
                                         lambda s: resample(fixed.X, fixed.y, rng=s))
    for j, (name, (make_forest, draw)) in enumerate(given.items()):
        q3 = fit_repeats(make_forest, draw, test.X, config.n_seeds,
                         rng=child_seed(seed, 3, j))              # (n_seeds, 2B, n_test)
        est = jackknife(lambda s: _given_set(s, test.y, test.f), q3, n_groups=config.n_groups)
        summary[name], summary[name + "_stderr"] = float(est.estimate[0]), float(est.stderr[0])
    return {"points": rows, "summary": summary}


#: One colour per quantity, the same in every panel. The variance-ratio form of rho is
#: the between-set share of sigma^2, so it takes the between-set variance's colour; the
#: negative controls (shared bootstrap, sigma^2/B) share one.
COLORS = {"rho": "#000000", "between": "#0072B2", "within": "#E69F00", "sigma2": "#777777",
          "given_set": "#009E73", "control": "#D55E00", "forest_minus_formula": "#CC79A7"}
DODGE = 0.15   # markers of one m sit this far either side of its tick


def _verdict_label(claim) -> str:
    """A verdict as the figure writes it, with the one before Holm's correction."""
    if claim.uncorrected_verdict is None:
        return claim.verdict
    return f"{claim.verdict}\n({claim.uncorrected_verdict}\nbefore Holm)"


def plot(tables, config: Config):
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from ensim.plotting import figure, plot_interval_points

    fig, axes = figure(1, 3, width=12.5, height_per_row=3.9)
    points = tables["points"]
    ms = sorted(points.max_features.unique())
    summary = tables["summary"].set_index("max_features").loc[ms]
    dof = float(summary.dof.iloc[0])
    level = f"{1 - config.alpha:.0%}"
    # One categorical axis for m in every panel: position i is the i-th m.
    positions = np.arange(len(ms))

    def m_axis(ax):
        ax.set_xticks(positions, [str(m) for m in ms])
        ax.set_xlim(-0.6, len(ms) - 0.4)
        ax.set_xlabel("max_features m (features tried at each split)")

    ax = axes[0, 0]
    ax.boxplot([points[points.max_features == m].rho for m in ms], positions=positions - DODGE,
               widths=0.25, whis=1.5, showfliers=True,
               flierprops={"marker": ".", "markersize": 3, "markerfacecolor": COLORS["rho"],
                           "markeredgecolor": "none"},
               medianprops={"color": COLORS["rho"]})
    ax.scatter(positions - DODGE, summary.rho_ratio, marker="D", color=COLORS["between"],
               zorder=3, s=22)
    low, high = normal_conf_int(summary.rho_given_set, summary.rho_given_set_stderr,
                                config.alpha, dof=dof)
    plot_interval_points(positions + DODGE, summary.rho_given_set, low, high, ax=ax,
                         color=COLORS["given_set"], marker="^")
    control = summary.shared_rho_given_set.dropna()
    ax.scatter([positions[ms.index(m)] + DODGE for m in control.index], control, marker="x",
               color=COLORS["control"], zorder=3)
    top = max(points.rho.max(), control.max())                 # room for the legend
    handles = [Patch(facecolor="white", edgecolor=COLORS["rho"],
                     label="ρ(x) over test points: box = quartiles, whiskers 1.5 IQR, dots "
                           "beyond"),
               Line2D([], [], marker="D", color=COLORS["between"], ls="",
                      label="variance-ratio form, pooled"),
               Line2D([], [], marker="^", color=COLORS["given_set"],
                      label=f"given the training set, pooled ({level})"),
               Line2D([], [], marker="x", color=COLORS["control"], ls="",
                      label="negative control: given the set, one shared bootstrap")]
    ax.legend(handles=handles, loc="upper left", fontsize=7)
    ax.set(ylabel="ρ(x) between two trees", ylim=(None, 1.75 * top),
           title="Correlation between trees (ESL fig. 15.9)")
    m_axis(ax)
    ax = axes[0, 1]
    means = points.groupby("max_features")[["within", "between", "sigma2"]].mean().loc[ms]
    ax.plot(positions, means.within, "o-", color=COLORS["within"],
            label="within training set  E_Z Var[T|Z]")
    ax.plot(positions, means.between, "s-", color=COLORS["between"],
            label="between training sets  Var_Z E[T|Z]")
    ax.plot(positions, means.sigma2, "^-", color=COLORS["sigma2"], label="total σ² of one tree")
    ax.set(ylabel="variance (mean over x)", yscale="log",
           title="Variance components (ESL fig. 15.10)")
    ax.legend(loc="lower right", fontsize=7)
    m_axis(ax)
    # Right: what the forest-variance claims test, measured - formula relative to the
    # measured variance, with the 1 - 2 alpha interval TOST decides on, the margin band and
    # each m's verdict (after Holm's correction), so overlapping intervals of the two
    # variances cannot be read as a confirmation.
    ax = axes[0, 2]
    checks = {c.statement: c for c in claims(tables, config)}
    tested = [checks[_variance_statement(m, config)] for m in ms]
    scale = 100 / summary.forest_variance.to_numpy()           # percent of the measured
    low, high = (np.array([c.decision_interval[i] for c in tested]) * scale for i in (0, 1))
    margin = 100 * config.rel_margin
    ax.axhspan(-margin, margin, color=COLORS["forest_minus_formula"], alpha=0.12, lw=0)
    ax.axhline(0, color="0.5", lw=0.8)
    plot_interval_points(positions - DODGE, summary.forest_minus_formula * scale, low, high,
                         ax=ax, color=COLORS["forest_minus_formula"])
    c_low, c_high = normal_conf_int(summary.forest_minus_independent,
                                    summary.forest_minus_independent_stderr,
                                    2 * config.alpha, dof=dof)
    plot_interval_points(positions + DODGE, summary.forest_minus_independent * scale,
                         c_low * scale, c_high * scale, ax=ax, color=COLORS["control"],
                         marker="x")
    bottom = min(-2 * margin, float(np.min(low))) - 1.5 * margin   # room for the verdicts
    peak = max(2 * margin, float(np.max(c_high * scale)), float(np.max(high)))
    for x, claim in zip(positions, tested):
        ax.text(x, bottom + 0.15 * margin, _verdict_label(claim), ha="center", va="bottom",
                fontsize=6.5, color=COLORS["forest_minus_formula"])
    two = f"{1 - 2 * config.alpha:.0%}"
    handles = [Line2D([], [], marker="o", color=COLORS["forest_minus_formula"],
                      label=f"measured − ρσ² − (1−ρ)σ²/B, {two} interval (TOST decides); "
                            f"verdict below"),
               Patch(color=COLORS["forest_minus_formula"], alpha=0.25,
                     label=f"± {config.rel_margin:.0%} margin of the claims"),
               Line2D([], [], marker="x", color=COLORS["control"],
                      label=f"negative control: measured − σ²/B ({two})")]
    ax.legend(handles=handles, loc="upper left", fontsize=6.5)
    ax.set(ylabel="difference, % of the measured forest variance",
           ylim=(bottom, peak + 0.4 * (peak - bottom)),             # room for the legend
           title=f"Forest variance (B = {config.n_trees}) vs ESL eq. 15.1")
    m_axis(ax)
    fig.suptitle("Random forests on ESL's additive model: tree correlation and forest variance")
    return fig


def _variance_statement(m, config: Config) -> str:
    return f"Forest variance = ρσ² + (1−ρ)σ²/B (m = {m}, B = {config.n_trees})"


def claims(tables, config: Config) -> list:
    alpha, out = config.alpha, []
    summary = tables["summary"].set_index("max_features").sort_index()
    dof = float(summary.dof.iloc[0])          # jackknife groups - 1
    low_m, high_m = summary.index.min(), summary.index.max()
    out.append(direction(f"Trees decorrelate as max_features falls: ρ(m = {high_m}) − "
                         f"ρ(m = {low_m}) > 0",
                         float(summary.rho[high_m] - summary.rho[low_m]),
                         stderr=float(np.hypot(summary.rho_stderr[high_m],
                                               summary.rho_stderr[low_m])),
                         dof=dof, side="above", alpha=alpha,
                         method=f"pooled ρ, jackknife SEs over training sets, independent "
                                f"cells, t with {dof:g} dof (conservative for a difference "
                                "of two)"))

    def tost(statement, estimate, stderr, margin, method):
        return equivalence(statement, float(estimate), float(stderr), 0.0, margin,
                           alpha=alpha, dof=dof, method=method)

    # A correlation of the margin given Z moves the forest variance by at most (B - 1) x
    # the margin of itself (see the docstring): what the check lets through, measured in
    # the forest-variance checks' own units.
    shift = (config.n_trees - 1) * config.given_set_margin
    given_method = (f"pooled over x, one fixed training set and {config.n_seeds} seeds, "
                    f"jackknife; margin {config.given_set_margin:g}, which would move a "
                    f"forest of B = {config.n_trees} trees' variance by at most {shift:.0%} "
                    f"(the forest-variance margin is {config.rel_margin:.0%})")
    # Three families, one claim per m each: Holm keeps the chance that any claim of a
    # family holds wrongly below alpha.
    variance, given, ratio = [], [], []
    for m, row in summary.iterrows():
        variance.append(tost(_variance_statement(m, config), row.forest_minus_formula,
                             row.forest_minus_formula_stderr,
                             config.rel_margin * row.forest_variance,
                             f"measured − formula, jackknife; margin {config.rel_margin:.0%}"
                             " of the measured variance"))
        given.append(tost(f"Two trees of one forest are uncorrelated given the training set: "
                          f"ρ given Z = 0 (m = {m})", row.rho_given_set,
                          row.rho_given_set_stderr, config.given_set_margin, given_method))
        ratio.append(tost(f"Consistency check: ρ measured directly = the variance-ratio form "
                          f"(m = {m}); both estimate the same ρ for any forest",
                          row.rho_minus_ratio, row.rho_minus_ratio_stderr,
                          config.ratio_rel_margin * row.rho,
                          f"direct − ratio, jackknife; margin {config.ratio_rel_margin:.0%} "
                          "of ρ"))
    for family in zip(holm(variance, "forest variance, every m"),
                      holm(given, "uncorrelated given Z, every m"),
                      holm(ratio, "ratio form, every m")):
        out.extend(family)
    row = summary.loc[high_m]
    out.append(negative_control(tost(
        f"Negative control: forest variance = σ²/B, as if trees were independent "
        f"(m = {high_m}); expected to fail", row.forest_minus_independent,
        row.forest_minus_independent_stderr, config.rel_margin * row.forest_variance,
        f"measured − σ²/B, jackknifed as one statistic; margin {config.rel_margin:.0%} of "
        "the measured variance")))
    control_m = control_max_features(config)
    row = summary.loc[control_m]
    out.append(negative_control(tost(
        f"Negative control: trees sharing one bootstrap sample are uncorrelated given the "
        f"training set (m = {control_m}); expected to fail", row.shared_rho_given_set,
        row.shared_rho_given_set_stderr, config.given_set_margin, given_method)))
    row = summary.loc[high_m]
    out.append(negative_control(tost(
        f"Negative control: ρ = the swapped ratio E_Z Var[T|Z] / (Var_Z E[T|Z] + "
        f"E_Z Var[T|Z]) (m = {high_m}); expected to fail", row.rho_minus_swapped,
        row.rho_minus_swapped_stderr, config.ratio_rel_margin * row.rho,
        f"direct − swapped, jackknife; margin {config.ratio_rel_margin:.0%} of ρ")))
    return out


STUDY = Study(name="forest-correlation", doc=__doc__, config=Config, quick=QUICK, full=FULL,
              cells=cells, run_cell=run_cell, plot=plot, claims=claims,
              tables=("points", "summary"), order=30)

if __name__ == "__main__":
    STUDY.main()
