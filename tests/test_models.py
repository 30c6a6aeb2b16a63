"""Every registry model honours the contract: shapes, likelihoods, parts, errors.

The cases come from the registry: each entry's own tiny config on each data kind it
declares, so a new model is covered with no new test code.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax import Config
from aejax.errors import ConfigError
from aejax.models import MODELS, create_model, model_from_config

SHAPES = {
    "image": [(8, 8, 1), (16, 12, 3)],
    "tabular": [(30,)],
    "ratings": [(30,)],
    "sequence": [(12, 3)],
}
CASES = [
    (name, kind, shape, lik)
    for name, spec in MODELS.items()
    for kind in spec.kinds
    for shape in SHAPES[kind]
    for lik in (["bernoulli", "gaussian"] if kind == "image" else ["gaussian", "gaussian_learned"])
]


def _build(name, kind, shape, lik):
    config = Config(model=name, likelihood=lik, **MODELS[name].test_config)
    model = model_from_config(config, shape, kind)
    x = jax.random.uniform(jax.random.key(0), (3, *shape))
    variables = model.init({"params": jax.random.key(1), "sample": jax.random.key(2)}, x)
    return model, variables, x


@pytest.mark.parametrize(("name", "kind", "shape", "lik"), CASES)
def test_contract_shapes(name, kind, shape, lik):
    model, variables, x = _build(name, kind, shape, lik)
    recon, aux = model.apply(variables, x)
    assert recon.shape == (3, *shape)
    k = model.likelihood.params_per_element
    assert aux["decoder_output"].shape == (3, *shape[:-1], shape[-1] * k)
    assert aux["terms"]["reconstruction"].shape == (3,)
    assert all(v.shape == (3,) for v in aux["terms"].values())
    z = model.apply(variables, x, method=model.encode)
    np.testing.assert_allclose(z, aux["z"], rtol=1e-6)
    dec = model.apply(variables, z, method=model.decode)
    np.testing.assert_allclose(dec, recon, rtol=1e-5, atol=1e-6)
    if lik == "bernoulli":
        # The likelihood turns logits into [0, 1] reconstructions.
        np.testing.assert_allclose(recon, jax.nn.sigmoid(aux["decoder_output"]), rtol=1e-6)
        assert float(recon.min()) >= 0 and float(recon.max()) <= 1
    elif lik == "gaussian":
        np.testing.assert_array_equal(recon, aux["decoder_output"])
    else:  # a learned variance: the first half of the last axis is the mean
        np.testing.assert_array_equal(recon, aux["decoder_output"][..., : shape[-1]])


def test_registry_entries_declare_what_the_tests_need():
    assert {"ae", "conv_ae", "vae", "conv_vae"} <= set(MODELS)
    for name, spec in MODELS.items():
        assert spec.name == name and spec.kinds and spec.description
        common = {"latent_dim", "dtype", "likelihood"}
        if "sequence" not in spec.kinds:  # recurrent cells keep their own tanh and sigmoid
            common.add("activation")
        assert common <= set(spec.hparams)
        assert set(spec.test_config) <= set(spec.hparams), name


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
    with pytest.raises(ConfigError, match=r"supports \['image'\] data, not 'tabular'"):
        model_from_config(Config(model="conv_ae"), (30,), "tabular")


def test_unknown_model_activation_and_likelihood():
    with pytest.raises(ConfigError, match="unknown model 'vae9'"):
        create_model("vae9", (8, 8, 1), "bernoulli")
    model = create_model("ae", (4,), "gaussian", activation="swishy")
    with pytest.raises(ConfigError, match="unknown activation"):
        model.init(jax.random.key(0), jnp.zeros((1, 4)))
    with pytest.raises(ConfigError, match="unknown likelihood 'poisson'"):
        create_model("ae", (4,), "poisson")


def test_a_key_the_model_does_not_use_is_refused():
    with pytest.raises(ConfigError, match=r"'ae' does not use \['beta'\].*'hidden'"):
        create_model("ae", (4,), "gaussian", beta=4.0)
    with pytest.raises(ConfigError, match=r"'ae' does not use beta=4\.0.*hyperparameters"):
        model_from_config(Config(model="ae", beta=4.0), (4,), "tabular")
    with pytest.raises(ConfigError, match=r"'conv_vae' does not use hidden=\(8,\)"):
        model_from_config(Config(model="conv_vae", hidden=(8,)), (8, 8, 1), "image")
    # The keys a model reads are accepted.
    model_from_config(Config(model="vae", beta=4.0, kl_warmup_steps=10), (4,), "tabular")


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
