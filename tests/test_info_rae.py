"""info_vae and rae: known values. The MMD of both kernels on three fixed points by hand,
info_vae's objective term by term, rae's code norm, weight decay and gradient penalty
(against ``jax.jacfwd`` and finite differences), and the options each model refuses."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _direct_train import spec_weights, train_direct

from aejax import Config
from aejax.errors import ConfigError
from aejax.models import create_model, losses
from aejax.models.info_vae import _EVAL_SEED
from aejax.models.objective import make_objective
from aejax.models.wae import mmd_imq

SHAPE = (8, 8, 1)
DENSE = {"latent_dim": 3, "hidden": (16,), "activation": "gelu", "dtype": "float32"}
# Three codes and three prior draws in 2-d. Squared distances: within z 1, 1, 2; within y
# 4, 1, 5; z to y (rows z, columns y) 0 4 1 / 1 1 2 / 1 5 4.
Z = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
Y = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, -1.0]], np.float32)


def test_imq_mmd_by_hand():
    # C = 2 * 2 = 4: k = 4 / (4 + d^2), so d^2 = 0, 1, 2, 4, 5 give 1, 4/5, 2/3, 1/2, 4/9.
    within_z = 2 * (4 / 5 + 4 / 5 + 2 / 3)  # ordered pairs
    within_y = 2 * (1 / 2 + 4 / 5 + 4 / 9)
    cross = 1 + 1 / 2 + 4 / 5 + 4 / 5 + 4 / 5 + 2 / 3 + 4 / 5 + 4 / 9 + 1 / 2
    expected = (within_z + within_y) / 6 - 2 * cross / 9
    assert math.isclose(expected, -53 / 810)
    got = float(losses.mmd(jnp.asarray(Z), jnp.asarray(Y), "imq", (1.0,)))
    np.testing.assert_allclose(got, -53 / 810, rtol=1e-6)
    # Scales sum: a second kernel at C = 8 (8 / (8 + d^2)) adds its own estimate.
    within_z8 = 2 * (8 / 9 + 8 / 9 + 8 / 10)
    within_y8 = 2 * (8 / 12 + 8 / 9 + 8 / 13)
    cross8 = 1 + 8 / 12 + 8 / 9 + 8 / 9 + 8 / 9 + 8 / 10 + 8 / 9 + 8 / 13 + 8 / 12
    two = expected + (within_z8 + within_y8) / 6 - 2 * cross8 / 9
    np.testing.assert_allclose(float(losses.mmd(Z, Y, "imq", (1.0, 2.0))), two, rtol=1e-5)
    # wae's estimator is this one.
    assert float(mmd_imq(Z, Y, (1.0, 2.0))) == float(losses.mmd(Z, Y, "imq", (1.0, 2.0)))


def test_rbf_mmd_by_hand():
    e = math.exp  # k = exp(-d^2 / 4)
    within_z = 2 * (e(-1 / 4) + e(-1 / 4) + e(-2 / 4))
    within_y = 2 * (e(-4 / 4) + e(-1 / 4) + e(-5 / 4))
    cross = 1 + e(-1) + e(-1 / 4) + e(-1 / 4) + e(-1 / 4) + e(-2 / 4) + e(-1 / 4) + e(-5 / 4)
    cross += e(-1)
    expected = (within_z + within_y) / 6 - 2 * cross / 9
    got = float(losses.mmd(jnp.asarray(Z), jnp.asarray(Y), "rbf", (1.0,)))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert abs(expected) > 0.01  # the points differ: a nonzero statistic is tested


def _batch():
    return jax.random.uniform(jax.random.key(0), (6, *SHAPE))


def _bernoulli_nll(logits, x):
    logits, x = np.asarray(logits, np.float64), np.asarray(x, np.float64)
    nll = np.logaddexp(0.0, logits) - x * logits
    return nll.reshape(len(x), -1).sum(1)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_info_vae_objective_term_by_term(kernel):
    options = {"info_alpha": 0.25, "info_lambda": 3.0, "mmd_kernel": kernel}
    model = create_model("info_vae", SHAPE, "bernoulli", **DENSE, **options)
    x = _batch()
    variables = model.init(jax.random.key(1), x[:1])
    _, aux = model.apply(variables, x)  # evaluation: z = mean, fixed prior draws
    mean, logvar = np.asarray(aux["mean"], np.float64), np.asarray(aux["logvar"], np.float64)
    kl = 0.5 * (np.exp(logvar) + mean**2 - 1.0 - logvar).sum(1)
    y = jax.random.normal(jax.random.key(_EVAL_SEED), mean.shape, jnp.float32)
    mmd = float(losses.mmd(jnp.asarray(mean, jnp.float32), y, kernel, (0.1, 0.2, 0.5, 1, 2, 5, 10)))
    recon = _bernoulli_nll(aux["decoder_output"], x)
    np.testing.assert_allclose(aux["terms"]["kl"], kl, rtol=1e-5)
    np.testing.assert_allclose(aux["terms"]["mmd"], np.full(6, mmd), rtol=1e-6)
    np.testing.assert_allclose(aux["terms"]["reconstruction"], recon, rtol=1e-5)
    loss, _ = make_objective(Config(model="info_vae", **options), 1)(aux["terms"], 0)
    expected = recon.mean() + 0.75 * kl.mean() + 2.25 * mmd  # 1 - alpha, alpha + lambda - 1
    np.testing.assert_allclose(float(loss.mean()), expected, rtol=1e-5)
    assert model.has_posterior


def test_info_vae_trains_with_the_sample_stream():
    model = create_model("info_vae", SHAPE, "bernoulli", **DENSE)
    x = _batch()
    variables = model.init(jax.random.key(1), x[:1])
    a = model.apply(variables, x, train=True, rngs={"sample": jax.random.key(3)})[1]["terms"]
    b = model.apply(variables, x, train=True, rngs={"sample": jax.random.key(4)})[1]["terms"]
    assert np.all(np.asarray(a["mmd"]) == a["mmd"][0]) and a["mmd"][0] != b["mmd"][0]


@pytest.mark.parametrize(
    ("model", "options", "match"),
    [
        ("info_vae", {"info_lambda": 1e-3}, "info_lambda"),  # pythae's: MMD weight -0.999
        ("info_vae", {"info_alpha": 1.5}, "info_alpha"),
        ("info_vae", {"mmd_kernel": "laplace"}, "mmd_kernel"),
        ("info_vae", {"info_scales": ()}, "info_scales"),
        ("rae", {"rae_reg": "sn"}, "rae_reg"),
        ("rae", {"rae_beta": -1.0}, "rae_beta"),
    ],
)
def test_bad_options_are_refused(model, options, match):
    with pytest.raises(ConfigError, match=match):
        Config(model=model, **options)


def _rae(**options):
    model = create_model("rae", SHAPE, "bernoulli", **DENSE, **options)
    x = _batch()
    return model, model.init(jax.random.key(1), x[:1]), x


def test_rae_code_norm_and_weight_decay_by_hand():
    options = {"rae_beta": 0.5, "rae_lambda": 0.1}
    model, variables, x = _rae(**options)
    _, aux = model.apply(variables, x)
    z = np.asarray(model.apply(variables, x, method=model.encode), np.float64)
    code_norm = 0.5 * (z**2).sum(1)
    decoder = variables["params"]["decoder"]
    l2 = 0.5 * sum(float((np.asarray(p, np.float64) ** 2).sum()) for p in jax.tree.leaves(decoder))
    recon = _bernoulli_nll(aux["decoder_output"], x)
    np.testing.assert_allclose(aux["terms"]["code_norm"], code_norm, rtol=1e-5)
    np.testing.assert_allclose(aux["terms"]["l2"], np.full(6, l2), rtol=1e-5)
    objective = make_objective(Config(model="rae", **options), 1)
    loss, _ = objective(aux["terms"], 0)
    expected = recon.mean() + 0.5 * code_norm.mean() + 0.1 * l2
    np.testing.assert_allclose(float(loss.mean()), expected, rtol=1e-5)
    # Weight decay regularises training; validation losses leave it out.
    val, _ = objective.for_evaluation()(aux["terms"], 0)
    np.testing.assert_allclose(float(val.mean()), expected - 0.1 * l2, rtol=1e-5)


def test_rae_gradient_penalty_is_the_decoder_jacobian_norm():
    model, variables, x = _rae(rae_reg="gp")
    _, aux = model.apply(variables, x)
    z = aux["z"]

    def decoded(zi):  # [K] -> [8, 8, 1]
        return model.apply(variables, zi[None], method=model.decode)[0]

    jac = jax.vmap(jax.jacfwd(decoded))(z)  # [B, 8, 8, 1, K]
    expected = np.asarray(jnp.sum(jnp.square(jac), axis=(1, 2, 3, 4)))
    np.testing.assert_allclose(aux["terms"]["decoder_gp"], expected, rtol=1e-5)
    # And by central differences (float64 arithmetic on float32 outputs: a loose check).
    h, zi = 1e-2, np.asarray(z[0], np.float64)
    cols = []
    for k in range(z.shape[1]):
        step = np.zeros_like(zi)
        step[k] = h
        up = np.asarray(decoded(jnp.asarray(zi + step, jnp.float32)), np.float64)
        down = np.asarray(decoded(jnp.asarray(zi - step, jnp.float32)), np.float64)
        cols.append((up - down) / (2 * h))
    np.testing.assert_allclose(sum((c**2).sum() for c in cols), expected[0], rtol=2e-2)
    assert set(aux["terms"]) == {"reconstruction", "code_norm", "decoder_gp"}


def test_rae_with_the_gradient_penalty_trains(digits):
    model = create_model("rae", SHAPE, "bernoulli", **DENSE, rae_reg="gp")
    weights = spec_weights("rae", rae_reg="gp", rae_lambda=0.01)
    train, val, _ = train_direct(model, weights, digits, epochs=2, batch_size=128)
    assert all(np.isfinite(r["loss"]) and np.isfinite(r["decoder_gp"]) for r in train)
    assert train[-1]["reconstruction"] < train[0]["reconstruction"]
    assert np.isfinite(val[-1]["loss"])
