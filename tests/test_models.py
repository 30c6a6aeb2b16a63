"""Every registry model honours the contract: shapes, heads, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.errors import ConfigError
from aejax.models import MODELS, create_model

CASES = [
    ("ae", (8, 8, 1), "bernoulli"),
    ("ae", (28, 28, 1), "bernoulli"),
    ("ae", (30,), "gaussian"),
    ("conv_ae", (8, 8, 1), "bernoulli"),
    ("conv_ae", (28, 28, 1), "bernoulli"),
    ("conv_ae", (16, 12, 3), "gaussian"),
    ("vae", (8, 8, 1), "bernoulli"),
    ("vae", (30,), "gaussian"),
    ("conv_vae", (8, 8, 1), "bernoulli"),
    ("conv_vae", (16, 12, 3), "gaussian"),
]


@pytest.mark.parametrize(("name", "shape", "likelihood"), CASES)
def test_contract_shapes(name, shape, likelihood):
    model = create_model(name, shape, likelihood, latent_dim=5, hidden=(16,), conv_features=(4, 8))
    x = jax.random.uniform(jax.random.key(0), (3, *shape))
    params = model.init(jax.random.key(1), x)["params"]
    recon, aux = model.apply({"params": params}, x)
    assert recon.shape == (3, *shape)
    assert aux["z"].shape == (3, 5)
    assert aux["out"].shape == (3, *shape)
    z = model.apply({"params": params}, x, method=model.encode)
    np.testing.assert_allclose(z, aux["z"], rtol=1e-6)
    dec = model.apply({"params": params}, z, method=model.decode)
    np.testing.assert_allclose(dec, recon, rtol=1e-6, atol=1e-6)
    if likelihood == "bernoulli":
        # The head turns logits into [0, 1] reconstructions.
        np.testing.assert_allclose(recon, jax.nn.sigmoid(aux["out"]), rtol=1e-6)
        assert float(recon.min()) >= 0 and float(recon.max()) <= 1
    else:
        np.testing.assert_array_equal(recon, aux["out"])


def test_deep_dense_topology():
    model = create_model("ae", (784,), "gaussian", latent_dim=30, hidden=(1000, 500, 250))
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 784)))["params"]
    widths = [params["encoder"][f"dense_{i}"]["kernel"].shape for i in range(4)]
    assert widths == [(784, 1000), (1000, 500), (500, 250), (250, 30)]
    dec = [params["decoder"][f"dense_{i}"]["kernel"].shape for i in range(4)]
    assert dec == [(30, 250), (250, 500), (500, 1000), (1000, 784)]


def test_conv_rejects_shapes_the_strides_do_not_allow():
    with pytest.raises(ConfigError, match="divisible by 4"):
        create_model("conv_ae", (10, 10, 1), "bernoulli", conv_features=(8, 16))
    with pytest.raises(ConfigError, match=r"\(H, W, C\)"):
        create_model("conv_ae", (30,), "gaussian")


def test_unknown_model_and_activation():
    with pytest.raises(ConfigError, match="unknown model 'vae9'"):
        create_model("vae9", (8, 8, 1), "bernoulli")
    model = create_model("ae", (4,), "gaussian", activation="swishy")
    with pytest.raises(ConfigError, match="unknown activation"):
        model.init(jax.random.key(0), jnp.zeros((1, 4)))


def test_registry_lists_models():
    assert {"ae", "conv_ae", "vae", "conv_vae"} <= set(MODELS)


def test_subpixel_lowering_equals_flax_conv_transpose():
    import flax.linen as nn

    from aejax.models._lowering import ConvTranspose2x

    x = jax.random.normal(jax.random.key(0), (2, 7, 5, 3))
    ref = nn.ConvTranspose(4, (3, 3), strides=(2, 2), padding="SAME")
    params = ref.init(jax.random.key(1), x)["params"]
    params = {"kernel": params["kernel"], "bias": jax.random.normal(jax.random.key(2), (4,))}
    # Same parameter names, shapes and initial values as nn.ConvTranspose.
    own = ConvTranspose2x(4).init(jax.random.key(1), x)["params"]
    assert jax.tree.map(jnp.shape, own) == jax.tree.map(jnp.shape, params)
    want = ref.apply({"params": params}, x)
    for impl in ("subpixel", "lax"):
        got = ConvTranspose2x(4, impl=impl).apply({"params": params}, x)
        assert got.shape == (2, 14, 10, 4)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

    # Gradients agree too (the point of the lowering is a faster backward pass).
    def loss(p, impl):
        return jnp.sum(ConvTranspose2x(4, impl=impl).apply({"params": p}, x) ** 2)

    g_sub = jax.grad(loss)(params, "subpixel")
    g_lax = jax.grad(loss)(params, "lax")
    for a, b in zip(jax.tree.leaves(g_sub), jax.tree.leaves(g_lax), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
