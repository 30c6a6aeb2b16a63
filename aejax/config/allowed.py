"""What the shared Config fields accept, and which fields only change how a run is shown."""

from __future__ import annotations

import dataclasses
from typing import Any

from aejax.fields import ACTIVATIONS, Allowed, field, integer, integers, number, one_of

# Fields that change how a run is shown or stored, not what it computes: a workdir may be
# resumed with other values for them.
PRESENTATION_FIELDS = frozenset(
    {
        "progress",
        "workdir",
        "keep_checkpoints",
        "data_dir",
        "download",
        "devices",
        "distributed",
        "compile_cache",
        "tensorboard",
        "checkpoint_every",
        "checkpoint_seconds",
        "device_data",
        "device_data_fraction",
        "stream",
    }
)


# The field helpers live in aejax.fields (the models' options use them without this module).
_one_of, _integer, _integers, _number, _field = one_of, integer, integers, number, field


def _model_names() -> tuple[str, ...]:
    from aejax.models.registry import MODELS  # late: the names only; no model is loaded

    return tuple(MODELS)


def _data_specs() -> str:
    from aejax.data.builtin import list_datasets

    return ", ".join(spec for spec, _ in list_datasets()) + " (see `aejax datasets`)"


# Any name passes this check: Config's constructor resolves it in the registry first,
# which refuses an unknown one with a did-you-mean.
_MODEL = Allowed(lambda: f"one of {', '.join(_model_names())} (any case)", choices=_model_names)
_ACTIVATIONS = ACTIVATIONS


def _corruption_spec(value: str) -> bool:
    """Parses a ``corruption`` spec; a bad one raises a ConfigError naming the problem."""
    if value == "":  # the default: no need to import jax for it
        return True
    from aejax.data.corruption import parse_corruption  # late: it imports jax

    parse_corruption(value)
    return True


def _augment_spec(value: str) -> bool:
    """Parses an ``augment`` spec; a bad one raises a ConfigError naming the problem."""
    if value in ("", "none"):  # the default: no need to import jax for it
        return True
    from aejax.data.augment import parse_augment  # late: it imports jax

    parse_augment(value)
    return True


_AUGMENT = Allowed(
    "OP:VALUE joined by +, OP one of shift:N, flip:P (`aejax.data.augment`); empty or none = off",
    _augment_spec,
)

_CORRUPTION = Allowed(
    "OP:VALUE joined by +, OP one of gaussian:SIGMA, masking:P, salt_pepper:P, block:SIZE, "
    "downsample:F (`aejax.data.corruption`); empty = the model's default, none = off",
    _corruption_spec,
)


# The seeds every consumer takes alike: ``jax.random.key`` keeps only the low 32 bits of a
# larger seed without x64 (2**32 + 5 gives the key of 5) and overflows past 2**63 - 1;
# numpy's ``RandomState`` and scikit-learn's ``random_state`` accept exactly [0, 2**32 - 1].
MAX_SEED = 2**32 - 1
_SEED = Allowed(
    f"an integer in [0, {MAX_SEED}] (2**32 - 1: jax.random.key keeps 32 bits of a seed, "
    "numpy's RandomState and scikit-learn take no more)",
    lambda v: 0 <= v <= MAX_SEED,
)


def _field(default: Any, doc: str, allowed: Allowed | None = None) -> Any:
    """A Config field with its one-line meaning and what it accepts (None: any of its type)."""
    return dataclasses.field(default=default, metadata={"help": doc, "allowed": allowed})


# The groups of the fields every run shares, by their first field, with one line each;
# the models' options add theirs (``Options.GROUP``) between model and data. `aejax config`
# and docs/configuration.md show the fields under these headings, in this order.
