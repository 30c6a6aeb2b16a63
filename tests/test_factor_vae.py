"""FactorVAE: permute_dims, the discriminator's TC estimate and losses, its place in the
two-phase step, and a short training run on digits."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from aejax.models import Likelihood
from aejax.models.factor_vae import (
    FactorVAEOptions,
    TCDiscriminator,
    build,
    permute_dims,
    tc_from_probability,
    term_weights,
)
from aejax.objective import Objective
from aejax.train import init_state, make_train_step, shard

SHAPE = (8, 8, 1)
DENSE = {"latent_dim": 4, "hidden": (32,), "activation": "gelu", "dtype": "float32"}


def _term(terms, name, today):
    """A term by its name, or by the name today's Autoencoder gives an adversary's terms."""
    return terms[name] if name in terms else terms[today]


def _softplus(x):
    return np.logaddexp(0.0, x)


# --- permute_dims ------------------------------------------------------------------------------


def test_permute_dims_shuffles_each_column_on_its_own():
    b, k = 64, 5
    z = jnp.arange(b * k, dtype=jnp.float32).reshape(b, k)  # distinct values: rows recoverable
    out = np.asarray(permute_dims(z, jax.random.key(0)))
    zn = np.asarray(z)
    perms = []
    for d in range(k):
        np.testing.assert_array_equal(np.sort(out[:, d]), zn[:, d])  # the column's multiset
        perms.append(((out[:, d] - d) / k).astype(int))  # which row each entry came from
    perms = np.array(perms)
    assert all(sorted(p) == list(range(b)) for p in perms)
    # Independent permutations: no two columns moved alike, and none stayed put.
    assert len({tuple(p) for p in perms}) == k
    assert not any(np.array_equal(p, np.arange(b)) for p in perms)
    np.testing.assert_array_equal(permute_dims(z, jax.random.key(0)), out)  # a function of key
    assert not np.array_equal(permute_dims(z, jax.random.key(1)), out)


def test_permute_dims_breaks_dependence_but_keeps_marginals():
    n = 4000
    x = jax.random.normal(jax.random.key(0), (n, 1))
    z = jnp.concatenate([x, 2 * x + 1, -x], axis=1)  # perfectly dependent columns
    out = np.asarray(permute_dims(z, jax.random.key(1)), np.float64)
    corr = np.corrcoef(out, rowvar=False)
    np.testing.assert_allclose(corr[np.triu_indices(3, 1)], 0.0, atol=4 / np.sqrt(n))
    np.testing.assert_allclose(out.mean(0), np.asarray(z).mean(0), rtol=1e-5, atol=1e-5)


def test_permute_dims_on_eight_devices_equals_one():
    z = jax.random.normal(jax.random.key(0), (64, 4))
    fn = jax.jit(permute_dims)
    mesh = shard.make_mesh(8)
    eight = fn(shard.put_batch(np.asarray(z), mesh), jax.random.key(3))
    np.testing.assert_array_equal(eight, fn(z, jax.random.key(3)))


# --- the discriminator -------------------------------------------------------------------------


def test_tc_estimate_and_losses_are_their_definitions_on_known_logits():
    # No hidden layer: D(z) = sigmoid(z @ w + b), logits known in closed form.
    disc = TCDiscriminator(latent_dim=2, hidden=())
    w, b = np.array([[1.5], [-2.0]], np.float32), np.array([0.25], np.float32)
    variables = {"params": {"dense_0": {"kernel": jnp.asarray(w), "bias": jnp.asarray(b)}}}
    z = np.array([[0.0, 0.0], [1.0, 2.0], [-2.0, 1.0], [3.0, -1.0], [0.5, 0.5]], np.float32)
    logits = (z.astype(np.float64) @ w + b)[:, 0]  # 0.25, -2.25, -4.75, 6.75, 0
    d = 1 / (1 + np.exp(-logits))  # D(z), the probability of "a joint code"
    tc = disc.apply(variables, z, method=disc.generator_loss)
    np.testing.assert_allclose(tc, np.log(d / (1 - d)), rtol=1e-5, atol=1e-6)  # the definition
    np.testing.assert_allclose(tc_from_probability(d), logits, rtol=1e-6, atol=1e-6)
    assert disc.generator_term == "tc" and disc.discriminator_term == "tc_discriminator"

    rngs = {"sample": jax.random.key(4)}
    loss, stats = disc.apply(variables, z, method=disc.discriminator_loss, rngs=rngs)
    # The same rng, first draw: the permutation discriminator_loss labelled "not joint".
    perm = np.asarray(disc.apply(variables, z, method=disc.permuted, rngs=rngs), np.float64)
    assert not np.array_equal(perm, z)
    fake = (perm @ w + b)[:, 0]
    np.testing.assert_allclose(loss, -np.log(d) - np.log(1 - 1 / (1 + np.exp(-fake))), 1e-5)
    np.testing.assert_allclose(loss, _softplus(-logits) + _softplus(fake), rtol=1e-5)
    accuracy = ((logits > 0).sum() + (fake < 0).sum()) / 10
    np.testing.assert_allclose(stats["tc_discriminator_accuracy"], accuracy, rtol=1e-6)


def test_trained_discriminator_estimates_a_known_total_correlation():
    # Codes from a 2-D Gaussian with correlation rho: TC = -1/2 log(1 - rho^2) = 0.511 nats.
    # The optimal logit is log q(z) / (q(z1) q(z2)); its mean over q(z) is the TC.
    rho, batch = 0.8, 512
    chol = jnp.array([[1.0, 0.0], [rho, np.sqrt(1 - rho**2)]])
    disc = TCDiscriminator(latent_dim=2, hidden=(64, 64), activation="gelu")
    params = disc.init(jax.random.key(0), jnp.zeros((1, 2)))["params"]
    tx = optax.adam(3e-3)

    def codes(key):
        return jax.random.normal(key, (batch, 2)) @ chol.T

    def loss(p, key):
        code_key, perm_key = jax.random.split(key)
        per_example, _ = disc.apply(
            {"params": p},
            codes(code_key),
            method=disc.discriminator_loss,
            rngs={"sample": perm_key},
        )
        return per_example.mean()

    @jax.jit
    def step(p, opt, key):
        g = jax.grad(loss)(p, key)
        updates, opt = tx.update(g, opt, p)
        return optax.apply_updates(p, updates), opt

    opt = tx.init(params)
    for i in range(600):
        params, opt = step(params, opt, jax.random.key(i))
    z = jax.random.normal(jax.random.key(10_000), (20_000, 2)) @ chol.T
    estimate = float(disc.apply({"params": params}, z, method=disc.generator_loss).mean())
    truth = -0.5 * np.log(1 - rho**2)
    # Measured 0.46 (0.42 and 0.50 from other seeds): a finite discriminator falls short.
    assert truth - 0.15 < estimate < truth + 0.05, (estimate, truth)


# --- the model ---------------------------------------------------------------------------------


def _model(**options):
    return build(SHAPE, Likelihood("bernoulli"), {**DENSE, "disc_hidden": (16,), **options})


def test_model_terms_phases_and_prior():
    model = _model()
    x = jax.random.uniform(jax.random.key(0), (16, *SHAPE))
    params = model.init(jax.random.key(1), x)["params"]
    assert set(params) == {"encoder", "decoder", "adversary"}
    assert model.phases == (("discriminator", "discriminator_terms"), ("autoencoder", "__call__"))
    rngs = {"sample": jax.random.key(2)}
    _, aux = model.apply({"params": params}, x, train=True, rngs=rngs)
    logits = model.adversary.apply({"params": params["adversary"]}, aux["z"])
    np.testing.assert_allclose(_term(aux["terms"], "tc", "adversarial"), logits, rtol=1e-6)
    m, lv = np.asarray(aux["mean"], np.float64), np.asarray(aux["logvar"], np.float64)
    kl = 0.5 * (np.exp(lv) + m**2 - 1.0 - lv).sum(1)
    np.testing.assert_allclose(aux["terms"]["kl"], kl, rtol=1e-5)
    _, out = model.apply({"params": params}, x, train=True, rngs=rngs, method="discriminator_terms")
    assert _term(out["terms"], "tc_discriminator", "discriminator").shape == (16,)
    assert set(out["stats"]) == {"tc_discriminator_accuracy"}
    images = model.apply({"params": params}, 3, method=model.sample, rngs=rngs)
    assert images.shape == (3, *SHAPE)
    weights = term_weights(FactorVAEOptions(), legacy_names=False)
    assert weights == {"reconstruction": 1.0, "kl": 1.0, "tc": 10.0, "tc_discriminator": 1.0}


def test_factor_vae_trains_on_digits(digits):
    x_train = np.asarray(digits.x_train)
    options = FactorVAEOptions()
    model = _model(hidden=(64,), disc_hidden=(64, 64))
    # The paper's optimizers: the discriminator's Adam at lr 1e-4, betas (0.5, 0.9).
    tx = {
        "autoencoder": optax.adam(3e-3),
        "discriminator": optax.adam(options.disc_lr, b1=options.disc_b1, b2=options.disc_b2),
    }
    step = jax.jit(make_train_step(model, tx, Objective(term_weights(options))))
    state = init_state(model, tx, SHAPE, seed=0)
    batches = x_train[: 20 * 64].reshape(20, 64, *SHAPE)
    history = []
    for epoch in range(6):
        for i, batch in enumerate(batches):
            state, metrics = step(state, {"x": jnp.asarray(batch)}, jax.random.key(epoch * 20 + i))
            history.append(metrics)

    def mean(name, rows):
        return float(np.mean([float(m[name] / m["count"]) for m in rows]))

    assert not any(float(m["nonfinite"]) for m in history)
    first, last = history[:20], history[-20:]
    # Measured: loss 38.0 -> 28.5, reconstruction 38.8 -> 25.3 nats.
    assert mean("loss", last) < 0.8 * mean("loss", first), (mean("loss", first), mean("loss", last))
    assert mean("reconstruction", last) < 0.75 * mean("reconstruction", first)
    assert "discriminator_loss" in history[-1] and "tc_discriminator_accuracy" in history[-1]
