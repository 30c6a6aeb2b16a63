"""Each model owns its options, term weights and parameter groups (aejax.models.spec)."""

import dataclasses
import json
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from aejax.config import Config
from aejax.errors import ConfigError
from aejax.models import registry
from aejax.models.autoencoder import Autoencoder, select_group
from aejax.models.compose import dense_parts
from aejax.models.objective import make_objective
from aejax.models.options import Dense
from aejax.models.spec import DataInfo, Group, ModelSpec
from aejax.train.optim import make_optimizers
from aejax.train.state import init_state
from aejax.train.step import make_train_step

# config.json of a vae run written before the models owned their options: every model's
# keys (76), the foreign ones at their defaults.
OLD_CONFIG_JSON = """{"activation": "gelu", "adversarial_weight": 1.0, "augment": "",
"autorec_l2": 0.003, "autorec_output": "identity", "autorec_variant": "item",
"batch_size": 64, "beta": 2.0, "binarize": false, "capacity": 0.0, "capacity_gamma": 1000.0,
"capacity_steps": 0, "cell": "lstm", "checkpoint_every": 0, "checkpoint_seconds": 30.0,
"code_dim": 64, "codebook_size": 512, "commitment": 0.25, "compile_cache": null,
"contractive_jacobian": "auto", "contractive_weight": 0.1, "conv_features": [32, 64],
"corruption": "", "data": "digits", "data_dir": null, "deconv": "subpixel", "devices": null,
"disc_hidden": [256, 256], "disc_lr": 0.0, "distributed": false, "download": false,
"drop_columns": [], "dtype": "float32", "epochs": 100, "grad_clip": 1.0, "hidden": [64],
"impute": "none", "keep_checkpoints": 2, "kl_warmup_steps": 0, "label_column": null,
"latent_dim": 8, "likelihood": "auto", "lr": 0.001, "min_delta": 0.0, "model": "vae",
"nonfinite": "stop", "optimizer": "adam", "patience": 0, "pretrain_corruption": "none",
"pretrain_epochs": 10, "pretrain_lr": 0.0, "prior": "gaussian", "prior_components": 10,
"progress": true, "ratings_centre": "mean", "ratings_columns": [], "reverse_decode": true,
"rnn_hidden": 64, "rnn_unroll": 1, "schedule": "cosine", "seed": 0, "sparsity": "kl",
"sparsity_k": 4, "sparsity_target": 0.05, "sparsity_weight": 1.0, "teacher_forcing": false,
"tensorboard": false, "test_fraction": 0.2, "val_fraction": 0.1, "vq_decay": 0.99,
"vq_restart": true, "vq_update": "ema", "warmup_fraction": 0.05, "warmup_steps": null,
"weight_decay": 0.0001, "workdir": null}"""


def test_set_routes_model_keys_to_the_models_options():
    c = Config().with_overrides(["model=vq_vae", "codebook_size=16", "conv_features=8,16"])
    assert type(c.options).__name__ == "VQOptions"
    assert c.options.codebook_size == c.codebook_size == 16 and c.conv_features == (8, 16)
    assert c == Config(model="vq_vae", codebook_size=16, conv_features=(8, 16))
    assert hash(c) == hash(Config(model="vq_vae", codebook_size=16, conv_features=(8, 16)))
    assert c != Config(model="vq_vae", codebook_size=17, conv_features=(8, 16))
    flat = c.to_dict()
    assert flat["codebook_size"] == 16 and "beta" not in flat and "hidden" not in flat
    assert Config.from_dict(json.loads(c.dumps())) == c


