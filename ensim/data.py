"""Data: known truths to draw from, data sets, seeded splits, and augmentation.

:class:`KnownTruth` draws fresh training and test sets from a regression truth
with Gaussian noise (scikit-learn's bagging example, ESL's linear truth of
section 15.2, Friedman #1), and :func:`resample` draws them from a fixed data set
by the bootstrap or by subsampling; both return a :class:`Sample`.

:func:`load_dataset` returns one of the data sets the studies use (the 8x8
handwritten digits and the diabetes data shipped with scikit-learn, and
Friedman's synthetic regression problem #1) split into training, validation and
test parts by :func:`split_and_standardize`. Standardisation statistics come from
the training part only, so nothing about the validation or test points leaks into
training.

Augmentations are per-batch transforms ``augment(X_batch, rng) -> X_batch`` that
:func:`ensim.nn.train` applies to every training batch: :class:`ImageAugmenter`
(shifts, small rotations and flips of images) and :class:`GaussianNoise` (input
noise for tabular data).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ._backend import array_namespace, to_numpy
from ._random import as_seed_sequence, child_seed, numpy_generator
from ._validation import check_array, check_bool, check_choice, check_int, check_real

__all__ = ["DATASETS", "TRUTHS", "Dataset", "GaussianNoise", "ImageAugmenter", "KnownTruth",
           "Sample", "load_dataset", "resample", "split_and_standardize"]

#: Names accepted by :func:`load_dataset`, with their task.
DATASETS = {"digits": "classification", "diabetes": "regression", "friedman1": "regression"}

#: The known truths :class:`KnownTruth` draws from.
TRUTHS = ("sklearn_example", "esl_linear", "friedman1")


# ---------------------------------------------------------------------------------
# Training sets drawn from a known truth or from a fixed data set
# ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Sample:
    """A drawn data set: inputs ``X`` (n, n_features), noisy targets ``y`` (n,),
    and the noise-free truth ``f`` (n,) where it is known (else ``None``)."""

    X: np.ndarray
    y: np.ndarray
    f: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class KnownTruth:
    """A regression truth ``f`` with additive Gaussian noise, to draw fresh data sets.

    Parameters
    ----------
    name : {"sklearn_example", "esl_linear", "friedman1"}
        ``sklearn_example``: ``f(x) = exp(-x^2) + 1.5 exp(-(x-2)^2)``, ``x ~ U(-5, 5)``
        (scikit-learn's "single estimator versus bagging" example);
        ``esl_linear``: ``f(x) = sum_j x_j / sqrt(p)``, ``x ~ N(0, I_p)`` (ESL
        section 15.2, ``p = 50``); ``friedman1``: ``f(x) = 10 sin(pi x_1 x_2) +
        20 (x_3 - 0.5)^2 + 10 x_4 + 5 x_5``, ``x ~ U(0, 1)^p``
        (the function of :func:`sklearn.datasets.make_friedman1`).
    noise_sd : float
        Standard deviation of the noise, ``sigma``.
    n_features : int, optional
        ``p``: 1 for ``sklearn_example``; default 50 for ``esl_linear`` and 10 for
        ``friedman1`` (at least 5).
    """

    name: str
    noise_sd: float
    n_features: int | None = None

    def __post_init__(self):
        check_choice(self.name, "name", TRUTHS, owner="KnownTruth")
        check_real(self.noise_sd, "noise_sd", low=0, owner="KnownTruth")
        default, low = {"sklearn_example": (1, 1), "esl_linear": (50, 1),
                        "friedman1": (10, 5)}[self.name]
        p = default if self.n_features is None else self.n_features
        high = 1 if self.name == "sklearn_example" else None
        object.__setattr__(self, "n_features",
                           check_int(p, "n_features", low=low, high=high, owner="KnownTruth"))

    def f(self, X) -> np.ndarray:
        """The noise-free truth at inputs ``X`` (n, n_features).

        Raises
        ------
        ValueError
            When ``X`` is not 2-D with ``n_features`` columns, or holds NaN or
            infinite values.
        TypeError
            When ``X`` does not hold real numbers.
        """
        owner = "KnownTruth.f"
        X = check_array(X, "X", ndim=2, owner=owner)
        if X.shape[1] != self.n_features:
            raise ValueError(f"The 'X' parameter of {owner} must have n_features = "
                             f"{self.n_features} columns for the {self.name!r} truth; "
                             f"got shape {X.shape}.")
        if self.name == "sklearn_example":
            x = X[:, 0]
            return np.exp(-(x**2)) + 1.5 * np.exp(-((x - 2) ** 2))
        if self.name == "esl_linear":
            return X.sum(axis=1) / np.sqrt(self.n_features)
        return (10 * np.sin(np.pi * X[:, 0] * X[:, 1]) + 20 * (X[:, 2] - 0.5) ** 2
                + 10 * X[:, 3] + 5 * X[:, 4])

    def sample(self, n_samples: int, *, rng=None) -> Sample:
        """Draw ``n_samples`` inputs and noisy targets (inputs sorted for 1-D truths)."""
        n_samples = check_int(n_samples, "n_samples", low=1, owner="KnownTruth.sample")
        gen = numpy_generator(as_seed_sequence(rng))
        shape = (n_samples, self.n_features)
        if self.name == "sklearn_example":
            X = np.sort(gen.uniform(-5, 5, size=n_samples))[:, None]
        elif self.name == "esl_linear":
            X = gen.standard_normal(shape)
        else:
            X = gen.uniform(0, 1, size=shape)
        f = self.f(X)
        return Sample(X=X, y=f + self.noise_sd * gen.standard_normal(n_samples), f=f)


def resample(X, y, n_samples: int | None = None, *, method: str = "bootstrap",
             rng=None) -> Sample:
    """Draw a training set from a fixed data set (e.g. the diabetes data).

    Parameters
    ----------
    X : array-like, shape (n, n_features)
    y : array-like, shape (n,)
    n_samples : int, optional
        Size of the drawn set; default ``n`` for ``"bootstrap"``.
    method : {"bootstrap", "subsample"}
        Draw rows with replacement, or ``n_samples < n`` rows without.
    rng : None, int, SeedSequence or Generator

    Returns
    -------
    Sample
        With ``f=None``: the truth of a real data set is unknown.
    """
    owner = "resample"
    check_choice(method, "method", ("bootstrap", "subsample"), owner=owner)
    X, y = check_array(X, "X", owner=owner), check_array(y, "y", owner=owner)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"The 'X' and 'y' parameters of {owner} must have shapes (n, p) and "
                         f"(n,); got {X.shape} and {y.shape}.")
    n = X.shape[0]
    high = n - 1 if method == "subsample" else None
    n_samples = n if n_samples is None and method == "bootstrap" else n_samples
    n_samples = check_int(n_samples, "n_samples", low=1, high=high, owner=owner)
    gen = numpy_generator(as_seed_sequence(rng))
    rows = (gen.integers(0, n, size=n_samples) if method == "bootstrap"
            else gen.choice(n, size=n_samples, replace=False))
    return Sample(X=X[rows], y=y[rows])


# ---------------------------------------------------------------------------------
# Data sets split into training, validation and test parts
# ---------------------------------------------------------------------------------



@dataclasses.dataclass(frozen=True)
class Dataset:
    """A data set split into training, validation and test parts.

    Attributes
    ----------
    X_train, X_val, X_test : ndarray of shape (n_part, n_features)
        Standardised features: ``(X - feature_mean) / feature_scale``.
    y_train, y_val, y_test : ndarray of shape (n_part,)
        Integer labels (classification) or targets, standardised with
        ``target_mean`` and ``target_scale`` when those are not None.
    feature_mean, feature_scale : ndarray of shape (n_features,)
        Training-part mean and standard deviation of each feature, or of all
        features pooled (a scale of 0 is replaced by 1, so a constant feature
        stays at 0).
    target_mean, target_scale : float or None
        Training-part mean and standard deviation of the target, when standardised.
    name : str
    task : {"classification", "regression"}
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    target_mean: float | None = None
    target_scale: float | None = None
    name: str = ""
    task: str = "regression"


def split_and_standardize(X, y, *, val_fraction=0.2, test_fraction=0.2, stratify=False,
                          per_feature=True, standardize_target=False, rng=None, name="",
                          task="regression"):
    """Split ``(X, y)`` into training, validation and test parts, and standardise.

    Parameters
    ----------
    X : array of shape (n, n_features)
    y : array of shape (n,)
        Class labels, kept as given (integer labels stay integers), when
        ``task="classification"``; otherwise targets, converted to float64.
        Floating-point values must be finite.
    val_fraction, test_fraction : float in [0, 1)
        Fractions of the ``n`` rows held out (rounded down; their sum must leave at
        least 2 training rows). A validation fraction of 0 gives empty validation
        arrays.
    stratify : bool
        Keep class proportions in every part (classification).
    per_feature : bool
        Standardise each feature with its own mean and standard deviation (tabular
        data), or all features with one (images: pixels keep their relative
        intensities, so shifted or rotated images stay in the data's range).
    standardize_target : bool
        Also standardise ``y`` with its training mean and standard deviation
        (regression only).
    rng : None, int, SeedSequence or Generator
        Seeds the split.
    name : str
        Recorded on the result.
    task : {"regression", "classification"}
        Recorded on the result; decides how ``y`` is treated.

    Returns
    -------
    Dataset
    """
    from sklearn.model_selection import train_test_split

    owner = "split_and_standardize"
    stratify = check_bool(stratify, "stratify", owner=owner)
    per_feature = check_bool(per_feature, "per_feature", owner=owner)
    standardize_target = check_bool(standardize_target, "standardize_target", owner=owner)
    X = check_array(X, "X", ndim=2, owner=owner)
    y = np.asarray(y)
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"The 'y' parameter of {owner} must be a 1-D array with one entry per "
                         f"row of X ({X.shape[0]}); got shape {y.shape}.")
    check_choice(task, "task", ("classification", "regression"), owner=owner)
    if task == "regression":
        y = check_array(y, "y", ndim=1, owner=owner)
    else:
        if standardize_target:
            raise ValueError(f"The 'standardize_target' parameter of {owner} must be False when "
                             f"task='classification'; got {standardize_target!r}.")
        if y.dtype.kind in "fc":
            check_array(y, "y", ndim=1, owner=owner)  # NaN or infinite labels; y kept as is
    val_fraction = check_real(val_fraction, "val_fraction", low=0.0, high=1.0,
                              high_inclusive=False, owner=owner)
    test_fraction = check_real(test_fraction, "test_fraction", low=0.0, high=1.0,
                               high_inclusive=False, owner=owner)
    n = X.shape[0]
    n_val, n_test = math.floor(val_fraction * n), math.floor(test_fraction * n)
    if n - n_val - n_test < 2:
        raise ValueError(f"The 'val_fraction' and 'test_fraction' parameters of {owner} leave "
                         f"{n - n_val - n_test} training rows out of {n}; at least 2 are needed.")
    seed = as_seed_sequence(rng)
    state = [int(child_seed(seed, i).generate_state(1)[0]) for i in range(2)]
    rows = np.arange(n)
    parts = {}
    for part, size, random_state in (("test", n_test, state[0]), ("val", n_val, state[1])):
        if size == 0:
            parts[part] = rows[:0]
            continue
        rows, parts[part] = train_test_split(rows, test_size=size, random_state=random_state,
                                             stratify=y[rows] if stratify else None)
    parts["train"] = rows
    axis = 0 if per_feature else None
    mean = np.broadcast_to(X[rows].mean(axis=axis), X.shape[1:]).copy()  # (n_features,)
    scale = np.broadcast_to(X[rows].std(axis=axis), X.shape[1:]).copy()  # (n_features,)
    scale[scale == 0] = 1.0
    target_mean = target_scale = None
    if standardize_target:
        target_mean, target_scale = float(y[rows].mean()), float(y[rows].std()) or 1.0
    split = {}
    for part, index in parts.items():
        split["X_" + part] = (X[index] - mean) / scale
        split["y_" + part] = y[index] if target_mean is None else (y[index] - target_mean) / target_scale
    return Dataset(**split, feature_mean=mean, feature_scale=scale, target_mean=target_mean,
                   target_scale=target_scale, name=name, task=task)


