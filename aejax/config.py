"""The frozen run configuration shared by the library, the CLI and the experiments."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aejax.errors import ConfigError, did_you_mean

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
    }
)


@dataclasses.dataclass(frozen=True)
class Allowed:
    """What a field accepts: ``text`` for people, ``check`` for ``Config.__post_init__``.

    ``text`` and ``choices`` may be functions, for lists that live where this module must
    not import (the model registry imports jax, and this module).

    Attributes:
      text: one line, e.g. ``"an integer >= 1"`` or ``"one of adam, adamw"``.
      check: ``check(value) -> bool``; a TypeError counts as False.
      choices: the accepted strings, where there is such a list: a wrong value gets a
        did-you-mean against them.
    """

    text: str | Callable[[], str]
    check: Callable[[Any], bool] = lambda _: True
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()

    def describe(self) -> tuple[str, tuple[str, ...]]:
        """Returns ``(text, choices)``, computing the lazy ones."""
        text = self.text() if callable(self.text) else self.text
        choices = self.choices() if callable(self.choices) else self.choices
        return text, tuple(choices)


def _one_of(*choices: str) -> Allowed:
    return Allowed("one of " + ", ".join(choices), lambda v: v in choices, choices)


def _integer(low: int) -> Allowed:
    return Allowed(f"an integer >= {low}", lambda v: v >= low)


def _integers(low: int, *, nonempty: bool = False) -> Allowed:
    def check(v) -> bool:
        return (len(v) >= 1 or not nonempty) and all(x >= low for x in v)

    return Allowed(f"a {'non-empty ' if nonempty else ''}list of integers >= {low}", check)


def _number(
    low: float, high: float | None = None, *, above: bool = False, finite: bool = False
) -> Allowed:
    """A number >= ``low`` (> ``low`` if ``above``), below ``high`` if given; NaN never."""

    def check(v) -> bool:
        in_low = v > low if above else v >= low
        return in_low and (high is None or v < high) and (not finite or math.isfinite(v))

    if high is None:
        text = f"a {'finite ' if finite else ''}number {'>' if above else '>='} {low:g}"
    else:
        text = f"a number in {'(' if above else '['}{low:g}, {high:g})"
    return Allowed(text, check)


def _model_names() -> tuple[str, ...]:
    from aejax.models.registry import MODELS  # late: the registry imports this module

    return tuple(MODELS)


def _data_specs() -> str:
    from aejax.data.builtin import list_datasets

    return ", ".join(spec for spec, _ in list_datasets()) + " (see `aejax datasets`)"


# Any name passes here: a model may be registered after its Config is made, and the
# registry refuses an unknown one (with a did-you-mean) when the model is built.
_MODEL = Allowed(lambda: f"one of {', '.join(_model_names())} (any case)", choices=_model_names)
_ACTIVATIONS = _one_of("relu", "gelu", "silu", "elu", "tanh", "sigmoid", "leaky_relu", "softplus")


def _corruption_spec(value: str) -> bool:
    """Parses a ``corruption`` spec; a bad one raises a ConfigError naming the problem."""
    if value == "":  # the default: no need to import jax for it
        return True
    from aejax.corruption import parse_corruption  # late: it imports jax

    parse_corruption(value)
    return True


def _codes_corruption_spec(value: str) -> bool:
    """A corruption spec whose operators work on real-valued vectors (not images only)."""
    if value in ("", "none"):  # the default: no need to import jax for it
        return True
    from aejax.corruption import parse_corruption  # late: it imports jax

    return not parse_corruption(value).images_only


def _augment_spec(value: str) -> bool:
    """Parses an ``augment`` spec; a bad one raises a ConfigError naming the problem."""
    if value in ("", "none"):  # the default: no need to import jax for it
        return True
    from aejax.augment import parse_augment  # late: it imports jax

    parse_augment(value)
    return True


_AUGMENT = Allowed(
    "OP:VALUE joined by +, OP one of shift:N, flip:P (`aejax.augment`); empty or none = off",
    _augment_spec,
)

_CORRUPTION = Allowed(
    "OP:VALUE joined by +, OP one of gaussian:SIGMA, masking:P, salt_pepper:P, block:SIZE, "
    "downsample:F (`aejax.corruption`); empty = the model's default, none = off",
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


# The first field of each group, with the group's name and one line: `aejax config` and
# docs/configuration.md show the fields under these headings, in source order.
GROUPS = {
    "model": ("model", "the architecture: encoder, code, decoder and output distribution"),
    "beta": ("variational", "the KL term of vae and conv_vae: its weight, a warm-up or a capacity"),
    "codebook_size": ("vq_vae", "vq_vae's codebook (van den Oord et al. 2017)"),
    "prior": ("adversarial_ae", "adversarial_ae's prior and discriminator (Makhzani et al. 2016)"),
    "sparsity": ("sparse_ae", "sparse_ae and conv_sparse_ae: how the code is made sparse"),
    "contractive_weight": (
        "contractive_ae",
        "contractive_ae's Jacobian penalty (Rifai et al. 2011)",
    ),
    "pretrain_epochs": (
        "stacked_ae",
        "greedy layer-wise pretraining of stacked_ae, then fine-tuning (Vincent et al. 2010)",
    ),
    "autorec_variant": (
        "autorec",
        "AutoRec (Sedhain et al. 2015) on ratings:PATH data: item- or user-based, L2, output",
    ),
    "cell": (
        "seq2seq_ae",
        "LSTM/GRU encoder and decoder of seq2seq_ae on sequence data (Malhotra et al. 2016)",
    ),
    "data": ("data", "the data set and its splits"),
    "epochs": ("optimisation", "the optimizer, the learning-rate schedule and the seed"),
    "patience": ("loop", "early stopping, checkpoints, devices and output"),
}


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything that defines a training run. Hashable, so it can be bound into jit.

    Command line: ``aejax train --model ae --data digits --latent-dim 8 --set hidden=256,128``.
    Every field carries its one-line meaning and what it accepts (``aejax config`` lists
    them; ``describe_fields()`` returns them); ``__post_init__`` checks the same rules.
    """

    # Model.
    model: str = _field("ae", "the model to train (`aejax models` describes each)", _MODEL)
    latent_dim: int = _field(
        8, "width of the code z; also the PCA baseline's components", _integer(1)
    )
    hidden: tuple[int, ...] = _field(
        (512, 256), "dense encoder widths; the decoder mirrors them", _integers(1)
    )
    conv_features: tuple[int, ...] = _field(
        (32, 64),
        "conv encoder channels, one stride-2 conv each; the decoder mirrors them",
        _integers(1, nonempty=True),
    )
    activation: str = _field("gelu", "hidden-layer activation (a jax.nn function)", _ACTIVATIONS)
    dtype: str = _field(
        "float32",
        "compute dtype; bfloat16 or float16 = mixed precision (float32 params and loss)",
        _one_of("float32", "bfloat16", "float16"),
    )
    deconv: str = _field(
        "subpixel",
        "how conv decoders lower transposed convs (the same function either way)",
        _one_of("subpixel", "lax"),
    )
    likelihood: str = _field(
        "auto",
        "the decoder's output distribution; auto = bernoulli for images, gaussian for tables",
        _one_of("auto", "bernoulli", "gaussian", "gaussian_learned"),
    )
    # Variational models: the objective's KL weight, a warm-up or a capacity schedule.
    beta: float = _field(
        1.0, "weight of the KL term (1 = the ELBO; beta-VAE otherwise)", _number(0, finite=True)
    )
    kl_warmup_steps: int = _field(
        0, "the KL weight rises linearly from 0 to beta over these steps", _integer(0)
    )
    capacity: float = _field(
        0.0,
        "target KL C in nats, reached at capacity_steps (Burgess et al. 2018); 0 = off",
        _number(0, finite=True),
    )
    capacity_steps: int = _field(
        0, "steps over which C grows from 0 (0 = the whole run)", _integer(0)
    )
    capacity_gamma: float = _field(1000.0, "weight of |KL - C| when capacity > 0", _number(0))
    # vq_vae (van den Oord et al. 2017).
    codebook_size: int = _field(512, "K, the number of codes", _integer(1))
    code_dim: int = _field(64, "D, the width of each code", _integer(1))
    commitment: float = _field(0.25, "weight of the commitment term", _number(0))
    vq_update: str = _field(
        "ema",
        "codebook update: ema (decayed cluster averages) or loss (codebook loss, by gradient)",
        _one_of("ema", "loss"),
    )
    vq_decay: float = _field(0.99, "decay of the EMA codebook averages", _number(0, 1, above=True))
    vq_restart: bool = _field(True, "move dead codes to encoder outputs of the batch")
    # adversarial_ae (Makhzani et al. 2016).
    prior: str = _field(
        "gaussian",
        "the latent prior: gaussian (N(0, I)) or mixture (Gaussians on a circle)",
        _one_of("gaussian", "mixture"),
    )
    prior_components: int = _field(10, "components of the mixture prior", _integer(1))
    disc_hidden: tuple[int, ...] = _field((256, 256), "latent discriminator widths", _integers(1))
    disc_lr: float = _field(0.0, "discriminator learning rate; 0 = lr", _number(0))
    adversarial_weight: float = _field(
        1.0, "weight of the encoder's adversarial (generator) term", _number(0)
    )
    # sparse_ae and conv_sparse_ae (aejax/models/sparse.py).
    sparsity: str = _field(
        "kl",
        "l1 (on a ReLU code), kl (sigmoid code, batch-mean rate to sparsity_target: Ng) or "
        "topk (the sparsity_k largest of a linear code: Makhzani & Frey 2013)",
        _one_of("l1", "kl", "topk"),
    )
    sparsity_weight: float = _field(
        1.0, "weight of the sparsity term (l1 and kl; topk has none)", _number(0, finite=True)
    )
    sparsity_target: float = _field(
        0.05, "kl: the target mean activation rho of each code unit", _number(0, 1, above=True)
    )
    sparsity_k: int = _field(
        4, "topk: code units kept per example (at most latent_dim)", _integer(1)
    )
    # contractive_ae (aejax/models/contractive.py).
    contractive_weight: float = _field(
        0.1,
        "weight lambda of the penalty ||J_h(x)||_F^2 on the sigmoid code h",
        _number(0, finite=True),
    )
    contractive_jacobian: str = _field(
        "auto",
        "how J is computed: auto (closed_form for one sigmoid layer, hidden=(); else the "
        "cheaper of forward and reverse), closed_form, forward (jacfwd), reverse (jacrev)",
        _one_of("auto", "closed_form", "forward", "reverse"),
    )
    # stacked_ae (aejax/pretrain.py).
    pretrain_epochs: int = _field(
        10,
        "epochs of each layer's shallow autoencoder before end-to-end fine-tuning; 0 = none",
        _integer(0),
    )
    pretrain_lr: float = _field(0.0, "the pretraining's peak learning rate; 0 = lr", _number(0))
    pretrain_corruption: str = _field(
        "none",
        "corruption of every pretrained layer's input (denoising layers: SDAE), e.g. "
        "masking:0.25 or gaussian:0.3; none = plain autoencoders",
        Allowed(
            "gaussian:SIGMA and masking:P joined by + (`aejax.corruption`; beyond the first "
            "layer the inputs are real-valued codes); none = off",
            _codes_corruption_spec,
        ),
    )
    # autorec (aejax/models/autorec.py); its hidden width is latent_dim, its hidden
    # layer's activation is activation.
    autorec_variant: str = _field(
        "item",
        "item: an example per item over the users (I-AutoRec); user: per user over the items",
        _one_of("item", "user"),
    )
    autorec_l2: float = _field(
        0.003,
        "weight lambda of (lambda / 2) ||W||^2 on both kernels, per training row in the loss",
        _number(0, finite=True),
    )
    autorec_output: str = _field(
        "identity",
        "the output layer's activation (identity: the paper's I-AutoRec)",
        _one_of(
            "identity", "relu", "gelu", "silu", "elu", "tanh", "sigmoid", "leaky_relu", "softplus"
        ),
    )
    # seq2seq_ae (aejax/models/sequence.py); its code width is latent_dim.
    cell: str = _field("lstm", "the recurrent cell of encoder and decoder", _one_of("lstm", "gru"))
    rnn_hidden: int = _field(64, "units of the encoder's and decoder's cell", _integer(1))
    reverse_decode: bool = _field(
        True, "reconstruct each sequence last step first (Malhotra et al. 2016)"
    )
    teacher_forcing: bool = _field(
        False,
        "decoder input: the true previous value in training, its own prediction otherwise",
    )
    rnn_unroll: int = _field(
        1, "time steps per scan iteration of the recurrences (0 = fully unrolled)", _integer(0)
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
    compile_cache: str | None = _field(
        None, "persistent compilation cache directory; none = no cache", Allowed("a directory")
    )
    workdir: str | None = _field(
        None,
        "the run directory (the CLI's --workdir; by default runs/<model>-<data>-<time>)",
        Allowed("a directory"),
    )

    def __post_init__(self):
        if isinstance(self.model, str) and self.model != self.model.lower():
            # Registry names are lower case: `--model VAE` runs, and config.json says "vae".
            object.__setattr__(self, "model", self.model.lower())
        optional = _optional_fields()
        problems = [
            _problem(f.name, getattr(self, f.name), f.metadata.get("allowed"), f.name in optional)
            for f in dataclasses.fields(self)
        ]
        problems = [p for p in problems if p]
        if problems:
            raise ConfigError("; ".join(problems))

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
            named = ", ".join(f"{k!r}{did_you_mean(k, fields)}" for k in unknown)
            raise ConfigError(
                f"unknown config field{'s' if len(unknown) > 1 else ''} {named}; "
                "`aejax config` lists the fields"
            )
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


# --- what each field accepts: one source for the checks, `aejax config` and the docs ----
@functools.cache
def _optional_fields() -> frozenset[str]:
    """The fields that also accept None (typed ``X | None``)."""
    hints = typing.get_type_hints(Config)
    return frozenset(k for k, h in hints.items() if type(None) in typing.get_args(h))


def _problem(name: str, value: Any, allowed: Allowed | None, optional: bool) -> str | None:
    """What is wrong with ``name=value``, or None when ``allowed`` accepts it."""
    if allowed is None or (optional and value is None):
        return None
    try:
        ok = bool(allowed.check(value))
    except TypeError:  # e.g. a string where a number belongs
        ok = False
    if ok:
        return None
    text, choices = allowed.describe()
    hint = did_you_mean(value, choices) if isinstance(value, str) and choices else ""
    return f"{name}={value!r} is not allowed: {text}{', or none' if optional else ''}{hint}"


def _type_name(hint: Any) -> str:
    """A field's type as a user reads it: ``int``, ``list of int``, ``str or none``."""
    args = typing.get_args(hint)
    if type(None) in args:
        return _type_name(next(a for a in args if a is not type(None))) + " or none"
    if typing.get_origin(hint) is tuple:
        return "list of " + _type_name(args[0])
    return hint.__name__


_ANY_OF_TYPE = {bool: "true or false", int: "any integer", float: "any number", str: "any string"}


def format_value(value: Any) -> str:
    """A value as ``--set`` reads it back: ``512,256`` for a list, ``none``, ``true``."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) if value else "()"
    return str(value)


def describe_fields() -> list[dict[str, Any]]:
    """Every Config field, in source order, as ``aejax config`` shows it.

    Returns:
      One dict per field: ``name``, ``group`` (see ``GROUPS``), ``type`` (e.g. ``"list of
      int"``), ``default`` (JSON, as in ``to_dict``), ``allowed`` (one line), ``choices``
      (the accepted strings, or ``[]``) and ``help`` (one line of meaning).
    """
    hints = typing.get_type_hints(Config)
    defaults = Config().to_dict()
    optional = _optional_fields()
    out, group = [], None
    for f in dataclasses.fields(Config):
        group = GROUPS.get(f.name, (group,))[0]
        allowed: Allowed | None = f.metadata.get("allowed")
        if allowed is None:
            text, choices = _ANY_OF_TYPE.get(hints[f.name], "any value"), ()
        else:
            text, choices = allowed.describe()
        if f.name in optional:
            text += ", or none"
        out.append(
            {
                "name": f.name,
                "group": group,
                "type": _type_name(hints[f.name]),
                "default": defaults[f.name],
                "allowed": text,
                "choices": list(choices),
                "help": f.metadata.get("help", ""),
            }
        )
    return out


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
            item = typing.get_args(base)[0]
            return tuple(item(v.strip()) if isinstance(v, str) else item(v) for v in value)
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