def test_a_key_the_model_does_not_read_is_refused_naming_model_and_keys():
    with pytest.raises(ConfigError) as e:
        Config(model="ae", beta=2)
    msg = str(e.value)
    assert "model 'ae' does not use beta=2 (a key of vae, conv_vae" in msg
    assert "'hidden'" in msg and "\n" not in msg
    with pytest.raises(
        ConfigError, match=r"unknown config field 'betta' \(did you mean 'beta'\?\)"
    ):
        Config(model="vae").with_overrides(["betta=2"])
    with pytest.raises(ConfigError, match="model 'seq2seq_ae' does not use activation='relu'"):
        Config(model="seq2seq_ae", activation="relu")
    with pytest.raises(AttributeError, match="has no field 'beta'"):
        _ = Config().beta


def test_changing_the_model_keeps_the_options_both_read():
    vae = Config(model="vae", hidden=(64,), beta=4.0)
    ae = vae.replace(model="ae")
    assert ae.hidden == (64,) and "beta" not in ae.to_dict()
    assert ae.replace(model="vae").beta == 1.0  # reset to vae's default
    assert Config(model="seq2seq_ae") == Config(activation="relu").replace(model="seq2seq_ae")


def test_an_old_flat_config_json_still_loads():
    old = json.loads(OLD_CONFIG_JSON)
    assert len(old) == 76
    c = Config.from_dict(old)
    assert c == Config(model="vae", beta=2.0, hidden=(64,))
    # A foreign key off its default meant a run that never could have trained: refused.
    with pytest.raises(ConfigError, match="does not use codebook_size=7"):
        Config.from_dict({**old, "codebook_size": 7})
    with pytest.raises(ConfigError, match="model 'ae' does not use adversarial_weight=1.0"):
        Config().replace(**{**old, "model": "ae"})  # replace is strict: from_dict is not


def _weights_at(config, step=0):
    obj = make_objective(config, 100)
    return {k: float(obj.weight(k, step)) for k in obj.weights}


def test_each_model_weighs_its_own_terms():
    assert _weights_at(Config()) == {"reconstruction": 1.0}
    assert _weights_at(Config(model="vae", beta=3.0)) == {"reconstruction": 1.0, "kl": 3.0}
    assert _weights_at(Config(model="vae", beta=2.0, kl_warmup_steps=10), 5)["kl"] == 1.0
    assert _weights_at(Config(model="vq_vae", commitment=0.5)) == {
        "reconstruction": 1.0,
        "commitment": 0.5,
        "codebook": 1.0,
    }
    assert _weights_at(Config(model="adversarial_ae", adversarial_weight=0.3)) == {
        "reconstruction": 1.0,
        "adversarial": pytest.approx(0.3),
        "discriminator": 1.0,
    }
    assert _weights_at(Config(model="sparse_ae", sparsity_weight=2.0))["sparsity"] == 2.0
    c = Config(model="contractive_ae", contractive_weight=0.5)
    assert _weights_at(c)["contractive"] == 0.5
    assert _weights_at(Config(model="autorec", autorec_l2=0.25))["l2"] == 0.25
    cap = make_objective(Config(model="conv_vae", capacity=4.0, capacity_steps=300), 100)
    assert cap.final_step == 300 and float(cap.capacity(150)) == 2.0


def test_every_spec_declares_its_capabilities_and_options():
    for name, spec in registry.MODELS.items():
        assert spec.name == name and spec.kinds == registry.kinds_of(name)
        assert set(spec.test_config) <= set(spec.hparams), name
        options = spec.options()
        assert hash(options) == hash(spec.options())  # frozen, hashable
        if "image" in spec.kinds:
            model = registry.create_model(name, (8, 8, 1), **spec.test_config)
            assert model.has_posterior == spec.posterior, name


def test_the_default_log_prior_is_the_standard_normal():
    model = registry.create_model("vae", (4,), "gaussian", hidden=(8,), latent_dim=2)
    z = jnp.array([[0.0, 0.0], [1.0, -2.0]])
    params = model.init(jax.random.key(0), jnp.zeros((1, 4)))
    got = model.apply(params, z, method=lambda m, z: m.log_prior(z))
    np.testing.assert_allclose(got, [-np.log(2 * np.pi), -np.log(2 * np.pi) - 2.5], rtol=1e-6)


