"""Input corruption: the operators' statistics, the spec grammar, the engine and a denoiser.

The registry-driven tests (test_registry.py) also cover ``denoising_ae`` with its default
corruption: same bits, 8 devices equal 1, compile once, resume.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _configs import SMALL
from _probe import Probe, probe_state

from aejax import Config, ConfigError, Corruption, parse_corruption
from aejax.assemble import train
from aejax.data import Dataset
from aejax.data.corruption import corruption_for
from aejax.inference import reconstruct
from aejax.models import MODELS, check_model_keys
from aejax.train import make_train_step

KEY = jax.random.key(0)


def _corrupt(spec, x, key=KEY):
    out, missing = jax.jit(parse_corruption(spec).with_mask)(key, jnp.asarray(x, jnp.float32))
    return np.asarray(out), np.asarray(missing)


def _within(rate, p, n, sigmas=5.0):
    return abs(rate - p) <= sigmas * np.sqrt(p * (1 - p) / n)


# --- the operators' statistics -----------------------------------------------------------
def test_masking_rate_per_pixel_for_images_and_per_element_for_tables():
    x = np.full((256, 16, 16, 3), 0.5, np.float32)
    out, missing = _corrupt("masking:0.25", x)
    assert out.shape == x.shape and out.dtype == np.float32
    # A pixel loses all its channels together, and exactly the missing entries are 0.
    assert np.all(missing == missing[..., :1])
    np.testing.assert_array_equal(out == 0, missing)
    np.testing.assert_array_equal(out[~missing], 0.5)
    assert _within(missing[..., 0].mean(), 0.25, missing[..., 0].size)
    table = np.ones((4096, 30), np.float32)
    out, missing = _corrupt("masking:0.1", table)
    np.testing.assert_array_equal(out == 0, missing)
    assert _within(missing.mean(), 0.1, missing.size)
    assert not np.all(missing == missing[:, :1])  # per element, not per row


def test_gaussian_noise_variance_clipping_and_no_missing():
    table = np.zeros((4000, 50), np.float32)
    out, missing = _corrupt("gaussian:0.5", table)
    assert not missing.any()
    n = out.size
    assert abs(out.mean()) < 5 * 0.5 / np.sqrt(n)
    assert out.var() == pytest.approx(0.25, rel=5 * np.sqrt(2 / n))
    assert out.min() < -1.5  # tables are not clipped
    image = np.full((500, 8, 8, 1), 0.5, np.float32)
    out, _ = _corrupt("gaussian:0.1", image)  # 5 sigma from the edges: no clipping
    assert (out - 0.5).var() == pytest.approx(0.01, rel=5 * np.sqrt(2 / out.size))
    out, _ = _corrupt("gaussian:2", image)
    assert out.min() == 0 and out.max() == 1  # images are clipped to [0, 1]


def test_salt_pepper_rate_and_balance():
    x = np.full((512, 16, 16, 3), 0.5, np.float32)
    out, missing = _corrupt("salt_pepper:0.2", x)
    assert np.all(missing == missing[..., :1]) and np.all(out == out[..., :1])
    np.testing.assert_array_equal(out != 0.5, missing)
    hits = missing[..., 0]
    assert _within(hits.mean(), 0.2, hits.size)
    salt = out[..., 0][hits]
    assert set(np.unique(salt)) == {0.0, 1.0}
    assert _within(salt.mean(), 0.5, salt.size)


def test_block_zeroes_one_square_per_image_anywhere_inside():
    b, h, w, size = 4096, 10, 12, 4
    x = np.full((b, h, w, 2), 0.7, np.float32)
    out, missing = _corrupt(f"block:{size}", x)
    np.testing.assert_array_equal(out == 0, missing)
    assert np.all(missing == missing[..., :1])
    hole = missing[..., 0]
    assert np.all(hole.sum((1, 2)) == size * size)
    rows, cols = hole.any(2), hole.any(1)  # [B, H], [B, W]: one contiguous SIZE x SIZE box
    assert np.all(rows.sum(1) == size) and np.all(cols.sum(1) == size)
    top, left = rows.argmax(1), cols.argmax(1)
    # Every position that keeps the square inside the image occurs, and no other.
    positions = set(zip(top.tolist(), left.tolist(), strict=True))
    assert positions == {(r, c) for r in range(h - size + 1) for c in range(w - size + 1)}


@pytest.mark.parametrize("f", [2, 4])
def test_downsample_is_a_mean_pool_then_nearest_upsampling_exactly(f):
    # Multiples of 1/16: the sums and the division by f*f are exact in float32.
    x = np.random.default_rng(0).integers(0, 17, (5, 8, 12, 3)).astype(np.float32) / 16
    out, missing = _corrupt(f"downsample:{f}", x)
    b, h, w, c = x.shape
    pooled = x.reshape(b, h // f, f, w // f, f, c).mean((2, 4))
    np.testing.assert_array_equal(out, np.repeat(np.repeat(pooled, f, 1), f, 2))
    assert not missing.any()


def test_downsample_by_3():
    x = np.random.default_rng(1).random((2, 9, 6, 1), np.float32)
    out, _ = _corrupt("downsample:3", x)
    pooled = x.reshape(2, 3, 3, 2, 3, 1).mean((2, 4))
    np.testing.assert_allclose(out, np.repeat(np.repeat(pooled, 3, 1), 3, 2), rtol=1e-6)


# --- composition ---------------------------------------------------------------------------
def test_operators_apply_left_to_right_with_their_own_streams():
    x = np.full((64, 8, 8, 1), 0.5, np.float32)
    masked_then_noisy, missing = _corrupt("masking:1+gaussian:0.1", x)
    assert missing.all() and (masked_then_noisy > 0).mean() > 0.3  # noise on the zeros
    noisy_then_masked, _ = _corrupt("gaussian:0.1+masking:1", x)
    np.testing.assert_array_equal(noisy_then_masked, 0)
    # The same operator twice draws twice (a fold_in per position): 1 - 0.5^2 missing.
    _, twice = _corrupt("masking:0.5+masking:0.5", np.ones((4096, 64), np.float32))
    assert _within(twice.mean(), 0.75, twice.size)
    # The missing mask is the union over the replacing operators.
    out, both = _corrupt("masking:0.3+block:3", x)
    np.testing.assert_array_equal(out == 0, both)
    assert np.all(both.sum((1, 2, 3)) >= 9) and both.mean() > 0.3


# --- the grammar ---------------------------------------------------------------------------
def test_parse_round_trips_and_is_hashable():
    c = parse_corruption(" Masking:0.2 + gaussian:0.1 ")
    assert c.ops == (("masking", 0.2), ("gaussian", 0.1))
    assert str(c) == "masking:0.2+gaussian:0.1" and parse_corruption(str(c)) == c
    assert hash(c) == hash(parse_corruption("masking:0.2+gaussian:0.1"))
    assert parse_corruption("block:14").ops == (("block", 14),)
    assert isinstance(parse_corruption("block:14").ops[0][1], int)
    for identity in ("", "none", " None "):
        assert parse_corruption(identity) == Corruption() and not parse_corruption(identity)
    assert str(Corruption()) == "none"
    x = jnp.ones((2, 4, 4, 1))
    np.testing.assert_array_equal(Corruption()(KEY, x), x)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("maskng:0.2", "unknown operator 'maskng' (did you mean 'masking'?)"),
        ("masking", "masking needs a value, masking:P"),
        ("masking:", "masking needs a value"),
        ("masking:lots", "'lots' is not a number"),
        ("masking:1.5", "P must be in [0, 1]"),
        ("salt_pepper:-0.1", "P must be in [0, 1]"),
        ("gaussian:-1", "SIGMA must be a finite number >= 0"),
        ("gaussian:inf", "SIGMA must be a finite number >= 0"),
        ("block:0", "SIZE must be an integer >= 1"),
        ("downsample:2.5", "F must be an integer >= 1"),
        ("masking:0.1+", "unknown operator ''"),
    ],
)
def test_bad_specs_name_the_problem_and_the_grammar(spec, problem):
    with pytest.raises(ConfigError, match="grammar: OP:VALUE") as info:
        parse_corruption(spec)
    assert problem in str(info.value)
    # The config refuses it with the same message.
    with pytest.raises(ConfigError, match=re.escape(problem)):
        Config(corruption=spec)


def test_what_the_data_cannot_take_is_refused_before_tracing():
    with pytest.raises(ConfigError, match="salt_pepper:0.1 needs images"):
        parse_corruption("salt_pepper:0.1").check((30,), "tabular")
    with pytest.raises(ConfigError, match="block:9 is larger than the 8 x 8 images"):
        parse_corruption("block:9").check((8, 8, 1))
    with pytest.raises(ConfigError, match="divisible by 3; the images are 8 x 8"):
        parse_corruption("downsample:3").check((8, 8, 1))
    parse_corruption("masking:0.1+gaussian:1").check((30,), "tabular")
    with pytest.raises(ConfigError, match="block:2 needs images"):
        parse_corruption("block:2")(KEY, jnp.ones((4, 30)))  # at trace time too


# --- randomness and jit --------------------------------------------------------------------
def test_same_key_same_bits_other_key_other_bits_and_jit():
    c = parse_corruption("masking:0.2+gaussian:0.1+salt_pepper:0.1+block:3")
    x = jax.random.uniform(jax.random.key(5), (16, 8, 8, 2))
    # Hashable, so it can be a static argument of jit.
    jitted = jax.jit(lambda corr, key, x: corr.with_mask(key, x), static_argnums=0)
    (a, hole), (b, _) = jitted(c, KEY, x), jitted(parse_corruption(str(c)), KEY, x)
    np.testing.assert_array_equal(a, b)
    assert hole.dtype == bool and hole.shape == x.shape and hole.any()
    assert not np.array_equal(a, jitted(c, jax.random.key(1), x)[0])


# --- the engine ----------------------------------------------------------------------------
def test_the_step_corrupts_the_input_and_keeps_the_target_clean():
    batch = np.full((64, 8, 8, 1), 0.5, np.float32)
    state, tx = probe_state(batch.shape)
    step = jax.jit(make_train_step(Probe(), tx, corruption=parse_corruption("masking:0.5")))
    s1, _ = step(state, {"x": batch}, state.rng)
    s2, _ = step(s1, {"x": batch}, state.rng)
    seen1, seen2 = (np.asarray(s.model_state["probe"]["x"]) for s in (s1, s2))
    assert set(np.unique(seen1)) == {0.0, 0.5} and _within((seen1 == 0).mean(), 0.5, 64 * 64)
    assert not np.array_equal(seen1, seen2)  # the step is folded into the key: new draws
    np.testing.assert_array_equal(s1.model_state["probe"]["target"], batch)
    plain = jax.jit(make_train_step(Probe(), tx))(state, {"x": batch}, state.rng)[0]
    np.testing.assert_array_equal(plain.model_state["probe"]["x"], batch)


def test_every_model_accepts_corruption_and_denoising_ae_has_a_default():
    for name in MODELS:
        check_model_keys(Config(model=name, corruption="gaussian:0.1"), ("corruption",))
    assert str(corruption_for(Config(model="denoising_ae"))) == "masking:0.25"
    assert str(corruption_for(Config(model="denoising_ae", corruption="gaussian:0.5"))) == (
        "gaussian:0.5"
    )
    assert not corruption_for(Config(model="denoising_ae", corruption="none"))
    assert not corruption_for(Config(model="ae"))
    cli = Config().with_overrides(["model=conv_ae", "corruption=block:4"])
    assert str(corruption_for(cli)) == "block:4"


def test_the_train_loop_refuses_what_the_data_cannot_take(digits):
    flat = [a.reshape(a.shape[0], -1) for a in (digits.x_train, digits.x_val, digits.x_test)]
    table = Dataset("digits", "tabular", *flat)
    with pytest.raises(ConfigError, match="salt_pepper:0.1 needs images"):
        train(SMALL.replace(corruption="salt_pepper:0.1"), dataset=table)
    with pytest.raises(ConfigError, match="block:9 is larger"):
        train(SMALL.replace(model="denoising_ae", corruption="block:9"), dataset=digits)


@pytest.mark.parametrize(
    "spec", ["gaussian:0.5", "masking:0.25", "salt_pepper:0.2", "block:4", "downsample:2"]
)
def test_every_operator_trains_with_a_falling_loss(spec, digits):
    history = train(SMALL.replace(corruption=spec), dataset=digits).history
    assert history[-1]["train_reconstruction"] < 0.9 * history[0]["train_reconstruction"]
    assert history[-1]["val_reconstruction"] < history[0]["val_reconstruction"]


def test_a_denoising_ae_denoises(digits):
    # gaussian:0.5, the example: 4 epochs of the default masking:0.25 are too few
    # on 8x8 digits for a clear margin (about 10 are needed).
    config = SMALL.replace(model="denoising_ae", epochs=4, corruption="gaussian:0.5")
    result = train(config, dataset=digits)
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < 0.8 * losses[0]
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    x = digits.x_test
    noisy = np.asarray(parse_corruption("gaussian:0.5")(jax.random.key(7), x))
    recon = np.asarray(reconstruct(result.model, result.variables, noisy)[0])
    noisy_mse, recon_mse = np.mean((noisy - x) ** 2), np.mean((recon - x) ** 2)
    assert recon_mse < 0.75 * noisy_mse, (recon_mse, noisy_mse)
