"""The adversarial autoencoder: its losses, its priors, its two-phase step, training, resume."""

import json
import os
import random
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _configs import SMALL
from _trees import host, host_leaves

from aejax.assemble import train
from aejax.errors import ConfigError
from aejax.models import create_model, model_from_config
from aejax.models.adversarial import LatentDiscriminator
from aejax.models.autoencoder import select_group
from aejax.models.objective import make_objective
from aejax.run import abstract_state, best_like, load_run
from aejax.train import Checkpointer, init_state, make_optimizers, make_train_step, shard
from aejax.train.state import TrainState

SHAPE = (8, 8, 1)
AAE = SMALL.replace(model="adversarial_ae", latent_dim=2, disc_hidden=(32,))


def _softplus(x):
    return np.logaddexp(0.0, x)


# --- the losses and the priors -----------------------------------------------------------------


def test_losses_are_their_formulas_on_known_logits():
    # No hidden layer: D(z) = z @ w + b, so the logits are known in closed form.
    disc = LatentDiscriminator(latent_dim=2, hidden=())
    w, b = np.array([[3.0], [-2.0]], np.float32), np.array([0.5], np.float32)
    params = {"dense_0": {"kernel": jnp.asarray(w), "bias": jnp.asarray(b)}}
    z = np.array([[0.0, 0.0], [1.0, 2.0], [-4.0, 1.0], [30.0, -10.0], [-20.0, 5.0]], np.float32)
    logits = (z.astype(np.float64) @ w + b)[:, 0]  # 0.5, -0.5, -13.5, 110.5, -69.5
    variables = {"params": params}
    np.testing.assert_allclose(disc.apply(variables, z), logits, rtol=1e-6)
    gen = disc.apply(variables, z, method=disc.generator_loss)
    np.testing.assert_allclose(gen, _softplus(-logits), rtol=1e-6, atol=1e-7)  # float32
    moderate = np.abs(logits) < 20  # -log sigmoid computed naively where it is exact
    np.testing.assert_allclose(gen[moderate], -np.log(1 / (1 + np.exp(-logits[moderate]))), 1e-6)
    assert np.isfinite(gen).all() and gen[3] < 1e-30 and gen[4] == pytest.approx(69.5)

    rngs = {"sample": jax.random.key(3)}
    loss, stats = disc.apply(variables, z, method=disc.discriminator_loss, rngs=rngs)
    # The same rng, first draw: the very prior samples discriminator_loss labelled "real".
    p = np.asarray(disc.apply(variables, 5, method=disc.sample_prior, rngs=rngs), np.float64)
    real = (p @ w + b)[:, 0]
    np.testing.assert_allclose(loss, _softplus(-real) + _softplus(logits), rtol=1e-5)
    accuracy = ((real > 0).sum() + (logits < 0).sum()) / 10
    np.testing.assert_allclose(stats["discriminator_accuracy"], accuracy, rtol=1e-6)
    assert 0 < accuracy < 1  # both kinds of mistake and of success happen here


def _prior_samples(n, **fields):
    disc = LatentDiscriminator(hidden=(4,), **fields)
    variables = disc.init(
        {"params": jax.random.key(0)}, jnp.zeros((1, fields["latent_dim"]), jnp.float32)
    )
    z = disc.apply(variables, n, method=disc.sample_prior, rngs={"sample": jax.random.key(11)})
    return disc, variables, np.asarray(z, np.float64)


def test_gaussian_prior_is_standard_normal():
    n = 40_000
    _, _, z = _prior_samples(n, latent_dim=3)
    assert z.shape == (n, 3)
    np.testing.assert_allclose(z.mean(0), 0.0, atol=5 / np.sqrt(n))
    np.testing.assert_allclose(np.cov(z.T), np.eye(3), atol=0.03)


def test_mixture_prior_has_its_components_on_the_circle():
    n, k = 60_000, 10
    disc, variables, z = _prior_samples(n, latent_dim=3, prior="mixture", components=k)
    means = np.asarray(disc.apply(variables, method=disc.mixture_means))
    angles = 2 * np.pi * np.arange(k) / k
    circle = 4.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    np.testing.assert_allclose(means[:, :2], circle, atol=2e-6)
    np.testing.assert_array_equal(means[:, 2], 0.0)
    # Means 2.47 apart, std 0.5: nearest-mean assignment errs for ~1% of samples.
    plane = z[:, :2]
    nearest = np.argmin(((plane[:, None] - means[None, :, :2]) ** 2).sum(-1), axis=1)
    shares = np.bincount(nearest, minlength=k) / n
    np.testing.assert_allclose(shares, 1 / k, atol=4 * np.sqrt(0.09 / n))
    for c in range(k):
        members = plane[nearest == c]
        np.testing.assert_allclose(members.mean(0), means[c, :2], atol=0.03)
        radial = members @ means[c, :2] / 4.0  # the coordinate along the mean's direction
        np.testing.assert_allclose(radial.std(), 0.5, rtol=0.04)
    np.testing.assert_allclose(np.linalg.norm(plane, axis=1).mean(), 4.0 + 0.25 / 8, atol=0.01)
    # The third dimension is N(0, 1), independent of the plane.
    np.testing.assert_allclose([z[:, 2].mean(), z[:, 2].std()], [0.0, 1.0], atol=0.02)
    np.testing.assert_allclose(np.corrcoef(z.T)[2, :2], 0.0, atol=0.02)


