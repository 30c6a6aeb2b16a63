"""Data parallelism on 8 fake CPU devices: Mesh, pmap, checkpoints across topologies."""

import jax
import jax.numpy as jnp
import numpy as np

import aejax
from aejax.train import shard
from aejax.train.checkpoint import Checkpointer
from aejax.train.pmap_compat import make_pmap_train_step, replicate, split_batch, unreplicate
from aejax.train.state import init_state

CONFIG = aejax.Config(hidden=(32,), latent_dim=4, lr=3e-3, warmup_steps=0, schedule="constant")


def _setup(digits):
    model = aejax.model_from_config(CONFIG, digits.input_shape, "image")
    tx = aejax.make_optimizer(CONFIG, 100)
    state = init_state(model, tx, digits.input_shape, seed=0)
    return model, tx, state


def _batches(digits, n=5, b=64):
    return [digits.x_train[i * b : (i + 1) * b] for i in range(n)]


def _flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


def test_mesh_step_equals_single_device(digits):
    model, tx, state = _setup(digits)
    step = jax.jit(aejax.make_train_step(model, tx))
    key = jax.random.key(1)
    single = state
    for b in _batches(digits):
        single, m1 = step(single, jnp.asarray(b), key)
    mesh = shard.make_mesh(8)
    sharded = shard.replicate(state, mesh)
    for b in _batches(digits):
        sharded, m8 = step(sharded, shard.put_batch(b, mesh), shard.replicate(key, mesh))
    assert sharded.params["encoder"]["dense_0"]["kernel"].sharding.mesh.devices.size == 8
    np.testing.assert_allclose(_flat(sharded.params), _flat(single.params), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m8["loss"], m1["loss"], rtol=1e-5)


def test_pmap_path_equals_single_device(digits):
    model, tx, state = _setup(digits)
    step = jax.jit(aejax.make_train_step(model, tx))
    key = jax.random.key(1)
    single = state
    for b in _batches(digits):
        single, _ = step(single, jnp.asarray(b), key)
    pstep = make_pmap_train_step(model, tx)
    n = jax.local_device_count()
    assert n == 8
    pstate, pkey = replicate(state, n), replicate(key, n)
    for b in _batches(digits):
        pstate, metrics = pstep(pstate, split_batch(b, n), pkey)
    np.testing.assert_allclose(
        _flat(unreplicate(pstate).params), _flat(single.params), rtol=1e-5, atol=1e-6
    )
    assert float(metrics["count"][0]) == 64.0
    assert int(unreplicate(pstate).step) == 5


def test_checkpoint_written_on_8_devices_restores_on_1(digits, tmp_path):
    _, _, state = _setup(digits)
    on8 = shard.replicate(state, shard.make_mesh(8))
    with Checkpointer(tmp_path / "ckpt") as c:
        c.save(3, on8, on8.params, {"loop": {"epoch": 1}})
    target = shard.replicate(state, shard.make_mesh(1))
    with Checkpointer(tmp_path / "ckpt") as c:
        restored, best, meta, step = c.restore(target, target.params)
    assert step == 3 and meta["loop"]["epoch"] == 1
    leaf = restored.params["encoder"]["dense_0"]["kernel"]
    assert leaf.sharding.mesh.devices.size == 1
    np.testing.assert_array_equal(_flat(restored.params), _flat(state.params))
    np.testing.assert_array_equal(jax.random.key_data(restored.rng), jax.random.key_data(state.rng))
    # And the other way round: 1 -> 2 devices.
    with Checkpointer(tmp_path / "ckpt") as c:
        on2, _, _, _ = c.restore(shard.replicate(state, shard.make_mesh(2)), target.params)
    assert on2.params["decoder"]["dense_0"]["bias"].sharding.mesh.devices.size == 2


def test_bfloat16_compute_keeps_float32_params_and_learns(digits):
    from aejax.assemble import train

    config = aejax.Config(
        hidden=(64,),
        latent_dim=8,
        epochs=4,
        lr=3e-3,
        warmup_steps=5,
        progress=False,
        devices=1,
        dtype="bfloat16",
    )
    result = train(config, dataset=digits)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(result.params))
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < 0.7 * losses[0]


def test_pmap_path_runs_the_same_phases_as_the_jit_step(digits):
    # Two parameter groups with their own optimizers (discriminator, then autoencoder).
    config = CONFIG.replace(model="adversarial_ae", latent_dim=2, disc_hidden=(16,))
    model = aejax.model_from_config(config, digits.input_shape, "image")
    optimizers = aejax.make_optimizers(config, 100, model)
    assert set(optimizers) == {"autoencoder", "discriminator"}
    state = init_state(model, optimizers, digits.input_shape, seed=0)
    objective = aejax.make_objective(config, 100)
    step = jax.jit(aejax.make_train_step(model, optimizers, objective))
    key = jax.random.key(1)
    single = state
    for b in _batches(digits, n=3):
        single, m1 = step(single, jnp.asarray(b), key)
    pstep = make_pmap_train_step(model, optimizers, objective)
    # On one device the pmap path is the jit step itself, random draws included.
    pstate, pkey = replicate(state, 1), replicate(key, 1)
    for b in _batches(digits, n=3):
        pstate, pm = pstep(pstate, split_batch(b, 1), pkey)
    np.testing.assert_allclose(
        _flat(unreplicate(pstate).params), _flat(single.params), rtol=1e-5, atol=1e-6
    )
    for name in ("loss", "discriminator_loss", "adversarial", "reconstruction"):
        np.testing.assert_allclose(pm[name][0], m1[name], rtol=1e-5)
