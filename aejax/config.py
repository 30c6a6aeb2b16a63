"""The frozen run configuration shared by the library, the CLI and the experiments."""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from aejax.errors import ConfigError

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
    }
)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a training run. Hashable, so it can be bound into jit.

    Command line: ``aejax train --model ae --data digits --latent-dim 8 --set hidden=256,128``.
    """

    # Model.
    model: str = "ae"
    latent_dim: int = 8
    hidden: tuple[int, ...] = (512, 256)  # dense encoder widths; decoder mirrors them
    conv_features: tuple[int, ...] = (32, 64)  # conv encoder channels, one stride-2 conv each
    activation: str = "gelu"
    dtype: str = "float32"  # compute dtype; "bfloat16" = mixed precision (float32 params/loss)
    deconv: str = "subpixel"  # conv transposed-conv lowering: subpixel | lax (same function)
    likelihood: str = "auto"  # auto (images bernoulli, tables gaussian) | gaussian_learned | ...
    # Variational models: the objective's KL weight, a warm-up or a capacity schedule.
    beta: float = 1.0  # weight of the KL term (1 = the ELBO; beta-VAE otherwise)
    kl_warmup_steps: int = 0  # KL weight rises linearly from 0 to beta over these steps
    capacity: float = 0.0  # Burgess et al. 2018: target KL C (nats) reached at capacity_steps
    capacity_steps: int = 0  # steps over which C grows from 0 (0 = the whole run)
    capacity_gamma: float = 1000.0  # weight of |KL - C| when capacity > 0
    # vq_vae (van den Oord et al. 2017).
    codebook_size: int = 512  # K codes
    code_dim: int = 64  # D, the width of each code
    commitment: float = 0.25  # weight of the commitment term
    vq_update: str = "ema"  # ema (decayed cluster averages) | loss (codebook loss, by gradient)
    vq_decay: float = 0.99  # EMA decay
    vq_restart: bool = True  # move dead codes to encoder outputs of the batch
    # adversarial_ae (Makhzani et al. 2016).
    prior: str = "gaussian"  # gaussian (N(0, I)) | mixture (Gaussians on a circle)
    prior_components: int = 10  # mixture components
    disc_hidden: tuple[int, ...] = (256, 256)  # latent discriminator widths
    disc_lr: float = 0.0  # discriminator learning rate; 0 = lr
    adversarial_weight: float = 1.0  # weight of the encoder's adversarial (generator) term
    # Data.
    data: str = "digits"
    data_dir: str | None = None
    download: bool = False
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    binarize: bool = False  # images: draw each training batch's pixels ~ Bernoulli(x) anew
    # Optimisation.
    epochs: int = 100
    batch_size: int = 64
    optimizer: str = "adam"  # adam | adamw
    lr: float = 1e-3
    weight_decay: float = 1e-4  # adamw only
    schedule: str = "cosine"  # cosine (linear warmup + cosine decay) | constant
    warmup_steps: int = 100
    grad_clip: float = 1.0  # global-norm clipping; 0 disables
    seed: int = 0
    # Loop.
    patience: int = 0  # early stopping on validation loss after this many bad epochs; 0 = off
    min_delta: float = 0.0
    nonfinite: str = "stop"  # stop | skip: what a NaN/Inf loss does
    checkpoint_every: int = 1  # epochs between checkpoints
    keep_checkpoints: int = 2
    progress: bool = True
    tensorboard: bool = False  # also write epoch metrics to <workdir>/tensorboard (tensorboardX)
    devices: int | None = None  # data-parallel devices; None = all local devices
    distributed: bool = False  # jax.distributed.initialize() first (multi-host runs)
    compile_cache: str | None = None  # persistent compilation cache directory
    workdir: str | None = None

    def __post_init__(self):
        checks = {
            "latent_dim": self.latent_dim >= 1,
            "epochs": self.epochs >= 1,
            "batch_size": self.batch_size >= 1,
            "lr": self.lr > 0,
            "val_fraction": 0 <= self.val_fraction < 1,
            "test_fraction": 0 <= self.test_fraction < 1,
            "optimizer": self.optimizer in ("adam", "adamw"),
            "schedule": self.schedule in ("cosine", "constant"),
            "nonfinite": self.nonfinite in ("stop", "skip"),
            "warmup_steps": self.warmup_steps >= 0,
            "grad_clip": self.grad_clip >= 0,
            "patience": self.patience >= 0,
            "checkpoint_every": self.checkpoint_every >= 1,
            "keep_checkpoints": self.keep_checkpoints >= 1,
            "hidden": all(h >= 1 for h in self.hidden),
            "conv_features": len(self.conv_features) >= 1
            and all(c >= 1 for c in self.conv_features),
            "devices": self.devices is None or self.devices >= 1,
            "dtype": self.dtype in ("float32", "bfloat16", "float16"),
            "deconv": self.deconv in ("subpixel", "lax"),
            "beta": self.beta >= 0 and math.isfinite(self.beta),
            "likelihood": self.likelihood in ("auto", "bernoulli", "gaussian", "gaussian_learned"),
            "kl_warmup_steps": self.kl_warmup_steps >= 0,
            "capacity": self.capacity >= 0 and math.isfinite(self.capacity),
            "capacity_steps": self.capacity_steps >= 0,
            "capacity_gamma": self.capacity_gamma >= 0,
            "codebook_size": self.codebook_size >= 1,
            "code_dim": self.code_dim >= 1,
            "commitment": self.commitment >= 0,
            "vq_update": self.vq_update in ("ema", "loss"),
            "vq_decay": 0 < self.vq_decay < 1,
            "prior": self.prior in ("gaussian", "mixture"),
            "prior_components": self.prior_components >= 1,
            "disc_hidden": all(h >= 1 for h in self.disc_hidden),
            "disc_lr": self.disc_lr >= 0,
            "adversarial_weight": self.adversarial_weight >= 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                "invalid config value(s): " + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad)
            )

    # --- conversions at the boundary -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Returns a JSON-serializable dict (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Config:
        """Builds a Config from a dict such as ``config.json``; unknown keys are an error."""
        return cls().replace(**d)

    def replace(self, **changes: Any) -> Config:
        """Returns a copy with ``changes`` applied, each value coerced to the field's type."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - set(fields))
        if unknown:
            raise ConfigError(f"unknown config field(s) {unknown}; known: {sorted(fields)}")
        hints = typing.get_type_hints(Config)
        coerced = {k: _coerce(k, v, hints[k]) for k, v in changes.items()}
        return dataclasses.replace(self, **coerced)

    def with_overrides(self, assignments: Sequence[str]) -> Config:
        """Applies ``key=value`` strings, as given to ``--set`` on the command line."""
        changes = {}
        for item in assignments:
            key, sep, value = item.partition("=")
            if not sep:
                raise ConfigError(f"--set expects key=value, got {item!r}")
            changes[key.strip().replace("-", "_")] = value.strip()
        return self.replace(**changes)

    def semantic_dict(self) -> dict[str, Any]:
        """The fields that decide what a run computes (compared when resuming a workdir)."""
        return {k: v for k, v in self.to_dict().items() if k not in PRESENTATION_FIELDS}

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Converts strings (from the command line) and lists (from JSON) to the field's type."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional and (value is None or (isinstance(value, str) and value.lower() in ("none", ""))):
        return None
    base = next((a for a in args if a is not type(None)), hint) if optional else hint
    try:
        if typing.get_origin(base) is tuple:
            if isinstance(value, str):
                value = [v for v in value.replace("(", "").replace(")", "").split(",") if v.strip()]
            return tuple(int(v) for v in value)
        if base is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if base is float:
            return float(value)
        if base is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config field {name!r}: cannot read {value!r} as {hint}") from None
    return value
