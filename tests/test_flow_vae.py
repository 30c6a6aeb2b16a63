"""flow_vae: each flow layer's log-determinant against ``jacfwd`` + ``slogdet``, the planar
constraint, MADE's and IAF's triangular Jacobians, the bound the model reports and the
IW-k bound of ``aejax.bounds`` against the flow posterior's density computed by hand, and
``flow_length = 0`` as the VAE. The registry tests (tests/test_registry.py) train it."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from aejax import bounds
from aejax.models import create_model
from aejax.models.flow_vae import _EVAL_SEED, IAFStep, Planar, Radial
from aejax.models.made import MADE, hidden_degrees, input_degrees, mask

SHAPE = (5, 5, 1)
DENSE = {"latent_dim": 3, "hidden": (16,), "activation": "gelu", "dtype": "float32"}
B = 4


def random_params(module, seed, *args, scale=0.7):
    """``{"params": ...}`` of ``module`` for inputs ``args``, every leaf ``scale * N(0, 1)``
    (MADE's output layer would start at zero); shapes by ``eval_shape``, values by numpy:
    no compilation."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(module.init, {"params": jax.random.key(0)}, *args).get("params", {})
    draw = lambda v: jnp.float32(scale * rng.standard_normal(v.shape))  # noqa: E731
    return {"params": jax.tree.map(draw, shapes)}


def jacobians(fn, z, *rows):
    """``[N, D, D]``: ``d fn(z_n, *rows_n) / d z_n`` row by row, for ``fn`` of ``[1, ...]``
    arrays (``rows``: per-row arguments held fixed, e.g. an amortized flow's context)."""

    def one(v, *r):
        return fn(v[None], *(a[None] for a in r))[0]

    return jax.vmap(jax.jacfwd(one))(z, *rows)


LAYERS = {
    "planar": (Planar(), 0),
    "planar-amortized": (Planar(True), Planar.context_size(4)),
    "radial": (Radial(), 0),
    "radial-amortized": (Radial(True), Radial.context_size(4)),
    "iaf": (IAFStep((8, 8)), 0),
    "iaf-reversed-context": (IAFStep((8,), reverse=True, amortized=True), 5),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_log_det_is_slogdet_of_the_jacobian(name):
    layer, width = LAYERS[name]
    z = 1.5 * jax.random.normal(jax.random.key(0), (6, 4))
    ctx = (jnp.asarray(np.random.default_rng(1).normal(size=(6, width)), jnp.float32),)
    ctx = ctx if width else ()
    p = random_params(layer, 2, z, *ctx)

    @jax.jit
    def both(p, z, *ctx):  # one compilation, not one per primitive
        jac = jacobians(lambda v, *c: layer.apply(p, v, *c)[0], z, *ctx)
        return layer.apply(p, z, *ctx)[1], jnp.linalg.slogdet(jac)

    log_det, (sign, want) = both(p, z, *ctx)
    np.testing.assert_array_equal(sign, 1.0)
    np.testing.assert_allclose(log_det, want, atol=1e-5, rtol=1e-5)


def test_planar_u_hat_keeps_the_map_invertible_where_u_alone_would_not():
    # w.u = -4 < -1: without the constraint 1 + (1 - tanh^2) w.u changes sign at w.z + b = 0.
    w = jnp.array([1.0, 0.5, -0.5])
    params = {"params": {"w": w, "u": -4.0 * w / jnp.dot(w, w), "b": jnp.float32(0.0)}}
    z = jnp.stack([jnp.zeros(3), jnp.array([3.0, 0.0, 0.0]), -w])  # w.z + b = 0 at row 0
    log_det, (sign, want) = jax.jit(
        lambda p, z: (
            Planar().apply(p, z)[1],
            jnp.linalg.slogdet(jacobians(lambda v: Planar().apply(p, v)[0], z)),
        )
    )(params, z)
    np.testing.assert_array_equal(sign, 1.0)
    np.testing.assert_allclose(log_det, want, atol=1e-5)
    # w.u_hat = m(w.u) = softplus(-4) - 1 > -1: the determinant stays positive.
    assert float(log_det[0]) == pytest.approx(math.log(jax.nn.softplus(-4.0)), abs=1e-5)


@pytest.mark.parametrize("reverse", [False, True])
def test_made_and_iaf_jacobians_are_triangular_in_the_ordering(reverse):
    d = 5
    z = jax.random.normal(jax.random.key(3), (3, d))
    ctx = jnp.asarray(np.random.default_rng(6).normal(size=(3, 2)), jnp.float32)
    made, step = MADE((7, 6), 2, reverse), IAFStep((7, 6), reverse, amortized=True)
    pm = random_params(made, 5, z, ctx)  # with a context, read by every output

    @jax.jit
    def jacs(pm, z, ctx):
        ps = {"params": {"MADE_0": pm["params"]}}
        outs = [jacobians(lambda v, c, o=o: made.apply(pm, v, c)[o], z, ctx) for o in range(2)]
        jac = jacobians(lambda v, c: step.apply(ps, v, c)[0], z, ctx)
        return outs, jac, made.apply(pm, z, ctx)[1]

    (jac_m, jac_s), jac, s = jax.device_get(jacs(pm, z, ctx))
    below = np.tril(np.ones((d, d)), -1)  # out_i from inputs j < i
    allowed = below.T if reverse else below  # reversed: from inputs j > i
    assert np.all(jac_m[:, allowed == 0] == 0.0) and np.all(jac_s[:, allowed == 0] == 0.0)
    # ... and the masks connect every allowed pair (through some hidden path).
    deg = [input_degrees(d, reverse), hidden_degrees(d, 7), hidden_degrees(d, 6)]
    paths = mask(deg[0], deg[1], strict=False) @ mask(deg[1], deg[2], strict=False)
    paths = paths @ mask(deg[2], deg[0], strict=True)  # [inputs j, outputs i]
    np.testing.assert_array_equal(paths.T > 0, allowed == 1)
    # The IAF step: triangular with the diagonal sigma (m_i, s_i do not read z_i).
    assert np.all(jac[:, (allowed + np.eye(d)) == 0] == 0.0)
    diag = np.diagonal(jac, axis1=1, axis2=2)
    np.testing.assert_allclose(diag, jax.nn.sigmoid(s + 1.0), rtol=1e-6)


def _setup(likelihood, key, **options):
    """A flow_vae with random parameters and its data ``x: [B, *SHAPE]`` (binary or not)."""
    model = create_model("flow_vae", SHAPE, likelihood, **{**DENSE, **options})
    x = np.random.default_rng(key).uniform(size=(B, *SHAPE)).astype(np.float32)
    x = np.float32(x < 0.4) if likelihood == "bernoulli" else x
    return model, x, random_params(model, key, x, scale=0.3)


def _log_px(likelihood, out, x):
    """Exact ``log p(x|z)`` in float64: ``out, x: [..., P]``."""
    out, x = np.float64(out), np.float64(x)
    if likelihood == "bernoulli":
        return np.sum(x * out - np.logaddexp(0.0, out), -1)
    return np.sum(norm.logpdf(x, out, 1.0), -1)


def _log_weights(model, v, x, eps, likelihood):
    """``log w = log p(x|z_K) + log p(z_K) - log q_0(z_0|x) + slogdet(dz_K/dz_0)`` by hand:
    ``eps: [S, B, L]`` -> ``[S, B]`` float64 (the flow's Jacobian by ``jacfwd``)."""

    @jax.jit
    def pieces(v, x, eps):
        mean, logvar = model.apply(v, x, method=lambda m, x: m.posterior(x))
        z0 = (mean[None] + jnp.exp(0.5 * logvar)[None] * eps).reshape(-1, eps.shape[-1])
        xs = jnp.tile(x, (eps.shape[0],) + (1,) * (x.ndim - 1))  # row s B + b: x_b

        def flow(z, x):
            return model.apply(v, x, z, method=lambda m, x, z: m.posterior_flow(x, z)[0])

        zk = flow(z0, xs)
        out = model.apply(v, zk, method=lambda m, z: m.decoder(z))
        return mean, logvar, zk, jacobians(flow, z0, xs), out

    mean, logvar, zk, jac, out = (np.float64(a) for a in pieces(v, x, eps))
    s, b, _ = eps.shape
    z0 = mean + np.exp(0.5 * logvar) * np.float64(eps)
    xs = np.broadcast_to(np.float64(x).reshape(1, b, -1), (s, b, x[0].size)).reshape(s * b, -1)
    log_px = _log_px(likelihood, out.reshape(s * b, -1), xs)
    log_q0 = norm.logpdf(z0, mean, np.exp(0.5 * logvar)).sum(-1).reshape(-1)
    log_q = log_q0 - np.linalg.slogdet(jac)[1]
    return (log_px + norm.logpdf(zk).sum(-1) - log_q).reshape(s, b)


@pytest.mark.parametrize(
    ("flow", "likelihood", "length", "amortized"),
    [
        ("iaf", "gaussian", 2, True),
        ("planar", "bernoulli", 2, False),
        ("radial", "bernoulli", 0, True),
    ],
)
def test_the_bound_and_the_iw_bound_weigh_by_the_flow_density(flow, likelihood, length, amortized):
    options = {"flow_length": length, "made_hidden": (8,), "flow_amortized": amortized}
    model, x, v = _setup(likelihood, 10, flow=flow, **options)
    assert not model.analytic_kl and model.has_posterior
    # The model's own evaluation terms sum to -ELBO at its fixed draw (flow_length 0: the
    # VAE's one-draw ELBO, log p(x|z) + log p(z) - log q(z|x)).
    eps = jax.random.normal(jax.random.key(_EVAL_SEED), (1, B, DENSE["latent_dim"]))
    _, aux = jax.jit(model.apply)(v, x)
    bound = -sum(np.float64(t) for t in aux["terms"].values())
    np.testing.assert_allclose(bound, _log_weights(model, v, x, eps, likelihood)[0], rtol=1e-5)
    # The IW-k bound and ELBO of aejax.bounds, from its documented draws: sample i of
    # example n from fold_in(fold_in(key, n), i).
    k, key = 3, jax.random.key(7)

    def noise(i, n):
        return jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, n), i), (3,))

    eps = jax.jit(jax.vmap(jax.vmap(noise, (None, 0)), (0, None)))(jnp.arange(k), jnp.arange(B))
    log_w = _log_weights(model, v, x, eps, likelihood)
    got = bounds.bounds(model, v, np.asarray(x), k, key)
    np.testing.assert_allclose(got["iw"], logsumexp(log_w, axis=0) - math.log(k), rtol=1e-5)
    np.testing.assert_allclose(got["elbo"], log_w.mean(0), rtol=1e-5)
    # Training: the Bernoulli likelihood is exact, the correction 0; the loss is -ELBO.
    if length == 0:
        _, aux = jax.jit(functools.partial(model.apply, train=True))(
            v, x, rngs={"sample": jax.random.key(5)}
        )
        np.testing.assert_array_equal(aux["terms"]["bound_correction"], 0.0)
