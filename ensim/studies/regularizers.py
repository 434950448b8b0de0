"""Regularizers side by side: generalization gaps, V and C of none, L1, L2, max-norm, dropout, batch norm, early stopping and augmentation.

The primer lists five regularizers (L1/L2, dropout, early stopping, data
augmentation, batch normalization) with a table of what each is for. This study
trains every one of them, and the usual combinations, on the same data, from the
same initial weights, with one architecture, optimiser and budget, and measures
what each changes.

**Arms.** `none`; `l2`; `l1`; `max_norm` (each unit's incoming weight vector
bounded); `dropout`; `dropout_max_norm`; `dropout_l2`; `batch_norm`;
`batch_norm_dropout`; `early_stopping` (Keras semantics: validation loss
monitored, best weights restored); `augmentation` (digits: random rotations and
shifts of whole pixels from `ensim.data.ImageAugmenter`; regression: Gaussian input
noise); and `l2_zero`, a control: L2 with `λ = 0` and a batch order of its own, an
arm that changes nothing but the noise of training.

**Tasks.** Digits at 300 training images (where a 64-64 network overfits plainly)
and at the full training split (1,079 images), scored by cross-entropy and error
rate; Friedman #1 (noise sd 1) at `n = 200` and `n = 2000`, scored by squared
error.

**A fair comparison.** Each arm's own setting (`λ`, keep probability, max-norm
bound, patience, augmentation strength; the combinations over the product of
their two grids) is chosen from a small declared grid by the validation loss of one
network trained on the training split (initial weights of their own, the same for
every arm), as Srivastava et al. (2014) chose theirs. Then `n_replicates`
networks per arm are trained with the chosen setting, all arms of a task in step:
replicate `i` of every arm has the same training, validation and test split and
the same initial weights (and, but for `l2_zero`, the same batch order). A
replicate differs from another by its initial weights and batch order only, so an
arm's replicate networks are the members of an ensemble over training randomness:
its `V`, `C`, `ρ = C/V` and the error of their average (an ensemble of
`n_replicates`) are measured on the test set.

**Measured per arm.** The training loss *at inference and without the penalty*
(`ensim.nn.evaluation_loss`: dropout off, batch normalization with its running
statistics; not the training-mode, penalised loss that `History["loss"]`
records), the test loss, the generalization gap (test − train), the test error
(error rate; squared error in the target's units), the squared weight norm, and
the ensemble terms above. Each arm is compared with `none` as a paired difference
over replicates (Student-t), and each family of comparisons (test loss; gap) is
Holm-corrected.

How to read the figure (one row per task): each arm's generalization gap and test
loss minus those of `none`, replicate by replicate (the paired differences the
claims test, as means with 95% Student-t intervals before Holm's correction; below
the dotted zero line, lower than `none`), and its test error (error rate on the
digits, MSE in the target's own units on Friedman #1) the same way, which no claim
tests; `V` against `C` per arm (the ensemble's error is `V/k + (k−1)/k·C` plus the
squared bias; Brier score on the digits, MSE on Friedman #1; the dotted rays are
constant `ρ = C/V`, so an arm's `ρ` reads off the ray it sits on), `none` as a large
open marker, early stopping's legend entry saying how many epochs its networks ran; and,
for replicate 0 of none and of one arm per regularizer of the primer (L2, dropout,
batch norm, early stopping, augmentation), the training loss per epoch as recorded during training
(training mode, penalty included) against the validation loss at inference, `none`
drawn thick.

What the full scale finds (10 replicates, 64-64 ReLU networks, Adam at 1e-3, batch
32, 100 epochs; paired differences against none with 95% Student-t intervals, losses
in the tasks' units: cross-entropy, or MSE of the standardised target), beside the
primer's table row by row:

| technique | primer: mechanism | primer: best used when… | measured here (full scale) |
|---|---|---|---|
| L1 / L2 | mathematical penalty | you want to constrain weight size (L2) or select features (L1) | L2 shrinks the weights on every task (ΣW² 362 → 84 on the full digits, 267 → 76 on Friedman #1 at 200). It lowers the test loss on Friedman #1 (−0.11 [−0.125, −0.096] at 200, −0.040 at 2000) but not measurably on the digits (−0.006 and −0.002, inconclusive). L1 does select features where data suffice: the share of the first layer's absolute weights on Friedman's 5 unused inputs falls from 0.47 to 0.14 at 2000 rows (from 0.493 to 0.489 only at 200), and it gives the lowest test loss at 2000 (−0.047). |
| Dropout | random deactivation | you have a large, deep network (esp. fully connected layers) | Not for this network on the digits: at the full split dropout (p = 0.5 chosen) *raises* the test loss (+0.020 [0.007, 0.032]: the claim fails), at 300 images −0.008 (inconclusive). On Friedman #1 it lowers it a little (−0.033 at 200, −0.008 at 2000) and narrows the gap as much as L2 at 200 (−0.14). With L2 it does better than alone on every task, with max-norm on three of the four. It makes the replicates more alike: ρ 0.53 → 0.86 (Friedman, 200), 0.59 → 0.93 (2000). |
| Early stopping | validation monitoring | you are unsure how many epochs to train for | Keras semantics, patience tuned: the networks stop after 32 (digits, full) to 93 (Friedman, 200) of the 100 epochs. It does not help the digits (test loss +0.012 [0.008, 0.017] at the full split: fails) and helps Friedman #1 only slightly (−0.002 at 200, −0.005 at 2000), less than any penalty: with a fixed, moderate budget there was little overtraining left to stop. |
| Data augmentation | dataset expansion | you have limited training data (common in computer vision) | Rotations of up to 5-10° (shifts of one pixel lost on validation) *hurt* the 8x8 digits at both sizes (test loss +0.073 at 300, +0.093 at full): the claim that it helps most with limited data is inconclusive (−0.020 [−0.068, 0.027]). Input noise on Friedman #1 helps at 200 rows (−0.025) more than at 2000 (−0.005, inconclusive): there the primer's "limited data" reading holds. |
| Batch norm | input normalization | you want faster convergence + mild regularization | The mild regularization holds: batch norm lowers the test loss on three of the four tasks (−0.025 [−0.037, −0.012] on the full digits, −0.046 on Friedman at 200) and by −0.023 on the 300 digits, undecided after Holm, and batch norm with dropout is the best arm on the digits (−0.035 at the full split, −0.031 at 300). Faster convergence does not: after 10 epochs its training loss as recorded is *higher* than without (+0.04 to +0.20 on all four tasks: fails), with Adam on these small networks. On the full digits it lowers both V and C (ρ 0.72 → 0.50). |

Across arms, what lowers the error mostly lowers `V`, a replicate's own error
variance, more than `C`: the penalties and dropout raise `ρ` (Friedman #1 at 200:
0.53 for none, 0.80 for L2 and max-norm, 0.86 for dropout), so an ensemble of
regularized networks gains less from averaging than one of plain networks. The
control (L2 with `λ = 0`, its own batch order) is never declared different from
none; it is shown equal to it within 5% on three tasks (inconclusive on the full
digits, where the margin is 0.004). Max-norm with bound 2 never binds on the 300
digits (its arm equals none there); 55 of the 103 claims hold, 9 fail, 39 are
inconclusive, many of them digits comparisons that Holm's correction over 11
arms leaves undecided at 10 replicates (two of them, augmentation's and early
stopping's gaps on the digits, lie above 0 before the correction).

Time: `--quick` (2 tasks, 4 replicates, 32-32 networks, 30 epochs, one value per
grid) about 20 s on 2 cores (the three studies together about 50 s); full scale 21 minutes with `--n-jobs 2` (of which
the augmented digits and the 2000-row Friedman cells take the most), measured on
a shared, loaded 2-core machine: rough. To fit the time, the full scale uses 100
epochs and grids of two or three values per knob.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np

from ensim._validation import check_int, check_real, check_values
from ensim.claims import direction, equivalence, holm
from ensim.primer import tag
from ensim.stats import mean_and_se, t_interval
from ensim.study import Study

ARMS = ("none", "l2", "l1", "max_norm", "dropout", "dropout_max_norm", "dropout_l2",
        "batch_norm", "batch_norm_dropout", "early_stopping", "augmentation", "l2_zero")
TASKS = ("digits_300", "digits_full", "friedman1_200", "friedman1_2000")
# The knobs each arm tunes (over the product of their grids), and its fixed settings.
_TUNED = {"none": (), "l2": ("l2",), "l1": ("l1",), "max_norm": ("max_norm",),
          "dropout": ("keep_prob",), "dropout_max_norm": ("keep_prob", "max_norm"),
          "dropout_l2": ("keep_prob", "l2"), "batch_norm": (),
          "batch_norm_dropout": ("keep_prob",), "early_stopping": ("patience",),
          "augmentation": ("augment",), "l2_zero": ()}
_FIXED = {"batch_norm": {"batch_norm": True}, "batch_norm_dropout": {"batch_norm": True},
          "l2_zero": {"l2": 0.0}}
_N_DIGITS_TRAIN = 1079          # the digits training split of load_dataset (60% of 1,797)
#: The primer's claim (ensim.primer) that each arm's test-loss and gap claims test: the
#: single regularizers only (a combination's effect is not one regularizer's; max-norm is
#: not in the primer, and l2_zero is a control).
PRIMER_KEY = {"l2": "l2", "l1": "l1", "dropout": "dropout-regularizes",
              "batch_norm": "batch-norm-regularizes", "early_stopping": "early-stopping",
              "augmentation": "augmentation"}
#: The arms whose training curves are drawn: none and one arm for each of the primer's
#: five regularizers (all twelve arms' 24 curves could not be told apart).
CURVE_ARMS = ("none", "l2", "dropout", "batch_norm", "early_stopping", "augmentation")


@dataclass(frozen=True)
class Config:
    tasks: tuple = TASKS                    # digits_<n> / friedman1_<n>: <n> training rows
    arms: tuple = ARMS                      # the regularizers compared ("none" is required)
    n_replicates: int = 10                  # paired networks per arm (members of its ensemble)
    hidden: tuple = (64, 64)                # one architecture for every arm (ReLU)
    max_epochs: int = 100                   # one budget for every arm and task
    batch_size: int = 32
    learning_rate: float = 1e-3             # Adam
    l2_grid: tuple = (1e-4, 1e-3, 1e-2)     # λ of l2 * sum W**2, added to the mean loss
    l1_grid: tuple = (1e-5, 1e-4, 1e-3)     # λ of l1 * sum |W|
    max_norm_grid: tuple = (1.0, 2.0, 4.0)  # bound on each unit's incoming weight norm
    keep_prob_grid: tuple = (0.5, 0.8)      # dropout keep probabilities, in (0, 1]
    patience_grid: tuple = (5, 20)          # early-stopping patience, epochs
    angle_grid: tuple = (5.0, 10.0)         # digits augmentation: largest rotation, degrees
    shift_grid: tuple = (0, 1)              # digits augmentation: largest shift, pixels
    noise_grid: tuple = (0.05, 0.2)         # regression augmentation: input noise sd
    val_fraction: float = 0.2               # digits validation split (of 1,797 images)
    n_val_friedman: int = 500               # Friedman #1 validation rows
    n_test_friedman: int = 1000             # Friedman #1 test rows
    data_seed: int = 20261201               # the splits (the same in every arm and replicate)
    control_margin: float = 0.05            # l2_zero = none within this fraction of none's loss
    alpha: float = 0.05                     # intervals are 1 - alpha (Student-t over replicates)

    def __post_init__(self):
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or "none" not in self.arms:
            raise ValueError(f"The 'arms' setting must be a subset of {ARMS} holding 'none' "
                             f"(every arm is compared with it); got {self.arms!r}.")
        for task in self.tasks:
            name, _, n = task.rpartition("_")
            if name not in ("digits", "friedman1") or not (n == "full" or n.isdigit()):
                raise ValueError("The 'tasks' setting must hold names digits_<n>, digits_full "
                                 f"or friedman1_<n> (<n> training rows); got {task!r}.")
            low, high = 2, (_N_DIGITS_TRAIN if name == "digits" else 10**6)
            if n != "full" and not low <= int(n) <= high:
                raise ValueError(f"The 'tasks' setting's {task!r} must have between {low} and "
                                 f"{high} training rows; got {n}.")
        if not self.tasks:
            raise ValueError("The 'tasks' setting must hold at least one task; got ().")
        owner = "the regularizers Config"
        # Each grid: (name, integer, low, high, low inclusive); a grid lists a value once.
        grids = (("l2_grid", False, 0.0, None, True), ("l1_grid", False, 0.0, None, True),
                 ("max_norm_grid", False, 0.0, None, False),
                 ("keep_prob_grid", False, 0.0, 1.0, False),
                 ("patience_grid", True, 0, None, True),
                 ("angle_grid", False, 0.0, 180.0, True),
                 ("shift_grid", True, 0, 3, True),   # pixels
                 ("noise_grid", False, 0.0, None, True))
        for name, integer, low, high, inclusive in grids:
            check_values(getattr(self, name), name, owner=owner, integer=integer, low=low,
                         high=high, low_inclusive=inclusive)
        check_values(self.hidden, "hidden", owner=owner, integer=True, low=1, distinct=False)
        check_real(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False,
                   owner=owner)
        check_real(self.val_fraction, "val_fraction", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)
        check_int(self.data_seed, "data_seed", low=0, owner=owner)
        check_real(self.control_margin, "control_margin", low=0.0, low_inclusive=False,
                   owner=owner)
        check_real(self.alpha, "alpha", low=0.0, high=0.5, low_inclusive=False,
                   high_inclusive=False, owner=owner)
        n_val_digits = int(round(1797 * self.val_fraction))
        if not 0.0 < self.val_fraction < 0.5 or n_val_digits < 1:
            raise ValueError("The 'val_fraction' setting must be in (0, 0.5) and leave at least "
                             f"one validation row; got {self.val_fraction} ({n_val_digits} "
                             "rows).")
        for name, low, why in (("n_val_friedman", 1, "a validation split of zero rows cannot "
                                "tune or stop"), ("n_test_friedman", 1, "a test set"),
                               ("n_replicates", 3, "a covariance and a paired interval"),
                               ("max_epochs", 1, "training"), ("batch_size", 2, "batch norm")):
            if getattr(self, name) < low:
                raise ValueError(f"The {name!r} setting must be at least {low} ({why} needs "
                                 f"it); got {getattr(self, name)}.")


QUICK = Config(tasks=("digits_300", "friedman1_200"), n_replicates=4, hidden=(32, 32),
               max_epochs=30, learning_rate=3e-3, l2_grid=(1e-3,), l1_grid=(1e-4,),
               max_norm_grid=(2.0,), keep_prob_grid=(0.8,), patience_grid=(5,),
               angle_grid=(10.0,), shift_grid=(0,), noise_grid=(0.1,), n_val_friedman=200,
               n_test_friedman=400)
FULL = Config()


def cells(config: Config) -> list[dict]:
    return [{"task": t, "arm": a} for t in config.tasks for a in config.arms]


# ------------------------------------------------------------------------ data


def task_data(config: Config, task: str) -> dict:
    """The task's fixed splits (standardised on the training split) and its scales."""
    from ensim.data import KnownTruth, load_dataset

    name, _, n = task.rpartition("_")
    seed = np.random.SeedSequence(config.data_seed)
    if name == "digits":
        data = load_dataset("digits", val_fraction=config.val_fraction, rng=seed)
        rows = slice(None) if n == "full" else slice(0, int(n))
        return {"X": data.X_train[rows], "y": data.y_train[rows], "X_val": data.X_val,
                "y_val": data.y_val, "X_test": data.X_test, "y_test": data.y_test,
                "classification": True, "y_scale": 1.0, "mean": data.feature_mean,
                "scale": data.feature_scale}
    truth = KnownTruth("friedman1", 1.0)
    parts = [truth.sample(size, rng=s) for size, s in
             zip((int(n), config.n_val_friedman, config.n_test_friedman), seed.spawn(3))]
    mean, sd = parts[0].X.mean(axis=0), parts[0].X.std(axis=0)
    y_mean, y_sd = parts[0].y.mean(), parts[0].y.std()
    X = [(p.X - mean) / sd for p in parts]
    y = [((p.y - y_mean) / y_sd)[:, None] for p in parts]
    return {"X": X[0], "y": y[0], "X_val": X[1], "y_val": y[1], "X_test": X[2], "y_test": y[2],
            "classification": False, "y_scale": float(y_sd), "y_mean": float(y_mean),
            "y_test_raw": parts[2].y}


