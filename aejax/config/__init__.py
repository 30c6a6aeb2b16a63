"""The frozen run configuration shared by the library, the CLI and the experiments.

``Config`` holds what every run shares (model, latent_dim, activation, dtype, likelihood;
data; optimisation; loop) plus the chosen model's own options (``config.options``, owned by
the model's file in ``aejax/models/``). ``describe_fields`` and ``GROUPS`` describe every
key for ``aejax config`` and docs/configuration.md.
"""

from aejax.config._config import Config, all_keys, check_model_keys, config_keys
from aejax.config.allowed import MAX_SEED, PRESENTATION_FIELDS
from aejax.config.describe import GROUPS, describe_fields, format_value

__all__ = [
    "GROUPS",
    "MAX_SEED",
    "PRESENTATION_FIELDS",
    "Config",
    "all_keys",
    "check_model_keys",
    "config_keys",
    "describe_fields",
    "format_value",
]
