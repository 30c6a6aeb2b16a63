"""Training-time augmentation (aejax.data.augment): the operators' statistics, the spec grammar,
and the engine applying it before corruption, to the target too."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from _configs import SMALL
from _probe import Probe, probe_state

from aejax import Config, ConfigError, parse_corruption
from aejax.assemble import train
from aejax.data import Dataset
from aejax.data.augment import parse_augment
from aejax.train import make_train_step


def _dots(b: int, size: int = 9) -> np.ndarray:
    """``[b, size, size, 1]``: one lit pixel in the middle of each image."""
    x = np.zeros((b, size, size, 1), np.float32)
    x[:, size // 2, size // 2, 0] = 1.0
    return x


def test_shift_moves_each_image_by_at_most_n_and_reaches_every_offset():
    x = _dots(2000)
    y = np.asarray(parse_augment("shift:2")(jax.random.key(0), x))
    assert y.shape == x.shape and y.dtype == x.dtype
    np.testing.assert_array_equal(y.sum(axis=(1, 2, 3)), 1.0)  # the dot stays inside, whole
    rows, cols = np.nonzero(y[..., 0])[1:]
    offsets = set(zip((rows - 4).tolist(), (cols - 4).tolist(), strict=True))
    assert offsets == {(i, j) for i in range(-2, 3) for j in range(-2, 3)}  # all 25, no more
    counts = np.bincount((rows - 4 + 2) * 5 + (cols - 4 + 2), minlength=25)
    assert counts.min() > 2000 / 25 * 0.6  # uniform: each offset ~80 times


def test_shift_replicates_the_edge_and_zero_is_the_identity():
    x = np.zeros((64, 6, 6, 1), np.float32)
    x[:, :, 0, 0] = 1.0  # a lit left column
    y = np.asarray(parse_augment("shift:1")(jax.random.key(1), x))
    # A shift right replicates the lit column; a shift left drops it: never a half column.
    assert set(np.unique(y[..., 0].sum(axis=(1, 2)))) <= {0.0, 6.0, 12.0}
    np.testing.assert_array_equal(parse_augment("shift:0")(jax.random.key(1), x), x)


def test_flip_mirrors_at_its_rate():
    x = np.random.default_rng(0).random((4000, 4, 4, 2)).astype(np.float32)
    y = np.asarray(parse_augment("flip:0.5")(jax.random.key(2), x))
    flipped = np.all(y == x[:, :, ::-1, :], axis=(1, 2, 3))
    kept = np.all(y == x, axis=(1, 2, 3))
    assert np.all(flipped ^ kept) and abs(flipped.mean() - 0.5) < 0.03
    np.testing.assert_array_equal(parse_augment("flip:1")(jax.random.key(2), x), x[:, :, ::-1])
    np.testing.assert_array_equal(parse_augment("flip:0")(jax.random.key(2), x), x)


def test_specs_round_trip_and_bad_ones_name_the_problem():
    assert str(parse_augment(" Shift:2 + FLIP:0.5 ")) == "shift:2+flip:0.5"
    assert not parse_augment("") and not parse_augment("none")
    assert hash(parse_augment("shift:1")) == hash(parse_augment("shift:1"))
    with pytest.raises(ConfigError, match="did you mean 'shift'"):
        parse_augment("shfit:2")
    for bad in ("shift", "shift:-1", "shift:1.5", "flip:2", "flip:x"):
        with pytest.raises(ConfigError, match="expected OP:VALUE"):
            parse_augment(bad)
    with pytest.raises(ConfigError, match="augment"):
        Config(augment="rotate:3")
    assert Config().with_overrides(["augment=shift:1"]).augment == "shift:1"


def test_data_it_cannot_take_is_refused_before_tracing(digits):
    with pytest.raises(ConfigError, match="works on images"):
        parse_augment("shift:1").check((64,), "tabular")
    with pytest.raises(ConfigError, match="out of the frame"):
        parse_augment("shift:8").check((8, 8, 1))
    flat = [a.reshape(a.shape[0], -1) for a in (digits.x_train, digits.x_val, digits.x_test)]
    with pytest.raises(ConfigError, match="works on images"):
        train(SMALL.replace(augment="shift:1"), dataset=Dataset("digits", "tabular", *flat))


def test_the_step_augments_before_corrupting_and_the_target_is_augmented():
    batch = _dots(64)
    state, tx = probe_state(batch.shape)
    step = jax.jit(
        make_train_step(
            Probe(),
            tx,
            corruption=parse_corruption("gaussian:0.1"),
            augment=parse_augment("shift:2"),
        )
    )
    s1, _ = step(state, {"x": batch}, state.rng)
    seen, target = (np.asarray(s1.model_state["probe"][k]) for k in ("x", "target"))
    assert not np.array_equal(target, batch)  # moved dots, still one whole dot each
    np.testing.assert_array_equal(target.sum(axis=(1, 2, 3)), 1.0)
    # The noisy input is the noise around the target's dot, not the original's.
    lit = target == 1.0
    assert seen[lit].mean() > 0.85 and seen[~lit].mean() < 0.1
    again, _ = step(state, {"x": batch}, state.rng)  # same key, same bits
    np.testing.assert_array_equal(again.model_state["probe"]["target"], target)


def test_training_with_augmentation_learns_on_digits(digits):
    plain = train(SMALL, dataset=digits)
    run = train(SMALL.replace(augment="shift:1"), dataset=digits)
    h = run.history
    assert h[-1]["train_reconstruction"] < 0.9 * h[0]["train_reconstruction"]
    assert h[-1]["val_reconstruction"] < 0.95 * h[0]["val_reconstruction"]
    # The transform is on: the same seed without it takes other steps.
    assert h[0]["train_loss"] != plain.history[0]["train_loss"]
