"""A single tree against bagged trees: bias, variance, and the covariance between members.

The question: why does bagging help a decision tree, term by term? This study
reproduces the setup of scikit-learn's gallery example "Single estimator versus
bagging: bias-variance decomposition": a 1-D truth
`f(x) = exp(-x^2) + 1.5 exp(-(x-2)^2)` with Gaussian noise (sd 0.1), 50 training
points drawn uniformly on [-5, 5], and many independent training sets. At every
test point the expected error of each model splits exactly into
`bias^2 + variance + noise`. It then goes beyond the example: the variance of
the bagged ensemble splits further into the variance `sigma^2(x)` of one
member and the covariance between two members across training sets, whose ratio
is the sampling correlation `rho(x)` (ESL section 15.2), and
`Var = rho sigma^2 + (1 - rho) / k sigma^2` holds exactly.

How to read the figure: the top row shows, for each model, the truth, one
training set, the predictions after a few training sets and their mean. The
bottom row shows the pointwise error and its terms, as in the gallery example.
The third column shows, for the bagged trees, the member variance, the
covariance between members and the ensemble variance it leaves (top), and
`rho(x)` (bottom): bagging removes only the `(1 - rho)` share of a member's
variance that is not shared. The dashed line and band there are the claim's pooled
`rho` (mean covariance over mean `sigma^2`, a ratio of means) with its 95%
interval: it weights each `x` by its `sigma^2(x)`, so it need not equal the curve's
plain mean (it is lower when the points of largest `sigma^2(x)` are the less
correlated ones). The curves are pointwise means over the training sets,
drawn without intervals; the claims below carry the intervals (jackknife over groups
of training sets) of the same quantities averaged over `x`. The two models are
trained on independent draws of training sets (they are not paired), as in the
gallery example. Colours stand for quantities in every panel: a single tree's variance
(and the spread of its fits to other training sets) is sky blue, the bag's variance (and
the spread of its fits) reddish purple, the bias² (and the mean prediction behind it)
orange, the covariance and `rho(x)` dark blue, the noise green; black is the error and
the truth, and black dashed the formula `rho sigma^2 + (1 - rho) sigma^2 / k` and the
pooled `rho`; grey are the training points and, dotted, `sigma^2/k` for independent
members.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensim._validation import check_int, check_real
from ensim.claims import direction, equivalence, identity, negative_control
from ensim.data import KnownTruth
from ensim.primer import tag
from ensim.decompose import bias_variance, decompose
from ensim.ensembles import fit_repeats, make_ensemble
from ensim.stats import jackknife
from ensim.study import Study

MODELS = ("tree", "bagged_trees")


@dataclass(frozen=True)
class Config:
    n_repeats: int = 200          # independent training sets per model
    n_train: int = 50             # training points per set (as in the gallery example)
    n_test: int = 1000            # evenly spaced test points on [-5, 5]
    noise_sd: float = 0.1         # sd of the Gaussian noise
    n_estimators: int = 10        # members of the bagged ensemble (BaggingRegressor's default)
    n_curves: int = 5             # predictions drawn in the top row
    n_groups: int = 10            # jackknife groups of repeats for the intervals
    rel_margin: float = 0.10      # equivalence margin of the negative control, relative
    alpha: float = 0.05           # intervals are 1 - alpha (Student-t, n_groups - 1 dof)

    def __post_init__(self):
        owner = "the bagging-bias-variance Config"
        check_int(self.n_repeats, "n_repeats", low=4, owner=owner)   # the jackknife's least
        check_int(self.n_train, "n_train", low=2, owner=owner)
        check_int(self.n_test, "n_test", low=2, owner=owner)
        check_real(self.noise_sd, "noise_sd", low=0.0, owner=owner)
        check_int(self.n_estimators, "n_estimators", low=2, owner=owner)   # a covariance
        check_int(self.n_curves, "n_curves", low=0, high=self.n_repeats, owner=owner)
        check_int(self.n_groups, "n_groups", low=2, high=self.n_repeats, owner=owner)
        check_real(self.rel_margin, "rel_margin", low=0.0, low_inclusive=False, owner=owner)
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)


QUICK = Config(n_repeats=40, n_test=200)
FULL = Config()


def cells(config: Config) -> list[dict]:
    return [{"model": model} for model in MODELS]


def _integrated(d):
    """Means over test points: error vs f, ensemble variance, member variance, covariance,
    the pooled sampling correlation (mean covariance / mean member variance), and the
    ensemble variance minus ``sigma^2 / k``, its value were the members independent."""
    return [d.loss.mean(), d.ensemble_variance.mean(), d.member_variance.mean(),
            d.covariance.mean(), d.covariance.mean() / d.member_variance.mean(),
            d.ensemble_variance.mean() - d.member_variance.mean() / d.k]


def run_cell(config: Config, params: dict, streams, backend: str) -> dict:
    seed = streams.seed
    truth = KnownTruth("sklearn_example", config.noise_sd)
    x = np.linspace(-5, 5, config.n_test)
    f = truth.f(x[:, None])
    # The single tree is a one-member "bag" trained on the full set without bootstrap.
    k, extra = ((1, {"bootstrap": False}) if params["model"] == "tree"
                else (config.n_estimators, {}))
    predictions = fit_repeats(lambda s: make_ensemble("bagged_trees", k, rng=s, **extra),
                              lambda s: truth.sample(config.n_train, rng=s), x[:, None],
                              config.n_repeats, rng=seed)          # (R, k, n_test)
    ensemble = predictions.mean(axis=1)                            # (R, n_test)
    # Error against fresh noisy targets = error against f + noise variance.
    bv = bias_variance(ensemble, y=f)
    noise = config.noise_sd**2
    rows = [{"x": float(x[t]), "f": float(f[t]),
             "mean_prediction": float(ensemble[:, t].mean()), "bias2": float(bv.bias2[t]),
             "variance": float(bv.ensemble_variance[t]), "noise": noise,
             "error": float(bv.loss[t] + noise),
             **{f"prediction_{r}": float(ensemble[r, t]) for r in range(config.n_curves)}}
            for t in range(config.n_test)]
    summary = {"identity_error": bv.identities()[0].relative_error}
    if k > 1:
        d = decompose(predictions, y=f)
        for row, t in zip(rows, range(config.n_test)):
            row.update(member_variance=float(d.member_variance[t]),
                       covariance=float(d.covariance[t]),
                       rho=float(d.rho[t]))
        summary["identity_error"] = max(i.relative_error for i in d.identities())
        stats = jackknife(lambda q: _integrated(decompose(q, y=f)), predictions,
                          n_groups=config.n_groups)
    else:
        def integrated(q):
            one = bias_variance(q[:, 0], y=f)
            return [one.loss.mean(), one.ensemble_variance.mean()]

        stats = jackknife(integrated, predictions, n_groups=config.n_groups)
    names = ["mse", "ensemble_variance", "member_variance", "covariance", "pooled_rho",
             "minus_independent"]
    for name, value, se in zip(names, stats.estimate, stats.stderr):
        summary[name], summary[name + "_stderr"] = float(value), float(se)
    summary["dof"] = stats.dof
    train = truth.sample(config.n_train, rng=seed)                 # one set, for the figure
    return {"points": rows, "train": [{"x": float(a), "y": float(b)}
                                      for a, b in zip(train.X[:, 0], train.y)],
            "summary": summary}


def plot(tables, config: Config):
    from ensim.plotting import EXTRA_COLORS, PALETTE, color_cycle, figure
    from ensim.stats import normal_conf_int

    fig, axes = figure(2, 3, width=11, height_per_row=3.2)
    # One colour per quantity in every panel: a tree's variance (and the spread of its
    # fits) sky blue, the bag's reddish purple, bias (and the mean prediction that
    # makes it) orange, the covariance (and rho) dark blue; black is the error and the
    # truth, black dashed the formula and the pooled rho (the story gives the key).
    c_bias, c_tree_var, c_noise, c_cov = color_cycle(4)
    c_var = {"tree": c_tree_var, "bagged_trees": PALETTE[7]}
    c_points = EXTRA_COLORS[5]
    points, k = tables["points"], config.n_estimators
    # One scale for both models' error panels, fitted to the data.
    error_top = 1.15 * float(points.error.max())
    for j, model in enumerate(MODELS):
        grid = points[points.model == model].sort_values("x")
        train = tables["train"][tables["train"].model == model]
        ax = axes[0, j]
        ax.plot(grid.x, grid.f, color=PALETTE[0], label="f(x)")
        ax.scatter(train.x, train.y, s=6, color=c_points, label="one training set")
        for r in range(config.n_curves):
            ax.plot(grid.x, grid[f"prediction_{r}"], color=c_var[model], lw=0.5, alpha=0.7,
                    label="fits to other sets" if r == 0 else None)
        ax.plot(grid.x, grid.mean_prediction, color=c_bias, ls="--", label="mean prediction")
        top = max(float(train.y.max()), float(grid.f.max()))
        ax.set(title="Decision tree" if model == "tree" else f"Bagged trees (k = {k})",
               xlabel="x", ylabel="y", ylim=(None, top + 0.9))   # room above for the legend
        ax.legend(loc="upper left", ncols=2, fontsize=7)
        ax = axes[1, j]
        ax.plot(grid.x, grid.error, color=PALETTE[0], label="error")
        ax.plot(grid.x, grid.bias2, color=c_bias, label="bias²")
        ax.plot(grid.x, grid.variance, color=c_var[model],
                label="variance" if model == "tree" else "variance (of the bag)")
        ax.plot(grid.x, grid.noise, color=c_noise, label="noise")
        ax.set(xlabel="x", ylabel="squared error", ylim=(0, error_top))
        ax.legend(loc="upper left", ncols=2, fontsize=7)
    bag = points[points.model == "bagged_trees"].sort_values("x")
    ax = axes[0, 2]
    ax.plot(bag.x, bag.member_variance, color=c_tree_var, label="member σ²(x)")
    ax.plot(bag.x, bag.covariance, color=c_cov, label="covariance")
    ax.plot(bag.x, bag.variance, color=c_var["bagged_trees"], lw=2.0, label="bag, measured")
    formula = bag.rho * bag.member_variance + (1 - bag.rho) * bag.member_variance / k
    ax.plot(bag.x, formula, color=PALETTE[0], ls=(0, (2, 3)), lw=1.2,
            label="ρσ² + (1−ρ)σ²/k")
    ax.plot(bag.x, bag.member_variance / k, color=EXTRA_COLORS[5], ls=":", lw=1.0,
            label="σ²/k (independent)")
    ax.set(xlabel="x", ylabel="variance across training sets",
           ylim=(0, 1.6 * float(bag.member_variance.max())), title="Inside the bagged variance")
    ax.legend(loc="upper left", ncols=2, fontsize=7)
    ax = axes[1, 2]
    ax.plot(bag.x, bag.rho, color=c_cov, label=f"ρ(x), pointwise (mean {bag.rho.mean():.2f})")
    # The claim's pooled rho, mean covariance / mean sigma^2 over x, weights each x by its
    # sigma^2(x), so it need not be the mean of the curve: drawn with its t interval.
    pooled = tables["summary"].set_index("model").loc["bagged_trees"]
    low, high = normal_conf_int(float(pooled.pooled_rho), float(pooled.pooled_rho_stderr),
                                config.alpha, dof=float(pooled.dof))
    ax.axhspan(low, high, color=PALETTE[0], alpha=0.12, lw=0)
    ax.axhline(float(pooled.pooled_rho), color=PALETTE[0], ls="--", lw=1.0,
               label=f"pooled ρ (ratio of means) {float(pooled.pooled_rho):.2f}, "
                     f"{1 - config.alpha:.0%} [{low:.2f}, {high:.2f}]")
    ax.set(xlabel="x", ylabel="ρ(x) = covariance / σ²(x)", ylim=(0, 1),
           title="Correlation of two members ρ(x)")
    ax.legend(loc="upper left", fontsize=7)
    fig.suptitle("Single tree vs bagged trees: error = bias² + variance + noise, "
                 "and variance = ρσ² + (1−ρ)σ²/k")
    return fig


def claims(tables, config: Config) -> list:
    alpha = config.alpha
    summary = tables["summary"].set_index("model")
    tree, bag = summary.loc["tree"], summary.loc["bagged_trees"]
    dof = float(bag.dof)                  # jackknife groups - 1, the same for both models
    out = [identity("Pointwise error = bias² + variance (+ noise), and for the bag also "
                    "Ueda–Nakano, ESL's ρσ² + (1−ρ)σ²/k and Wood et al.: exact identities",
                    float(summary.identity_error.max()), alpha=alpha,
                    method="over all test points; the two sides of each are measured apart")]

    def lower(name, statement):
        return direction(statement, float(bag[name] - tree[name]),
                         stderr=float(np.hypot(bag[name + "_stderr"], tree[name + "_stderr"])),
                         dof=dof, side="below", alpha=alpha,
                         method=f"bagged − tree, jackknife SEs over training sets, t with "
                                f"{dof:g} dof (conservative for a difference of two)")

    out.append(tag(lower("ensemble_variance", "Bagging lowers the variance (mean over x)"),
                   "bagging"))
    out.append(tag(lower("mse", "Bagging lowers the error against f (mean over x)"), "bagging"))
    out.append(direction("Two members of the bag are positively correlated across training "
                         "sets (pooled ρ), so bagging keeps a share ρ of σ²",
                         float(bag.pooled_rho), stderr=float(bag.pooled_rho_stderr), dof=dof,
                         side="above", alpha=alpha,
                         method=f"mean covariance / mean σ² over x, jackknife t interval "
                                f"({dof:g} dof)"))
    out.append(negative_control(equivalence(
        "Negative control: the bag's variance is σ²/k, as if members were independent; "
        "expected to fail", float(bag.minus_independent), float(bag.minus_independent_stderr),
        0.0, config.rel_margin * float(bag.ensemble_variance), alpha=alpha, dof=dof,
        method=f"variance − σ²/k, jackknifed as one statistic ({dof:g} dof); margin "
               f"{config.rel_margin:.0%} of the variance")))
    return out


STUDY = Study(name="bagging-bias-variance", doc=__doc__, config=Config, quick=QUICK, full=FULL,
              cells=cells, run_cell=run_cell, plot=plot, claims=claims,
              tables=("points", "train", "summary"), order=10)

if __name__ == "__main__":
    STUDY.main()
