"""Does dropout break up co-adapted hidden units?

The primer explains dropout's regularisation by a mechanism: "neurons in the same
layer tend to become correlated (co-adapted); by randomly dropping units, dropout
disrupts these correlations", so that "no single neuron is a point of failure".
This study measures that mechanism instead of assuming it. It trains the same
network with and without dropout and looks at its hidden units on test inputs:

* **co-adaptation**: the mean absolute correlation over pairs of units of a layer
  (constant units left out), and the layer's *effective rank*, the participation
  ratio `(Σλ)² / Σλ²` of the eigenvalues of the units' covariance (128 for 128
  uncorrelated units of equal variance, 1 for a single direction);
* **sparsity**: the mean activation and the fraction of activations below 0.05;
* **single points of failure**: each hidden unit is removed alone (its output set
  to 0, which is exactly zeroing its outgoing weights; for a dropout network this
  is the weight-scaled network without that unit, *not* a thinned network, whose
  kept units would also be scaled by `1/keep_prob`), and the change of the output
  (mean over test points of the Euclidean norm of the change in the prediction:
  class probabilities, or the regression value) and of the test loss are
  recorded, for the mean and for the worst unit of the layer.

Setup: `ensim.nn` networks with two hidden ReLU layers of 128 units, hidden
dropout after each (none on the input) with keep probability 1 (no dropout), 0.8
or 0.5, trained by Adam (learning rate 1e-3, batches of 64) for 100 epochs with no
early stopping, the same budget for every arm. Two tasks: the 8x8 digits (10
classes, cross-entropy) and Friedman #1 (2,000 rows, noise sd 1, targets
standardised, squared error), each split 75/25 with all measures taken on the
held-out quarter. A seed is a replicate: the arms of one seed share the split, the
initial weights (dropout layers have none, so every arm starts from the same
network) and the training stream (the batch order, and the uniform draws behind
the masks). Claims compare keep probability 0.5 with no dropout by the paired
difference over 20 seeds (Student-t intervals), one Holm family per measure over
the two tasks and two layers.

How to read the figure: one row per task, one column per measure, the keep
probability on the horizontal axis (more dropout to the right). Each colour is a
hidden layer: the thick line is the mean over seeds (with its 95% t interval from
5 seeds on; with fewer, as at quick scale, no interval is drawn), the thin lines
are single seeds, so a paired effect shows as thin lines that all slope the same
way.

**What was measured** (full scale, means over 20 seeds; no dropout → keep 0.5):

* Correlation goes *down* with dropout only in the first layer on the digits
  (0.207 → 0.188). It goes *up* in the second digits layer (0.246 → 0.262) and in
  both Friedman layers (0.195 → 0.204 and 0.142 → 0.218): three of the four
  "dropout lowers the correlation" claims fail. The effective rank agrees: up on
  the first digits layer (10.8 → 12.2), unchanged on the second (7.46 → 7.44),
  down on Friedman #1 (15.0 → 13.8, and 16.7 → 3.5 in the second layer, where
  19 of 128 units never fire on the test inputs against 0.25 without dropout).
  On these small ReLU networks dropout does not generally decorrelate the units;
  on the regression task it concentrates the representation on fewer directions.
* Sparsity is the robust effect: the mean activation falls in every layer (digits
  1.00 → 0.31 and 1.77 → 0.83; Friedman 0.56 → 0.50 and 0.54 → 0.23) and the
  fraction of near-zero activations rises (digits 0.35 → 0.70 and 0.34 → 0.57).
  Srivastava et al. (2014, Fig. 8) report a mean hidden activation falling from
  about 2.0 to about 0.7 for a 256-unit ReLU autoencoder on MNIST. That setting
  differs: an unsupervised autoencoder with one hidden layer on 784-pixel images,
  trained with their momentum schedule and max-norm, against a supervised
  two-layer classifier on 64 standardised pixels, trained with Adam; absolute
  activation levels depend on the input scale and the initialisation, so only the
  direction and the ratio (0.35 there, 0.31 and 0.47 here on the digits) compare.
* No single unit is a point of failure, more so with dropout: removing the worst
  unit raises the test loss by 0.024 without dropout and 0.0067 with it (digits,
  first layer; 0.0135 → 0.0024 in the second), and on Friedman #1 by 0.059 → 0.011
  and 0.145 → 0.0135. Part of this is scale (dropout networks' activations are
  smaller), but the claim is about the network's output and loss, which already
  include the weights downstream of the unit.
* Dropout at 0.5 is not free on the regression task: with this budget its test
  MSE (standardised targets) is 0.215 against 0.117 without dropout and 0.094 at
  keep 0.8; on the digits all three arms reach about 98% test accuracy.

Times (2 cores shared with other work, so upper bounds): `--quick` (3 seeds, 30
epochs, 18 networks) 22 s, 15 s of it in the cells; the full scale (120
networks) 304 s with `--n-jobs 2` at a load average of about 4 from other
processes (245 s of CPU in all), and 552 s in a run at a load average of 5 to 9;
the two full runs wrote identical tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ensim._validation import check_choice, check_int, check_real
from ensim.claims import direction, equivalence, holm, identity, negative_control
from ensim.primer import tag
from ensim.stats import t_interval
from ensim.study import Study

TASKS = ("digits", "friedman1")

#: The measures of one hidden layer, as (table column, what the figure calls it).
MEASURES = (("mean_abs_corr", "mean |correlation|\nover pairs of units"),
            ("effective_rank", "effective rank\n(participation ratio)"),
            ("mean_activation", "mean activation"),
            ("frac_near_zero", "fraction of activations\nnear 0"),
            ("worst_loss_increase", "test-loss increase\nwhen the worst unit is removed"),
            ("worst_output_change", "output change\nwhen the worst unit is removed"))


@dataclass(frozen=True)
class Config:
    tasks: tuple = TASKS               # "digits" (10 classes) and/or "friedman1" (regression)
    keep_probs: tuple = (1.0, 0.8, 0.5)  # hidden-layer keep probabilities; 1.0 (no dropout)
    #                                    is the reference arm and must be listed
    n_seeds: int = 20                  # replicates: data split, initial weights, batch order
    hidden: tuple = (128, 128)         # widths of the two hidden ReLU layers
    n_friedman: int = 2000             # rows drawn from Friedman #1
    noise_sd: float = 1.0              # noise sd of Friedman #1 (before standardising y)
    test_fraction: float = 0.25        # held-out share of the rows, where all measures are taken
    max_epochs: int = 100              # training budget, the same for every arm (no early stop)
    batch_size: int = 64               # Adam mini-batches
    learning_rate: float = 1e-3        # Adam learning rate
    near_zero: float = 0.05            # an activation below this counts as near zero
    alpha: float = 0.05                # intervals are 1 - alpha (Student-t over seeds)

    def __post_init__(self):
        owner = "the co-adaptation Config"
        if not isinstance(self.tasks, tuple) or not self.tasks:
            raise TypeError(f"The 'tasks' parameter of {owner} must be a non-empty tuple; "
                            f"got {self.tasks!r}.")
        for task in self.tasks:
            check_choice(task, "tasks", TASKS, owner=owner)
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"The 'tasks' parameter of {owner} lists a task twice; "
                             f"got {self.tasks!r}.")
        if not isinstance(self.keep_probs, tuple) or not self.keep_probs:
            raise TypeError(f"The 'keep_probs' parameter of {owner} must be a non-empty "
                            f"tuple; got {self.keep_probs!r}.")
        keeps = [check_real(p, "keep_probs", low=0.0, high=1.0, low_inclusive=False,
                            owner=owner) for p in self.keep_probs]
        if len(set(keeps)) != len(keeps) or 1.0 not in keeps or len(keeps) < 2:
            raise ValueError(f"The 'keep_probs' parameter of {owner} must hold distinct "
                             f"values in (0, 1], among them 1.0 (the arm without dropout) "
                             f"and at least one below 1; got {self.keep_probs!r}.")
        check_int(self.n_seeds, "n_seeds", low=2, owner=owner)
        if (not isinstance(self.hidden, tuple) or len(self.hidden) < 1):
            raise TypeError(f"The 'hidden' parameter of {owner} must be a non-empty tuple of "
                            f"widths; got {self.hidden!r}.")
        for width in self.hidden:
            check_int(width, "hidden", low=2, owner=owner)
        check_int(self.n_friedman, "n_friedman", low=20, owner=owner)
        check_real(self.noise_sd, "noise_sd", low=0.0, owner=owner)
        check_real(self.test_fraction, "test_fraction", low=0.0, high=0.5,
                   low_inclusive=False, owner=owner)
        check_int(self.max_epochs, "max_epochs", low=1, owner=owner)
        check_int(self.batch_size, "batch_size", low=1, owner=owner)
        check_real(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False,
                   owner=owner)
        check_real(self.near_zero, "near_zero", low=0.0, low_inclusive=False, owner=owner)
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)


QUICK = Config(n_seeds=3, max_epochs=30)
FULL = Config()


def cells(config: Config) -> list[dict]:
    return [{"task": task, "seed": s, "keep_prob": float(p)}
            for task in config.tasks for s in range(config.n_seeds) for p in config.keep_probs]


def _data(task, config, seed):
    from ensim.data import load_dataset

    data = load_dataset(task, val_fraction=0.0, test_fraction=config.test_fraction, rng=seed,
                        n_samples=config.n_friedman, noise=config.noise_sd)
    if task == "digits":
        return data, data.y_train, data.y_test, 10
    return data, data.y_train[:, None], data.y_test[:, None], 1


def run_cell(config: Config, params: dict, streams, backend: str) -> dict:
    from threadpoolctl import threadpool_limits

    # One BLAS thread: these matrices are small (threads only contend for the cores),
    # and the numbers then never depend on how many threads a process has.
    with threadpool_limits(limits=1, user_api="blas"):
        return _measure(config, params, streams)


def _measure(config: Config, params: dict, streams) -> dict:
    from ensim.nn import Dense, TrainingConfig, build_mlp, train
    from ensim.nn.representation import mean_abs_correlation, participation_ratio

    task, keep_prob = params["task"], params["keep_prob"]
    # Shared by the arms of a replicate: the data and split, the initial weights (dropout
    # layers hold no weights, so every keep probability starts from the same network)
    # and the training stream (batch order; the masks' uniform draws, thresholded at
    # each arm's keep_prob).
    data, y_train, y_test, n_outputs = _data(task, config, streams.shared("data"))
    net = build_mlp(data.X_train.shape[1], config.hidden, n_outputs,
                    task="classification" if task == "digits" else "regression",
                    keep_prob=keep_prob, rng=streams.shared("init"))
    init_checksum = float(sum(float(np.sum(W)) for W in net.dense_weights()))
    history = train(net, data.X_train, y_train,
                    TrainingConfig(max_epochs=config.max_epochs, batch_size=config.batch_size,
                                   learning_rate=config.learning_rate),
                    rng=streams.shared("training"))
    X, head = data.X_test, net.head
    z = net.forward(X)
    base_loss, base_prediction = head.loss(z, y_test), head.predict(z)
    network = {"test_loss": base_loss, "test_metric": head.metric(z, y_test),
               "train_loss": head.loss(net.forward(data.X_train), y_train),
               "final_training_loss": history.metrics["loss"][-1],
               "init_checksum": init_checksum, "n_test": int(X.shape[0])}
    dense = [layer for layer in net.layers if isinstance(layer, Dense)]
    layers, worst_residual = [], 0.0
    for block, H in enumerate(net.hidden_activations(X)):                  # (n_test, n_units)
        removed = net.forward_without_units(X, block)             # (n_units, n_test, n_out)
        change = np.sqrt(((head.predict(removed) - base_prediction) ** 2).sum(axis=-1))
        change = change.mean(axis=1)                                         # (n_units,)
        increase = np.array([head.loss(r, y_test) for r in removed]) - base_loss
        # Removing unit 0 is zeroing its outgoing weights: checked on the network itself.
        W = dense[block + 1].params["W"]
        saved = W[0].copy()
        W[0] = 0
        residual = np.max(np.abs(net.forward(X) - removed[0])) / np.max(np.abs(z))
        W[0] = saved
        worst_residual = max(worst_residual, float(residual))
        layers.append({"layer": block + 1, "n_units": H.shape[1],
                       "n_constant": int(np.sum(H.std(axis=0) == 0)),
                       "mean_abs_corr": mean_abs_correlation(H),
                       "effective_rank": participation_ratio(H),
                       "mean_activation": float(H.mean()),
                       "frac_zero": float(np.mean(H == 0)),
                       "frac_near_zero": float(np.mean(np.abs(H) < config.near_zero)),
                       "mean_loss_increase": float(increase.mean()),
                       "worst_loss_increase": float(increase.max()),
                       "mean_output_change": float(change.mean()),
                       "worst_output_change": float(change.max())})
    network["removal_residual"] = worst_residual
    return {"layers": layers, "networks": network}


# ---------------------------------------------------------------- statistics


def paired(tables, task, layer, measure, keep_prob):
    """``measure`` at ``keep_prob`` minus at 1.0 (no dropout), one value per seed."""
    table = tables["layers"]
    part = table[(table.task == task) & (table.layer == layer)]
    wide = part.pivot(index="seed", columns="keep_prob", values=measure)
    return (wide[keep_prob] - wide[1.0]).to_numpy()


def _keep_label(p):
    return "1 (none)" if p == 1.0 else f"{p:g}"


# ---------------------------------------------------------------------- figure


def plot(tables, config: Config):
    from matplotlib.lines import Line2D

    from ensim.plotting import FEW_SEEDS, color_cycle, figure, plot_interval_points

    table = tables["layers"]
    keeps = sorted(config.keep_probs, reverse=True)            # more dropout to the right
    n_layers = len(config.hidden)
    colors = color_cycle(n_layers)
    fig, axes = figure(len(config.tasks), len(MEASURES), width=16,
                       height_per_row=3.0)
    # With a handful of seeds a t interval of an arm's mean says little (and crosses
    # bounds such as 0); the seeds themselves are drawn, joined across arms, which is
    # the pairing the claims test.
    intervals = config.n_seeds >= FEW_SEEDS
    for i, task in enumerate(config.tasks):
        for j, (measure, name) in enumerate(MEASURES):
            ax = axes[i, j]
            for layer in range(1, n_layers + 1):
                part = table[(table.task == task) & (table.layer == layer)]
                wide = part.pivot(index="seed", columns="keep_prob", values=measure)[keeps]
                x = np.arange(len(keeps)) + 0.08 * (layer - (n_layers + 1) / 2)
                for _, seed in wide.iterrows():                   # one thin line per seed
                    ax.plot(x, seed.to_numpy(), color=colors[layer - 1], lw=0.5, alpha=0.35)
                stats = [t_interval(wide[p], config.alpha) for p in keeps]
                means = [s[0] for s in stats]
                if intervals:
                    plot_interval_points(x, means, [s[2] for s in stats],
                                         [s[3] for s in stats], ax=ax, color=colors[layer - 1])
                else:
                    ax.plot(x, means, "o", ms=3.5, color=colors[layer - 1])
                ax.plot(x, means, color=colors[layer - 1], lw=1.2)
            ax.set_xticks(range(len(keeps)), [_keep_label(p) for p in keeps])
            ax.set_xlim(-0.4, len(keeps) - 0.6)
            if i == len(config.tasks) - 1:
                ax.set_xlabel("keep probability")
            if i == 0:
                ax.set_title(name if measure != "frac_near_zero" else
                             f"fraction of activations\nbelow {config.near_zero:g}", fontsize=9)
            if j == 0:
                ax.set_ylabel({"digits": "digits (loss: cross-entropy)",
                               "friedman1": "Friedman #1 (loss: MSE, standardised y)"}[task]
                              + "\nvalue on test inputs")
    handles = [Line2D([], [], color=colors[layer - 1], marker="o", ms=3.5,
                      label=f"hidden layer {layer}: mean over seeds"
                            + (f", {1 - config.alpha:.0%} t interval" if intervals else ""))
               for layer in range(1, n_layers + 1)]
    handles.append(Line2D([], [], color="0.4", lw=0.5, alpha=0.6, label="one seed (the arms "
                          "share data, initial weights and batch order; the claims test "
                          "these paired differences)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles))
    widths = "-".join(str(w) for w in config.hidden)
    fig.suptitle(f"Hidden units with and without dropout ({widths} ReLU network, "
                 f"{config.n_seeds} seeds, measured on test inputs)")
    return fig


# ---------------------------------------------------------------------- claims

#: The primer's predictions, one family each: (measure, side of the paired difference
#: dropout - no dropout, statement).
PREDICTIONS = (
    ("mean_abs_corr", "below", "Dropout lowers the mean absolute correlation of units"),
    ("effective_rank", "above", "Dropout raises the effective rank of the hidden layer"),
    ("mean_activation", "below", "Dropout lowers the mean hidden activation"),
    ("frac_near_zero", "above", "Dropout raises the fraction of near-zero activations"),
    ("worst_loss_increase", "below", "Dropout lowers the loss increase of the worst unit"),
)


#: The measures whose claims test the primer's co-adaptation claim (ensim.primer).
PRIMER_MEASURES = ("mean_abs_corr", "effective_rank", "worst_loss_increase")


def claims(tables, config: Config) -> list:
    alpha, n = config.alpha, config.n_seeds
    keep = min(config.keep_probs)
    layers = range(1, len(config.hidden) + 1)
    out = []
    for measure, side, statement in PREDICTIONS:
        family = []
        for task in config.tasks:
            for layer in layers:
                mean, se, _, _ = t_interval(paired(tables, task, layer, measure, keep), alpha)
                family.append(direction(
                    f"{statement} ({task}, layer {layer}, keep {keep:g})", mean, stderr=se,
                    dof=n - 1, side=side, alpha=alpha,
                    method=f"paired difference keep {keep:g} − no dropout over {n} seeds, "
                           f"t with {n - 1} dof"))
        family = holm(family, measure)
        # The primer's co-adaptation claim is about correlated, redundant units and points
        # of failure; sparsity is Srivastava et al.'s observation, not the primer's.
        out.extend(tag(family, "co-adaptation") if measure in PRIMER_MEASURES else family)
    networks = tables["networks"]
    out.append(identity("Removing a unit equals zeroing its outgoing weights",
                        float(networks.removal_residual.max()), tol=1e-10, alpha=alpha,
                        method="unit 0 of every hidden layer, every network; residual "
                               "relative to the largest output"))
    # Negative controls: the measures must see the structure of a trained layer.
    task = config.tasks[0]
    table = tables["layers"]
    base = table[(table.task == task) & (table.layer == 1) & (table.keep_prob == 1.0)]
    networks = tables["networks"]
    n_test = int(networks[networks.task == task].n_test.min())
    independent = float(np.sqrt(2 / (np.pi * (n_test - 1))))
    mean, se, _, _ = t_interval(base.mean_abs_corr, alpha)
    out.append(negative_control(equivalence(
        f"Negative control: the units of layer 1 ({task}, no dropout) are independent, "
        f"mean absolute r = √(2/(π(n−1))) = {independent:.3g}; expected to fail", mean, se,
        independent, 0.5 * independent, alpha=alpha, dof=n - 1,
        method=f"over {n} seeds; margin 50% of the independent value")))
    width = config.hidden[0]
    mean, se, _, _ = t_interval(base.effective_rank, alpha)
    out.append(negative_control(equivalence(
        f"Negative control: layer 1 ({task}, no dropout) uses all its {width} directions "
        f"equally, effective rank = {width}; expected to fail", mean, se, float(width),
        0.1 * width, alpha=alpha, dof=n - 1,
        method=f"over {n} seeds; margin 10% of the width")))
    return out


STUDY = Study(name="co-adaptation", doc=__doc__, config=Config, quick=QUICK, full=FULL,
              cells=cells, run_cell=run_cell, plot=plot, claims=claims,
              tables=("layers", "networks"), pairing=("task", "seed"), order=45)

if __name__ == "__main__":
    STUDY.main()
