"""Data sets, splits with train-only standardisation, and augmentation."""

import numpy as np
import pytest

from ensim._random import as_seed_sequence, child_seed
from ensim.data import (
    GaussianNoise,
    ImageAugmenter,
    KnownTruth,
    Sample,
    load_dataset,
    resample,
    split_and_standardize,
)


@pytest.mark.parametrize("name, n_rows, n_features", [
    ("digits", 1797, 64), ("diabetes", 442, 10), ("friedman1", 2000, 10)])
def test_load_dataset_splits_every_row_once(name, n_rows, n_features):
    data = load_dataset(name, rng=0)
    sizes = [data.X_train.shape[0], data.X_val.shape[0], data.X_test.shape[0]]
    assert sum(sizes) == n_rows and sizes[1] == sizes[2] == int(0.2 * n_rows)
    assert data.X_train.shape[1] == n_features
    # Undo the standardisation: the three parts together are the original rows, once each.
    from sklearn import datasets

    if name == "friedman1":
        # Friedman #1 is drawn by KnownTruth, from child 1 of the seed (child 0 splits).
        seed = child_seed(as_seed_sequence(0), 1)
        original = KnownTruth("friedman1", 1.0).sample(2000, rng=seed).X
    else:
        original = (datasets.load_digits() if name == "digits"
                    else datasets.load_diabetes(scaled=False)).data
    raw = np.concatenate([data.X_train, data.X_val, data.X_test]) * data.feature_scale + data.feature_mean

    def sort_rows(a):
        return a[np.lexsort(a.T[::-1])]

    np.testing.assert_allclose(sort_rows(np.round(raw, 8)), sort_rows(original), atol=1e-8)


def test_standardisation_uses_the_training_part_only():
    data = load_dataset("diabetes", rng=1)
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(data.X_train.std(axis=0), 1, rtol=1e-12)
    np.testing.assert_allclose(data.y_train.mean(), 0, atol=1e-12)
    # Negative control: the held-out parts are not exactly centred (they did not
    # contribute to the statistics).
    assert np.abs(data.X_test.mean(axis=0)).max() > 1e-3
    assert np.abs(data.X_val.mean(axis=0)).max() > 1e-3


def test_digits_pixels_share_one_standardisation():
    data = load_dataset("digits", rng=1)
    assert np.ptp(data.feature_mean) == 0 and np.ptp(data.feature_scale) == 0
    np.testing.assert_allclose(data.X_train.mean(), 0, atol=1e-12)
    np.testing.assert_allclose(data.X_train.std(), 1, rtol=1e-12)


def test_constant_feature_keeps_unit_scale():
    X = np.column_stack([np.arange(10.0), np.full(10, 3.0)])
    data = split_and_standardize(X, np.arange(10.0), val_fraction=0.2, test_fraction=0.2, rng=0)
    assert data.feature_scale[1] == 1.0
    np.testing.assert_array_equal(data.X_train[:, 1], 0.0)


def test_digits_split_is_stratified_and_seeded():
    a, b, c = (load_dataset("digits", rng=s) for s in (5, 5, 6))
    np.testing.assert_array_equal(a.X_train, b.X_train)
    assert not np.array_equal(a.y_train, c.y_train)
    # Stratified: every class has 179 or 180 of 1797 digits (~10%); each part keeps it within a row.
    for y, n in ((a.y_val, 359), (a.y_test, 359)):
        counts = np.bincount(y, minlength=10)
        full = np.bincount(load_dataset("digits", val_fraction=0.0, test_fraction=0.0, rng=0).y_train)
        assert np.all(np.abs(counts - full * n / 1797) <= 1)