def load_dataset(name, *, val_fraction=0.2, test_fraction=0.2, rng=None, n_samples=2000,
                 noise=1.0, standardize_target=True):
    """Load a data set and split it with :func:`split_and_standardize`.

    Parameters
    ----------
    name : {"digits", "diabetes", "friedman1"}
        ``"digits"``: 1,797 8x8 images of handwritten digits, 64 pixel features
        (0-16), 10 classes; split stratified, all pixels standardised with one
        mean and one scale. ``"diabetes"``: 442 patients, 10
        features, a disease-progression target. ``"friedman1"``:
        ``y = 10 sin(pi x1 x2) + 20 (x3 - 0.5)**2 + 10 x4 + 5 x5 + noise * N(0, 1)``
        with 10 features uniform on [0, 1] (5 of them unused), drawn by
        ``KnownTruth("friedman1", noise)``.
    val_fraction, test_fraction : float in [0, 1)
    rng : None, int, SeedSequence or Generator
        Seeds the split and, for ``"friedman1"``, the data.
    n_samples : int
        Rows drawn for ``"friedman1"``.
    noise : float >= 0
        Noise standard deviation for ``"friedman1"``.
    standardize_target : bool
        Standardise regression targets (ignored for classification).

    Returns
    -------
    Dataset
    """
    from sklearn import datasets

    check_choice(name, "name", tuple(DATASETS), owner="load_dataset")
    standardize_target = check_bool(standardize_target, "standardize_target", owner="load_dataset")
    seed = as_seed_sequence(rng)
    if name == "digits":
        X, y = datasets.load_digits(return_X_y=True)
    elif name == "diabetes":
        X, y = datasets.load_diabetes(return_X_y=True, scaled=False)
    else:
        n_samples = check_int(n_samples, "n_samples", low=3, owner="load_dataset")
        noise = check_real(noise, "noise", low=0.0, owner="load_dataset")
        sample = KnownTruth("friedman1", noise).sample(n_samples, rng=child_seed(seed, 1))
        X, y = sample.X, sample.y
    task = DATASETS[name]
    return split_and_standardize(
        X, y, val_fraction=val_fraction, test_fraction=test_fraction,
        stratify=task == "classification", per_feature=name != "digits",
        standardize_target=standardize_target and task == "regression",
        rng=child_seed(seed, 0), name=name, task=task)


