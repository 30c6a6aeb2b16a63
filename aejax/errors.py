"""Exceptions that name the problem, raised before bad input reaches XLA."""


class AejaxError(Exception):
    """Base class of every error aejax raises on purpose."""


class DataError(AejaxError, ValueError):
    """Bad or missing input data: unknown spec, missing file, NaN/Inf, empty, ragged."""


class ConfigError(AejaxError, ValueError):
    """An unknown model, an impossible shape or an invalid configuration value."""


class CheckpointError(AejaxError):
    """A checkpoint that cannot be used: another config, missing keys, unwritable dir."""


class TrainingDivergedError(AejaxError, FloatingPointError):
    """The loss or the parameters became NaN/Inf during training."""