def test_mixture_prior_needs_two_code_dimensions():
    with pytest.raises(ConfigError, match="latent_dim >= 2"):
        create_model("adversarial_ae", SHAPE, latent_dim=1, prior="mixture")


def test_discriminator_alone_separates_fixed_codes_from_the_prior():
    disc = LatentDiscriminator(latent_dim=2, hidden=(16,))
    codes = 0.3 * jax.random.normal(jax.random.key(1), (256, 2)) + jnp.array([[2.0, -1.0]])
    params = disc.init(jax.random.key(0), codes)["params"]
    tx = optax.adam(1e-2)

    def loss(p, key):
        rngs = {"sample": key}
        per_example, stats = disc.apply(
            {"params": p}, codes, method=disc.discriminator_loss, rngs=rngs
        )
        return per_example.mean(), stats["discriminator_accuracy"]

    @jax.jit
    def step(p, opt, key):
        (value, acc), g = jax.value_and_grad(loss, has_aux=True)(p, key)
        updates, opt = tx.update(g, opt, p)
        return optax.apply_updates(p, updates), opt, value, acc

    opt = tx.init(params)
    first, _ = loss(params, jax.random.key(100))
    for i in range(150):
        params, opt, value, _ = step(params, opt, jax.random.key(i))
    value, accuracy = loss(params, jax.random.key(1000))  # prior samples it has not seen
    assert float(value) < 0.3 * float(first), (first, value)
    assert float(accuracy) > 0.95


# --- the two-phase step ------------------------------------------------------------------------

# Plain SGD, so that an update is -lr * gradient and a test can read which gradients reached
# which group (Adam's first step is about -lr * sign(gradient), whatever the gradient).
LR = {"autoencoder": 0.01, "discriminator": 0.5}
STEP_AE = SMALL.replace(model="ae", latent_dim=2, hidden=(16,))
STEP_AAE = STEP_AE.replace(model="adversarial_ae", disc_hidden=(16,), prior="mixture")


def _jitted_step(config):
    model = model_from_config(config, SHAPE, "image")
    opts = {g: optax.sgd(LR[g]) for g, _ in model.phases}
    return model, opts, jax.jit(make_train_step(model, opts, make_objective(config, 10)))


@pytest.fixture(scope="module")
def steps(digits):
    """The AAE, its optimizers, its first state and its jitted step at adversarial weight 0
    and 1, and the plain ae's jitted step; batches ``[3, 64, 8, 8, 1]`` of digits."""
    model, opts, step1 = _jitted_step(STEP_AAE)
    _, _, step0 = _jitted_step(STEP_AAE.replace(adversarial_weight=0.0))
    _, _, ae_step = _jitted_step(STEP_AE)
    state = init_state(model, opts, SHAPE, seed=0)
    batches = jnp.asarray(digits.x_train[:192]).reshape(3, 64, *SHAPE)
    return model, opts, state, {0.0: step0, 1.0: step1, "ae": ae_step}, batches


def _sub(a, b):
    return jax.tree.map(lambda u, v: np.asarray(u, np.float64) - np.asarray(v, np.float64), a, b)


