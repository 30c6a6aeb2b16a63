"""The model registry: each name is a small factory that composes an ``Autoencoder``.

Each entry declares the config keys it reads (anything else set for it is refused), the
data kinds it supports and a tiny config that the registry-driven tests and the quick
benchmarks train, so a new model is covered without new test code.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

from aejax.errors import ConfigError, did_you_mean
from aejax.models.adversarial import discriminator_from_hparams
from aejax.models.autoencoder import Autoencoder
from aejax.models.autorec import ActivationCode, L2Penalty, OutputLayer
from aejax.models.codes import GaussianCode, IdentityCode
from aejax.models.contractive import ContractivePenalty, SigmoidCode, resolve_jacobian
from aejax.models.likelihoods import Likelihood
from aejax.models.parts import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, check_conv_shape
from aejax.models.sparse import sparse_code_from_hparams
from aejax.models.vq import quantizer_from_hparams

# Keys every model reads; the others belong to the models that list them.
COMMON = ("latent_dim", "activation", "dtype", "likelihood")
DENSE = ("hidden",)
CONV = ("conv_features", "deconv")
VARIATIONAL = ("beta", "kl_warmup_steps", "capacity", "capacity_steps", "capacity_gamma")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    Attributes:
      name: the registry name (``--model``).
      build: ``build(input_shape, likelihood, hp) -> Autoencoder``; ``hp`` maps every key
        of ``hparams`` to its value.
      hparams: the ``Config`` fields this model reads (``COMMON`` included).
      kinds: data kinds it supports (``"image"``, ``"tabular"``, ``"ratings"``).
      description: one line for ``aejax models``.
      test_config: ``Config`` overrides for a tiny, fast run (tests and quick benchmarks).
      default_corruption: the training-input corruption (``aejax.corruption``) a run
        uses when ``Config.corruption`` is empty; ``""`` = none.
    """

    name: str
    build: Callable[[tuple[int, ...], Likelihood, Mapping[str, Any]], Autoencoder]
    hparams: tuple[str, ...]
    kinds: tuple[str, ...]
    description: str
    test_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    default_corruption: str = ""


def _out_shape(input_shape, likelihood: Likelihood) -> tuple[int, ...]:
    return (*input_shape[:-1], input_shape[-1] * likelihood.params_per_element)


def dense_parts(input_shape, likelihood, hp, code) -> dict:
    """MLP encoder and mirrored MLP decoder around ``code``."""
    hidden = tuple(hp["hidden"])
    act, dtype = hp["activation"], hp["dtype"]
    return {
        "encoder": MLPEncoder(hidden, code.features, act, dtype),
        "code": code,
        "decoder": MLPDecoder(hidden[::-1], _out_shape(input_shape, likelihood), act, dtype),
    }


def conv_parts(input_shape, likelihood, hp, code, *, grid: bool = False) -> dict:
    """Stride-2 conv encoder and transposed-conv decoder around ``code``."""
    feats = tuple(hp["conv_features"])
    check_conv_shape(tuple(input_shape), len(feats))
    act, dtype = hp["activation"], hp["dtype"]
    out_channels = input_shape[-1] * likelihood.params_per_element
    return {
        "encoder": ConvEncoder(feats, code.features, grid, act, dtype),
        "code": code,
        "decoder": ConvDecoder(
            tuple(input_shape), feats, out_channels, grid, act, dtype, hp["deconv"]
        ),
    }


def _compose(parts_fn, code_fn):
    def build(input_shape, likelihood, hp):
        parts = parts_fn(input_shape, likelihood, hp, code_fn(hp))
        return Autoencoder(tuple(input_shape), likelihood=likelihood, **parts)

    return build


