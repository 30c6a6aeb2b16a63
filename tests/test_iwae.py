"""iwae: the importance-weighted bounds (IWAE, MIWAE, CIWAE, PIWAE) against the same bounds
computed by hand from fixed draws, PIWAE's gradient split, the terms and the options. The
registry tests (tests/test_registry.py) train it; tests/test_bounds.py checks its posterior
capability."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import norm

from aejax.errors import ConfigError
from aejax.models import create_model
from aejax.models.iwae import _EVAL_SEED, log_likelihood
from aejax.models.likelihoods import Likelihood

SHAPE = (6, 6, 1)
DENSE = {"latent_dim": 3, "hidden": (16,), "activation": "gelu", "dtype": "float32"}
B = 4


def build(likelihood="bernoulli", **options):
    return create_model("iwae", SHAPE, likelihood, **{**DENSE, **options})


@pytest.fixture(scope="module")
def setup():
    """``(x, variables)``: binary images and parameters shared by every variant."""
    x = jax.random.bernoulli(jax.random.key(0), 0.4, (B, *SHAPE)).astype(jnp.float32)
    variables = build().init({"params": jax.random.key(1), "sample": jax.random.key(2)}, x)
    return x, variables


def eval_bound(model, variables, x):
    """``-sum(terms)``: the per-example bound the model optimizes, in evaluation."""
    _, aux = model.apply(variables, x)
    return -sum(np.asarray(v, np.float64) for v in aux["terms"].values())


def log_weights_by_hand(model, variables, x, m, k):
    """``log w: [B, M, K]`` in float64 from evaluation's fixed draws, with scipy densities."""
    mean, logvar = model.apply(variables, x, method=lambda mod, x: mod.posterior(x))
    mean, logvar = np.float64(mean), np.float64(logvar)
    eps = np.float64(jax.random.normal(jax.random.key(_EVAL_SEED), (B, m, k, mean.shape[1])))
    sd = np.exp(0.5 * logvar)[:, None, None]
    z = mean[:, None, None] + sd * eps
    logits = model.apply(
        variables, jnp.float32(z.reshape(-1, z.shape[-1])), method=lambda mod, z: mod.decoder(z)
    )
    logits = np.float64(logits).reshape(B, m, k, -1)
    xs = np.float64(x).reshape(B, 1, 1, -1)
    log_px = np.sum(xs * -np.logaddexp(0, -logits) + (1 - xs) * -np.logaddexp(0, logits), -1)
    log_pz = norm.logpdf(z).sum(-1)
    log_qz = norm.logpdf(z, mean[:, None, None], sd).sum(-1)
    return log_px + log_pz - log_qz


def test_one_sample_bound_is_the_elbo_of_that_sample(setup):
    x, variables = setup
    model = build(iw_samples=1, iw_groups=1)
    log_w = log_weights_by_hand(model, variables, x, 1, 1)
    np.testing.assert_allclose(eval_bound(model, variables, x), log_w[:, 0, 0], rtol=1e-5)


@pytest.mark.parametrize("m", [1, 2])
def test_k_sample_bound_is_logsumexp_of_the_log_weights_minus_log_k(setup, m):
    x, variables = setup
    model = build(iw_samples=5, iw_groups=m)  # iwae: one bound over all m * 5 draws
    log_w = log_weights_by_hand(model, variables, x, m, 5).reshape(B, -1)
    want = logsumexp(log_w, axis=1) - np.log(5 * m)
    np.testing.assert_allclose(eval_bound(model, variables, x), want, rtol=1e-5)
    assert np.all(want > log_w.mean(1))  # tighter than the ELBO of the same draws


