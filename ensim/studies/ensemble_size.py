"""Ensemble error against ensemble size k for bagged trees and a random forest.

The question: how large are `V` and `C` in the primer's
`MSE_ens = V/k + (k-1)/k C` for real ensembles on held-out data, and how does the
error fall as members are added? Each cell trains one ensemble of 200 members on a
fresh training set from Friedman's first regression problem (10 features, noise sd
1) and measures, on a fresh held-out set, the error of `k` of its members for every
`k` from 1 to 200. On held-out data the members are biased, so the formula is used
with the bias kept: `V` is the mean member second moment (its MSE) and `C` the mean
cross moment of two members' errors, both measured on all 200 members from products
of pairs of members' errors (not from the ensemble's error).

What the formula's claims are, and are not: `V` and `C` are averages over the same
200 members whose mean the ensemble predicts, so at `k = 200` the formula is an
algebraic identity (the square of a mean of 200 errors is `1/200` of their mean
square plus `199/200` of their mean cross product). Its claim is a consistency check
of the code: it fails only if the ensemble's own `predict` is not the mean of its
members, or `V` or `C` is computed wrongly. It is not evidence about the primer's
assumptions.

Which `k` members are averaged matters for one curve, so the curve is averaged
over orderings of the members: the 200 cyclic shifts of each of a few random
orders, so that every member comes first equally often. By the same algebra, its
expectation over random orders is exactly `V/k + (k-1)/k C` for any fixed set of
members, and the average over the orders drawn is close to it; so the ordinary
least-squares fit of the curve on `1/k` (`ensim.stats.fit_inverse_k` with equal
weights; intercept `C`, slope `V - C`) recovers the directly measured `C` and
`V - C` by algebra too (at the full scale, fitted − measured is within 0.1% of `C`
and 0.31% of `V - C` in every training set, against a 2% margin). Those claims are
likewise consistency checks of the curve and the fit, not tests of a theory that
could be wrong about these ensembles.

How to read the figure: the left panel shows the measured error averaged over
orderings (one thin line per training set) and the formula drawn from the
measured `V` and `C` (dashed) for both ensembles; the curves flatten at
`C`, the part of the error that averaging cannot remove. Per training set,
`C - noise` estimates the error against the truth `f` of the infinite ensemble
grown on that set: its squared bias plus its variance between training sets
(one set cannot tell the two apart), not a squared bias alone. The right panel
shows the fitted against the measured `C` and `V - C` with 95% Student-t intervals
over training sets (their spread between sets; the claims test the fitted minus
measured difference paired within each set, which is far narrower).

The random forest, whose members see fewer features at each split, has the lower
correlation `rho` of the members' centred errors (covariance over variance, each
member's mean error over the test points removed; not `C/V`, which are second
moments that keep the bias; a claim below). A lower `rho` does not mean a lower
ensemble error: the forest's members have a higher `V` and a higher `C`, so its
curve lies above bagging's at every `k` (at the full scale, by 0.88 at `k = 200`,
95% Welch interval [0.55, 1.20]; a direction claim below tests the difference at
`k = 200`; each model's cells draw their own training sets, so the interval is
Welch's over unpaired sets). The floor is `C`, not `rho`: decorrelating members
pays only if it does not raise `C`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ensim._validation import check_int, check_real
from ensim.claims import direction, equivalence, identity, negative_control
from ensim.data import KnownTruth
from ensim.decompose import decompose, ensemble_mse_curve
from ensim.ensembles import make_ensemble, member_predictions
from ensim.stats import fit_inverse_k, t_interval
from ensim.study import Study

MODELS = ("bagged_trees", "random_forest")


@dataclass(frozen=True)
class Config:
    n_repeats: int = 20            # training sets (cells) per model
    k_max: int = 200               # members per ensemble
    n_train: int = 200             # training points per set
    n_test: int = 2000             # held-out points per set
    noise_sd: float = 1.0          # noise of Friedman #1
    max_features: float = 0.33     # the random forest's features per split (bagging: 1.0)
    n_orders: int = 4              # random member orders, each with its k_max cyclic shifts
    rel_margin: float = 0.02       # equivalence margin, relative to the measured value
    alpha: float = 0.05            # intervals are 1 - alpha

    def __post_init__(self):
        owner = "the ensemble-size Config"
        check_int(self.n_repeats, "n_repeats", low=2, owner=owner)   # a t interval
        check_int(self.k_max, "k_max", low=2, owner=owner)           # a covariance, a 1/k fit
        check_int(self.n_train, "n_train", low=2, owner=owner)
        check_int(self.n_test, "n_test", low=2, owner=owner)
        check_real(self.noise_sd, "noise_sd", low=0.0, owner=owner)
        check_real(self.max_features, "max_features", low=0.0, high=1.0, low_inclusive=False,
                   owner=owner)                                      # a share of the features
        check_int(self.n_orders, "n_orders", low=1, owner=owner)
        check_real(self.rel_margin, "rel_margin", low=0.0, low_inclusive=False, owner=owner)
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)


QUICK = Config(n_repeats=4, n_test=500, n_orders=2)
FULL = Config()


def cells(config: Config) -> list[dict]:
    return [{"model": model, "repeat": r} for model in MODELS for r in range(config.n_repeats)]


def run_cell(config: Config, params: dict, streams, backend: str) -> dict:
    from ensim._random import child_seed, numpy_generator

    seed = streams.seed

    truth = KnownTruth("friedman1", config.noise_sd)
    train = truth.sample(config.n_train, rng=child_seed(seed, 0))
    test = truth.sample(config.n_test, rng=child_seed(seed, 1))
    extra = {"max_features": config.max_features} if params["model"] == "random_forest" else {}
    model = make_ensemble(params["model"], config.k_max, rng=child_seed(seed, 2), **extra)
    members = member_predictions(model.fit(train.X, train.y), test.X)   # (k_max, n_test)
    d = decompose(members, test.y, matrices=False)
    V, C = d.mean_square, d.cross_moment          # second moments: the bias is kept
    mse_at_k_max = float(np.mean((model.predict(test.X) - test.y) ** 2))  # scikit-learn's own
    ks = np.arange(1, config.k_max + 1)
    gen = numpy_generator(child_seed(seed, 3))
    errors = members - test.y
    averaged = ensemble_mse_curve(errors, [gen.permutation(config.k_max)
                                           for _ in range(config.n_orders)])   # (k_max,)
    fit = fit_inverse_k(ks, averaged, np.ones_like(averaged))         # equal weights: OLS
    curves = [{"k": int(k), "mse": float(m), "formula": float(V / k + (k - 1) / k * C)}
              for k, m in zip(ks, averaged)]
    return {"curves": curves, "ensembles": {"V": V, "C": C, "variance": d.member_variance, "covariance": d.covariance,
                 "bias": d.mean_error, "rho": d.rho, "fit_C": fit.covariance,
                 "fit_slope": fit.slope, "mse_at_k_max": mse_at_k_max}}


def plot(tables, config: Config):
    from matplotlib.lines import Line2D

    from ensim.plotting import color_cycle, figure, plot_interval_points

    fig, axes = figure(1, 2, width=10.5, height_per_row=4.0)
    colors = dict(zip(MODELS, color_cycle(len(MODELS))))
    labels = {"bagged_trees": "bagged trees", "random_forest":
              f"random forest (max_features = {config.max_features:g})"}
    noise = config.noise_sd**2
    ax = axes[0, 0]
    curves = tables["curves"]
    for model in MODELS:
        part = curves[curves.model == model]
        for _, one in part.groupby("repeat"):
            ax.plot(one.k, one.mse, color=colors[model], lw=0.5, alpha=0.5)
        mean = part.groupby("k")[["mse", "formula"]].mean()
        ax.plot(mean.index, mean.formula, color="k", ls="--", lw=0.9)
        ax.plot([], [], color=colors[model], label=f"{labels[model]}, one line per set")
    ax.plot([], [], color="k", ls="--", label="V/k + (k−1)/k·C, measured V, C")
    ax.axhline(noise, color="0.5", lw=0.8, ls=":")
    ax.text(1.1, noise, f"noise σ² = {noise:g}", va="bottom", fontsize=7, color="0.35")
    ax.set(xscale="log", xlabel="ensemble size k", ylim=(0, 1.45 * float(curves.mse.max())),
           ylabel="held-out MSE of k members (mean over orders)",
           title="Error against ensemble size: it flattens at C")
    ax.legend(loc="upper right")
    ax = axes[0, 1]
    summary = tables["ensembles"]
    higher = _floor_claim(summary, config)
    for j, model in enumerate(MODELS):
        part = summary[summary.model == model]
        for i, (fitted, measured) in enumerate(((part.fit_C, part.C),
                                                (part.fit_slope, part.V - part.C))):
            for x, values in ((2 * i, measured), (2 * i + 1, fitted)):
                mean, _, low, high = t_interval(values, config.alpha)
                plot_interval_points([x + 0.2 * (j - 0.5)], [mean], [low], [high], ax=ax,
                                     color=colors[model], marker="o" if x % 2 == 0 else "s")
    ax.set_xticks(range(4), ["C measured", "C fitted", "V − C measured", "V − C fitted"])
    top = float(np.max([summary.C.max(), (summary.V - summary.C).max()]))
    ax.set(ylabel="squared error", ylim=(0, 1.55 * top),
           title=f"Fitted on 1/k vs measured: a consistency check ({1 - config.alpha:.0%} t)")
    handles = [Line2D([], [], color=colors[m], marker="o", ls="", label=labels[m])
               for m in MODELS]
    handles += [Line2D([], [], color="0.3", marker="o", ls="", label="measured from pairs of "
                       "members"),
                Line2D([], [], color="0.3", marker="s", ls="", label="fitted on 1/k (OLS)")]
    ax.legend(handles=handles, loc="upper left", ncols=2, fontsize=7)
    # What C - noise is per training set: the infinite ensemble's error against f (squared
    # bias plus variance between training sets). A lower rho is not a lower error.
    floor = summary.groupby("model").C.mean() - noise
    ax.text(0.5, 0.03, "C − noise = the infinite ensemble's error against f (bias² + "
            "variance\nbetween training sets): "
            + ", ".join(f"{labels[m].split(' (')[0]} {floor[m]:.2g}" for m in MODELS)
            + ".\nA lower ρ is not a lower error: the forest's V and C are both higher "
              "(the floor is C, not ρ);\n"
            + f"forest − bagging MSE at k = {config.k_max}: {higher.estimate:+.2g}, "
              f"{1 - config.alpha:.0%} Welch [{higher.conf_low:.2g}, {higher.conf_high:.2g}]:"
              f" {higher.verdict}",
            transform=ax.transAxes, ha="center", fontsize=6.5)
    fig.suptitle("Held-out error of bagged trees and a random forest against k (Friedman #1)")
    return fig


def _floor_claim(summary, config: Config):
    """The forest's error at the largest k lies above bagging's (Welch, unpaired sets)."""
    mse = {m: summary[summary.model == m].mse_at_k_max.to_numpy() for m in MODELS}
    result = sps.ttest_ind(mse["random_forest"], mse["bagged_trees"], equal_var=False)
    return direction(f"A lower ρ is not a lower error: the random forest's held-out MSE at "
                     f"k = {config.k_max} lies above bagged trees' (random forest − bagged "
                     f"trees)",
                     float(mse["random_forest"].mean() - mse["bagged_trees"].mean()),
                     interval=result.confidence_interval(1 - config.alpha),
                     p_value=float(result.pvalue), side="above", alpha=config.alpha,
                     method="Welch t interval over training sets (each model's cells draw "
                            "their own sets: unpaired); a wrong 'fails' (interval below 0 "
                            f"while the forest is higher) has probability ≤ "
                            f"{config.alpha / 2:g}")


def claims(tables, config: Config) -> list:
    alpha, out = config.alpha, []
    summary = tables["ensembles"]
    k = config.k_max

    def tost(statement, differences, scale, method):
        mean, se, _, _ = t_interval(differences, alpha)
        return equivalence(statement, mean, se, 0.0, config.rel_margin * scale, alpha=alpha,
                           dof=len(differences) - 1, method=method.format(config.rel_margin))

    for model in MODELS:
        part = summary[summary.model == model]
        out.append(tost(f"Consistency check (close by algebra, not a test of the primer): "
                        f"OLS of MSE_ens (mean over orders) on 1/k recovers the measured C "
                        f"({model})", part.fit_C - part.C, part.C.mean(),
                        "fitted − measured over training sets; margin {:.0%} of C"))
        out.append(tost(f"Consistency check (close by algebra, not a test of the primer): "
                        f"OLS of MSE_ens (mean over orders) on 1/k recovers the measured "
                        f"V − C ({model})", part.fit_slope - (part.V - part.C),
                        (part.V - part.C).mean(),
                        "fitted − measured over training sets; margin {:.0%} of V − C"))
        formula = part.V / k + (k - 1) / k * part.C
        worst = float(np.max(np.abs(part.mse_at_k_max - formula) / formula))
        out.append(identity(f"Identity check of the code: at k = {k}, MSE_ens = V/k + "
                            f"(k−1)/k·C exactly, with the bias kept, as V and C average the "
                            f"same {k} members; it fails only if predict is not the members' "
                            f"mean or V, C are miscomputed ({model})", worst, alpha=alpha,
                            method="over training sets; MSE_ens from the ensemble's own "
                                   "predict, V and C from pairs of members"))
    rho = {m: summary[summary.model == m].rho.to_numpy() for m in MODELS}
    result = sps.ttest_ind(rho["random_forest"], rho["bagged_trees"], equal_var=False)
    diff = float(rho["random_forest"].mean() - rho["bagged_trees"].mean())
    out.append(direction("Feature sampling lowers the correlation ρ of the members' centred "
                         "errors (covariance / variance, each member's mean error over the "
                         "test points removed; not C/V, which keep the bias) on held-out "
                         "data (random forest − bagged trees)", diff,
                         interval=result.confidence_interval(1 - alpha),
                         p_value=float(result.pvalue), side="below", alpha=alpha,
                         method="Welch t interval over training sets"))
    out.append(_floor_claim(summary, config))
    part = summary[summary.model == MODELS[0]]
    out.append(negative_control(tost(f"Negative control: the naive MSE_ens = V/k at k = {k} "
                                     f"({MODELS[0]}); expected to fail",
                                     part.mse_at_k_max - part.V / k, part.mse_at_k_max.mean(),
                                     "measured − naive over training sets; margin {:.0%}")))
    return out


STUDY = Study(name="ensemble-size", doc=__doc__, config=Config, quick=QUICK, full=FULL,
              cells=cells, run_cell=run_cell, plot=plot, claims=claims,
              tables=("curves", "ensembles"), order=20)

if __name__ == "__main__":
    STUDY.main()
