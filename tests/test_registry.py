"""Registry-driven engine tests: every registered model, on its own tiny config.

A new registry entry is covered here with no new test code: it trains and its loss falls,
the same seed gives the same bits, 8 sharded devices equal one, the step compiles once,
and an interrupted run resumes to the bits of an uninterrupted one (every parameter
group, optimizer state and model state).
"""

import functools

import jax
import numpy as np
import pytest
from _configs import SMALL
from _trees import host_leaves

from aejax import Config
from aejax.assemble import train
from aejax.data import Dataset
from aejax.models import MODELS
from aejax.train import loop as loop_mod

NAMES = sorted(MODELS)
BASE = SMALL.replace(hidden=Config().hidden, latent_dim=Config().latent_dim)


def config_for(name: str, **changes) -> Config:
    """The model's declared tiny config on top of the shared small one."""
    return BASE.replace(model=name, **MODELS[name].test_config).replace(**changes)


@functools.cache
def tiny_ratings() -> Dataset:
    """A synthetic low-rank ratings matrix, 640 items over 48 users (I-AutoRec rows)."""
    from aejax.data.ratings import make_ratings, ratings_dataset, synthetic_ratings

    users, items, values = synthetic_ratings(48, 640, density=0.25, seed=0)
    return ratings_dataset("tiny-ratings", make_ratings(users, items, values, seed=0))


@functools.cache
def tiny_sequences() -> Dataset:
    """768 noisy sines of 16 steps, lengths 8..16 (padding exercises the masks)."""
    from aejax.data.sequence import build_sequence_dataset

    rng = np.random.default_rng(0)
    t = np.arange(16)
    x = np.sin(t[None, :] / 2.0 + rng.uniform(0, 6, (768, 1)))[..., None]
    x = x + 0.05 * rng.normal(size=x.shape)
    return build_sequence_dataset("tiny-sequences", x, lengths=rng.integers(8, 17, 768))


def data_for(name: str, digits) -> Dataset:
    """The digits as images, a standardized-looking table for tabular-only models, a
    tiny ratings matrix for ratings models, or tiny sequences for sequence models."""
    if "ratings" in MODELS[name].kinds:
        return tiny_ratings()
    if "sequence" in MODELS[name].kinds:
        return tiny_sequences()
    if "image" in MODELS[name].kinds:
        return digits
    flat = [a.reshape(a.shape[0], -1) for a in (digits.x_train, digits.x_val, digits.x_test)]
    return Dataset("digits", "tabular", *[(a - 0.3) / 0.4 for a in flat])


def _assert_same(a, b):
    la, lb = host_leaves(a), host_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(x, y)


# One epoch count for every run of a model: the step's program depends on it (the learning
# rate schedule's length), so each model compiles once on 1 device and once on 8, and every
# other run of it below is a hit in the session's compilation cache (tests/conftest.py);
# so is tests/test_vq_vae.py's run, the same config.
EPOCHS = 4


@pytest.fixture(scope="module", params=NAMES)
def name(request):
    """The registry model under test; the tests are grouped by model (module scope), so each
    model's shared runs below are built once and dropped before the next model's."""
    return request.param


@pytest.fixture(scope="module")
def reference(name, digits):
    """``(run, traces)``: the model's tiny config trained ``EPOCHS`` epochs (no workdir), with
    the times its train and eval steps were traced. Several tests read it: the loss falls,
    the step compiles once, a repeat or a resumed run gives its bits."""
    traces = {"train": 0, "eval": 0}

    def counting(kind, factory):
        def make(*args, **kwargs):
            fn = factory(*args, **kwargs)

            def wrapped(*a, **k):
                traces[kind] += 1
                return fn(*a, **k)

            return wrapped

        return make

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop_mod, "make_train_step", counting("train", loop_mod.make_train_step))
        mp.setattr(loop_mod, "make_eval_step", counting("eval", loop_mod.make_eval_step))
        run = train(config_for(name, epochs=EPOCHS), dataset=data_for(name, digits))
    return run, traces


def test_loss_falls_and_every_term_is_logged(name, digits, reference):
    result, _ = reference
    first, last = result.history[0], result.history[-1]
    assert len(result.history) == EPOCHS
    assert last["train_reconstruction"] < 0.9 * first["train_reconstruction"], result.history
    assert last["val_reconstruction"] < first["val_reconstruction"]
    assert all(np.isfinite(r["train_loss"]) for r in result.history)
    # Every unweighted term the model reports reaches the epoch record, train and val.
    x = data_for(name, digits).x_val[:2]
    variables = result.variables
    _, aux = result.model.apply(variables, x)
    for term in aux["terms"]:
        assert f"train_{term}" in last and f"val_{term}" in last, (term, sorted(last))


def test_same_seed_same_bits_and_8_devices_equal_1(name, digits, reference):
    ds = data_for(name, digits)
    config = config_for(name, epochs=EPOCHS)
    a, _ = reference
    b = train(config, dataset=ds)
    _assert_same(a.state, b.state)
    c = train(config.replace(seed=1), dataset=ds)
    assert any(
        not np.array_equal(x, y)
        for x, y in zip(host_leaves(a.params), host_leaves(c.params), strict=True)
    )
    assert jax.device_count() == 8
    eight = train(config.replace(devices=8), dataset=ds)
    for x, y in zip(host_leaves(a.state), host_leaves(eight.state), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)


def test_step_compiles_once(reference):
    result, traces = reference
    assert result.stats["steps"] == EPOCHS * result.stats["steps_per_epoch"]
    assert traces == {"train": 1, "eval": 1}


def test_interrupted_run_resumes_to_the_same_bits(name, digits, reference, tmp_path):
    ds = data_for(name, digits)
    config = config_for(name, epochs=EPOCHS)
    full, _ = reference  # uninterrupted, in another call and without a workdir

    def crash_after_one(record):
        if record["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "cut", dataset=ds, on_epoch_end=crash_after_one)
    resumed = train(config, tmp_path / "cut", dataset=ds)
    assert resumed.stats["epochs_run"] == EPOCHS - 1
    _assert_same(full.state, resumed.state)  # params, every optimizer, model state, rng
    _assert_same(full.variables, resumed.variables)  # the best parameters and model state
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]