MODELS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Adds ``spec`` to ``MODELS`` (its name must be new)."""
    if spec.name in MODELS:
        raise ValueError(f"model {spec.name!r} is already registered")
    MODELS[spec.name] = spec
    return spec


_TINY_DENSE = {"hidden": (32,), "latent_dim": 4}
_TINY_CONV = {"conv_features": (8, 16), "latent_dim": 4}

register(
    ModelSpec(
        "ae",
        _compose(dense_parts, lambda hp: IdentityCode(hp["latent_dim"])),
        COMMON + DENSE,
        ("image", "tabular"),
        "dense undercomplete autoencoder (hidden=... sets a deep topology)",
        _TINY_DENSE,
    )
)
register(
    ModelSpec(
        "conv_ae",
        _compose(conv_parts, lambda hp: IdentityCode(hp["latent_dim"])),
        COMMON + CONV,
        ("image",),
        "strided-conv encoder, transposed-conv decoder (images)",
        _TINY_CONV,
    )
)
register(
    ModelSpec(
        "vae",
        _compose(dense_parts, lambda hp: GaussianCode(hp["latent_dim"])),
        COMMON + DENSE + VARIATIONAL,
        ("image", "tabular"),
        "variational autoencoder, dense: Gaussian posterior, KL weighted by beta, "
        "warm-up or capacity schedule",
        _TINY_DENSE,
    )
)
register(
    ModelSpec(
        "conv_vae",
        _compose(conv_parts, lambda hp: GaussianCode(hp["latent_dim"])),
        COMMON + CONV + VARIATIONAL,
        ("image",),
        "variational autoencoder with conv_ae's encoder and decoder (images)",
        _TINY_CONV,
    )
)

register(
    ModelSpec(
        "denoising_ae",
        _compose(dense_parts, lambda hp: IdentityCode(hp["latent_dim"])),
        COMMON + DENSE,
        ("image", "tabular"),
        "ae trained to reconstruct clean inputs from corrupted ones (Vincent et al. 2008); "
        "default corruption=masking:0.25, any other with --set corruption=...",
        _TINY_DENSE,
        # Vincent et al.'s masking noise: it means the same on [0, 1] images and on
        # standardized tables (0 = the training mean), which a Gaussian's sigma does not.
        default_corruption="masking:0.25",
    )
)

ADVERSARIAL = ("prior", "prior_components", "disc_hidden", "disc_lr", "adversarial_weight")


def _adversarial_ae(input_shape, likelihood, hp):
    parts = dense_parts(input_shape, likelihood, hp, IdentityCode(hp["latent_dim"]))
    adversary = discriminator_from_hparams(hp)
    return Autoencoder(tuple(input_shape), likelihood=likelihood, adversary=adversary, **parts)


register(
    ModelSpec(
        "adversarial_ae",
        _adversarial_ae,
        COMMON + DENSE + ADVERSARIAL,
        ("image", "tabular"),
        "adversarial autoencoder (Makhzani et al. 2016), dense: a latent discriminator pushes "
        "the codes toward prior=gaussian|mixture",
        {"hidden": (32,), "latent_dim": 2, "disc_hidden": (16,)},
    )
)


VQ = ("codebook_size", "code_dim", "commitment", "vq_update", "vq_decay", "vq_restart")


def _vq_vae(input_shape, likelihood, hp):
    code = quantizer_from_hparams(input_shape, hp)
    parts = conv_parts(input_shape, likelihood, hp, code, grid=True)
    return Autoencoder(tuple(input_shape), likelihood=likelihood, **parts)


register(
    ModelSpec(
        "vq_vae",
        _vq_vae,
        COMMON + CONV + VQ,
        ("image",),
        "vector-quantized VAE (van den Oord et al. 2017): a grid of codebook_size codes of "
        "code_dim, EMA or loss codebook, dead-code restart (latent_dim: PCA comparison only)",
        {"conv_features": (8, 16), "codebook_size": 16, "code_dim": 8},
    )
)


SPARSE = ("sparsity", "sparsity_weight", "sparsity_target", "sparsity_k")

register(
    ModelSpec(
        "sparse_ae",
        _compose(dense_parts, sparse_code_from_hparams),
        COMMON + DENSE + SPARSE,
        ("image", "tabular"),
        "sparse autoencoder, dense: sparsity=l1 (ReLU code), kl (Ng's target rate on a "
        "sigmoid code) or topk (k-sparse, Makhzani & Frey 2013)",
        _TINY_DENSE,
    )
)
register(
    ModelSpec(
        "conv_sparse_ae",
        _compose(conv_parts, sparse_code_from_hparams),
        COMMON + CONV + SPARSE,
        ("image",),
        "sparse_ae's code between conv_ae's encoder and decoder (images)",
        _TINY_CONV,
    )
)


CONTRACTIVE = ("contractive_weight", "contractive_jacobian")


def _contractive_ae(input_shape, likelihood, hp):
    method = resolve_jacobian(
        hp["contractive_jacobian"], input_shape, hp["hidden"], hp["latent_dim"]
    )
    parts = dense_parts(input_shape, likelihood, hp, SigmoidCode(hp["latent_dim"]))
    penalty = ContractivePenalty(method)
    return Autoencoder(tuple(input_shape), likelihood=likelihood, penalty=penalty, **parts)


register(
    ModelSpec(
        "contractive_ae",
        _contractive_ae,
        COMMON + DENSE + CONTRACTIVE,
        ("image", "tabular"),
        "contractive autoencoder (Rifai et al. 2011), dense: a sigmoid code and "
        "contractive_weight * ||J_h(x)||_F^2 (closed form for one layer, hidden=())",
        _TINY_DENSE,
    )
)


PRETRAIN = ("pretrain_epochs", "pretrain_lr", "pretrain_corruption")

register(
    ModelSpec(
        "stacked_ae",
        # The network is ae's; what differs is how it is trained: train_and_evaluate and
        # `aejax train` first pretrain it layer by layer (aejax/pretrain.py), then fine-tune
        # from those parameters. aejax.train.train alone starts from init_params it is given.
        _compose(dense_parts, lambda hp: IdentityCode(hp["latent_dim"])),
        COMMON + DENSE + PRETRAIN,
        ("image", "tabular"),
        "ae with greedy layer-wise pretraining, each layer a shallow (denoising with "
        "pretrain_corruption=...) autoencoder on the previous codes, then fine-tuned (SDAE)",
        {**_TINY_DENSE, "pretrain_epochs": 2},
    )
)


AUTOREC = ("autorec_variant", "autorec_l2", "autorec_output")


def _autorec(input_shape, likelihood, hp):
    # One hidden layer: a linear encoder of latent_dim units, the activation as the code.
    # The paper's sigmoid beats the library's default gelu here (I-AutoRec on MovieLens,
    # validation RMSE 0.839 vs 0.876); activation is a field all models share, so its
    # default stays gelu and the paper's choice is --set activation=sigmoid.
    code = ActivationCode(hp["latent_dim"], hp["activation"])
    return Autoencoder(
        tuple(input_shape),
        encoder=MLPEncoder((), code.features, hp["activation"], hp["dtype"]),
        code=code,
        decoder=OutputLayer(_out_shape(input_shape, likelihood), hp["autorec_output"], hp["dtype"]),
        likelihood=likelihood,
        penalty=L2Penalty(),
    )


register(
    ModelSpec(
        "autorec",
        # The row orientation (autorec_variant) is the data's: dataset_for lays a ratings:
        # file out as items over users (I-AutoRec) or users over items (U-AutoRec).
        _autorec,
        COMMON + AUTOREC,
        ("ratings",),
        "AutoRec (Sedhain et al. 2015) on ratings:PATH data: one hidden layer of latent_dim "
        "units (the paper's: --set activation=sigmoid), masked loss on observed ratings + "
        "autorec_l2; item- or user-based; input dropout masking:0.5 by default",
        {"latent_dim": 16, "activation": "sigmoid"},
        # Hiding half of each row's observed inputs at every step (the loss still scores
        # all of them) took I-AutoRec's validation RMSE on MovieLens from 0.866 to 0.846.
        default_corruption="masking:0.5",
    )
)


SEQ2SEQ = ("cell", "rnn_hidden", "reverse_decode", "teacher_forcing", "rnn_unroll")


def _seq2seq_ae(input_shape, likelihood, hp):
    from aejax.models.sequence import SequenceAutoencoder, seq2seq_parts

    parts = seq2seq_parts(input_shape, likelihood, hp, IdentityCode(hp["latent_dim"]))
    return SequenceAutoencoder(tuple(input_shape), likelihood=likelihood, **parts)


register(
    ModelSpec(
        "seq2seq_ae",
        _seq2seq_ae,
        ("latent_dim", "dtype", "likelihood") + SEQ2SEQ,
        ("sequence",),
        "LSTM/GRU sequence autoencoder (EncDec-AD, Malhotra et al. 2016) on sequence data: "
        "the encoder's final state projected to the code, reversed decoding, optional "
        "teacher forcing, variable lengths through masks",
        {"rnn_hidden": 32, "latent_dim": 4},
    )
)


def get_spec(name: str) -> ModelSpec:
    """The registry entry ``name`` (any case), or a ConfigError suggesting the nearest."""
    if name in MODELS:
        return MODELS[name]
    folded = {n.lower(): spec for n, spec in MODELS.items()}
    if isinstance(name, str) and name.lower() in folded:
        return folded[name.lower()]
    raise ConfigError(
        f"unknown model {name!r}{did_you_mean(name, MODELS)}; known models: {', '.join(MODELS)}"
    )


def model_keys() -> frozenset[str]:
    """Every config key some model reads."""
    return frozenset(k for spec in MODELS.values() for k in spec.hparams)


def config_keys(name: str) -> tuple[str, ...]:
    """The ``Config`` fields that matter to a run of model ``name``, in ``Config`` order.

    These are the model's own ``hparams`` and every field that no model owns (data,
    optimisation, loop); ``aejax config --model NAME`` shows them.
    """
    from aejax.config import Config

    own, owned = set(get_spec(name).hparams), model_keys()
    return tuple(f.name for f in dataclasses.fields(Config) if f.name in own or f.name not in owned)


def list_models() -> list[tuple[str, str]]:
    """Returns ``(name, description)`` for every registered model."""
    return [(name, spec.description) for name, spec in MODELS.items()]


def create_model(
    name: str, input_shape: tuple[int, ...], likelihood: str | Likelihood = "bernoulli", **hparams
) -> Autoencoder:
    """Builds registry model ``name``.

    Args:
      name: a key of ``MODELS``.
      input_shape: per-example data shape, e.g. ``(28, 28, 1)``.
      likelihood: ``"bernoulli"`` for [0, 1] images, ``"gaussian"`` or
        ``"gaussian_learned"`` for standardized data (or a ``Likelihood``).
      **hparams: the model's hyperparameters (``ModelSpec.hparams``); unset ones take the
        ``aejax.Config`` defaults.

    Returns:
      An unbound ``Autoencoder``.

    Raises:
      ConfigError: an unknown model, a key the model does not read, a bad shape.
    """
    from aejax.config import Config  # the defaults live in one place

    spec = get_spec(name)
    keys = [k for k in spec.hparams if k != "likelihood"]  # the argument of its own
    unknown = sorted(set(hparams) - set(keys))
    if unknown:
        raise ConfigError(
            f"model {name!r} does not use {unknown}; its hyperparameters are {sorted(keys)}"
        )
    defaults = Config()
    hp = {k: hparams.get(k, getattr(defaults, k)) for k in keys}
    hp = {k: tuple(v) if isinstance(v, list) else v for k, v in hp.items()}
    lik = likelihood if isinstance(likelihood, Likelihood) else Likelihood(likelihood)
    if len(input_shape) < 1 or math.prod(input_shape) < 1:
        raise ConfigError(f"input_shape must be non-empty, got {input_shape}")
    return spec.build(tuple(input_shape), lik, hp)


def model_from_config(config, input_shape: tuple[int, ...], kind: str) -> Autoencoder:
    """The model ``config`` describes for data of ``kind`` and ``input_shape``.

    Raises:
      ConfigError: the model does not support ``kind``, or ``config`` sets (to a value
        other than the default) a key this model does not read, e.g. ``beta`` for ``ae``.
    """
    from aejax.models.likelihoods import likelihood_for

    spec = get_spec(config.model)
    check_model_keys(config)
    if kind not in spec.kinds:
        raise ConfigError(
            f"model {spec.name!r} supports {list(spec.kinds)} data, not {kind!r}; models for "
            f"{kind} data: {sorted(n for n, s in MODELS.items() if kind in s.kinds)}"
        )
    hp = {k: getattr(config, k) for k in spec.hparams if k != "likelihood"}
    return create_model(config.model, input_shape, likelihood_for(kind, config.likelihood), **hp)


def check_model_keys(config, explicit: tuple[str, ...] = ()) -> None:
    """Refuses model keys the chosen model does not read.

    Args:
      config: the run's ``Config``.
      explicit: keys the user set by name (``--set``); refused even at their default.

    Raises:
      ConfigError: naming the offending keys and the model's valid ones.
    """
    from aejax.config import Config

    spec = get_spec(config.model)
    defaults = Config()
    foreign = model_keys() - set(spec.hparams)
    bad = sorted(k for k in foreign if k in explicit or getattr(config, k) != getattr(defaults, k))
    if bad:
        shown = ", ".join(f"{k}={getattr(config, k)!r}" for k in bad)
        raise ConfigError(
            f"model {spec.name!r} does not use {shown}; its hyperparameters are "
            f"{sorted(spec.hparams)}"
        )