def test_split_rejects_bad_fractions_and_non_finite_data():
    X, y = np.ones((10, 2)), np.arange(10.0)
    with pytest.raises(ValueError, match=r"'val_fraction' parameter of split_and_standardize must be "
                                         r"in \[0, 1\); got 1"):
        split_and_standardize(X, y, val_fraction=1.0)
    with pytest.raises(ValueError, match="leave 0 training rows out of 10"):
        split_and_standardize(X, y, val_fraction=0.5, test_fraction=0.5)
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="'X' parameter of split_and_standardize must hold only finite"):
        split_and_standardize(X, y)
    with pytest.raises(ValueError, match="'name' parameter of load_dataset must be one of"):
        load_dataset("mnist")


@pytest.mark.parametrize("stratify", [False, True])
def test_classification_labels_stay_integers(stratify):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((60, 3)), np.repeat(np.arange(3, dtype=np.int64), 20)
    X[:, 0] = np.arange(60)  # row ids survive standardisation in rank order
    data = split_and_standardize(X, y, stratify=stratify, task="classification", rng=0)
    for X_part, y_part in ((data.X_train, data.y_train), (data.X_val, data.y_val),
                           (data.X_test, data.y_test)):
        assert y_part.dtype == np.int64
        rows = np.rint(X_part[:, 0] * data.feature_scale[0] + data.feature_mean[0]).astype(int)
        np.testing.assert_array_equal(y_part, y[rows])
    # Negative control: regression targets are converted to float64.
    assert split_and_standardize(X, y, rng=0).y_train.dtype == np.float64


def test_split_rejects_bad_task_and_labels():
    X, y = np.ones((10, 2)), np.arange(10) % 2
    with pytest.raises(ValueError, match=r"'task' parameter of split_and_standardize must be one "
                                         r"of 'classification', 'regression'; got 'ranking'"):
        split_and_standardize(X, y, task="ranking")
    with pytest.raises(ValueError, match=r"'standardize_target' parameter of split_and_standardize "
                                         r"must be False when task='classification'; got True"):
        split_and_standardize(X, y, task="classification", standardize_target=True)
    labels = y.astype(float)
    labels[3] = np.nan
    with pytest.raises(ValueError, match=r"'y' parameter of split_and_standardize must hold only "
                                         r"finite values; got 1 NaN"):
        split_and_standardize(X, labels, task="classification")


# ----------------------------------------------------------- augmentation
def _image():
    return np.arange(64.0).reshape(1, 64)


def test_no_transform_is_identity():
    X = np.random.default_rng(0).standard_normal((5, 64))
    out = ImageAugmenter(max_shift=0, max_angle=0.0)(X, np.random.default_rng(1))
    np.testing.assert_allclose(out, X, rtol=1e-12, atol=1e-12)


def test_quarter_turn_flip_and_shift_are_exact():
    augmenter, image = ImageAugmenter(), _image()
    no_shift, no_flip = np.zeros((1, 2), int), np.array([False])
    turned = augmenter.transform(image, np.array([90.0]), no_shift, no_flip)
    np.testing.assert_allclose(turned.reshape(8, 8), np.rot90(image.reshape(8, 8)), atol=1e-12)
    flipped = augmenter.transform(image, np.array([0.0]), no_shift, np.array([True]))
    np.testing.assert_array_equal(flipped.reshape(8, 8), image.reshape(8, 8)[:, ::-1])
    shifted = augmenter.transform(image, np.array([0.0]), np.array([[1, -2]]), no_flip).reshape(8, 8)
    expected = np.zeros((8, 8))
    expected[1:, :6] = image.reshape(8, 8)[:7, 2:]  # down one row, left two columns, 0 moved in
    np.testing.assert_array_equal(shifted, expected)


def test_augmenter_works_on_the_raw_scale_of_standardised_data():
    # A shift brings in background: 0 on the raw scale, -mean/scale once standardised.
    data = load_dataset("digits", rng=0)
    augmenter = ImageAugmenter(mean=data.feature_mean, scale=data.feature_scale)
    X = data.X_train[:3]
    out = augmenter.transform(X, np.zeros(3), np.tile([[0, 1]], (3, 1)), np.zeros(3, bool))
    raw_in = X * data.feature_scale + data.feature_mean
    raw_out = out * data.feature_scale + data.feature_mean
    np.testing.assert_allclose(raw_out.reshape(3, 8, 8)[:, :, 1:], raw_in.reshape(3, 8, 8)[:, :, :-1],
                               atol=1e-12)
    np.testing.assert_allclose(raw_out.reshape(3, 8, 8)[:, :, 0], 0, atol=1e-12)