def test_each_phase_follows_the_gradient_of_its_own_loss(steps):
    model, opts, state, step, batches = steps
    x, key = batches[0], jax.random.key(5)
    before = jax.tree.map(np.asarray, state.params)
    after, metrics = {}, None
    for w in (0.0, 1.0):
        after[w], metrics = step[w](state, {"x": x}, key)
    assert set(after[1.0].opt_state) == {"autoencoder", "discriminator"}
    assert {"loss", "discriminator_loss", "adversarial", "discriminator_accuracy"} <= set(metrics)
    # Same seed, same bits: a fresh initialization steps to every leaf of the same state.
    again, _ = step[1.0](init_state(model, opts, SHAPE, seed=0), {"x": x}, key)
    for a, b in zip(host_leaves(after[1.0]), host_leaves(again), strict=True):
        np.testing.assert_array_equal(a, b)
    p0, p1 = (jax.tree.map(np.asarray, after[w].params) for w in (0.0, 1.0))
    for name in ("adversary", "encoder", "decoder"):  # every part of the model moved
        changed = jax.tree.map(lambda a, b: not np.array_equal(a, b), before[name], p1[name])
        assert all(jax.tree.leaves(changed)), name

    # The discriminator steps first, on the codes before the step: its update does not depend
    # on how the autoencoder phase then moves the encoder, and it lowers its loss.
    jax.tree.map(np.testing.assert_array_equal, p0["adversary"], p1["adversary"])
    many = jnp.tile(x, (50, 1, 1, 1))  # 3200 prior draws against the codes: little noise

    def disc_loss(params):
        rngs = {"sample": jax.random.key(9)}  # the same draws for both parameter sets
        _, out = model.apply({"params": params}, many, method=model.discriminator_terms, rngs=rngs)
        return float(out["terms"]["discriminator"].mean())

    # Measured: 1.57 -> 1.17.
    assert disc_loss({**before, "adversary": p1["adversary"]}) < disc_loss(before) - 0.1

    # The adversarial term reaches the encoder, never the decoder; the encoder moves by
    # -lr * its gradient against the discriminator *after* the discriminator's step.
    jax.tree.map(np.testing.assert_array_equal, p0["decoder"], p1["decoder"])

    def adversarial(encoder, adversary):
        params = {**before, "encoder": encoder, "adversary": adversary}
        return model.apply({"params": params}, x)[1]["terms"]["adversarial"].mean()

    moved = _sub(p1["encoder"], p0["encoder"])
    new = jax.grad(adversarial)(before["encoder"], p1["adversary"])
    old = jax.grad(adversarial)(before["encoder"], before["adversary"])
    lr = LR["autoencoder"]
    jax.tree.map(lambda m, g: np.testing.assert_allclose(m, -lr * g, atol=2e-7), moved, new)
    gap = jax.tree.map(lambda a, b: np.abs(lr * (a - b)).max(), new, old)
    # The order of the phases is visible: the old discriminator gives another update
    # (measured: moves ~2e-3, these gaps ~2e-3, the match above ~2e-8).
    assert min(jax.tree.leaves(gap)) > 5e-4


