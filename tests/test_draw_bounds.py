"""Likelihood bounds of models that draw ``q(z|x)`` themselves (``bounds.has_draw``): svae
(vMF posterior, uniform prior on the sphere) and poincare_vae (wrapped normals on the
ball). K = 1 gives the ELBO of the same draw, the bound rises with K on a briefly trained
model, values do not depend on the chunk size, and the densities have their hand values."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from aejax import bounds, evaluate
from aejax.models import _hyperbolic as H
from aejax.models import create_model
from aejax.models.svae import VMFCode, vmf_log_density

SHAPE = (4, 4, 1)


@functools.cache
def _trained(name):
    """A tiny ``name`` model trained 100 Adam steps on 64 fixed binary 4x4 images."""
    model = create_model(name, SHAPE, "bernoulli", hidden=(16,), latent_dim=3)
    rng = np.random.default_rng(0)
    protos = rng.random((16, *SHAPE)) < 0.5  # 16 prototypes, each pixel flipped w.p. 0.2
    x = np.logical_xor(protos[rng.integers(0, 16, 64)], rng.random((64, *SHAPE)) < 0.2)
    x = x.astype(np.float32)
    variables = model.init({"params": jax.random.key(1), "sample": jax.random.key(2)}, x[:2])
    opt = optax.adam(1e-2)

    def loss(p, key):
        _, aux = model.apply({"params": p}, x, train=True, rngs={"sample": key})
        return sum(jnp.mean(t) for t in aux["terms"].values())

    def step(carry, key):
        p, s = carry
        g = jax.grad(loss)(p, key)
        u, s = opt.update(g, s, p)
        return (optax.apply_updates(p, u), s), None

    params = variables["params"]
    keys = jax.random.split(jax.random.key(3), 100)
    (params, _), _ = jax.jit(lambda c: jax.lax.scan(step, c, keys))((params, opt.init(params)))
    return model, {"params": params}, x


@pytest.mark.parametrize("name", ["svae", "poincare_vae"])
def test_bounds_of_a_drawn_posterior(name):
    model, variables, x = _trained(name)
    assert model.has_posterior and bounds.has_draw(model) and not model.analytic_kl
    assert evaluate.has_posterior(model)
    key = jax.random.key(4)
    run = functools.partial(bounds.bounds, model, variables, x, key=key, batch_size=12)
    by_k = {k: run(k=k, chunk=10) for k in (1, 10, 100)}  # one compilation serves every k
    # K = 1: the IW bound is the ELBO of the same draw
    np.testing.assert_allclose(by_k[1]["iw"], by_k[1]["elbo"], rtol=1e-6, atol=1e-5)
    iw = {k: b["iw"].mean() for k, b in by_k.items()}
    assert iw[1] < iw[10] < iw[100] < 0.0  # binary pixels: log p(x) <= 0
    assert iw[1] > -math.prod(SHAPE) * math.log(2.0) * 2
    assert by_k[100]["iw"].mean() >= by_k[100]["elbo"].mean()
    # another chunk size: the same draws, the same values (chunk 1 and 12 rows: the
    # compilation posterior_report's k = 1 reuses)
    other = run(k=10, chunk=1)
    for field in ("iw", "elbo", "kl"):
        np.testing.assert_allclose(other[field], by_k[10][field], rtol=1e-6, atol=2e-6)
    report = bounds.posterior_report(model, variables, x, key)  # the summary's test ELBO
    np.testing.assert_allclose(report["elbo"], by_k[1]["elbo"].mean(), rtol=1e-6)
    assert report["latent_units"] == 3 and 0 <= report["active_units"] <= 3


def test_svae_densities_by_hand():
    code = VMFCode(3)
    z = jnp.asarray([[0.0, 0.6, 0.8], [1.0, 0.0, 0.0]], jnp.float32)
    np.testing.assert_allclose(code.log_prior(z), [-math.log(4.0 * math.pi)] * 2, rtol=1e-6)
    # m = 3: vMF(z; mu, kappa) = kappa / (4 pi sinh kappa) exp(kappa mu.z)
    mu = jnp.asarray([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]], jnp.float32)
    kappa = jnp.asarray([2.5, 40.0], jnp.float32)
    cos = np.asarray([0.0, 0.0])
    want = [
        math.log(k / (4 * math.pi * math.sinh(k))) + k * c
        for k, c in zip([2.5, 40.0], cos, strict=True)
    ]
    np.testing.assert_allclose(vmf_log_density(z, mu, kappa), want, rtol=2e-6)


@pytest.mark.parametrize("name", ["svae", "poincare_vae"])
def test_prior_over_posterior_weights_average_one(name):
    # E_q[p(z) / q(z|x)] = 1 when log q and log p are densities of one base measure.
    model = create_model(name, SHAPE, "bernoulli", hidden=(16,), latent_dim=3)
    h = jnp.asarray([[0.3, -0.2, 0.5, -0.4, 0.1, 0.2]], jnp.float32)[:, : model.code.features]
    keys = jax.random.split(jax.random.key(0), 5000)[:, None]
    z, log_q = jax.jit(model.code.posterior_draw)(h, keys)
    w = np.exp(np.asarray(model.code.log_prior(z) - log_q, np.float64))
    assert abs(w.mean() - 1.0) < 4 * w.std() / math.sqrt(w.size) + 1e-3, (w.mean(), w.std())


def test_poincare_active_units_read_the_priors_tangent_coordinates():
    # the wrapped prior draws z = exp_0(v / 2), v ~ N(0, I): unit_coordinates gives v back
    code = create_model("poincare_vae", SHAPE, "bernoulli", hidden=(16,), latent_dim=2).code
    v = jnp.asarray([[0.3, -1.2], [2.0, 0.5]], jnp.float32)
    z = H.exp0(0.5 * v, code.curvature)
    np.testing.assert_allclose(code.unit_coordinates(z), v, rtol=1e-5, atol=1e-6)