def test_random_shifts_stay_within_max_shift():
    rng = np.random.default_rng(3)
    image = _image()
    out = ImageAugmenter(max_shift=1, max_angle=0.0)(np.repeat(image, 50, axis=0), rng)
    augmenter, seen = ImageAugmenter(), set()
    for row in out:
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                moved = augmenter.transform(image, np.zeros(1), np.array([[dy, dx]]), np.zeros(1, bool))
                if np.array_equal(moved[0], row):
                    seen.add((dy, dx))
                    break
            else:
                continue
            break
        else:
            pytest.fail("an augmented image is not a shift by at most one pixel")
    assert len(seen) >= 5  # 50 draws over 9 shifts: all but 4 missing has probability < 1e-6
    # Negative control: with max_shift = 0 every image is the original, one shift only.
    still = ImageAugmenter(max_shift=0, max_angle=0.0)(np.repeat(image, 50, axis=0), rng)
    assert np.all(still == image)


def test_gaussian_noise_has_its_standard_deviation():
    # 10**6 draws: the sample s.d. has SE ~ std / sqrt(2 N) = 7e-5 (for std 0.1);
    # two |z| < 4 checks (s.d. and mean) fail by chance with probability 1.3e-4.
    X = np.zeros((1000, 1000))
    noise = GaussianNoise(0.1)(X, np.random.default_rng(0))
    se = 0.1 / np.sqrt(2 * X.size)
    assert abs(noise.std() - 0.1) < 4 * se and abs(noise.mean()) < 4 * 0.1 / np.sqrt(X.size)
    assert abs(noise.std() - 0.101) > 4 * se  # negative control: a 1% wrong s.d. fails
    assert abs(noise.mean() - 0.001) > 4 * 0.1 / np.sqrt(X.size)   # and a mean of 0.001


def test_augmenter_rejects_bad_parameters():
    with pytest.raises(ValueError, match=r"'max_angle' parameter of ImageAugmenter must be in \[0, 180\]"):
        ImageAugmenter(max_angle=200.0)
    with pytest.raises(ValueError, match=r"'mean' parameter of ImageAugmenter must have shape \(64,\)"):
        ImageAugmenter(mean=np.zeros(10))
    with pytest.raises(ValueError, match=r"'std' parameter of GaussianNoise must be in \[0, inf\]"):
        GaussianNoise(-1.0)


def test_known_truths_and_resampling():
    sample = KnownTruth("sklearn_example", noise_sd=0.1).sample(50, rng=0)
    assert sample.X.shape == (50, 1) and np.all(np.diff(sample.X[:, 0]) >= 0)
    x = np.array([[0.0], [2.0]])
    np.testing.assert_allclose(KnownTruth("sklearn_example", 0.1).f(x),
                               [1 + 1.5 * np.exp(-4), np.exp(-4) + 1.5])
    esl = KnownTruth("esl_linear", noise_sd=1.0)
    np.testing.assert_allclose(esl.f(np.ones((1, 50))), [np.sqrt(50)])
    from sklearn.datasets import make_friedman1
    X, y = make_friedman1(n_samples=5, noise=0.0, random_state=0)
    np.testing.assert_allclose(KnownTruth("friedman1", noise_sd=1.0).f(X), y)
    boot = resample(sample.X, sample.y, rng=1)
    assert isinstance(boot, Sample) and boot.f is None and boot.X.shape == (50, 1)
    sub = resample(sample.X, sample.y, 20, method="subsample", rng=1)
    assert len(np.unique(sub.X[:, 0])) == 20