def test_the_registry_lists_models_without_importing_jax():
    code = (
        "import sys, types\n"
        "pkg = types.ModuleType('aejax'); pkg.__path__ = ['aejax']; sys.modules['aejax'] = pkg\n"
        "from aejax.models import registry\n"
        "assert registry.list_models()[0][0] == 'ae' and 'vq_vae' in registry.MODELS\n"
        "import aejax.config\n"
        "assert 'jax' not in sys.modules, 'jax was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=_root())


def _root():
    import pathlib

    return pathlib.Path(__file__).parent.parent


# --- a model that declares a second parameter group with its own optimizer -----------------
class Critic(nn.Module):
    """A linear critic of codes ``[B, K] -> [B]``."""

    @nn.compact
    def __call__(self, z):
        return nn.Dense(1)(z)[:, 0]


class CriticAutoencoder(Autoencoder):
    """The ae with a critic trained in a phase of its own (as FactorVAE's would be)."""

    critic: nn.Module = None

    def __call__(self, x, **kwargs):
        recon, aux = super().__call__(x, **kwargs)
        aux["terms"]["tc"] = self.critic(aux["z"])  # the encoder's term against the critic
        return recon, aux

    def critic_terms(self, x, *, train=False, mask=None, target=None):
        del mask, target
        z, _ = self.code(self.encoder(x), train=train)
        return None, {"terms": {"critic": jnp.square(self.critic(jax.lax.stop_gradient(z)))}}


@dataclasses.dataclass(frozen=True)
class CriticOptions(Dense):
    critic_lr: float = 0.05


def _build(options, common, data: DataInfo):
    from aejax.models.codes import IdentityCode

    parts = dense_parts(options, common, data, IdentityCode(common.latent_dim))
    return CriticAutoencoder(
        data.input_shape,
        likelihood=common.likelihood,
        critic=Critic(),
        groups=(("tc_critic", "critic_terms", "critic"),),
        **parts,
    )


@pytest.fixture
def critic_model():
    spec = ModelSpec(
        _build,
        CriticOptions,
        weights=lambda o, t: ({"critic": 1.0, "tc": 0.1}, None, t),
        groups=(Group("tc_critic", lambda o: {"lr": o.critic_lr}),),
        kinds=("tabular",),
        description="a test model with a critic group",
    )
    registry.register(spec, "critic_ae")
    yield
    registry.unregister("critic_ae")


def test_a_model_declared_group_trains_with_its_own_optimizer(critic_model):
    config = Config(
        model="critic_ae", hidden=(8,), latent_dim=2, schedule="constant", grad_clip=0.0
    )
    assert config.critic_lr == 0.05 and config.replace(critic_lr=0.5).critic_lr == 0.5
    model = registry.model_from_config(config, (4,), "tabular")
    assert model.phases == (("tc_critic", "critic_terms"), ("autoencoder", "__call__"))
    optimizers = make_optimizers(config, 10, model)
    assert set(optimizers) == {"tc_critic", "autoencoder"}
    state = init_state(model, optimizers, (4,), seed=0)
    assert set(select_group(state.params, "tc_critic", model)) == {"critic"}
    step = jax.jit(make_train_step(model, optimizers, make_objective(config, 10)))
    x = jax.random.normal(jax.random.key(1), (16, 4))
    new, metrics = step(state, {"x": x}, jax.random.key(2))
    assert "tc_critic_loss" in metrics and "critic" in metrics
    # Adam's first step moves every parameter by ~its group's learning rate.
    moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), new.params, state.params)
    assert max(jax.tree.leaves(moved["critic"])) == pytest.approx(0.05, rel=1e-3)
    assert max(jax.tree.leaves(moved["encoder"])) == pytest.approx(1e-3, rel=1e-3)