def arm_grid(config: Config, arm: str, task: str) -> list[dict]:
    """The candidate settings of ``arm``: the product of its knobs' declared grids."""
    digits = task.startswith("digits")
    grids = {"l2": config.l2_grid, "l1": config.l1_grid, "max_norm": config.max_norm_grid,
             "keep_prob": config.keep_prob_grid, "patience": config.patience_grid,
             "augment": config.angle_grid if digits else config.noise_grid,
             "shift": config.shift_grid}
    knobs = _TUNED[arm] + (("shift",) if arm == "augmentation" and digits else ())
    return [dict(_FIXED.get(arm, {}), **dict(zip(knobs, values)))
            for values in itertools.product(*(grids[k] for k in knobs))]


def _train(config: Config, data: dict, setting: dict, members, build_seed, train_seed,
           validation=True):
    """A stack of networks with ``setting``, trained; returns ``(stack, histories)``."""
    from ensim.data import GaussianNoise, ImageAugmenter
    from ensim.nn import EarlyStopping, TrainingConfig, build_stacked_mlp, train_stacked

    classify = data["classification"]
    n_out = 10 if classify else 1
    stack = build_stacked_mlp(data["X"].shape[1], tuple(config.hidden), n_out, members,
                              rng=build_seed, task="classification" if classify else "regression",
                              keep_prob=float(setting.get("keep_prob", 1.0)),
                              batch_norm=bool(setting.get("batch_norm", False)))
    augment = None
    if "augment" in setting:
        augment = (ImageAugmenter(max_shift=int(setting["shift"]), max_angle=setting["augment"],
                                  mean=data["mean"], scale=data["scale"]) if classify
                   else GaussianNoise(setting["augment"]))
    stopper = (EarlyStopping("val_loss", patience=int(setting["patience"]),
                             restore_best_weights=True) if "patience" in setting else None)
    training = TrainingConfig(max_epochs=config.max_epochs, batch_size=config.batch_size,
                              optimizer="adam", learning_rate=config.learning_rate,
                              l1=float(setting.get("l1", 0.0)), l2=float(setting.get("l2", 0.0)),
                              max_norm=setting.get("max_norm"), early_stopping=stopper,
                              augment=augment)
    histories = train_stacked(stack, data["X"], data["y"], training, rng=train_seed,
                              validation_data=((data["X_val"], data["y_val"])
                                               if validation or stopper else None))
    return stack, histories


