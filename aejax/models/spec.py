"""What a model declares: its options, data, term weights, parameter groups (no jax here).

A model file (``aejax/models/vq.py``, ...) defines a frozen options dataclass (fields made
with ``aejax.fields.field``, subclassing ``Options`` and the shared groups ``Dense``,
``Conv``, ``Variational`` of ``aejax.models.options``) and a ``ModelSpec``; one line in
``aejax.models.registry`` registers it. docs/models.md walks through adding one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

# The model fields every run's Config holds (``aejax.Config``), with their defaults;
# ``ModelSpec.common`` says which of them a model reads.
COMMON_DEFAULTS = {"latent_dim": 8, "activation": "gelu", "dtype": "float32", "likelihood": "auto"}
COMMON = tuple(COMMON_DEFAULTS)


@dataclasses.dataclass(frozen=True)
class DataInfo:
    """What a model's ``build`` knows about the data.

    Attributes:
      input_shape: one example's shape, e.g. ``(28, 28, 1)``, ``(30,)`` or ``(T, D)``.
      kind: ``"image"``, ``"tabular"``, ``"ratings"`` or ``"sequence"``.
      n_train: training examples, where known (beta-TCVAE's minibatch estimator needs it).
    """

    input_shape: tuple[int, ...]
    kind: str
    n_train: int | None = None


@dataclasses.dataclass(frozen=True)
class Common:
    """The run-wide model fields a ``build`` receives beside its options.

    Attributes:
      latent_dim: width of the code ``z``.
      activation: hidden-layer activation, a ``jax.nn`` name.
      dtype: compute dtype name (``"float32"``, ``"bfloat16"``, ``"float16"``).
      likelihood: the decoder's output distribution, resolved for the data
        (an ``aejax.models.likelihoods.Likelihood``).
    """

    latent_dim: int
    activation: str
    dtype: str
    likelihood: Any


@dataclasses.dataclass(frozen=True)
class Group:
    """A parameter group a model trains beside ``"autoencoder"``, with its own optimizer.

    The model's ``build`` wires it (``Autoencoder(groups=...)``: the top-level submodule
    whose parameters form the group and the model method of its phase); the spec says how
    its optimizer differs from the autoencoder's.

    Attributes:
      name: the group, e.g. ``"discriminator"``; its metrics are prefixed ``name_``.
      optimizer: ``optimizer(options) -> {setting: value}`` overrides of the run's
        optimizer settings for this group: Config fields (``lr``, ``schedule``,
        ``optimizer``, ``grad_clip``, ...), e.g. ``{"lr": options.disc_lr}``, and Adam's
        ``b1``, ``b2`` (``aejax.train.optim.ADAM_BETAS``); ``{}`` = the autoencoder's.
    """

    name: str
    optimizer: Callable[[Any], Mapping[str, Any]] = lambda options: {}


# weights(options, total_steps) -> (weights, capacity, final_step): see ModelSpec.weights.
Weights = tuple[Mapping[str, Any], Callable | None, int]


def no_weights(options: Any, total_steps: int) -> Weights:
    """The weights of a model whose only term is ``reconstruction``."""
    del options
    return {}, None, total_steps


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    Attributes:
      build: ``build(options, common, data) -> Autoencoder`` (an unbound flax module):
        ``options`` an instance of ``options``, ``common`` a ``Common``, ``data`` a
        ``DataInfo``. Raises ConfigError for options that do not fit the data.
      options: the frozen options dataclass (a subclass of ``models.options.Options``):
        the model's own Config keys, with defaults, help and allowed values.
      weights: ``weights(options, total_steps) -> (weights, capacity, final_step)``:
        ``weights`` maps each term the model reports besides ``reconstruction`` (weight
        1) to a constant or an ``optax`` schedule of the step; ``capacity`` is ``C(step)``
        (the ``kl`` term then enters as ``|KL - C|``) or None; ``final_step`` the step
        where the schedules end (``total_steps`` unless a schedule runs longer).
      groups: parameter groups beyond ``"autoencoder"`` (``Group``).
      kinds: data kinds it supports; filled in from the registration line.
      description: one line for ``aejax models``; filled in from the registration line.
      name: the registry name (``--model``); filled in from the registration line.
      test_config: Config overrides for a tiny, fast run (tests and quick benchmarks).
      default_corruption: the training-input corruption (``aejax.data.corruption``) a run
        uses when ``Config.corruption`` is empty; ``""`` = none.
      common: which of ``COMMON`` the model reads (seq2seq_ae has no ``activation``).
      posterior: capability: the model has a posterior ``q(z|x)`` with a density
        (``model.posterior(x) -> (mean, logvar)``, or ``model.posterior_draw(x, keys)``
        for one that is no Gaussian; ``model.log_prior(z)``), so the likelihood bounds
        (``aejax.bounds``) apply (docs/models.md, section 4).
    """

    build: Callable[[Any, Common, DataInfo], Any]
    options: type
    weights: Callable[[Any, int], Weights] = no_weights
    groups: tuple[Group, ...] = ()
    kinds: tuple[str, ...] = ()
    description: str = ""
    name: str = ""
    test_config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    default_corruption: str = ""
    common: tuple[str, ...] = COMMON
    posterior: bool = False

    @property
    def hparams(self) -> tuple[str, ...]:
        """Every Config key this model reads: its ``common`` ones, then its options."""
        return self.common + tuple(f.name for f in dataclasses.fields(self.options))

    def group(self, name: str) -> Group | None:
        """The declared group ``name``, or None."""
        return next((g for g in self.groups if g.name == name), None)
