"""The ``Config`` dataclass: the shared fields, routing of model options, refusal of others."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from aejax.config.allowed import (
    _ACTIVATIONS,
    _AUGMENT,
    _CORRUPTION,
    _MODEL,
    _SEED,
    PRESENTATION_FIELDS,
    _data_specs,
    _field,
    _integer,
    _number,
    _one_of,
)
from aejax.errors import ConfigError, DataError, did_you_mean
from aejax.fields import (
    Allowed,
    coerce,
    field_problems,
    type_hints,
)
from aejax.models.spec import COMMON, COMMON_DEFAULTS


def _image_size(value) -> bool:
    from aejax.data.images import parse_image_size  # no Pillow import: it reads text

    try:
        parse_image_size(value)
    except DataError:
        return False
    return True


_SHARED_GROUPS = {
    "model": ("model", "the model, its code width, activation, dtype and output distribution"),
    "data": ("data", "the data set and its splits"),
    "epochs": ("optimisation", "the optimizer, the learning-rate schedule and the seed"),
    "patience": ("loop", "early stopping, checkpoints, devices and output"),
}


@dataclasses.dataclass(frozen=True, init=False, eq=False, repr=False)
class Config:
    """Everything that defines a training run. Hashable, so it can be bound into jit.

    Command line: ``aejax train --model ae --data digits --latent-dim 8 --set hidden=256,128``.
    The dataclass fields are those every run shares; the chosen model's own options (its
    ``ModelSpec.options`` dataclass, e.g. ``hidden`` and ``beta`` for vae) are
    ``config.options`` and read as attributes too: ``Config(model="vae", beta=2.0).beta``.
    A key the model does not read is refused (a ConfigError naming the model and its
    keys). Every field carries its one-line meaning and what it accepts (``aejax config``
    lists them; ``describe_fields()`` returns them); the constructor checks the same rules.
    """

    # Model.
    model: str = _field("ae", "the model to train (`aejax models` describes each)", _MODEL)
    latent_dim: int = _field(
        COMMON_DEFAULTS["latent_dim"],
        "width of the code z; also the PCA baseline's components",
        _integer(1),
    )
    activation: str = _field(
        COMMON_DEFAULTS["activation"], "hidden-layer activation (a jax.nn function)", _ACTIVATIONS
    )
    dtype: str = _field(
        "float32",
        "compute dtype; bfloat16 or float16 = mixed precision (float32 params and loss)",
        _one_of("float32", "bfloat16", "float16"),
    )
    likelihood: str = _field(
        "auto",
        "the decoder's output distribution; auto = bernoulli for images, gaussian for tables",
        _one_of("auto", "bernoulli", "gaussian", "gaussian_learned"),
    )
    # Data.
    data: str = _field(
        "digits", "the data set: a built-in name, a TFDS name or a local file", Allowed(_data_specs)
    )
    data_dir: str | None = _field(
        None,
        "directory of the local data sets; none = $AEJAX_DATA_DIR, else ../shared/data",
        Allowed("a directory"),
    )
    download: bool = _field(
        False, "let tfds download and prepare a missing tfds: data set (needs internet)"
    )
    val_fraction: float = _field(
        0.1, "fraction of the training pool held out for validation", _number(0, 1)
    )
    test_fraction: float = _field(
        0.2, "fraction held out for test when the data set has no test split", _number(0, 1)
    )
    binarize: bool = _field(False, "images: draw each training batch's pixels ~ Bernoulli(x) anew")
    corruption: str = _field(
        "",
        "training inputs' corruption, clean targets (denoising; eval stays clean), e.g. "
        "gaussian:0.5 or masking:0.2+gaussian:0.1; empty = the model's (denoising_ae: "
        "masking:0.25, autorec: masking:0.5)",
        _CORRUPTION,
    )
    augment: str = _field(
        "",
        "images: random transforms of each training batch, before any corruption (targets "
        "too), e.g. shift:2 or shift:2+flip:0.5; empty = none",
        _AUGMENT,
    )
    label_column: str | None = _field(
        None,
        "local tables: the column of labels, left out of the inputs",
        Allowed("a column name or 0-based index"),
    )
    impute: str = _field(
        "none",
        "local tables, missing cells: none refuses them, mean fills in the training means",
        _one_of("none", "mean"),
    )
    drop_columns: tuple[str, ...] = _field(
        (),
        "local tables: columns to leave out",
        Allowed("a list of column names or 0-based indices"),
    )
    ratings_columns: tuple[str, ...] = _field(
        (),
        "ratings:PATH: the user, item and rating header names; empty = userId/user_id/user, "
        "movieId/itemId/item, rating",
        Allowed("empty, or three column names", lambda v: len(v) in (0, 3)),
    )
    ratings_centre: str = _field(
        "mean",
        "ratings:PATH: subtract the training mean, or the user + item bias baseline "
        "(biases), from every rating; predictions add it back",
        _one_of("mean", "biases"),
    )
    image_size: str = _field(
        "64",
        "images:DIR: every image is resized to N x N, or to HxW (e.g. 48x64)",
        Allowed("N or HxW, e.g. 64 or 48x64", _image_size),
    )
    image_mode: str = _field(
        "auto",
        "images:DIR: grayscale (1 channel) or rgb (3); auto = grayscale when every file is",
        _one_of("auto", "grayscale", "rgb"),
    )
    stream: str = _field(
        "auto",
        "arrayrecord:DIR, tfds:NAME, images:DIR: read image batches from disk as training "
        "needs them (grain; same bits as in memory) instead of loading the data: on, off, or "
        "auto = when the data would take over a quarter of the RAM",
        _one_of("auto", "on", "off"),
    )
    # Optimisation.
    epochs: int = _field(100, "passes over the training split", _integer(1))
    batch_size: int = _field(64, "examples per step, split over the devices", _integer(1))
    optimizer: str = _field(
        "adam", "adam, or adamw (with decoupled weight decay)", _one_of("adam", "adamw")
    )
    lr: float = _field(1e-3, "peak learning rate", _number(0, above=True))
    weight_decay: float = _field(1e-4, "adamw's decoupled weight decay (adam ignores it)")
    schedule: str = _field(
        "cosine",
        "learning-rate schedule: cosine (linear warmup, cosine decay) or constant",
        _one_of("cosine", "constant"),
    )
    warmup_fraction: float = _field(
        0.05, "cosine: linear warmup over this fraction of the steps", _number(0, 1)
    )
    warmup_steps: int | None = _field(
        None,
        "cosine: a warmup step count instead of the fraction; none = use the fraction",
        _integer(0),
    )
    grad_clip: float = _field(1.0, "global-norm gradient clipping; 0 disables", _number(0))
    seed: int = _field(0, "seeds the parameters, the data split and order, and the noise", _SEED)
    # Loop.
    patience: int = _field(
        0,
        "early stopping after this many epochs without a better validation loss; 0 = off",
        _integer(0),
    )
    min_delta: float = _field(
        0.0, "early stopping: how much lower a validation loss must be to count"
    )
    nonfinite: str = _field(
        "stop", "what a NaN/Inf loss does: stop the run, or skip the step", _one_of("stop", "skip")
    )
    checkpoint_seconds: float = _field(
        30.0, "checkpoint when this many seconds have passed since the last", _number(0)
    )
    checkpoint_every: int = _field(
        0, "also checkpoint every N epochs; 0 = by time (and at the end) only", _integer(0)
    )
    keep_checkpoints: int = _field(2, "how many checkpoints the workdir keeps", _integer(1))
    progress: bool = _field(True, "show a progress bar")
    tensorboard: bool = _field(
        False, "also write epoch metrics to <workdir>/tensorboard (tensorboardX)"
    )
    devices: int | None = _field(
        None, "data-parallel devices; none = all local devices", _integer(1)
    )
    distributed: bool = _field(False, "call jax.distributed.initialize() first (multi-host runs)")
    device_data: str = _field(
        "auto",
        "keep the training split on the devices and run each epoch as one compiled program "
        "(same bits as host-fed): on, off, or auto = when it fits in device_data_fraction "
        "of one device's memory (on a CPU: of the physical RAM); several processes: off",
        _one_of("auto", "on", "off"),
    )
    device_data_fraction: float = _field(
        0.25,
        "auto device_data: the share of one device's memory the data may take",
        _number(0, 1, above=True),
    )
    compile_cache: str | None = _field(
        None, "persistent compilation cache directory; none = no cache", Allowed("a directory")
    )
    workdir: str | None = _field(
        None,
        "the run directory (the CLI's --workdir; by default runs/<model>-<data>-<time>)",
        Allowed("a directory"),
    )

    def __init__(self, options: Any = None, **values: Any):
        """``Config(model=..., <shared fields>, <the model's options>)``; see the class.

        Args:
          options: the model's options dataclass instance (``config.options``); keys given
            by name update it.
          **values: shared fields and the model's option keys; unset ones default.
        """
        shared = {f.name: values.pop(f.name, f.default) for f in dataclasses.fields(Config)}
        if isinstance(shared["model"], str):
            # Registry names are lower case: `--model VAE` runs, and config.json says "vae".
            shared["model"] = _registry().resolve_name(shared["model"])
        for k, v in shared.items():
            object.__setattr__(self, k, v)
        spec = _registry().get_spec(shared["model"])
        own = {f.name for f in dataclasses.fields(spec.options)}
        _refuse_foreign(spec, own, values, shared)
        if options is None:
            options = spec.options(**values)
        elif type(options) is not spec.options:
            raise ConfigError(
                f"options of type {type(options).__name__} given for model {spec.name!r}, "
                f"which reads {spec.options.__name__}"
            )
        elif values:
            options = dataclasses.replace(options, **values)
        object.__setattr__(self, "options", options)
        problems = field_problems(self)
        if problems:
            raise ConfigError("; ".join(problems))

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: the model's options read as attributes.
        options = self.__dict__.get("options")
        if options is None or name.startswith("__"):
            raise AttributeError(name)
        if name in options.__dataclass_fields__:
            return getattr(options, name)
        raise AttributeError(
            f"Config of model {self.model!r} has no field {name!r}; its keys: "
            f"{', '.join(config_keys(self.model))}"
        )

    def _key(self) -> tuple:
        return (*(getattr(self, f.name) for f in dataclasses.fields(Config)), self.options)

    def __eq__(self, other: object) -> bool:
        return type(other) is Config and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        items = ", ".join(f"{k}={v!r}" for k, v in self._items())
        return f"Config({items})"

    def _items(self) -> list[tuple[str, Any]]:
        """Every key this config holds and its value: the model fields, the model's
        options, then data, optimisation and loop."""
        shared = [(f.name, getattr(self, f.name)) for f in dataclasses.fields(Config)]
        own = [(f.name, getattr(self.options, f.name)) for f in dataclasses.fields(self.options)]
        n = len(COMMON) + 1  # model and the common model fields come first
        return shared[:n] + own + shared[n:]

    # --- conversions at the boundary -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-serializable dict (tuples become lists): the shared fields and the
        chosen model's own options, as ``config.json`` stores them."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self._items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Config:
        """Builds a Config from a dict such as ``config.json``; unknown keys are an error.

        Files of earlier versions list every model's keys: a key the chosen model does not
        read is skipped when it holds its owner's default (any other value is refused).
        """
        d = dict(d)
        model = d.get("model", cls.__dataclass_fields__["model"].default)
        spec = _registry().get_spec(model) if isinstance(model, str) else None
        if spec is not None:
            keep = set(config_keys(spec.name))
            for k in [k for k in d if k not in keep and _is_owner_default(k, d[k])]:
                del d[k]
        return cls().replace(**d)

    def replace(self, **changes: Any) -> Config:
        """Returns a copy with ``changes`` applied, each value coerced to the field's type.

        A new ``model`` keeps the options the new model also reads and resets the rest
        to the new model's defaults; a key it does not read is refused.
        """
        reg = _registry()
        model = changes.get("model", self.model)
        model = reg.resolve_name(model) if isinstance(model, str) else model
        spec = reg.get_spec(model)
        hints = type_hints(Config)
        own = {f.name: f for f in dataclasses.fields(spec.options)}
        values: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(Config)}
        carried = dict(self._items())
        values.update({k: carried[k] for k in own if k in self.options.__dataclass_fields__})
        if model != self.model:  # the shared model fields the new model does not read
            values.update({k: COMMON_DEFAULTS[k] for k in COMMON if k not in spec.common})
        own_hints = type_hints(spec.options)
        for k, v in changes.items():
            if k in hints:
                values[k] = coerce(k, v, hints[k])
            elif k in own:
                values[k] = coerce(k, v, own_hints[k])
            else:  # refused by the constructor, with the reason: read as its owner would
                values[k] = _as_owner_reads(k, v)
        return Config(**values)

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


# --- the models' keys: routing, refusal, and what each model reads ----------------------
def _registry():
    from aejax.models import registry  # late: it loads a model's module on first use

    return registry


def _refuse_foreign(spec, own: set[str], values: Mapping[str, Any], shared: Mapping) -> None:
    """Raises a one-line ConfigError for keys model ``spec`` does not read.

    ``values`` are the keys that are not shared fields; a shared model field the model
    does not read (seq2seq_ae's ``activation``) is refused when not at its default.
    """
    unread = [k for k in COMMON if k not in spec.common and shared[k] != COMMON_DEFAULTS[k]]
    foreign = sorted(set(values) - own) + unread
    if not foreign:
        return
    k = foreign[0]
    keys = config_keys(spec.name)
    owners = _registry().option_owners().get(k)
    if owners is None and k not in COMMON:
        everything = [*keys, *_registry().option_owners()]
        hint = did_you_mean(k, keys) or did_you_mean(k, everything)
        raise ConfigError(f"unknown config field {k!r}{hint}; `aejax config` lists the fields")
    value = values[k] if k in values else shared[k]
    whose = f" (a key of {', '.join(owners)})" if owners else ""
    raise ConfigError(
        f"model {spec.name!r} does not use {k}={value!r}{whose}; "
        f"its hyperparameters are {sorted(spec.hparams)}; `aejax config --model "
        f"{spec.name}` lists every key it reads"
    )


def _as_owner_reads(key: str, value: Any) -> Any:
    """``value`` coerced as the first model that reads ``key`` would, else as given."""
    reg = _registry()
    owners = reg.option_owners().get(key)
    if not owners:
        return value
    try:
        return coerce(key, value, type_hints(reg.get_spec(owners[0]).options)[key])
    except ConfigError:
        return value


def _is_owner_default(key: str, value: Any) -> bool:
    """Whether ``key`` is some model's option and ``value`` its default there."""
    reg = _registry()
    for name in reg.option_owners().get(key, ()):
        cls = reg.get_spec(name).options
        try:
            if coerce(key, value, type_hints(cls)[key]) == cls.__dataclass_fields__[key].default:
                return True
        except ConfigError:
            pass
    return False


def config_keys(name: str) -> tuple[str, ...]:
    """Every key of a run of model ``name``, in ``to_dict`` order.

    The shared model fields it reads, its own options, and every data, optimisation and
    loop field; ``aejax config --model NAME`` shows them.
    """
    spec = _registry().get_spec(name)
    shared = [f.name for f in dataclasses.fields(Config)]
    n = len(COMMON) + 1
    head = [k for k in shared[:n] if k == "model" or k in spec.common]
    return (*head, *(f.name for f in dataclasses.fields(spec.options)), *shared[n:])


def all_keys() -> tuple[str, ...]:
    """Every key some Config accepts: the shared fields and every model's options."""
    shared = [f.name for f in dataclasses.fields(Config)]
    n = len(COMMON) + 1
    return (*shared[:n], *_registry().option_owners(), *shared[n:])


def check_model_keys(config: Config, explicit: tuple[str, ...] = ()) -> None:
    """Refuses ``explicit`` keys (set by name) that model ``config.model`` does not read.

    A Config refuses the others when it is made; this remains for the names a user typed.

    Raises:
      ConfigError: naming the key, the model and its valid keys.
    """
    keys = set(config_keys(config.model))
    for k in explicit:
        if k not in keys:
            spec = _registry().get_spec(config.model)
            _refuse_foreign(spec, keys, {k: getattr(config, k, None)}, COMMON_DEFAULTS)
