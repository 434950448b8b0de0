"""Does averaging k models really give MSE_ens = V/k + (k-1)/k C?

The primer derives the ensemble error of `k` members whose errors have variance
`V` and pairwise covariance `C` from second moments alone. This study samples
such errors (Monte Carlo, no shortcut: every trial draws all `k` member errors)
for `k` from 1 to 100, for error correlations `rho = C/V` that are negative,
zero, small, large and 1, and for four laws of the errors: Gaussian, heavy-tailed
Student-t, skewed (centred exponential) and discrete (Rademacher). It also runs
the lower edge `C = -V/(k-1)`, where the errors cancel exactly. Each series of
cells is one claim: TOSTs at every `k`, or, where every trial of every cell has
the same error (the lower edge, Rademacher factors at `rho = 1` or below 0), an
exact check, counted as such in the claims' header.

How to read the figure: each of the first four panels is one law; points are the
measured `MSE_ens / V` with 95% intervals, lines the formula; an open point is a
cell whose trials are all equal (Rademacher factors at `rho = 1`, or at `rho < 0`,
where the ensemble's error is a multiple of one shared factor `W = ±1`; the
members, sums of factors, are then not Rademacher themselves; and at `rho = 0` a
single member, `k = 1`, whose square is always `V`), an exact check
rather than a measurement. Correlated errors (`rho = 1`) gain nothing from averaging;
uncorrelated ones fall as `1/k`; negatively correlated ones fall faster. The fifth
panel fits `MSE_ens` on `1/k` by weighted least squares (intercept `C`, slope
`V - C`) and shows the recovered `C` and `V` minus the truth, with 95% intervals,
one colour per law (not per `rho`); only the shaded `rho`'s fits are claims. The
last panel compares the z-scores `(measured - theory) / SE` of all random cells
with N(0, 1). The lower edge's cells are not drawn: their MSE is 0 (to rounding),
which a log axis cannot show; their claims are exact checks. The claims table gives MSEs in the errors' own units (`V = 2`), the
figure divides them by `V`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ensim import DISTS, EquicorrelatedErrors, simulate
from ensim._validation import check_bool, check_int, check_real, check_values
from ensim.claims import all_of, equivalence, identity, negative_control, within
from ensim.montecarlo import FEW_TRIALS
from ensim.primer import tag
from ensim.stats import fit_inverse_k, normal_conf_int
from ensim.study import Study


@dataclass(frozen=True)
class Config:
    ks: tuple = (1, 2, 3, 5, 10, 20, 50, 100)      # ensemble sizes
    rhos: tuple = (-0.01, 0.0, 0.05, 0.5, 1.0)     # C / V; -0.01 is valid up to k = 101
    dists: tuple = DISTS                           # laws of the independent factors
    variance: float = 2.0                          # V, the same for every member
    df: float = 5.0                                # Student-t degrees of freedom
    n_trials: int = 1_000_000                      # trials per cell
    lower_edge: bool = True                        # also run C = -V/(k-1) for k >= 2
    rel_margin: float = 0.02                       # equivalence margin, relative to theory
    alpha: float = 0.05                            # TOST level; intervals are 1 - alpha
    fit_rho: float = 0.5                           # rho whose 1/k fit becomes a claim

    def __post_init__(self):
        owner = "the formula-check Config"
        check_values(self.ks, "ks", owner=owner, integer=True, low=1, minimum=2)
        rhos = check_values(self.rhos, "rhos", owner=owner, low=-1.0, high=1.0)
        check_values(self.dists, "dists", owner=owner, choices=DISTS)
        check_real(self.variance, "variance", low=0.0, low_inclusive=False, owner=owner)
        if "student-t" in self.dists:   # simulate's own condition, checked before any cell
            check_real(self.df, "df", low=4.0, low_inclusive=False, owner=owner)
        # The verdicts rest on intervals of means of squared errors, which undercover
        # below simulate's FEW_TRIALS (3 trials gave 14 false "fails" of 33 claims).
        check_int(self.n_trials, "n_trials", low=FEW_TRIALS, owner=owner)
        check_bool(self.lower_edge, "lower_edge", owner=owner)
        check_real(self.rel_margin, "rel_margin", low=0.0, low_inclusive=False, owner=owner)
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)
        if check_real(self.fit_rho, "fit_rho", owner=owner) not in rhos:
            raise ValueError(f"The 'fit_rho' parameter of {owner} must be one of the rhos "
                             f"{self.rhos}; got {self.fit_rho:g}.")


QUICK = Config(n_trials=100_000, rel_margin=0.05)
FULL = Config()


def cells(config: Config) -> list[dict]:
    grid = [{"dist": d, "series": "rho", "rho": float(r), "k": int(k)}
            for d in config.dists for r in config.rhos for k in config.ks
            if k == 1 or r >= -1.0 / (k - 1)]
    if config.lower_edge:
        grid += [{"dist": d, "series": "lower-edge", "rho": -1.0 / (k - 1), "k": int(k)}
                 for d in config.dists for k in config.ks if k >= 2]
    return grid


def run_cell(config: Config, params: dict, streams, backend: str) -> list[dict]:
    V = config.variance
    model = EquicorrelatedErrors(params["k"], V, params["rho"] * V, dist=params["dist"],
                                 df=config.df)
    result = simulate(model, config.n_trials, rng=streams.seed, backend=backend)
    row = result.to_row()
    keep = ("mse", "stderr", "theory", "z", "variance", "variance_stderr", "covariance",
            "covariance_stderr", "covariance_theory", "second_moment", "cross_moment",
            "n_trials")
    return [{key: row[key] for key in keep}]


def _margin(config: Config, theory: float, k: int) -> float:
    # Relative to theory; at the lower edge (theory 0) relative to V/k, the C = 0 value.
    return config.rel_margin * max(theory, config.variance / k)


def _is_random(rows):
    """True for the cells whose trials differ (a standard error above rounding)."""
    return (rows.stderr > 1e-8 * rows.mse).to_numpy()


def _random_cells(table):
    """The z-scores of the main series' random cells, and how many were left out.

    Some cells are deterministic (Rademacher factors at some rho give every trial
    the same squared error): their standard error is rounding noise (about 1e-15)
    and so is their z, which says nothing about the standard errors.
    """
    main = table[table.series == "rho"]
    random = _is_random(main)
    z = main.z[random].to_numpy()
    return z[np.isfinite(z)], int((~random).sum())


def _series_fits(table, config):
    main = table[table.series == "rho"]
    for (dist, rho), group in main.groupby(["dist", "rho"], sort=False):
        if group.k.nunique() >= 2:
            yield dist, rho, fit_inverse_k(group.k, group.mse, group.stderr)


def plot(tables, config: Config):
    from ensim.plotting import EXTRA_COLORS, color_cycle, figure, plot_interval_points

    table = tables["cells"]
    fig, axes = figure(2, 3, width=10.5, height_per_row=3.4)
    V = config.variance
    colors = dict(zip(config.rhos, color_cycle(len(config.rhos))))
    k_line = np.geomspace(1, max(config.ks), 200)
    main = table[table.series == "rho"]
    widest = 0.0
    any_exact = False
    for ax, dist in zip(axes.flat, config.dists):
        for rho in config.rhos:
            rows = main[(main.dist == dist) & (main.rho == rho)].sort_values("k")
            low, high = normal_conf_int(rows.mse, rows.stderr, config.alpha,
                                        dof=config.n_trials - 1)   # as SimulationResult's
            widest = max(widest, float(np.max((high - low) / rows.mse)))
            # A deterministic cell (every trial the same error) is an exact check, not a
            # measurement with an interval: drawn open.
            exact = ~_is_random(rows)
            any_exact |= bool(exact.any())
            for part, face, label in ((~exact, None, f"ρ = {rho:g}"), (exact, "none", None)):
                if part.any():
                    plot_interval_points(rows.k[part], rows.mse[part] / V,
                                         np.maximum(low[part] / V, 1e-6), high[part] / V,
                                         ax=ax, color=colors[rho], label=label, mfc=face)
            k_valid = k_line if rho >= 0 else k_line[k_line <= 1 - 1 / rho]
            ax.plot(k_valid, 1 / k_valid + (k_valid - 1) / k_valid * rho, color=colors[rho],
                    lw=0.9, alpha=0.8)
        ax.set(xscale="log", yscale="log", xlabel="ensemble size k",
               ylabel=f"MSE_ens / V   (V = {V:g})",
               title=f"{dist}" + (f" (df = {config.df:g})" if dist == "student-t" else ""))
    level = f"{1 - config.alpha:.0%}"
    bars = (f"points: measured, {level} intervals\n(narrower than the markers)" if widest < 0.1
            else f"points: measured, {level} intervals")
    if any_exact:
        bars += "\nopen: every trial equal (exact check)"
    # Small, in the lower left, which the curves leave empty (they fall to the right).
    axes.flat[0].legend(loc="lower left", ncols=2, fontsize=7, title_fontsize=7,
                        handletextpad=0.3, columnspacing=0.8,
                        title=f"{bars}\nlines: V/k + (k−1)/k·C")

    ax = axes.flat[4]
    fits = list(_series_fits(table, config))
    offsets = np.linspace(-0.3, 0.3, len(config.dists))
    # Colours of their own: in the four panels beside it colours are values of ρ.
    dist_colors = dict(zip(config.dists, EXTRA_COLORS))
    if config.fit_rho in config.rhos:                    # the ρ whose fits are claims
        at = list(config.rhos).index(config.fit_rho)
        ax.axvspan(at - 0.45, at + 0.45, color="0.92", zorder=0)
        ax.text(at, 0.98, "claims", transform=ax.get_xaxis_transform(), ha="center",
                va="top", fontsize=7, color="0.35")
    for dist, rho, fit in fits:
        x = list(config.rhos).index(rho) + offsets[list(config.dists).index(dist)]
        for which, marker, truth in (("covariance", "o", rho * V), ("variance", "s", V)):
            low, high = fit.conf_int(config.alpha, which)
            est = getattr(fit, which)
            plot_interval_points([x + (0.04 if which == "variance" else 0)], [(est - truth) / V],
                                 [(low - truth) / V], [(high - truth) / V], ax=ax,
                                 color=dist_colors[dist], marker=marker,
                                 label=(dist if which == "covariance" and rho == config.rhos[0]
                                        else None))
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(config.rhos)), [f"{r:g}" for r in config.rhos])
    ax.set(xlabel="true ρ (one category each)", ylabel="(estimate − truth) / V",
           title=f"Fit on 1/k (WLS): C ● and V ■, {level} intervals")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=4, fontsize=7,
              handletextpad=0.2, columnspacing=0.8)

    ax = axes.flat[5]
    z, n_deterministic = _random_cells(table)
    left_out = (f"\n({n_deterministic} deterministic cells\nleft out: their SE is 0)"
                if n_deterministic else "")
    counts, _, _ = ax.hist(z, bins=np.linspace(-4.5, 4.5, 31), density=True, color="#999999",
                           alpha=0.8, label=f"{z.size} random cells{left_out}")
    grid = np.linspace(-4.5, 4.5, 200)
    ax.plot(grid, sps.norm.pdf(grid), color="k", label="N(0, 1)")
    ax.set(xlabel="z = (measured − theory) / SE", ylabel="density",
           ylim=(0, 1.7 * max(counts.max(), sps.norm.pdf(0))),
           title="Are the standard errors right?")
    ax.legend(loc="upper right")
    fig.suptitle(f"MSE of an average of k models: Monte Carlo against V/k + (k−1)/k·C "
                 f"(V = {V:g}, {config.n_trials:,} trials per point)")
    return fig


def _every_k_claim(statement, rows, targets, margins, config: Config):
    """One claim that ``mse == target`` at every ``k`` of a series.

    Intersection-union test: equivalence at every ``k`` is shown, at level
    ``alpha``, when each cell's TOST shows it at level ``alpha`` (no multiplicity
    correction is needed for an "all of them" claim). The claim reports the cell
    with the largest TOST p-value; it fails when any cell's interval lies outside
    that cell's margin.
    """
    parts = [equivalence(statement, r.mse, r.stderr, target, margin, alpha=config.alpha,
                         dof=config.n_trials - 1)
             for r, target, margin in zip(rows.itertuples(), targets, margins)]
    # A cell whose every trial has the same error (the lower edge; Rademacher factors at
    # some rho) has a standard error of rounding: its check is exact, not statistical.
    exact = int(np.sum(rows.stderr.to_numpy() <= 1e-8 * np.maximum(
        rows.mse.to_numpy(), config.variance / rows.k.to_numpy())))
    if exact == len(parts):
        # Every cell exact (the lower edge; Rademacher factors at rho = 1 or < 0): an
        # identity on the computed numbers, not a statistical test.
        scale = np.maximum(np.asarray(targets, float), config.variance / rows.k.to_numpy())
        residual = float(np.max(np.abs(rows.mse.to_numpy() - np.asarray(targets, float))
                                / scale))
        return identity(statement, residual, tol=1e-10, alpha=config.alpha,
                        method=f"every trial of each of the {len(parts)} cells has the same "
                               "error, so the MSE is exact; largest |MSE − theory| relative "
                               "to max(theory, V/k)")
    note = (f"; {exact} of the {len(parts)} cells {'is' if exact == 1 else 'are'} "
            "deterministic (standard error of rounding only), an exact check" if exact else "")
    return all_of(statement, parts, labels=[f"k = {int(k)}" for k in rows.k],
                  method=f"TOST at each of {len(parts)} k (intersection-union), margin "
                         f"{config.rel_margin:.0%} of max(theory, V/k){note}")


def claims(tables, config: Config) -> list:
    table = tables["cells"]
    out = []
    alpha, V = config.alpha, config.variance
    main = table[table.series == "rho"].sort_values("k")
    for dist in config.dists:
        for rho in config.rhos:
            rows = main[(main.dist == dist) & (main.rho == rho)]
            if rows.empty:
                continue
            out.append(_every_k_claim(
                f"MSE_ens = V/k + (k−1)/k·C at every k ({dist}, ρ = {rho:g})", rows, rows.theory,
                [_margin(config, t, k) for t, k in zip(rows.theory, rows.k)], config))
    edge = table[table.series == "lower-edge"].sort_values("k")
    for dist in config.dists:
        rows = edge[edge.dist == dist]
        if not rows.empty:
            out.append(_every_k_claim(
                f"Errors cancel at C = −V/(k−1): MSE_ens = 0 at every k ({dist}; margin "
                "relative to V/k)", rows, np.zeros(len(rows)),
                [_margin(config, 0.0, k) for k in rows.k], config))
    for dist, rho, fit in _series_fits(table, config):
        if rho != config.fit_rho:
            continue
        for which, truth, name in (("covariance", rho * V, "C"), ("variance", V, "V")):
            out.append(equivalence(
                f"WLS fit of MSE_ens on 1/k recovers {name} ({dist}, ρ = {rho:g})",
                getattr(fit, which), getattr(fit, which + "_stderr"), truth,
                config.rel_margin * V, alpha=alpha,
                method=f"margin {config.rel_margin:.0%} of V"))
    out = tag(out, "ensemble-formula")     # the claims so far test the primer's formula
    z, _ = _random_cells(table)
    if z.size >= 2:
        n, mean_z2 = z.size, float(np.mean(z**2))
        # n * mean(z^2) ~ chi2(n) when every z is N(0, 1): an exact interval for the scale.
        low = n * mean_z2 / sps.chi2.ppf(1 - alpha / 2, n)
        high = n * mean_z2 / sps.chi2.ppf(alpha / 2, n)
        # If the SEs are off by a factor s, mean z^2 estimates 1/s^2: the band [0.5, 1.5]
        # accepts SEs from 1/sqrt(1.5) to 1/sqrt(0.5) of the right ones.
        out.append(within(f"z-scores of all {n} random cells: mean z² within [0.5, 1.5], so "
                          f"the standard errors are at most {1 - 1.5**-0.5:.0%} too small or "
                          f"{0.5**-0.5 - 1:.0%} too large (exactly right: mean z² = 1)",
                          mean_z2, low, high, 0.5, 1.5, theory=1.0, alpha=alpha,
                          method="chi-square interval for mean z²"))
    # Negative controls: the same every-k check must reject formulas that ignore the
    # covariance (V/k) or weigh it wrongly (V/k + C).
    rows = main[(main.dist == config.dists[0]) & (main.rho == config.fit_rho)]
    if not rows.empty:
        C = config.fit_rho * V
        for name, targets in (("V/k", V / rows.k), ("V/k + C", V / rows.k + C)):
            out.append(negative_control(_every_k_claim(
                f"Negative control: MSE_ens = {name} at every k ({config.dists[0]}, "
                f"ρ = {config.fit_rho:g}); expected to fail", rows, list(targets),
                [_margin(config, t, k) for t, k in zip(targets, rows.k)], config)))
    return out


STUDY = Study(name="formula-check", doc=__doc__, config=Config, quick=QUICK, full=FULL,
              cells=cells, run_cell=run_cell, plot=plot, claims=claims, tables=("cells",),
              backends=("numpy", "cupy"), order=0)

if __name__ == "__main__":
    STUDY.main()
