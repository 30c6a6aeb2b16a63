"""The model registry: one line per model, its spec loaded from the model's file on first use.

Listing names, kinds and descriptions imports no jax (``aejax models``); ``MODELS[name]``
imports the model's module and returns its full ``ModelSpec`` (``aejax.models.spec``):
the options it reads (anything else set for it is refused), how it builds, its term
weights, parameter groups, capabilities and a tiny config that the registry-driven tests
and the quick benchmarks train, so a new model is covered without new test code.
Adding a model: one model file and one ``_line`` below (docs/models.md).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

from aejax.errors import ConfigError, did_you_mean
from aejax.models.spec import COMMON_DEFAULTS, Common, DataInfo, ModelSpec


@dataclasses.dataclass(frozen=True)
class _Line:
    target: str  # "module:ATTRIBUTE" of the model's ModelSpec
    kinds: tuple[str, ...]
    description: str


_LINES: dict[str, _Line] = {}


def _line(name: str, target: str, kinds: tuple[str, ...], description: str) -> None:
    """Registers model ``name``: its spec is ``target`` (``"module:ATTR"``), loaded lazily."""
    if name in _LINES:
        raise ValueError(f"model {name!r} is already registered")
    _LINES[name] = _Line(target, tuple(kinds), description)


_IT = ("image", "tabular")

# fmt: off
_line("ae", "aejax.models.plain:AE", _IT,
      "dense undercomplete autoencoder (hidden=... sets a deep topology)")
_line("conv_ae", "aejax.models.plain:CONV_AE", ("image",),
      "strided-conv encoder, transposed-conv decoder (images)")
_line("vae", "aejax.models.variational:VAE", _IT,
      "variational autoencoder, dense: Gaussian posterior, KL weighted by beta, "
      "warm-up or capacity schedule")
_line("conv_vae", "aejax.models.variational:CONV_VAE", ("image",),
      "variational autoencoder with conv_ae's encoder and decoder (images)")
_line("denoising_ae", "aejax.models.plain:DENOISING_AE", _IT,
      "ae trained to reconstruct clean inputs from corrupted ones (Vincent et al. 2008); "
      "default corruption=masking:0.25, any other with --set corruption=...")
_line("adversarial_ae", "aejax.models.adversarial:ADVERSARIAL_AE", _IT,
      "adversarial autoencoder (Makhzani et al. 2016), dense: a latent discriminator pushes "
      "the codes toward prior=gaussian|mixture")
_line("vq_vae", "aejax.models.vq:VQ_VAE", ("image",),
      "vector-quantized VAE (van den Oord et al. 2017): a grid of codebook_size codes of "
      "code_dim, EMA or loss codebook, dead-code restart (latent_dim: PCA comparison only)")
_line("sparse_ae", "aejax.models.sparse:SPARSE_AE", _IT,
      "sparse autoencoder, dense: sparsity=l1 (ReLU code), kl (Ng's target rate on a "
      "sigmoid code) or topk (k-sparse, Makhzani & Frey 2013)")
_line("conv_sparse_ae", "aejax.models.sparse:CONV_SPARSE_AE", ("image",),
      "sparse_ae's code between conv_ae's encoder and decoder (images)")
_line("contractive_ae", "aejax.models.contractive:CONTRACTIVE_AE", _IT,
      "contractive autoencoder (Rifai et al. 2011), dense: a sigmoid code and "
      "contractive_weight * ||J_h(x)||_F^2 (closed form for one layer, hidden=())")
_line("stacked_ae", "aejax.models.stacked:STACKED_AE", _IT,
      "ae with greedy layer-wise pretraining, each layer a shallow (denoising with "
      "pretrain_corruption=...) autoencoder on the previous codes, then fine-tuned (SDAE)")
_line("autorec", "aejax.models.autorec:AUTOREC", ("ratings",),
      "AutoRec (Sedhain et al. 2015) on ratings:PATH data: one hidden layer of latent_dim "
      "units (the paper's: --set activation=sigmoid), masked loss on observed ratings + "
      "autorec_l2; item- or user-based; input dropout masking:0.5 by default")
_line("seq2seq_ae", "aejax.models.sequence:SEQ2SEQ_AE", ("sequence",),
      "LSTM/GRU sequence autoencoder (EncDec-AD, Malhotra et al. 2016) on sequence data: "
      "the encoder's final state projected to the code, reversed decoding, optional "
      "teacher forcing, variable lengths through masks")
_line("wae", "aejax.models.wae:WAE", _IT,
      "Wasserstein autoencoder, WAE-MMD (Tolstikhin et al. 2018), dense: deterministic "
      "codes pulled to N(0, I) by mmd_weight * an IMQ-kernel MMD")
_line("vamp", "aejax.models.vamp:VAMP", _IT,
      "VAE with a VampPrior (Tomczak & Welling 2018), dense: the prior a mixture of the "
      "posteriors of pseudo_inputs learned inputs, a Monte Carlo KL weighted by beta")
_line("beta_tcvae", "aejax.models.tcvae:BETA_TCVAE", _IT,
      "beta-TCVAE (Chen et al. 2018), dense: the KL split into mi, tc and dim_kl, estimated "
      "on the minibatch (tc_estimator=mws|mss), weighted mi_weight, tc_weight, dim_kl_weight")
_line("factor_vae", "aejax.models.factor_vae:FACTOR_VAE", _IT,
      "FactorVAE (Kim & Mnih 2018), dense: vae + gamma * a discriminator's estimate of the "
      "codes' total correlation; the discriminator trains with its own Adam")
_line("info_vae", "aejax.models.info_vae:INFO_VAE", _IT,
      "InfoVAE / MMD-VAE (Zhao et al. 2019), dense: vae with the KL weighted 1 - info_alpha "
      "and an MMD (mmd_kernel=imq|rbf) of the batch's codes to N(0, I) weighted "
      "info_alpha + info_lambda - 1")
_line("rae", "aejax.models.rae:RAE", _IT,
      "regularized autoencoder (Ghosh et al. 2020), dense: deterministic codes, "
      "rae_beta * ||z||^2 / 2 and rae_lambda * a decoder regulariser rae_reg=l2|gp "
      "(weight decay or ||dD/dz||_F^2)")
_line("iwae", "aejax.models.iwae:IWAE", _IT,
      "importance-weighted autoencoder (Burda et al. 2016), dense: iw_samples K draws per "
      "bound; iw_variant=iwae|miwae|piwae|ciwae (Rainforth et al. 2018), iw_groups M")
_line("svae", "aejax.models.svae:SVAE", _IT,
      "hyperspherical VAE, S-VAE (Davidson et al. 2018), dense: a von Mises-Fisher code on "
      "the sphere S^(latent_dim-1), uniform prior, closed-form KL weighted by beta")
_line("hvae", "aejax.models.hvae:HVAE", _IT,
      "Hamiltonian VAE (Caterini et al. 2018), dense: the posterior draw moved by n_lf "
      "tempered leapfrog steps on -log p(x, z); the loss is the flow's bound")
_line("rhvae", "aejax.models.rhvae:RHVAE", _IT,
      "Riemannian Hamiltonian VAE (Chadebec et al. 2020), dense: hvae's flow with a learned "
      "metric G(z) on the latent space and the generalized leapfrog")
_line("vae_gan", "aejax.models.vae_gan:VAE_GAN", _IT,
      "VAE-GAN (Larsen et al. 2016), dense: vae reconstructing in the features of a "
      "data-space GAN discriminator (conv for images) trained with its own optimizer")
_line("msssim_vae", "aejax.models.msssim_vae:MSSSIM_VAE", ("image",),
      "MS-SSIM VAE (Snell et al. 2017): vae whose reconstruction term is msssim_scale * "
      "(1 - MS-SSIM) (Wang et al. 2003, dm-pix filtering); msssim_network=dense|conv")
_line("hrq_vae", "aejax.models.hrq:HRQ_VAE", ("image",),
      "HRQ-VAE (Hosking et al. 2022): hrq_levels codebooks, each quantizing the residual "
      "of the previous (Gumbel-softmax, depth dropout, norm loss), the code their sum")
_line("flow_vae", "aejax.models.flow_vae:FLOW_VAE", _IT,
      "VAE with a normalizing-flow posterior, dense: flow=planar|radial (Rezende & Mohamed "
      "2015) or iaf (inverse autoregressive flow, Kingma et al. 2016), flow_length layers; "
      "Monte Carlo KL weighted by beta")
_line("poincare_vae", "aejax.models.poincare_vae:POINCARE_VAE", _IT,
      "Poincaré VAE, P-VAE (Mathieu et al. 2019), dense: a code in the Poincaré ball of "
      "curvature -c, wrapped or Riemannian normal prior and posterior, Monte Carlo KL "
      "weighted by beta; optional gyroplane first decoder layer")
# fmt: on


_LOADED: dict[str, ModelSpec] = {}


def _load(name: str) -> ModelSpec:
    if name not in _LOADED:
        line = _LINES[name]
        module, _, attr = line.target.partition(":")
        spec = getattr(importlib.import_module(module), attr)
        _LOADED[name] = dataclasses.replace(
            spec, name=name, kinds=line.kinds, description=line.description
        )
    return _LOADED[name]


class _Models(Mapping):
    """``name -> ModelSpec`` in registration order; a spec is loaded when first read."""

    def __getitem__(self, name: str) -> ModelSpec:
        if name not in _LINES:
            raise KeyError(name)
        return _load(name)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_LINES))

    def __len__(self) -> int:
        return len(_LINES)

    def __contains__(self, name: object) -> bool:
        return name in _LINES

    def __repr__(self) -> str:
        return f"MODELS({', '.join(_LINES)})"


MODELS: Mapping[str, ModelSpec] = _Models()


def register(spec: ModelSpec, name: str | None = None) -> ModelSpec:
    """Adds an already-built ``spec`` (its ``name``, ``kinds``, ``description`` set).

    The built-in models register by a line in this module instead (loaded lazily).
    """
    name = name or spec.name
    if not name or not spec.kinds:
        raise ValueError("register: the spec needs a name and kinds")
    _line(name, "", spec.kinds, spec.description)
    _LOADED[name] = dataclasses.replace(spec, name=name)
    return _LOADED[name]


def unregister(name: str) -> None:
    """Removes model ``name`` (tests that register a model of their own clean up)."""
    _LINES.pop(name, None)
    _LOADED.pop(name, None)


def resolve_name(name: str) -> str:
    """The registered name ``name`` means (any case), or a ConfigError with a did-you-mean."""
    if name in _LINES:
        return name
    if isinstance(name, str) and name.lower() in _LINES:
        return name.lower()
    raise ConfigError(
        f"unknown model {name!r}{did_you_mean(name, _LINES)}; known models: {', '.join(_LINES)}"
    )


def get_spec(name: str) -> ModelSpec:
    """The registry entry ``name`` (any case), or a ConfigError suggesting the nearest."""
    return _load(resolve_name(name))


def kinds_of(name: str) -> tuple[str, ...]:
    """The data kinds model ``name`` supports, without loading it."""
    return _LINES[resolve_name(name)].kinds


def list_models() -> list[tuple[str, str]]:
    """Returns ``(name, description)`` for every registered model (imports no model)."""
    return [(name, line.description) for name, line in _LINES.items()]


def model_keys() -> frozenset[str]:
    """Every config key some model reads (the shared model fields included)."""
    return frozenset(k for spec in MODELS.values() for k in spec.hparams)


def option_owners() -> dict[str, list[str]]:
    """Every model option key -> the models that read it, in registration order."""
    out: dict[str, list[str]] = {}
    for name, spec in MODELS.items():
        for f in dataclasses.fields(spec.options):
            out.setdefault(f.name, []).append(name)
    return out


def create_model(
    name: str,
    input_shape: tuple[int, ...],
    likelihood: Any = "bernoulli",
    *,
    kind: str | None = None,
    n_train: int | None = None,
    **options: Any,
):
    """Builds registry model ``name``.

    Args:
      name: a key of ``MODELS``.
      input_shape: per-example data shape, e.g. ``(28, 28, 1)``.
      likelihood: ``"bernoulli"`` for [0, 1] images, ``"gaussian"`` or
        ``"gaussian_learned"`` for standardized data (or a ``Likelihood``).
      kind: the data kind (``DataInfo.kind``); default the model's first kind.
      n_train: training examples (``DataInfo.n_train``), where the model needs it.
      **options: ``latent_dim``, ``activation``, ``dtype`` and the model's own options
        (``ModelSpec.options``); unset ones take their defaults.

    Returns:
      An unbound ``Autoencoder``.

    Raises:
      ConfigError: an unknown model, a key the model does not read, a bad shape.
    """
    from aejax.models.likelihoods import Likelihood  # late: it imports jax

    spec = get_spec(name)
    common_keys = [k for k in spec.common if k != "likelihood"]
    own = {f.name for f in dataclasses.fields(spec.options)}
    unknown = sorted(set(options) - set(common_keys) - own)
    if unknown:
        raise ConfigError(
            f"model {spec.name!r} does not use {unknown}; its hyperparameters are "
            f"{sorted([*common_keys, *own])}"
        )
    opts = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items() if k in own}
    common = {k: options.get(k, COMMON_DEFAULTS[k]) for k in ("latent_dim", "activation", "dtype")}
    lik = likelihood if isinstance(likelihood, Likelihood) else Likelihood(likelihood)
    return build(spec, spec.options(**opts), common, lik, input_shape, kind, n_train)


def build(
    spec: ModelSpec, options, common: Mapping[str, Any], likelihood, input_shape, kind, n_train
):
    """``spec.build`` on checked data: the one place every model is constructed.

    A spec's declared ``posterior`` capability is checked against the built module.
    """
    if len(input_shape) < 1 or math.prod(input_shape) < 1:
        raise ConfigError(f"input_shape must be non-empty, got {input_shape}")
    data = DataInfo(tuple(int(d) for d in input_shape), kind or spec.kinds[0], n_train)
    model = spec.build(options, Common(likelihood=likelihood, **common), data)
    if spec.posterior and not getattr(model, "has_posterior", False):
        raise TypeError(
            f"model {spec.name!r} declares posterior=True but its module has no posterior "
            "density (model.has_posterior is false): see docs/models.md, Capabilities"
        )
    return model


def model_from_config(config, input_shape: tuple[int, ...], kind: str, *, n_train=None):
    """The model ``config`` describes for data of ``kind`` and ``input_shape``.

    Args:
      config: the run's ``aejax.Config`` (its ``options`` are the model's).
      input_shape: one example's shape.
      kind: the data kind.
      n_train: training examples, for models that need it (``DataInfo.n_train``).

    Raises:
      ConfigError: the model does not support ``kind``.
    """
    from aejax.models.likelihoods import likelihood_for  # late: it imports jax

    spec = get_spec(config.model)
    if kind not in spec.kinds:
        raise ConfigError(
            f"model {spec.name!r} supports {list(spec.kinds)} data, not {kind!r}; models for "
            f"{kind} data: {sorted(n for n, line in _LINES.items() if kind in line.kinds)}"
        )
    common = {k: getattr(config, k) for k in ("latent_dim", "activation", "dtype")}
    lik = likelihood_for(kind, config.likelihood)
    return build(spec, config.options, common, lik, input_shape, kind, n_train)