class ImageAugmenter:
    """Random shifts, small rotations and flips of flattened images.

    Each image of a batch is, independently: flipped left-right with probability
    ``flip_prob``, rotated about its centre by an angle uniform in
    ``[-max_angle, max_angle]`` degrees, and shifted by whole pixels, each
    coordinate uniform in ``{-max_shift, ..., max_shift}``; pixels moved in from
    outside are background (0 on the raw scale). Rotation uses bilinear
    interpolation (:func:`scipy.ndimage.affine_transform`, ``order=1``).

    Parameters
    ----------
    image_shape : tuple (height, width), default (8, 8)
    max_shift : int >= 0, default 0
        On the 8x8 digits a one-pixel shift is an eighth of the image, and it
        costs a plain MLP accuracy rather than adding it (see ``docs/nn.md``); so
        shifts are off by default.
    max_angle : float in [0, 180], default 10
    flip_prob : float in [0, 1], default 0
        Digits are not symmetric, so flips are off by default.
    mean, scale : array of shape (height * width,), optional
        The standardisation of the inputs (``Dataset.feature_mean`` and
        ``feature_scale``): images are transformed on the raw scale, where the
        background is 0, and standardised again.
    """

    def __init__(self, image_shape=(8, 8), *, max_shift=0, max_angle=10.0, flip_prob=0.0,
                 mean=None, scale=None):
        owner = "ImageAugmenter"
        if not isinstance(image_shape, (tuple, list)) or len(image_shape) != 2:
            raise TypeError(f"The 'image_shape' parameter of {owner} must be a pair (height, "
                            f"width); got {image_shape!r}.")
        self.image_shape = tuple(check_int(s, "image_shape", low=1, owner=owner) for s in image_shape)
        self.max_shift = check_int(max_shift, "max_shift", low=0, owner=owner)
        self.max_angle = check_real(max_angle, "max_angle", low=0.0, high=180.0, owner=owner)
        self.flip_prob = check_real(flip_prob, "flip_prob", low=0.0, high=1.0, owner=owner)
        n_pixels = math.prod(self.image_shape)
        self.mean = None if mean is None else check_array(mean, "mean", ndim=1, owner=owner)
        self.scale = None if scale is None else check_array(scale, "scale", ndim=1, owner=owner)
        for name, value in (("mean", self.mean), ("scale", self.scale)):
            if value is not None and value.shape != (n_pixels,):
                raise ValueError(f"The {name!r} parameter of {owner} must have shape "
                                 f"({n_pixels},); got {value.shape}.")
        if self.scale is not None and not np.all(self.scale > 0):
            raise ValueError(f"The 'scale' parameter of {owner} must hold standard deviations "
                             f"> 0 (images are divided by it); got {float(self.scale.min()):g}.")

    def __call__(self, X, rng):
        """Augment a batch ``X`` of shape ``(batch, height * width)`` with generator ``rng``."""
        n_pixels = math.prod(self.image_shape)
        if getattr(X, "ndim", None) != 2 or X.shape[1] != n_pixels:
            raise ValueError(f"ImageAugmenter: the batch must have shape (batch, {n_pixels}) "
                             f"for images of {self.image_shape}; got "
                             f"{tuple(getattr(X, 'shape', ()))}.")
        if not isinstance(rng, np.random.Generator):
            raise TypeError("ImageAugmenter: 'rng' must be a numpy.random.Generator; got "
                            f"{type(rng).__name__}.")
        n = X.shape[0]
        angles = rng.uniform(-self.max_angle, self.max_angle, n)  # (batch,)
        shifts = rng.integers(-self.max_shift, self.max_shift + 1, size=(n, 2))  # (batch, 2)
        flips = rng.random(n) < self.flip_prob  # (batch,)
        return self.transform(X, angles, shifts, flips)

    def transform(self, X, angles, shifts, flips):
        """Apply given angles (degrees, counter-clockwise), pixel shifts (rows, columns) and flips."""
        from scipy import ndimage

        xp = array_namespace(X)
        raw = to_numpy(X).astype(np.float64)  # (batch, n_pixels)
        if self.scale is not None:
            raw = raw * self.scale
        if self.mean is not None:
            raw = raw + self.mean
        images = raw.reshape(-1, *self.image_shape)  # (batch, height, width)
        centre = (np.array(self.image_shape) - 1) / 2
        out = np.empty_like(images)
        for i, image in enumerate(images):
            if flips[i]:
                image = image[:, ::-1]
            theta = np.deg2rad(angles[i])
            # affine_transform maps output coordinates o to input coordinates
            # R(theta) (o - centre - shift) + centre, a rotation by theta after the shift.
            rotation = np.array([[np.cos(theta), np.sin(theta)], [-np.sin(theta), np.cos(theta)]])
            offset = centre - rotation @ (centre + shifts[i])
            out[i] = ndimage.affine_transform(image, rotation, offset=offset, order=1,
                                              mode="constant", cval=0.0)
        out = out.reshape(raw.shape)
        if self.mean is not None:
            out -= self.mean
        if self.scale is not None:
            out /= self.scale
        return xp.asarray(out, dtype=X.dtype)


class GaussianNoise:
    """Add independent ``Normal(0, std**2)`` noise to every input, ``X + std * Z``.

    Parameters
    ----------
    std : float >= 0
        Noise standard deviation, in the units of the (standardised) inputs.
    """

    def __init__(self, std=0.1):
        self.std = check_real(std, "std", low=0.0, owner="GaussianNoise")

    def __call__(self, X, rng):
        """Return a noisy copy of ``X``, drawing from the NumPy generator ``rng``."""
        if not isinstance(rng, np.random.Generator):
            raise TypeError("GaussianNoise: 'rng' must be a numpy.random.Generator; got "
                            f"{type(rng).__name__}.")
        xp = array_namespace(X)
        noise = rng.standard_normal(X.shape)  # (batch, n_features)
        return X + xp.asarray(self.std * noise, dtype=X.dtype)
