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
    needs_codes: bool = True
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
    """The sampler's options: its defaults updated by ``options``; unknown keys refused."""
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        known = ", ".join(spec.options) or "none"
        raise ConfigError(
            f"sampler {name!r} has no option {unknown[0]!r}{did_you_mean(unknown[0], spec.options)}"
            f"; its options: {known}"
        )
    return {**spec.options, **options}
