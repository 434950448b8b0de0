"""The regularization primer's claims, and which studies measure each.

ensim starts from a regularization primer: averaging ``k`` models gives
``MSE_ens = V/k + (k-1)/k C``, dropout is cheap bagging of ``2^n`` thinned
sub-networks that it decorrelates, the full network is their average, and L1/L2,
early stopping, data augmentation and batch normalization are the other
regularizers. :data:`PRIMER_CLAIMS` lists those claims one by one, each with the
studies that test it and what the full scale finds. A study marks with :func:`tag`
each of its claims that states what the primer predicts, so that the claim holds
where the primer is right and fails where it is wrong (claims about the primer's
context, such as a paper's figure or a consequence the primer does not draw, stay
unmarked); the report gathers the marked claims of a run under the primer's words
(:func:`ensim.report.primer_section`).

The ``full_scale`` texts quote the studies' own full-scale results (seed 0), as
their stories do; a quick run's verdicts, shown beside them in the report, can
differ.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["PRIMER_CLAIMS", "PrimerClaim", "primer_claim", "primer_markdown", "tag"]


@dataclass(frozen=True)
class PrimerClaim:
    """One claim of the primer.

    Attributes
    ----------
    key : str
        Its name, which a study's claims carry (:attr:`ensim.Claim.primer`).
    says : str
        The claim, in the primer's words where they are short.
    studies : tuple of str
        The studies whose claims test it (names from ``ensim list``).
    full_scale : str
        What those studies find at full scale, in a sentence or two.
    """

    key: str
    says: str
    studies: tuple[str, ...]
    full_scale: str


PRIMER_CLAIMS = (
    PrimerClaim(
        "ensemble-formula",
        "Averaging k models whose errors have variance V and pairwise covariance C gives "
        "MSE_ens = V/k + (k−1)/k·C: no gain when the errors are perfectly correlated, "
        "V/k when they are uncorrelated.",
        ("formula-check",),
        "Holds at eight k from 1 to 100, five correlations from −0.01 to 1 and the lower "
        "edge, for four error laws (Gaussian, Student-t, exponential, Rademacher), each "
        "within 2% (TOST, or exact where every trial is equal); a fit on 1/k recovers C "
        "and V. It needs only second moments."),
    PrimerClaim(
        "bagging",
        "Bagging averages models trained on random subsets of the data: averaging cancels "
        "their individual errors and lowers the variance.",
        ("bagging-bias-variance",),
        "Holds for bagged regression trees: the variance and the error fall. Two members "
        "are positively correlated across training sets (pooled ρ 0.38), so the bag keeps "
        "that share of a member's variance: ρσ² + (1−ρ)σ²/k, exactly."),
    PrimerClaim(
        "dropout-decorrelates",
        "Dropout actively disrupts the correlations, pushing the covariance C between the "
        "thinned networks closer to zero.",
        ("dropout-ensemble",),
        "Fails as the primer puts it: the thinned sub-networks' errors correlate at "
        "ρ = 0.67 (Friedman #1) and 0.66 (digits), far from 0. On the digits they are less "
        "correlated than the members of every real ensemble; on Friedman #1 more than "
        "independent, bagged and fixed-mask members (0.42-0.47), less only than dropout "
        "networks (0.85)."),
    PrimerClaim(
        "dropout-ensemble",
        "Training with dropout trains an ensemble of exponentially many thinned networks "
        "that share weights: an extreme, efficient form of bagging.",
        ("dropout-ensemble",),
        "Partly: on Friedman #1 one dropout network is worth only 1.19 plain networks "
        "(effective ensemble size, interval 1.01-1.36) and varies less across training "
        "sets; on the digits neither is shown. Each thinned sub-network alone is worse "
        "than a plain network, and ensembles of dropout networks still gain from "
        "averaging."),
    PrimerClaim(
        "weight-scaling",
        "Testing with the full network (inverted dropout: no scaling at inference) acts as "
        "an approximate average of the thinned networks' predictions.",
        ("weight-scaling",),
        "An approximation, exact only in special cases (a softmax layer with dropout on "
        "its inputs, a logistic unit: the normalized geometric mean). At k = 200 the "
        "arithmetic average of sampled sub-networks is as good in error rate on the digits "
        "(its edge there is undecided), far worse in log-loss and Brier score (0.246 "
        "against 0.125, 0.086 against 0.057), and 22% better on Friedman #1."),
    PrimerClaim(
        "co-adaptation",
        "Dropout breaks up co-adaptation: no unit can rely on specific other units, so the "
        "representation is redundant and no single unit is a point of failure.",
        ("co-adaptation",),
        "Only in part: removing the worst unit costs far less with dropout (every layer "
        "and task), but the units' correlation falls only in the first digits layer and "
        "rises in the other three layers; on Friedman #1 the representation concentrates "
        "on fewer directions."),
    PrimerClaim(
        "dropout-regularizes",
        "Dropout reduces overfitting; it is best used in large, deep, fully connected "
        "networks.",
        ("regularizers",),
        "Not shown for these small networks on the digits (it raises the test loss at the "
        "full split, inconclusive at 300 images); on Friedman #1 it lowers the test loss a "
        "little and narrows the gap at 200 rows as much as L2. Large networks are not "
        "tested."),
    PrimerClaim(
        "l2",
        "L2 (weight decay) forces the weights to be small, and so reduces overfitting.",
        ("regularizers",),
        "It does shrink the weights on every task (ΣW² 362 → 84 on the full digits); it "
        "lowers the test loss on Friedman #1, but not measurably on the digits."),
    PrimerClaim(
        "l1",
        "L1 drives some weights to zero: it selects features, and so reduces overfitting.",
        ("regularizers",),
        "It selects where data suffice: on Friedman #1 at 2000 rows the share of the first "
        "layer's weights on the 5 unused inputs falls from 0.47 to 0.14, and L1 gives that "
        "task's lowest test loss; at 200 rows the share barely moves, though the test loss "
        "still falls. On the digits its effect is inconclusive."),
    PrimerClaim(
        "early-stopping",
        "Early stopping halts training when the validation error starts to rise, saving "
        "the model at its best state, and so reduces overfitting.",
        ("regularizers",),
        "Helps little under a fixed, moderate budget: it hurts the full digits (+0.012 "
        "test loss) and helps Friedman #1 only slightly, less than any penalty."),
    PrimerClaim(
        "augmentation",
        "Data augmentation helps most when training data are limited.",
        ("regularizers",),
        "Rotations hurt the 8x8 digits at both sizes; input noise helps Friedman #1 at "
        "200 rows more than at 2000. The claim that it helps most with limited data is "
        "inconclusive on the digits."),
    PrimerClaim(
        "batch-norm-example",
        "The 2-D example: normalization moves a cloud centred at (10, 10) with variance 5 "
        "to (0, 0) with variance 1, where a ReLU kills half of it; a learned shift "
        "β = (2, 2) moves it where most of it passes, and γ = (3, 0.5) stretches and "
        "squashes it.",
        ("batch-norm",),
        "Holds, simulated: the means go (10, 10) → 0 (exactly) → (2, 2), the variances "
        "5 → σ²/(σ² + ε), just below 1 (exactly) → 9 and 0.25, and a ReLU passes 100%, "
        "50%, then Φ(2/3) = 74.8% and Φ(4) = 99.997% of each coordinate."),
    PrimerClaim(
        "batch-norm-faster",
        "Batch normalization allows higher learning rates: training is significantly "
        "faster.",
        ("batch-norm", "regularizers"),
        "Partly: it trains at rates where plain networks diverge, and with SGD reaches 90% "
        "validation accuracy 3.4× faster at each arm's best rate; but with Adam on the "
        "regularizers study's small networks its recorded training loss after 10 epochs "
        "is higher."),
    PrimerClaim(
        "batch-norm-regularizes",
        "The noise of mini-batch statistics acts as a mild regularizer, similar to dropout.",
        ("batch-norm", "regularizers"),
        "Holds: batch norm lowers the test loss on three of the four tasks of the "
        "regularizers study (on the 300 digits −0.023, undecided after Holm), and batch "
        "statistics give a smaller generalization gap than training-set statistics at "
        "every batch size: the noise does regularize."),
    PrimerClaim(
        "batch-norm-initialization",
        "Independence from initialization: with batch normalization the network becomes "
        "much less sensitive to the initial weights.",
        ("batch-norm",),
        "Less sensitive, yes: the spread of the test error over the initial weight scales "
        "falls from 0.95 to 0.18; independent of them, no."),
    PrimerClaim(
        "internal-covariate-shift",
        "Batch normalization fixes the internal covariate shift.",
        ("batch-norm",),
        "Holds on Santurkar et al.'s measure, the change of a layer's gradient when the "
        "layers below update: batch norm reduces it (cosine 0.70 against 0.31). Whether "
        "their noisy batch norm raises it is undecided; it trains worse (12.1% against "
        "5.3% test error)."),
)

_BY_KEY = {entry.key: entry for entry in PRIMER_CLAIMS}
#: The keys of :data:`PRIMER_CLAIMS`.
KEYS = tuple(_BY_KEY)


def primer_claim(key: str, owner: str = "primer_claim") -> PrimerClaim:
    """The :class:`PrimerClaim` named ``key``."""
    if not isinstance(key, str) or key not in _BY_KEY:
        raise ValueError(f"The 'key' parameter of {owner} must be one of {', '.join(KEYS)}; "
                         f"got {key!r}.")
    return _BY_KEY[key]


def tag(claims, key: str):
    """``claims`` (one :class:`ensim.Claim` or a list) marked as stating what primer claim
    ``key`` predicts: each holds where the primer is right. Negative controls are left
    unmarked (they test the check, not the primer); a claim marked with another key is
    refused (a claim states one prediction)."""
    from .claims import Claim

    primer_claim(key, owner="tag")
    if isinstance(claims, list):
        return [tag(c, key) for c in claims]
    if not isinstance(claims, Claim):
        raise TypeError(f"The 'claims' parameter of tag must be a Claim or a list of Claims; "
                        f"got {type(claims).__name__}.")
    if claims.primer not in (None, key):
        raise ValueError(f"The claim {claims.statement!r} is marked {claims.primer!r} "
                         f"already; tag cannot mark it {key!r} too.")
    return claims if claims.is_control else dataclasses.replace(claims, primer=key)


def primer_markdown() -> str:
    """The primer's claims as a Markdown table: what it says, where ensim measures it,
    and what the full scale finds (the table in the README)."""
    rows = ["| the primer says | measured in | at full scale |", "|---|---|---|"]
    for entry in PRIMER_CLAIMS:
        studies = ", ".join(f"`{s}`" for s in entry.studies)
        rows.append(f"| {entry.says} | {studies} | {entry.full_scale} |")
    return "\n".join(rows)