def test_known_truth_draws_are_golden():
    # The studies' training and test sets, rebuilt from their documented recipe with
    # NumPy alone: SFC64 on SeedSequence(seed), uniform inputs (standard normal for
    # esl_linear, sorted uniform on [-5, 5] for sklearn_example), then the noise, with
    # Friedman's formula written out here.
    sample = KnownTruth("friedman1", 1.0).sample(37, rng=0)
    gen = np.random.Generator(np.random.SFC64(np.random.SeedSequence(0)))
    X = gen.uniform(0, 1, size=(37, 10))
    f = (10 * np.sin(np.pi * X[:, 0] * X[:, 1]) + 20 * (X[:, 2] - 0.5) ** 2 + 10 * X[:, 3]
         + 5 * X[:, 4])
    np.testing.assert_array_equal(sample.X, X)
    np.testing.assert_allclose(sample.f, f, rtol=1e-14)
    np.testing.assert_allclose(sample.y, f + gen.standard_normal(37), rtol=1e-14)
    np.testing.assert_array_equal(sample.f, KnownTruth("friedman1", 0.0).f(sample.X))
    gen = np.random.Generator(np.random.SFC64(np.random.SeedSequence(5)))
    X = gen.standard_normal((20, 50))
    esl = KnownTruth("esl_linear", 0.5).sample(20, rng=5)
    np.testing.assert_array_equal(esl.X, X)
    np.testing.assert_allclose(esl.y, X.sum(axis=1) / np.sqrt(50)
                               + 0.5 * gen.standard_normal(20), rtol=1e-13, atol=1e-13)
    gen = np.random.Generator(np.random.SFC64(np.random.SeedSequence(6)))
    x = np.sort(gen.uniform(-5, 5, size=15))
    np.testing.assert_array_equal(KnownTruth("sklearn_example", 0.1).sample(15, rng=6).X[:, 0], x)
    # And NumPy's own streams: these first values would change if SFC64, SeedSequence or
    # the uniform draw changed, which would change every study's numbers.
    assert sample.X[0, :3].tolist() == [0.5686892493917326, 0.23483041728695253,
                                        0.39642143170337907]
    assert sample.y[:2].tolist() == [8.322804375899507, 9.889849752061432]


def test_known_truth_and_resample_refuse_bad_parameters():
    with pytest.raises(ValueError, match="'name' parameter of KnownTruth"):
        KnownTruth("sine", 0.1)
    with pytest.raises(ValueError, match="'noise_sd' parameter of KnownTruth"):
        KnownTruth("friedman1", -1.0)
    with pytest.raises(ValueError, match=r"'n_features' parameter of KnownTruth must be in "
                                         r"\[5, inf\]; got 3"):
        KnownTruth("friedman1", 1.0, n_features=3)
    with pytest.raises(ValueError, match="'n_samples' parameter of resample"):
        resample(np.ones((150, 2)), np.ones(150), 150, method="subsample")
    # Negative control: one row fewer is a valid subsample.
    assert resample(np.ones((150, 2)), np.ones(150), 149, method="subsample").X.shape == (149, 2)


@pytest.mark.parametrize("X, error, message", [
    (np.ones((3, 4)), ValueError, r"'X' parameter of KnownTruth.f must have n_features = 50 "
                                  r"columns .* got shape \(3, 4\)"),
    (np.ones(50), ValueError, r"'X' parameter of KnownTruth.f must be a 2-D array"),
    (np.full((2, 50), np.nan), ValueError, "finite"),
    (np.ones((2, 50)) * 1j, TypeError, "real numbers; got complex"),
])
def test_known_truth_refuses_bad_inputs(X, error, message):
    truth = KnownTruth("esl_linear", 1.0)
    with pytest.raises(error, match=message):
        truth.f(X)
    # Negative control: the right shape is accepted.
    assert truth.f(np.zeros((2, 50))).shape == (2,)
