"""The sampler registry: one line per sampler, its spec loaded from its file on first use.

A sampler turns a trained model into a generator of examples. Some use the model's own
prior (``prior``); the others fit a density to the codes of the training split and decode
its draws ("ex-post density estimation", Ghosh et al. 2020). Each is a ``SamplerSpec``:

- ``fit(model, variables, codes, seed, **options) -> draw``: ``codes`` are the training
  codes ``[N, *code_shape]`` (``aejax.encode`` of the training split, None when
  ``needs_codes`` is False), ``seed`` an int for the fit (a fit is deterministic given
  it: ``jax.random.key(seed)`` for a fitted network, ``random_state`` for
  scikit-learn), ``options`` the sampler's own (``SamplerSpec.options`` names
  them with their defaults); ``draw(n, key) -> [n, *input_shape]`` float32 decoder means
  in the model's space (the same key gives the same samples).
- ``applies(model, variables) -> str | None``: None when the sampler can serve the model,
  else the reason it cannot (a one-line error names it).
- ``needs_codes``: whether ``fit`` reads the training codes (True, False, or a function
  ``(model, variables) -> bool`` where it depends on the model); the training split is
  encoded only then.
- ``options``: ``{name: default}``; the default's type is the option's (a string from the
  command line, ``--sampler-set epochs=20``, is read as that type).

Adding a sampler: one file in ``aejax/sampling/`` with its ``SamplerSpec`` and one
``_line`` below.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from aejax.errors import ConfigError, did_you_mean

Draw = Callable[[int, Any], Any]  # draw(n, key) -> np.ndarray [n, *input_shape]


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
    """How a sampler fits and whom it serves (see the module docstring)."""

    fit: Callable[..., Draw]
    applies: Callable[[Any, Any], str | None]
    needs_codes: bool | Callable[[Any, Any], bool] = True
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class _Line:
    target: str  # "module:ATTRIBUTE" of the sampler's SamplerSpec
    description: str


_LINES: dict[str, _Line] = {}


def _line(name: str, target: str, description: str) -> None:
    if name in _LINES:
        raise ValueError(f"sampler {name!r} is already registered")
    _LINES[name] = _Line(target, description)


# fmt: off
_line("prior", "aejax.sampling.basic:PRIOR",
      "the model's own prior: N(0, I) for a VAE, the VampPrior's mixture for vamp, uniform "
      "on the sphere for svae, the imposed prior of adversarial_ae, uniform codes for vq_vae")
_line("gmm", "aejax.sampling.basic:GMM",
      "a Gaussian mixture (full covariances, components=10) fitted to the training codes "
      "(Ghosh et al. 2020); any model with a code")
_line("pixelcnn", "aejax.sampling.pixelcnn:PIXELCNN",
      "a gated PixelCNN (van den Oord et al. 2016) fitted to the training grids of code "
      "indices, sampled in raster order (the VQ-VAE paper's prior); vq_vae only")
_line("two_stage", "aejax.sampling.two_stage:TWO_STAGE",
      "a second, small dense VAE fitted to the training codes, u ~ N(0, I) decoded twice (Dai & "
      "Wipf 2019); any model with a code; options latent (0: the code's size), hidden, epochs, "
      "lr, batch_size")
_line("vamp", "aejax.sampling.basic:VAMP",
      "the VampPrior's mixture of the posteriors of its pseudo-inputs (Tomczak & Welling 2018); "
      "the vamp model only, where it is its prior")
_line("normal", "aejax.sampling.fixed:NORMAL",
      "N(0, I) codes decoded: any model whose code is a vector; a VAE's prior")
_line("hypersphere", "aejax.sampling.fixed:HYPERSPHERE",
      "uniform on a sphere: the unit sphere for svae (its prior), else the sphere whose radius "
      "is the training codes' mean norm; any model whose code is a vector")
_line("maf", "aejax.sampling.maf:MAF",
      "a masked autoregressive flow (Papamakarios et al. 2017; layers=5 MADEs of 2x hidden=128 "
      "units) fitted by maximum likelihood to the standardized training codes, epochs=30, "
      "lr=1e-3, batch_size=256, best of a 10% hold-out; any model with a code")
# fmt: on


def sampler_names() -> tuple[str, ...]:
    return tuple(_LINES)


def describe() -> dict[str, str]:
    """``{name: one-line description}`` of every sampler, without importing jax."""
    return {name: line.description for name, line in _LINES.items()}


class _Samplers(Mapping[str, SamplerSpec]):
    def __getitem__(self, name: str) -> SamplerSpec:
        if name not in _LINES:
            raise ConfigError(
                f"unknown sampler {name!r}{did_you_mean(name, _LINES)}; "
                f"choose one of {', '.join(_LINES)}"
            )
        module, attr = _LINES[name].target.split(":")
        return getattr(importlib.import_module(module), attr)

    def __iter__(self) -> Iterator[str]:
        return iter(_LINES)

    def __len__(self) -> int:
        return len(_LINES)


SAMPLERS: Mapping[str, SamplerSpec] = _Samplers()


def resolve_options(name: str, spec: SamplerSpec, options: Mapping[str, Any]) -> dict[str, Any]:
    """The sampler's options: its defaults updated by ``options``; unknown keys refused.

    A string given for an option whose default is not one (the command line's
    ``--sampler-set KEY=VALUE``) is read as the default's type: ``bool`` (true/false,
    yes/no, on/off, 1/0), ``int`` or ``float``.

    Raises:
      ConfigError: an option the sampler does not have, or a value of the wrong type.
    """
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        known = ", ".join(f"{k}={v!r}" for k, v in spec.options.items()) or "none"
        raise ConfigError(
            f"sampler {name!r} has no option {unknown[0]!r}{did_you_mean(unknown[0], spec.options)}"
            f"; its options: {known}"
        )
    return {k: _typed(name, k, v, spec.options[k]) for k, v in {**spec.options, **options}.items()}


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _typed(sampler: str, key: str, value: Any, default: Any) -> Any:
    kind = type(default)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    text = str(value).strip().lower()
    try:
        if kind is bool and isinstance(value, str) and text in _TRUE + _FALSE:
            return text in _TRUE
        if kind is int and not isinstance(value, bool | float):
            return int(value)
        if kind is float and not isinstance(value, bool):
            return float(value)
    except (TypeError, ValueError):
        pass
    raise ConfigError(
        f"sampler {sampler!r} option {key!r}: cannot read {value!r} as {kind.__name__} "
        f"(default {default!r})"
    )


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``--sampler-set KEY=VALUE`` strings as ``{key: value}`` (typed later by the spec).

    Raises:
      ConfigError: an item without ``=``.
    """
    out = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--sampler-set expects KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out
