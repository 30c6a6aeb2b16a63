"""vamp (VampPrior VAE): the mixture density against scipy, the Monte Carlo KL against the
closed form, prior samples, the likelihood bounds and evaluation with the learned prior,
sharding and a training run on digits. The model is built through the registry
(``create_model``)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _direct_train import spec_weights, train_direct
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from aejax import Config, bounds, evaluate, sampling
from aejax.errors import ConfigError
from aejax.models import create_model, losses
from aejax.models.objective import make_objective
from aejax.models.vamp import VampCode, mc_kl, mixture_log_prob
from aejax.train import shard

SHAPE = (8, 8, 1)
DENSE = {"latent_dim": 3, "hidden": (16,), "activation": "gelu", "dtype": "float32"}


def build(shape, likelihood="bernoulli", **options):
    return create_model("vamp", shape, likelihood, **{**DENSE, **options})


def log_prior(m, z):
    return m.log_prior(z)


def _scipy_mixture(z, means, logvars):
    """log (1/K) sum_k N(z; m_k, diag(exp(lv_k))) per row of z, float64."""
    per = np.stack(
        [
            multivariate_normal(m, np.diag(np.exp(lv))).logpdf(z)
            for m, lv in zip(np.float64(means), np.float64(logvars), strict=True)
        ]
    )  # [K, B]
    return logsumexp(per, axis=0) - np.log(len(means))


def test_mixture_log_prob_is_scipys():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    means = jax.random.normal(k1, (5, 3)) * 2
    logvars = jax.random.normal(k2, (5, 3)) * 0.5
    z = jax.random.normal(k3, (7, 3)) * 2
    got = jax.vmap(mixture_log_prob, in_axes=(0, None, None))(z, means, logvars)
    np.testing.assert_allclose(got, _scipy_mixture(z, means, logvars), rtol=1e-5)
    # Far in a tail every component's density underflows float32; logsumexp stays exact.
    far = jnp.full((1, 3), 40.0)
    got = jax.vmap(mixture_log_prob, in_axes=(0, None, None))(far, means, logvars)
    np.testing.assert_allclose(got, _scipy_mixture(far, means, logvars), rtol=1e-5)


def _model_and_variables(k=4, likelihood="bernoulli", shape=SHAPE):
    model = build(shape, likelihood, pseudo_inputs=k)
    x = jax.random.uniform(jax.random.key(0), (6, *shape))
    return model, model.init(jax.random.key(1), x[:1]), x


def _posterior(model, variables, x):
    return model.apply(variables, x, method=lambda m, x: m.code.posterior(m.encoder(x)))


def test_log_prior_is_the_mixture_of_the_encoders_posteriors_at_the_pseudo_inputs():
    model, variables, _ = _model_and_variables(k=4)
    u = np.asarray(variables["params"]["penalty"]["pseudo_inputs"])
    assert u.shape == (4, *SHAPE) and abs(u.mean() - 0.05) < 0.01  # the paper's start
    means, logvars = _posterior(model, variables, np.clip(u, 0, 1))
    z = jax.random.normal(jax.random.key(2), (9, 3))
    got = model.apply(variables, z, method=log_prior)
    np.testing.assert_allclose(got, _scipy_mixture(z, means, logvars), rtol=1e-5)


def test_kl_term_is_log_q_minus_log_p_at_the_codes_sample():
    model, variables, x = _model_and_variables(k=4)
    _, aux = model.apply(variables, x, train=True, rngs={"sample": jax.random.key(3)})
    assert set(aux["terms"]) == {"reconstruction", "kl"}  # no N(0, I) KL from the code
    z, mean, logvar = (np.float64(aux[k]) for k in ("z", "mean", "logvar"))
    log_q = np.array(
        [
            multivariate_normal(m, np.diag(np.exp(lv))).logpdf(zi)
            for zi, m, lv in zip(z, mean, logvar, strict=True)
        ]
    )
    log_p = np.asarray(model.apply(variables, aux["z"], method=log_prior), np.float64)
    np.testing.assert_allclose(aux["terms"]["kl"], log_q - log_p, rtol=1e-4, atol=1e-4)
    # Evaluation decodes the mean and estimates the KL from a fixed draw: deterministic.
    ev = [model.apply(variables, x)[1] for _ in range(2)]
    np.testing.assert_array_equal(ev[0]["z"], ev[0]["mean"])
    np.testing.assert_array_equal(ev[0]["terms"]["kl"], ev[1]["terms"]["kl"])


def test_one_pseudo_input_equal_to_x_gives_a_zero_kl():
    # K = 1 and u = x: p(z) = q(z|x), so log q(z|x) - log p(z) = 0 for every draw.
    model, variables, x = _model_and_variables(k=1)
    x1 = x[:1]
    params = {**variables["params"], "penalty": {"pseudo_inputs": x1}}
    _, aux = model.apply({"params": params}, x1, train=True, rngs={"sample": jax.random.key(4)})
    np.testing.assert_allclose(aux["terms"]["kl"], 0.0, atol=1e-5)


def test_monte_carlo_kl_averages_to_the_closed_form_kl_for_one_component():
    # K = 1: p(z) = N(m_u, v_u) and E_q[kl] = KL(N(m, v) || N(m_u, v_u)) in closed form.
    model, variables, x = _model_and_variables(k=1)
    n = 20_000
    same = jnp.repeat(x[:1], n, axis=0)  # n draws from q(z|x) of one example
    _, aux = model.apply(variables, same, train=True, rngs={"sample": jax.random.key(5)})
    u = np.clip(np.asarray(variables["params"]["penalty"]["pseudo_inputs"]), 0, 1)
    mu, lvu = (np.float64(a[0]) for a in _posterior(model, variables, u))
    m, lv = np.float64(aux["mean"][0]), np.float64(aux["logvar"][0])
    closed = 0.5 * np.sum(lvu - lv + (np.exp(lv) + (m - mu) ** 2) / np.exp(lvu) - 1.0)
    kl = np.asarray(aux["terms"]["kl"], np.float64)
    assert closed > 0.01  # a random encoder: x's posterior is not u's
    np.testing.assert_allclose(kl.mean(), closed, atol=4 * kl.std() / np.sqrt(n))
    # The pure function agrees with the module's term.
    direct = mc_kl(
        aux["z"], aux["mean"], aux["logvar"], jnp.asarray(mu)[None], jnp.asarray(lvu)[None]
    )
    np.testing.assert_allclose(direct, kl, rtol=1e-5, atol=1e-5)


def test_prior_samples_follow_the_mixture():
    model, variables, _ = _model_and_variables(k=3)
    u = np.clip(np.asarray(variables["params"]["penalty"]["pseudo_inputs"]), 0, 1)
    # Spread the components apart so the mixture's moments differ from any one's.
    u = u + np.arange(3, dtype=np.float32).reshape(3, 1, 1, 1) * 0.3
    params = {**variables["params"], "penalty": {"pseudo_inputs": u}}
    means, logvars = (np.float64(a) for a in _posterior(model, {"params": params}, u))
    n = 60_000
    z = model.apply(
        {"params": params},
        n,
        method=lambda m, n: m.penalty.sample_prior(m, n),
        rngs={"sample": jax.random.key(6)},
    )
    z = np.asarray(z, np.float64)
    mix_mean = means.mean(0)
    mix_var = (np.exp(logvars) + means**2).mean(0) - mix_mean**2
    np.testing.assert_allclose(z.mean(0), mix_mean, atol=4 * np.sqrt(mix_var.max() / n))
    np.testing.assert_allclose(z.var(0), mix_var, rtol=0.03)
    images = model.apply(
        {"params": params}, 4, method=model.sample, rngs={"sample": jax.random.key(7)}
    )
    assert images.shape == (4, *SHAPE) and float(images.min()) >= 0 and float(images.max()) <= 1
    # aejax.sample decodes the mixture's draws (the model's sample), not N(0, I)'s.
    assert sampling.has_prior(model, {"params": params})
    got = sampling.sample(model, {"params": params}, 4, jax.random.key(7))
    np.testing.assert_allclose(got, images, rtol=1e-6)


def test_the_bounds_use_the_mixture_prior_and_a_monte_carlo_kl():
    # IW-k and the ELBO by hand (float64, scipy's densities) at the bounds' own draws:
    # eps of sample i of example n is normal(fold_in(fold_in(key, n), i)).
    model, variables, x = _model_and_variables(k=4)
    assert model.has_posterior and not model.analytic_kl
    # Components apart from each other and from N(0, I): pseudo-inputs 0.05, 0.45, 0.85, 1.
    u = np.asarray(variables["params"]["penalty"]["pseudo_inputs"])
    u = np.clip(u + 0.4 * np.arange(4, dtype=np.float32).reshape(4, 1, 1, 1), 0, 1)
    variables = {"params": {**variables["params"], "penalty": {"pseudo_inputs": u}}}
    x = bounds.binarize_once(np.asarray(x))
    key, k = jax.random.key(12), 5
    got = bounds.bounds(model, variables, x, k, key, chunk=2)
    mean, logvar = model.apply(variables, x, method=lambda m, x: m.posterior(x))
    mean, logvar = np.float64(mean), np.float64(losses.clamp_logvar(logvar))
    eps = np.stack(
        [
            [
                jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, n), i), (3,))
                for i in range(k)
            ]
            for n in range(len(x))
        ]
    ).astype(np.float64)  # [N, k, L]
    z = mean[:, None] + np.exp(0.5 * logvar)[:, None] * eps
    logits = np.float64(
        model.apply(variables, jnp.float32(z.reshape(-1, 3)), method=lambda m, z: m.decoder(z))
    ).reshape(len(x), k, -1)
    xs = x.reshape(len(x), 1, -1)
    log_px = (xs * logits - np.logaddexp(0.0, logits)).sum(-1)
    means, logvars = _posterior(model, variables, u)
    log_pz = _scipy_mixture(z.reshape(-1, 3), means, losses.clamp_logvar(logvars)).reshape(-1, k)
    log_qz = -0.5 * (eps**2 + logvar[:, None] + np.log(2 * np.pi)).sum(-1)
    log_w = log_px + log_pz - log_qz
    np.testing.assert_allclose(got["iw"], logsumexp(log_w, axis=1) - np.log(k), rtol=1e-5)
    np.testing.assert_allclose(got["kl"], (log_qz - log_pz).mean(1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["elbo"], log_w.mean(1), rtol=1e-5)
    assert np.all(got["iw"] >= got["elbo"] - 1e-6)  # log-mean-exp >= mean, same draws
    # The N(0, I) prior would give other bounds (0.07 to 0.26 nats away here, 100x the
    # agreement above): the mixture is the one used.
    log_std = -0.5 * (z**2 + np.log(2 * np.pi)).sum(-1)
    iw_std = logsumexp(log_px + log_std - log_qz, axis=1) - np.log(k)
    assert np.abs(got["iw"] - iw_std).min() > 0.05, (got["iw"], iw_std)


def test_evaluation_reports_posterior_metrics_and_the_collapse_warning():
    model, variables, x = _model_and_variables(k=4)
    config = Config(model="vamp", beta=2.0)
    assert evaluate.has_posterior(model)
    m = evaluate._posterior_metrics(model, variables, np.asarray(x), config)
    b = bounds.bounds(model, variables, np.asarray(x), 1, jax.random.key(config.seed))
    np.testing.assert_allclose(m["test_kl"], b["kl"].mean(), rtol=1e-6)
    np.testing.assert_allclose(m["test_elbo"], b["elbo"].mean(), rtol=1e-6)
    means = np.asarray(model.apply(variables, x, method=model.encode))
    assert m["latent_units"] == 3 and m["active_units"] == bounds.active_units(means)
    warning = evaluate.collapse_warning({**m, "active_units": 0}, config)
    assert "posterior collapse" in warning and "now 2" in warning


def test_gradients_reach_the_pseudo_inputs_and_the_encoder_through_the_prior():
    model, variables, x = _model_and_variables(k=4)

    def kl(params):
        _, aux = model.apply({"params": params}, x, train=True, rngs={"sample": jax.random.key(8)})
        return aux["terms"]["kl"].mean()

    grads = jax.grad(kl)(variables["params"])
    assert float(jnp.abs(grads["penalty"]["pseudo_inputs"]).sum()) > 0
    assert float(jnp.abs(grads["encoder"]["dense_1"]["kernel"]).sum()) > 0


def test_tabular_pseudo_inputs_are_unclipped_around_zero():
    model, variables, x = _model_and_variables(k=5, likelihood="gaussian", shape=(7,))
    u = np.asarray(variables["params"]["penalty"]["pseudo_inputs"])
    assert u.shape == (5, 7) and abs(u.mean()) < 0.01
    assert not model.penalty.bounded
    params = {**variables["params"], "penalty": {"pseudo_inputs": u - 3.0}}  # below 0: kept
    means, logvars = _posterior(model, {"params": params}, u - 3.0)
    z = jax.random.normal(jax.random.key(9), (4, 3))
    got = model.apply({"params": params}, z, method=log_prior)
    np.testing.assert_allclose(got, _scipy_mixture(z, means, logvars), rtol=1e-5)


def test_sharded_batch_gives_the_one_device_terms():
    model, variables, _ = _model_and_variables(k=8)
    x = jax.random.uniform(jax.random.key(10), (64, *SHAPE))
    mesh = shard.make_mesh(8)

    @jax.jit
    def terms(v, xb):
        return model.apply(v, xb, train=True, rngs={"sample": jax.random.key(11)})[1]["terms"]

    one = terms(variables, x)
    many = terms(shard.replicate(variables, mesh), shard.put_batch(np.asarray(x), mesh))
    for name in ("kl", "reconstruction"):
        np.testing.assert_allclose(many[name], one[name], rtol=1e-5, atol=1e-5)


def test_the_code_alone_has_no_prior_and_bad_options_are_refused():
    with pytest.raises(NotImplementedError, match="VampPrior"):
        VampCode(3).apply({}, 2, method=VampCode.sample_prior)
    for k in (0, -1, 2.5):
        with pytest.raises(ConfigError, match="pseudo_inputs"):
            build(SHAPE, pseudo_inputs=k)
    # A capacity |KL - C| of the Monte Carlo KL would be biased: vamp reads no capacity.
    with pytest.raises(ConfigError, match="model 'vamp' does not use capacity=2.0"):
        Config(model="vamp", capacity=2.0)


def test_options_and_weights_come_from_the_spec():
    c = Config(model="vamp").with_overrides(["pseudo_inputs=7", "beta=2", "kl_warmup_steps=10"])
    assert c.pseudo_inputs == 7 and Config(model="vamp").pseudo_inputs == 100
    objective = make_objective(c, 100)
    assert float(objective.weight("kl", 5)) == 1.0 and float(objective.weight("kl", 10)) == 2.0
    assert objective.capacity is None and objective.final_step == 100
    assert spec_weights("vamp", beta=3.0) == {"reconstruction": 1.0, "kl": 3.0}


def test_vamp_trains_on_digits(digits):
    model = build(digits.input_shape, latent_dim=8, hidden=(64,))
    train_hist, val_hist, state = train_direct(model, spec_weights("vamp"), digits, epochs=6)
    # As the vae on digits: 39.5 -> 26.8 in 6 epochs (40: 24.1, the vae's 24.6).
    assert train_hist[-1]["loss"] < 0.75 * train_hist[0]["loss"], train_hist
    assert val_hist[-1]["loss"] < val_hist[0]["loss"], val_hist
    assert 0 < val_hist[-1]["kl"] < 50, val_hist  # a finite, positive rate
    # The pseudo-inputs moved from their start and stayed in the data range.
    u = np.asarray(state.params["penalty"]["pseudo_inputs"])
    assert np.abs(u - 0.05).mean() > 0.02