def test_without_the_adversarial_term_the_autoencoder_steps_like_a_plain_ae(steps):
    model, _, state, step, batches = steps
    batch, key = {"x": batches[0]}, jax.random.key(5)
    ae_state = TrainState(
        step=state.step,
        params=select_group(state.params, "autoencoder", model),
        opt_state={"autoencoder": state.opt_state["autoencoder"]},
        model_state={},
        rng=state.rng,
    )
    new, metrics = step[0.0](state, batch, key)
    plain, plain_metrics = step["ae"](ae_state, batch, key)
    ours = select_group(new.params, "autoencoder", model)
    assert set(ours) == set(plain.params) == {"encoder", "decoder"}
    for a, b in zip(host_leaves(ours), host_leaves(plain.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(metrics["loss"], plain_metrics["loss"], rtol=1e-6)
    np.testing.assert_allclose(metrics["reconstruction"], plain_metrics["loss"], rtol=1e-6)
    assert float(metrics["adversarial"]) > 0  # reported, weighted 0


def test_eight_devices_step_to_the_parameters_of_one(steps):
    # (Same seed, same bits for whole runs in separate processes: the resume test.)
    assert jax.device_count() == 8
    _, _, state, step, batches = steps
    mesh = shard.make_mesh(8)
    one, eight = state, shard.replicate(state, mesh)
    for i in range(3):  # the mixture prior's draws must not depend on the batch's sharding
        key = jax.random.key(i)
        one, _ = step[1.0](one, {"x": batches[i]}, key)
        eight, _ = step[1.0](eight, {"x": shard.put_batch(np.asarray(batches[i]), mesh)}, key)
    assert len(jax.tree.leaves(eight.params)[0].sharding.device_set) == 8
    for x, y in zip(host_leaves(one.params), host_leaves(eight.params), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-5)


# --- training on digits ------------------------------------------------------------------------


def _energy_distance(a, b):
    """Energy distance between two samples ``[n, K]`` (0 iff same distribution)."""

    def mean_dist(x, y):
        return np.linalg.norm(x[:, None] - y[None], axis=-1).mean()

    return 2 * mean_dist(a, b) - mean_dist(a, a) - mean_dist(b, b)


def test_codes_move_toward_the_prior(digits):
    # (That both phases compile into one step is checked for every model in test_registry.)
    config = AAE.replace(epochs=8)
    plain = train(config.replace(adversarial_weight=0.0), dataset=digits)
    result = train(config, dataset=digits)
    assert result.stats["steps"] == 8 * result.stats["steps_per_epoch"] > 100

    hist = result.history
    # Measured: accuracy 0.70 -> 0.84 -> ~0.78 as the encoder catches up.
    assert max(r["train_discriminator_accuracy"] for r in hist) > 0.75, hist
    model = model_from_config(config, SHAPE, "image")
    prior = np.random.default_rng(0).standard_normal((1000, 2))

    def distance(params):
        z = model.apply({"params": params}, digits.x_train[:1000], method=model.encode)
        return _energy_distance(np.asarray(z, np.float64), prior)

    # Measured: 0.42 with the adversary vs 2.9 without (codes off-centre, squeezed).
    adversarial, unconstrained = distance(result.params), distance(plain.params)
    assert adversarial < 0.35 * unconstrained, (adversarial, unconstrained)
    # The price in reconstruction is small (measured 24.7 vs 24.5 nats).
    assert hist[-1]["train_reconstruction"] < 1.05 * plain.history[-1]["train_reconstruction"]
    assert hist[-1]["val_loss"] < hist[0]["val_loss"]
    # Generation decodes draws from the prior the codes were matched to.
    rngs = {"sample": jax.random.key(0)}
    images = model.apply({"params": result.params}, 4, method=model.sample, rngs=rngs)
    assert images.shape == (4, *SHAPE) and 0 <= float(images.min()) <= float(images.max()) <= 1


# --- resume after SIGKILL ----------------------------------------------------------------------

EPOCHS, STEPS_PER_EPOCH = 6, 20  # digits: 1293 training images // batch 64
LAST = EPOCHS * STEPS_PER_EPOCH


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("aae-cli")
    npy = root / "digits.npy"  # the digits' images and split, without scikit-learn per process
    np.save(npy, (load_digits().images / 16.0).astype(np.float32))
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(root / "jax-cache"),  # only the first process compiles
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
    )
    return env, npy


def _cmd(npy, workdir):
    return [
        sys.executable, "-m", "aejax.cli", "train", "--model", "adversarial_ae",
        "--data", str(npy), "--latent-dim", "2", "--set", "hidden=32", "--set", "disc_hidden=16",
        "--epochs", str(EPOCHS), "--batch-size", "64", "--devices", "1", "--no-progress",
        "--set", "checkpoint_every=1", "--workdir", str(workdir),
    ]  # fmt: skip


def _committed(workdir):
    d = workdir / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(
        int(p.name) for p in d.iterdir() if p.name.isdigit() and (p / "commit_success.txt").exists()
    )


def _final_checkpoint(workdir):
    config, model, _, _ = load_run(workdir)
    state = abstract_state(model, make_optimizers(config, 1, model), model.input_shape, config.seed)
    with Checkpointer(workdir / "checkpoints", read_only=True) as c:
        return c.restore(state, best_like(state))


def _records(workdir):
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "epoch_seconds"} for x in lines]


def test_killed_run_resumes_to_the_uninterrupted_checkpoint(cli_env, tmp_path):
    env, npy = cli_env
    reference, workdir = tmp_path / "ref", tmp_path / "run"
    # First, so that it fills the compilation cache the two others then read.
    proc = subprocess.run(_cmd(npy, reference), env=env, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()
    log = tmp_path / "killed.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(_cmd(npy, workdir), env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 240
        while not _committed(workdir):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"run ended or hung before its first checkpoint: {log.read_text()}")
            time.sleep(0.005)
        time.sleep(random.Random(20160525).uniform(0.0, 0.06))  # within the next ~2 epochs
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    resumed_from = _committed(workdir)[-1]
    assert 0 < resumed_from < LAST

    proc = subprocess.run(
        [*_cmd(npy, workdir), "--json"], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["epochs_run"] == EPOCHS - resumed_from // STEPS_PER_EPOCH
    state, best, meta, step = _final_checkpoint(workdir)
    ref_state, ref_best, ref_meta, ref_step = _final_checkpoint(reference)
    assert step == ref_step == LAST and int(state.step) == LAST
    assert set(state.params) == {"adversary", "encoder", "decoder"}
    assert set(state.opt_state) == {"autoencoder", "discriminator"}
    assert jax.tree.structure(state) == jax.tree.structure(ref_state)
    # Both parameter groups, both Adam states, the step and the rng, bit for bit.
    for x, y in zip(
        jax.tree.leaves((state, best)), jax.tree.leaves((ref_state, ref_best)), strict=True
    ):
        np.testing.assert_array_equal(host(x), host(y))
    assert meta["loop"] == ref_meta["loop"]
    assert _records(workdir) == _records(reference)