def test_miwae_averages_m_k_sample_bounds_and_is_the_mean_elbo_for_k_1(setup):
    x, variables = setup
    one = build(iw_samples=1, iw_groups=4, iw_variant="miwae")
    log_w = log_weights_by_hand(one, variables, x, 4, 1)
    np.testing.assert_allclose(eval_bound(one, variables, x), log_w.mean((1, 2)), rtol=1e-5)
    three = build(iw_samples=3, iw_groups=2, iw_variant="miwae")
    log_w = log_weights_by_hand(three, variables, x, 2, 3)
    want = (logsumexp(log_w, axis=2) - np.log(3)).mean(1)
    np.testing.assert_allclose(eval_bound(three, variables, x), want, rtol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_ciwae_is_beta_elbo_plus_one_minus_beta_iwae(setup, beta):
    x, variables = setup
    model = build(iw_samples=4, iw_groups=1, iw_variant="ciwae", ciwae_beta=beta)
    log_w = log_weights_by_hand(model, variables, x, 1, 4).reshape(B, -1)
    elbo, iwae = log_w.mean(1), logsumexp(log_w, axis=1) - np.log(4)
    got = eval_bound(model, variables, x)
    np.testing.assert_allclose(got, beta * elbo + (1 - beta) * iwae, rtol=1e-5)
    if beta in (0.0, 1.0):
        np.testing.assert_allclose(got, iwae if beta == 0 else elbo, rtol=1e-5)


def _loss_grads(variant, variables, x):
    """The objective's value and parameter gradients (weights 1) in training, fixed draws."""
    model = build(iw_samples=3, iw_groups=2, iw_variant=variant)

    def loss(params):
        _, aux = model.apply(
            {**variables, "params": params}, x, train=True, rngs={"sample": jax.random.key(7)}
        )
        return sum(aux["terms"].values()).sum()

    return jax.value_and_grad(loss)(variables["params"])


def _close(a, b):
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(u, v, rtol=2e-5, atol=1e-6)


def test_piwae_trains_the_decoder_on_iwae_and_the_encoder_on_miwae(setup):
    x, variables = setup
    iw_value, iw = _loss_grads("iwae", variables, x)
    miw_value, miw = _loss_grads("miwae", variables, x)
    pi_value, pi = _loss_grads("piwae", variables, x)
    assert set(pi) == {"encoder", "decoder"}
    _close(pi["decoder"], iw["decoder"])
    _close(pi["encoder"], miw["encoder"])
    np.testing.assert_allclose(pi_value, iw_value, rtol=1e-6)  # its value: -IWAE
    assert miw_value > iw_value  # MIWAE(2, 3) is looser than IWAE over the same 6 draws
    # The split matters: the bounds' gradients differ for both networks.
    for net in ("encoder", "decoder"):
        diff = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), iw[net], miw[net])
        assert max(jax.tree.leaves(diff)) > 1e-4, net


def test_terms_are_the_vaes_plus_the_correction_and_sum_to_minus_the_bound(setup):
    x, variables = setup
    model = build(iw_samples=5)
    vae = create_model("vae", SHAPE, "bernoulli", **DENSE)
    recon, aux = model.apply(variables, x)
    want_recon, want = vae.apply(variables, x)  # same parameter tree
    assert set(aux["terms"]) == {"reconstruction", "kl", "iw_correction"}
    for name in ("reconstruction", "kl"):
        np.testing.assert_allclose(aux["terms"][name], want["terms"][name], rtol=1e-6)
    np.testing.assert_allclose(recon, want_recon, rtol=1e-6)
    # The IW gain: on average the 5-sample bound beats the one-draw ELBO at the mean...
    # not guaranteed per example, so only the sum's identity is asserted.
    total = sum(np.asarray(v, np.float64) for v in aux["terms"].values())
    log_w = log_weights_by_hand(model, variables, x, 1, 5).reshape(B, -1)
    np.testing.assert_allclose(-total, logsumexp(log_w, axis=1) - np.log(5), rtol=1e-5)


def test_gaussian_log_likelihood_is_the_unit_variance_density_on_observed_entries():
    out = jax.random.normal(jax.random.key(0), (3, 5))
    x = jax.random.normal(jax.random.key(1), (3, 5))
    mask = (jnp.arange(5) < 3).astype(jnp.float32)
    lik = Likelihood("gaussian")
    np.testing.assert_allclose(log_likelihood(lik, out, x), norm.logpdf(x, out).sum(1), rtol=1e-5)
    np.testing.assert_allclose(
        log_likelihood(lik, out, x, mask), norm.logpdf(x, out)[:, :3].sum(1), rtol=1e-5
    )
    learned = Likelihood("gaussian_learned")
    out2 = jnp.concatenate([out, jnp.zeros_like(out)], axis=1)
    np.testing.assert_allclose(
        log_likelihood(learned, out2, x), norm.logpdf(x, out).sum(1), rtol=1e-5
    )


def test_tabular_gaussian_run_trains_and_is_finite():
    model = create_model("iwae", (7,), "gaussian", kind="tabular", **DENSE, iw_variant="piwae")
    x = jax.random.normal(jax.random.key(0), (5, 7))
    variables = model.init({"params": jax.random.key(1), "sample": jax.random.key(2)}, x)
    _, aux = model.apply(variables, x, train=True, rngs={"sample": jax.random.key(3)})
    assert all(np.all(np.isfinite(v)) for v in aux["terms"].values())


@pytest.mark.parametrize(
    "bad",
    [{"iw_variant": "riwae"}, {"iw_samples": 0}, {"iw_groups": 1.5}, {"ciwae_beta": 1.5}],
)
def test_bad_options_are_one_line_config_errors(bad):
    with pytest.raises(ConfigError, match=next(iter(bad))):
        build(**bad)
