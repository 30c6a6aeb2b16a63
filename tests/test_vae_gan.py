"""VAE-GAN: the discriminator's loss at known logits, the feature reconstruction by hand, the
encoder/decoder gradient split that gamma makes in one objective, and the wiring."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import Config, xla
from aejax.errors import ConfigError
from aejax.models import create_model
from aejax.models.objective import make_objective
from aejax.models.registry import get_spec
from aejax.models.vae_gan import discriminator_loss, generator_loss

SHAPE = (8, 8, 1)
# An MLP discriminator: the conv one trains in the registry tests (tests/test_registry.py),
# and eager convs here would cost seconds.
TINY = {"latent_dim": 2, "hidden": (8,), "gan_disc": "dense", "gan_disc_hidden": (6,)}
LOG2 = np.log(2.0)


def _softplus(x):
    return np.logaddexp(0.0, x)


def _images(n=5, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, *SHAPE)).astype(np.float32)


def _once(fn, *args):
    """``fn(*args)`` as one program compiled for compile speed: eager ops and optimized
    compiles would each cost seconds on a loaded 2-core CPU."""
    return xla.jit(fn, run_once=True)(*args)


def _init(model, x):
    keys = {"params": jax.random.key(0), "sample": jax.random.key(1)}
    return _once(lambda v: model.init(keys, v)["params"], x)


def test_gan_losses_are_their_definitions_on_known_logits():
    real, rec, prior = (np.array(v, np.float32) for v in ([0, 2, -1], [0, -3, 1.5], [0, 0.5, 4]))
    want = _softplus(-real) + _softplus(rec) + _softplus(prior)
    np.testing.assert_allclose(discriminator_loss(real, rec, prior), want, rtol=1e-6)
    assert float(discriminator_loss(real, rec, prior)[0]) == pytest.approx(3 * LOG2)
    np.testing.assert_allclose(generator_loss(rec, prior), _softplus(-rec) + _softplus(-prior))


def test_discriminator_phase_is_three_log_2_when_every_logit_is_0():
    model = create_model("vae_gan", SHAPE, **TINY)
    x = _images()
    params = _init(model, x)
    disc = dict(params["gan_discriminator"])
    out = disc["dense_1"]  # the logit layer (after one hidden layer): zero it, every logit is 0
    disc["dense_1"] = {k: jnp.zeros_like(v) for k, v in out.items()}
    params = {**params, "gan_discriminator": disc}

    def both(p, v):
        rngs = {"sample": jax.random.key(2)}
        _, d = model.apply(
            {"params": p}, v, train=True, rngs=rngs, method="gan_discriminator_terms"
        )
        _, a = model.apply({"params": p}, v, train=True, rngs=rngs)
        return d, a["terms"]["gan"]

    aux, gan = _once(both, params, x)
    np.testing.assert_allclose(aux["terms"]["gan_discriminator"], 3 * LOG2, rtol=1e-6)
    assert float(aux["stats"]["gan_discriminator_accuracy"]) == 0.0  # no logit is > 0
    np.testing.assert_allclose(gan, 2 * LOG2, rtol=1e-6)  # the decoder's term


@pytest.mark.parametrize("layer", [0, 1])
def test_feature_term_is_half_the_squared_feature_distance(layer):
    # An MLP discriminator with tanh: Dis_1(x) = tanh(x W + b), Dis_0(x) = x, by hand.
    model = create_model(
        "vae_gan", SHAPE, gan_feature_layer=layer, gan_gamma=3.0, activation="tanh", **TINY
    )
    x = _images()
    params = _init(model, x)
    recon, aux = _once(lambda p, v: model.apply({"params": p}, v), params, x)  # z = the mean
    d = params["gan_discriminator"]["dense_0"]
    w, b = np.asarray(d["kernel"], np.float64), np.asarray(d["bias"], np.float64)

    def dis(v):
        v = np.asarray(v, np.float64).reshape(v.shape[0], -1)
        return v if layer == 0 else np.tanh(v @ w + b)

    want = 0.5 * np.sum((dis(x) - dis(recon)) ** 2, axis=1)  # gamma leaves the value alone
    np.testing.assert_allclose(aux["terms"]["feature"], want, rtol=2e-5)
    assert set(aux["terms"]) == {"reconstruction", "kl", "feature", "gan"}


def _group_grads(model, params, term, x):
    """d(sum of ``term``)/d(encoder, decoder) in one training forward pass: two leaf lists."""

    def loss(p):
        rngs = {"sample": jax.random.key(3)}
        _, aux = model.apply({"params": {**params, **p}}, x, train=True, rngs=rngs)
        return aux["terms"][term].sum()

    g = jax.grad(loss)({k: params[k] for k in ("encoder", "decoder")})
    return jax.tree.leaves(g["encoder"]), jax.tree.leaves(g["decoder"])


def test_gamma_scales_the_decoders_feature_gradient_only_and_gan_skips_the_encoder():
    x = _images(4)
    one = create_model("vae_gan", SHAPE, **TINY)
    three = create_model("vae_gan", SHAPE, gan_gamma=3.0, **TINY)
    params = _init(one, x)  # gamma is no parameter: one tree for both

    def grads(p, v):
        return [_group_grads(m, p, t, v) for m, t in ((one, "feature"), (three, "feature"))] + [
            _group_grads(three, p, "gan", v)
        ]

    out = jax.tree.map(np.asarray, _once(grads, params, x))
    (enc1, dec1), (enc3, dec3), (enc, dec) = out
    for a, b in zip(enc1, enc3, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    for a, b in zip(dec1, dec3, strict=True):
        np.testing.assert_allclose(b, 3.0 * a, rtol=1e-5, atol=1e-7)
    assert any(np.abs(a).max() > 0 for a in enc1)
    assert all(np.all(a == 0) for a in enc) and any(np.abs(a).max() > 0 for a in dec)


def test_groups_weights_options_and_posterior():
    model = create_model("vae_gan", SHAPE, **TINY)
    assert model.phases == (
        ("gan_discriminator", "gan_discriminator_terms"),
        ("autoencoder", "__call__"),
    )
    assert model.param_groups == {"gan_discriminator": "gan_discriminator"}
    assert model.has_posterior and model.analytic_kl
    objective = make_objective(Config(model="vae_gan", beta=2.0, gan_pixel_weight=0.5), 10)
    weights = {k: float(objective.weight(k, 0)) for k in objective.weights}
    want = {"reconstruction": 0.5, "kl": 2.0, "feature": 1.0, "gan": 1.0, "gan_discriminator": 1}
    assert weights == want
    spec = get_spec("vae_gan")
    group = spec.group("gan_discriminator")
    assert group.optimizer(Config(model="vae_gan").options) == {"lr": 1e-4}
    assert group.optimizer(Config(model="vae_gan", gan_disc_lr=0.0).options) == {}  # = lr
    assert model.gan_discriminator.conv_features == ()
    assert create_model("vae_gan", SHAPE).gan_discriminator.conv_features == (32, 64)  # auto
    with pytest.raises(ConfigError, match="gan_disc='conv' needs image data"):
        create_model("vae_gan", (6,), "gaussian", kind="tabular", gan_disc="conv")
    tabular = create_model("vae_gan", (6,), "gaussian", kind="tabular", gan_disc="auto")
    assert tabular.gan_discriminator.conv_features == ()
    with pytest.raises(ConfigError, match="gan_feature_layer=2 is deeper"):
        create_model("vae_gan", SHAPE, gan_feature_layer=2, **TINY)
    with pytest.raises(ConfigError, match="gan_gamma"):
        Config(model="vae_gan", gan_gamma=-1.0)
