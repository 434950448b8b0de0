"""The keep-prob study: widths of the two sweeps, pairing across p, the claims against
direct computations, and bad settings refused before any training."""

import time

import numpy as np
import pandas as pd
import pytest

import ensim
from ensim.study import StudyError
from ensim.studies.keep_prob import Config, claims, layer_width

TINY = dict(keep_probs=(0.2, 0.4, 0.8, 1.0), width=8, kept_units=4, n_layers=1, n_seeds=3,
            max_epochs=3, learning_rate=1e-2)


@pytest.fixture(scope="module")
def tiny():
    return ensim.run("keep-prob", **TINY)


def test_the_widths_of_the_two_sweeps():
    config = Config(width=64, kept_units=32)
    assert [layer_width(config, "fixed_n", p) for p in (0.1, 0.5, 1.0)] == [64, 64, 64]
    assert [layer_width(config, "fixed_pn", p) for p in (0.1, 0.2, 0.6, 1.0)] == [320, 160, 53,
                                                                                 32]


def test_the_tables_and_pairing(tiny):
    errors = tiny.tables["errors"]
    assert len(errors) == 2 * 4 * 3 * 2
    assert errors.error.between(0, 1).all()
    widths = errors.groupby(["mode", "keep_prob"]).width.first()
    assert (widths.loc["fixed_n"] == 8).all()
    assert widths.loc["fixed_pn"].tolist() == [20, 10, 5, 4]
    # At p = 1 both sweeps have no dropout; fixed n (8 units) and fixed p*n (4) differ.
    a = errors.query("mode == 'fixed_n' and keep_prob == 1.0 and split == 'test'")
    b = errors.query("mode == 'fixed_pn' and keep_prob == 1.0 and split == 'test'")
    assert not np.array_equal(a.error.to_numpy(), b.error.to_numpy())


def test_same_seed_same_tables(tiny):
    again = ensim.run("keep-prob", **TINY)
    pd.testing.assert_frame_equal(tiny.tables["errors"], again.tables["errors"],
                                  check_exact=True)


def _table(values):
    rows = []
    for (mode, p), errors in values.items():
        for split in ("train", "test"):
            rows += [{"mode": mode, "keep_prob": p, "split": split, "seed": i, "error": e,
                      "width": 1} for i, e in enumerate(errors)]
    return pd.DataFrame(rows)


def test_the_claims_read_the_shapes_they_state():
    # Synthetic errors over 8 seeds, exact shapes: a flat band, a rise at both ends, and a
    # lower error at fixed p*n. Every claim must hold; the negative control (the same
    # numbers with the rise at p = 1 removed and the fixed-p*n advantage reversed) must
    # not. Noise sd 0.002 against effects of 0.03 or more: t > 40, so the outcome does
    # not depend on the draw (false failure below 1e-12).
    rng = np.random.default_rng(5)
    config = Config(keep_probs=(0.1, 0.4, 0.6, 0.8, 1.0), n_seeds=8)

    def noisy(level):
        return level + 0.002 * rng.standard_normal(8)

    shape = {0.1: 0.2, 0.4: 0.05, 0.6: 0.05, 0.8: 0.05, 1.0: 0.08}
    good = {("fixed_n", p): noisy(v) for p, v in shape.items()}
    good.update({("fixed_pn", p): noisy(v - (0.1 if p == 0.1 else 0)) for p, v in shape.items()})
    verdicts = [c.verdict for c in claims({"errors": _table(good)}, config)]
    assert verdicts == ["holds"] * 5
    bad = dict(good)
    bad[("fixed_n", 1.0)] = noisy(0.05)
    bad[("fixed_pn", 0.1)] = noisy(0.3)
    verdicts = [c.verdict for c in claims({"errors": _table(bad)}, config)]
    assert verdicts[1] != "holds" and verdicts[3] == "fails"


@pytest.mark.parametrize("overrides, words", [
    (dict(keep_probs=(0.0, 0.5)), ["keep_probs", "(0, 1]"]),
    (dict(keep_probs=(0.5, 1.2)), ["keep_probs", "(0, 1]", "1.2"]),
    (dict(keep_probs=(0.5,)), ["keep_probs", "at least two"]),
    (dict(band=(0.9, 0.4)), ["band", "low <= high"]),
    (dict(n_seeds=1), ["n_seeds", "at least 2"]),
])
def test_bad_settings_are_refused_before_any_training(overrides, words, tmp_path):
    start = time.monotonic()
    with pytest.raises(StudyError) as info:
        ensim.run("keep-prob", out=tmp_path / "r", **overrides)
    assert time.monotonic() - start < 5
    for word in words:
        assert word in str(info.value)
    assert not (tmp_path / "r").exists()
