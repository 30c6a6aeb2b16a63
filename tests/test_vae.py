"""The variational autoencoders (vae, conv_vae): KL term, reparameterized sample, training."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _configs import SMALL as TRAIN_SMALL

from aejax.assemble import train
from aejax.models import Likelihood, create_model, model_from_config
from aejax.models.objective import make_objective

SHAPE = (8, 8, 1)
VARIANTS = pytest.mark.parametrize("name", ["vae", "conv_vae"])
SMALL = TRAIN_SMALL.replace(model="vae", latent_dim=4)


def _model_and_params(name, latent_dim=3):
    arch = {"conv_features": (4, 8)} if name.startswith("conv") else {"hidden": (16,)}
    model = create_model(name, SHAPE, "bernoulli", latent_dim=latent_dim, **arch)
    x = jax.random.uniform(jax.random.key(0), (5, *SHAPE))
    params = model.init(jax.random.key(1), x)["params"]
    return model, params, x


@VARIANTS
def test_kl_term_is_the_closed_form_and_the_objective_weighs_it_by_beta(name):
    model, params, x = _model_and_params(name)
    _, aux = model.apply({"params": params}, x)
    m, lv = np.asarray(aux["mean"], np.float64), np.asarray(aux["logvar"], np.float64)
    expected = 0.5 * (np.exp(lv) + m**2 - 1.0 - lv).sum(axis=1)
    np.testing.assert_allclose(aux["terms"]["kl"], expected, rtol=1e-5)  # unweighted
    assert np.all(expected > 0)  # a random encoder is not the prior
    nll = Likelihood("bernoulli").nll(aux["decoder_output"], x)
    np.testing.assert_allclose(aux["terms"]["reconstruction"], nll, rtol=1e-6)
    # The objective owns the weight: the negative ELBO at beta = 1, beta * KL otherwise.
    for beta in (1.0, 2.5):
        loss, _ = make_objective(TRAIN_SMALL.replace(model="vae", beta=beta), 1)(aux["terms"], 0)
        np.testing.assert_allclose(loss, nll + beta * expected, rtol=1e-5)


def test_kl_matches_a_monte_carlo_estimate():
    model, params, x = _model_and_params("vae")
    _, aux = model.apply({"params": params}, x)
    mean, logvar = np.asarray(aux["mean"], np.float64), np.asarray(aux["logvar"], np.float64)
    std = np.exp(0.5 * logvar)
    z = mean + std * np.random.default_rng(0).standard_normal((200_000, *mean.shape))
    log_q = -0.5 * (((z - mean) / std) ** 2 + logvar + np.log(2 * np.pi)).sum(-1)
    log_p = -0.5 * (z**2 + np.log(2 * np.pi)).sum(-1)
    mc = (log_q - log_p).mean(0)
    np.testing.assert_allclose(aux["terms"]["kl"], mc, rtol=0.02, atol=5e-3)


@VARIANTS
def test_training_draws_z_from_the_posterior_and_eval_uses_the_mean(name):
    model, params, x = _model_and_params(name)
    n = 4000
    same = jnp.repeat(x[:1], n, axis=0)  # one example n times: n draws from q(z|x)
    _, aux = model.apply({"params": params}, same, train=True, rngs={"sample": jax.random.key(7)})
    mean, std = np.asarray(aux["mean"][0]), np.exp(0.5 * np.asarray(aux["logvar"][0]))
    z = np.asarray(aux["z"])
    np.testing.assert_allclose(z.mean(0), mean, atol=5 * std.max() / np.sqrt(n))
    np.testing.assert_allclose(z.std(0), std, rtol=0.06)
    again = model.apply({"params": params}, same, train=True, rngs={"sample": jax.random.key(7)})
    np.testing.assert_array_equal(again[1]["z"], z)  # same key, same draw
    other = model.apply({"params": params}, same, train=True, rngs={"sample": jax.random.key(8)})
    assert not np.array_equal(other[1]["z"], z)
    _, evaluated = model.apply({"params": params}, x)
    np.testing.assert_array_equal(evaluated["z"], evaluated["mean"])
    codes = model.apply({"params": params}, x, method=model.encode)
    np.testing.assert_array_equal(codes, evaluated["mean"])


@VARIANTS
def test_reconstruction_gradient_reaches_the_log_variance_through_the_sample(name):
    model, params, x = _model_and_params(name)
    latent = 3

    def recon_loss(p):  # the reconstruction term alone: only the sample links logvar
        _, aux = model.apply({"params": p}, x, train=True, rngs={"sample": jax.random.key(3)})
        return aux["terms"]["reconstruction"].mean()

    grads = jax.grad(recon_loss)(params)
    # The code layer's kernel [fan_in, 2 * latent]: the mean columns, then the logvar ones.
    enc = grads["encoder"]
    last = enc["dense_1"]["kernel"] if name == "vae" else enc["to_code"]["kernel"]
    assert float(jnp.abs(last[:, latent:]).sum()) > 0


@VARIANTS
def test_vae_trains_on_digits(digits, name):
    arch = {"conv_features": (8, 16)} if name == "conv_vae" else {}
    config = SMALL.replace(model=name, epochs=8, **arch)
    result = train(config, dataset=digits)
    losses_ = [r["train_loss"] for r in result.history]
    assert losses_[-1] < 0.75 * losses_[0], losses_
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    # Codes drawn from the prior decode to images in [0, 1] of the data's shape.
    model = model_from_config(config, digits.input_shape, "image")
    z = jax.random.normal(jax.random.key(0), (4, SMALL.latent_dim))
    samples = model.apply({"params": result.params}, z, method=model.decode)
    assert samples.shape == (4, *digits.input_shape)
    assert float(samples.min()) >= 0 and float(samples.max()) <= 1