def tune(config: Config, data: dict, arm: str, task: str, seed) -> tuple[dict, list]:
    """The arm's setting with the lowest validation loss (at inference, no penalty) of one
    network trained on the training split; returns it and every candidate's score."""
    from ensim.nn import evaluation_loss

    grid = arm_grid(config, arm, task)
    if len(grid) == 1:
        return grid[0], [np.nan]
    scores = []
    for setting in grid:
        stack, _ = _train(config, data, setting, [0], seed, seed,
                          validation="patience" in setting)
        scores.append(float(evaluation_loss(stack, data["X_val"], data["y_val"])[0]))
    return grid[int(np.argmin(scores))], scores


def _digest(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:12]


def run_cell(config: Config, params: dict, streams, backend: str) -> dict:
    from threadpoolctl import threadpool_limits

    # Small products: one BLAS thread is faster, and a cell's numbers then do not
    # depend on how many threads the machine would have given it.
    with threadpool_limits(limits=1, user_api="blas"):
        return _run_cell(config, params, streams)


def _run_cell(config: Config, params: dict, streams) -> dict:
    from ensim.decompose import decompose
    from ensim.nn import build_stacked_mlp, evaluation_loss

    task, arm = params["task"], params["arm"]
    data = task_data(config, task)
    setting, _ = tune(config, data, arm, task, streams.shared("tuning"))
    init = streams.shared("init")                 # replicate i: the same weights in every arm
    order = streams.own("order") if arm == "l2_zero" else init
    R = config.n_replicates
    classify = data["classification"]
    initial = build_stacked_mlp(data["X"].shape[1], tuple(config.hidden),
                                10 if classify else 1, R, rng=init)
    stack, histories = _train(config, data, setting, R, init, order)
    train_loss = evaluation_loss(stack, data["X"], data["y"])                 # (R,)
    test_loss = evaluation_loss(stack, data["X_test"], data["y_test"])
    q = stack.predict(data["X_test"])                                        # (R, n, out)
    if classify:
        labels = data["y_test"]
        test_error = (q.argmax(axis=-1) != labels).mean(axis=1)
        target = np.eye(10)[labels].ravel()
        flat, scale = q.reshape(R, -1), 10.0                                 # Brier score
    else:
        flat = q[:, :, 0] * data["y_scale"] + data["y_mean"]            # y's own units
        target, scale = data["y_test_raw"], 1.0
        test_error = ((flat - target) ** 2).mean(axis=1)
    d = decompose(flat, target, matrices=False)
    weights = [w for w in stack.layers if hasattr(w, "W")]
    weight_norm = sum((layer.W ** 2).sum(axis=(1, 2)) for layer in weights)   # (R,)
    first = weights[0].W                                                       # (R, n_in, n_h)
    setting_text = ", ".join(f"{k}={v:g}" for k, v in setting.items()) or "-"
    replicates = []
    for i, history in enumerate(histories):
        loss = history.metrics["loss"]
        row = {"replicate": i, "train_loss": float(train_loss[i]),
               "test_loss": float(test_loss[i]), "gap": float(test_loss[i] - train_loss[i]),
               "test_error": float(test_error[i]), "weight_norm2": float(weight_norm[i]),
               "n_epochs": history.n_epochs, "recorded_train_loss": float(loss[-1]),
               "early_loss": float(loss[min(len(loss), max(1, config.max_epochs // 10)) - 1]),
               "init_digest": _digest(np.concatenate([w.ravel() for w in
                                                       initial.member(i).get_weights()])),
               "split_digest": _digest(data["X"]) + _digest(data["X_val"])}
        if not classify:       # inputs 5-9 of Friedman #1 are unused: their share of |W|
            row["unused_input_share"] = float(np.abs(first[i, 5:]).sum()
                                              / np.abs(first[i]).sum())
        replicates.append(row)
    ensemble = {"setting": setting_text, "V": scale * d.member_variance,
                "C": scale * d.covariance, "rho": d.rho, "mse_ensemble": scale * d.mse_ensemble,
                "mse_member": scale * d.mean_square, "n_members": R}
    curves = [{"epoch": e + 1, "recorded_train_loss": float(a), "val_loss": float(b)}
              for e, (a, b) in enumerate(zip(histories[0].metrics["loss"],
                                             histories[0].metrics["val_loss"]))]
    return {"replicates": replicates, "ensembles": ensemble, "curves": curves}


# ---------------------------------------------------------------------- tables


def paired(replicates, task, arm, column, reference="none"):
    """Per replicate, ``column`` of ``arm`` minus that of ``reference`` (same replicate)."""
    part = replicates[replicates.task == task].set_index(["arm", "replicate"])[column]
    left, right = part.loc[arm], part.loc[reference]
    return (left - right.loc[left.index]).to_numpy(dtype=float)


# ------------------------------------------------------------------------- plot


def plot(tables, config: Config):
    from ensim.plotting import color_cycle, figure, plot_interval_points

    reps, ens, curves = tables["replicates"], tables["ensembles"], tables["curves"]
    tasks = [t for t in config.tasks if t in set(reps.task)]
    arms = [a for a in config.arms if a in set(reps.arm)]
    colors = dict(zip(arms, color_cycle(len(arms))))
    fig, axes = figure(len(tasks), 5, width=22, height_per_row=3.6)
    compared = [a for a in arms if a != "none"]
    positions = np.arange(len(compared))
    labels = [a.replace("_", " ") for a in compared]      # the names the V-C legend uses
    for row, task in enumerate(tasks):
        digits = task.startswith("digits")
        loss_name = "cross-entropy" if digits else "MSE (standardised y)"
        error_name = "error rate" if digits else "MSE (y's own units)"
        # What the claims test: each arm minus none, replicate by replicate; and the test
        # error (the digits' error rate), which no claim tests, the same way.
        for col, column, what, unit in ((0, "gap", "gap (test − train)", loss_name),
                                        (1, "test_loss", "test loss", loss_name),
                                        (2, "test_error", f"test {error_name}", error_name)):
            ax = axes[row, col]
            for i, arm in enumerate(compared):
                mean, _, low, high = t_interval(paired(reps, task, arm, column), config.alpha)
                plot_interval_points([i], [mean], [low], [high], ax=ax, color=colors[arm])
            ax.axhline(0.0, color="k", lw=0.8, ls=":")
            ax.set_xticks(positions, labels, fontsize=7, rotation=40, ha="right")
            level = float(reps[(reps.task == task) & (reps.arm == "none")][column].mean())
            note = "" if col < 2 else "; no claim"
            ax.set(ylabel=f"{unit}: arm − none",
                   title=f"{task}: {what}, arm − none\n(paired; none = {level:.3g}; "
                         f"below 0: lower{note})")
        ax = axes[row, 3]
        epart = ens[ens.task == task].set_index("arm")
        for i, arm in enumerate(arms):        # a colour and a marker each
            # none, the reference, large, open and on top: arms that change little (a
            # bound that never binds) sit on it.
            reference = arm == "none"
            label = arm.replace("_", " ") + (" (reference)" if reference else "")
            if arm == "early_stopping":
                ran = reps[(reps.task == task) & (reps.arm == arm)].n_epochs
                label += (f" (ran {ran.min()}" + (f"-{ran.max()}" if ran.max() > ran.min()
                                                  else "") + f" of {config.max_epochs} epochs)")
            ax.plot(epart.loc[arm, "C"], epart.loc[arm, "V"], "osD^vP<X>*hd"[i % 12],
                    color=colors[arm], label=label, zorder=4 if reference else 3,
                    ms=10 if reference else 6, mfc="none" if reference else colors[arm],
                    mew=1.8 if reference else 1.0)
        top = float(max(epart.V.max(), epart.C.max())) * 1.1
        ax.plot([0, top], [0, top], color="0.6", lw=0.8, ls="--")
        ax.text(0.97 * top, 0.97 * top, "V = C (ρ = 1)", ha="right", va="top", fontsize=7,
                color="0.4")
        for rho in (0.25, 0.5, 0.75):   # rays of constant rho = C / V, to read rho off
            ax.plot([0, rho * top], [0, top], color="0.75", lw=0.6, ls=":", zorder=1)
            ax.text(rho * top, 0.995 * top, f"ρ = {rho:g}", ha="center", va="bottom",
                    fontsize=6, color="0.45")
        unit = "Brier score" if digits else "MSE"
        ax.set(xlabel=f"C: covariance of two replicates ({unit})",
               ylabel=f"V: one replicate's variance ({unit})",
               title=f"{task}: V against C", xlim=(0, top), ylim=(0, top))
        if row == 0:
            ax.legend(fontsize=6, ncols=2, loc="lower right")
        ax = axes[row, 4]
        cpart = curves[curves.task == task]
        for arm in [a for a in arms if a in CURVE_ARMS]:   # 24 curves read as none
            c = cpart[cpart.arm == arm].sort_values("epoch")
            style = dict(lw=2.0, zorder=3) if arm == "none" else dict(lw=0.9, zorder=2)
            ax.plot(c.epoch, c.recorded_train_loss, "-", color=colors[arm], **style)
            ax.plot(c.epoch, c.val_loss, "--", color=colors[arm], **style)
        ax.plot([], [], "-", color="k", label="training (as recorded: training mode, "
                                               "with penalty)")
        ax.plot([], [], "--", color="k", label="validation (at inference, with penalty)")
        ax.plot([], [], " ", label="colours: as in the V–C legend")
        ax.set(yscale="log", xlabel="epoch", ylabel=loss_name,
               title=f"{task}: curves, replicate 0\n(none, thick, and the primer's five)")
        ax.legend(fontsize=6, loc="upper right")
    fig.suptitle(f"Regularizers side by side ({config.n_replicates} paired replicates per arm; "
                 f"left: {1 - config.alpha:.0%} Student-t intervals of the paired differences "
                 "from none that the claims test, before Holm's correction)")
    return fig


# ----------------------------------------------------------------------- claims


def claims(tables, config: Config) -> list:
    reps = tables["replicates"]
    alpha, out = config.alpha, []
    arms = [a for a in config.arms if a != "none" and a in set(reps.arm)]
    for task in [t for t in config.tasks if t in set(reps.task)]:
        for column, verb in (("test_loss", "lowers the test loss"),
                             ("gap", "narrows the generalization gap")):
            family = []
            for arm in arms:
                mean, se, dof = mean_and_se(paired(reps, task, arm, column))
                family.append(direction(f"{arm.replace('_', ' ')} {verb} against none: "
                                        f"{column}({arm}) − {column}(none) < 0 ({task})",
                                        mean, stderr=se, dof=dof, side="below", alpha=alpha,
                                        method="paired over replicates, t"))
            out.extend(tag(c, PRIMER_KEY[arm]) if arm in PRIMER_KEY else c
                       for arm, c in zip(arms, holm(family, f"{column} against none ({task})")))
        part = reps[reps.task == task]
        if "l2_zero" in arms:
            diff = paired(reps, task, "l2_zero", "test_loss")
            mean, se, dof = mean_and_se(diff)
            margin = config.control_margin * float(part[part.arm == "none"].test_loss.mean())
            out.append(equivalence(f"Control: L2 with λ = 0 and its own batch order has the "
                                   f"test loss of none ({task})", mean, se, 0.0, margin,
                                   alpha=alpha, dof=dof,
                                   method=f"paired over replicates; margin "
                                          f"{config.control_margin:.0%} of none's test loss"))
        if "l2" in arms:
            mean, se, dof = mean_and_se(paired(reps, task, "l2", "weight_norm2"))
            out.append(tag(direction(f"Primer: L2 constrains the weights' size: |W|²(l2) − "
                                     f"|W|²(none) < 0 ({task})", mean, stderr=se, dof=dof,
                                     side="below", alpha=alpha,
                                     method="paired over replicates, t"), "l2"))
        if "l1" in arms and task.startswith("friedman1"):
            mean, se, dof = mean_and_se(paired(reps, task, "l1", "unused_input_share"))
            out.append(tag(direction(f"Primer: L1 selects features: it lowers the share of "
                                     f"the first layer's |W| on the 5 unused inputs ({task})",
                                     mean, stderr=se, dof=dof, side="below", alpha=alpha,
                                     method="paired over replicates, t"), "l1"))
        if "batch_norm" in arms:
            mean, se, dof = mean_and_se(paired(reps, task, "batch_norm", "early_loss"))
            out.append(tag(direction(f"Primer: batch norm converges faster: lower recorded "
                                     f"training loss after {max(1, config.max_epochs // 10)} "
                                     f"epochs ({task})", mean, stderr=se, dof=dof,
                                     side="below", alpha=alpha,
                                     method="paired over replicates, t"), "batch-norm-faster"))
    small, large = "digits_300", "digits_full"
    if "augmentation" in arms and {small, large} <= set(reps.task):
        gain = [paired(reps, t, "augmentation", "test_loss") for t in (small, large)]
        (m1, s1, d1), (m2, s2, d2) = mean_and_se(gain[0]), mean_and_se(gain[1])
        se = float(np.hypot(s1, s2))
        dof = se**4 / (s1**4 / d1 + s2**4 / d2) if se > 0 else d1 + d2   # Welch-Satterthwaite
        out.append(tag(direction("Primer: augmentation helps most with limited data: its "
                                 "change of test loss at 300 digits minus that at the full "
                                 "split < 0", m1 - m2, stderr=se, dof=dof, side="below",
                                 alpha=alpha, method="difference of two paired means, Welch"),
                       "augmentation"))
    return out


STUDY = Study(name="regularizers", doc=__doc__, config=Config, quick=QUICK, full=FULL,
              cells=cells, run_cell=run_cell, plot=plot, claims=claims,
              tables=("replicates", "ensembles", "curves"), pairing=("task",), order=60)

if __name__ == "__main__":
    STUDY.main()
