"""The suites: how much each benchmark measures in ``quick``, ``full`` and the ``--tiny`` smoke run.

The registry decides *which* models run (every key of ``aejax.models.MODELS``, or the
suite's ``models``); a suite decides sizes. A model's default data comes from
``DEFAULT_DATA``, falling back to ``digits`` for a model not listed there or when its data
set is not available.
"""

from __future__ import annotations

import dataclasses

# Registry name -> the data its throughput is measured on; absent models use FALLBACK_DATA.
DEFAULT_DATA = {
    "ae": "mnist-lite",
    "conv_ae": "mnist-lite",
    "vae": "mnist-lite",
    "conv_vae": "mnist-lite",
    "vq_vae": "mnist-lite",
    "adversarial_ae": "mnist-lite",
}
# Models whose code size is not ``latent_dim`` (a VQ-VAE's is its grid of codes): the
# latent-size sweep leaves them out.
NO_LATENT_SWEEP = ("vq_vae",)
# The distinct networks and training loops: the quick suite times these. The regularized
# variants (sparse, denoising, contractive, stacked) are these networks with another term
# or input; their costs and quality have benchmarks of their own (penalty_cost, restoration,
# regularized).
ENGINE_MODELS = ("ae", "conv_ae", "vae", "conv_vae", "vq_vae", "adversarial_ae")
FALLBACK_DATA = "digits"


@dataclasses.dataclass(frozen=True)
class Suite:
    """Sizes of one suite.

    Attributes:
      name: ``quick``, ``full`` or ``tiny``.
      batch_sizes: batch sizes of the throughput benchmark.
      samples_per_repeat: training samples per timed repeat (steps = this // batch size,
        at least 2).
      repeats: timed repeats, interleaved between implementations.
      encode_rows: test rows encoded per timed repeat (capped by the test split).
      quality: ``(data, latent_dim)`` pairs of the AE-vs-PCA table.
      epochs: data -> training epochs for the quality and sweep runs.
      seeds: model seeds of the quality runs (the data split always uses seed 0).
      sweep_data: data of the latent-size sweep.
      sweep_latents: latent sizes of the sweep (those above the data dimension are left out).
      sweep_epochs: training epochs of each sweep point.
      sweep_models: the registry models of the sweep, or None for every model of the suite
        (except ``NO_LATENT_SWEEP``).
      models: the registry models of the throughput and quality benchmarks, or None for
        every registered one.
      only_data: every benchmark uses this data set (the smoke test's speed-up), or None.
      overrides: ``aejax.Config`` fields set in every config, as ``(field, value)`` pairs;
        empty for the library's defaults.
    """

    name: str
    batch_sizes: tuple[int, ...]
    samples_per_repeat: int
    repeats: int
    encode_rows: int
    quality: tuple[tuple[str, int], ...]
    epochs: dict
    seeds: tuple[int, ...]
    sweep_data: str
    sweep_latents: tuple[int, ...]
    sweep_epochs: int
    sweep_models: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None
    only_data: str | None = None
    overrides: tuple[tuple[str, object], ...] = ()

    def steps(self, batch_size: int) -> int:
        """Training steps per timed repeat at ``batch_size``."""
        return max(2, self.samples_per_repeat // batch_size)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SUITES = {
    # Within 10 minutes on 2 CPU cores with the engine's models: two batch sizes, the
    # sweep for the dense ae and vae only. The full suite times every registry model.
    "quick": Suite(
        name="quick",
        batch_sizes=(64, 256),
        samples_per_repeat=4096,
        repeats=5,
        encode_rows=4096,
        quality=(("digits", 8), ("mnist-lite", 30)),
        epochs={"digits": 20, "mnist-lite": 10},
        seeds=(0,),
        sweep_data="digits",
        sweep_latents=(2, 4, 8, 16, 32, 64),
        sweep_epochs=20,
        sweep_models=("ae", "vae"),
        models=ENGINE_MODELS,
    ),
    # For a GPU/TPU, or a long CPU run.
    "full": Suite(
        name="full",
        batch_sizes=(64, 256, 1024),
        samples_per_repeat=16384,
        repeats=10,
        encode_rows=10000,
        quality=(("digits", 8), ("mnist-lite", 30)),
        epochs={"digits": 100, "mnist-lite": 100},
        seeds=(0, 1, 2),
        sweep_data="mnist-lite",
        sweep_latents=(2, 4, 8, 16, 32, 64),
        sweep_epochs=50,
    ),
}

# The smoke test's sizes (``--tiny``): every code path, digits only, small models; the sweep's
# one point is the quality run itself (compilation dominates at this size). The models are the
# suite's own (``quick``: the engine's six networks; ``full``: every registry model), each
# swept at that one point.
TINY = Suite(
    name="tiny",
    batch_sizes=(32,),
    samples_per_repeat=64,
    repeats=2,
    encode_rows=128,
    quality=(("digits", 2),),
    epochs={"digits": 1},
    seeds=(0,),
    sweep_data="digits",
    sweep_latents=(2,),
    sweep_epochs=1,
    only_data="digits",
    overrides=(("hidden", (32,)), ("conv_features", (8, 16))),
)


def get_suite(name: str, tiny: bool = False) -> Suite:
    """The suite ``name``; with ``tiny`` the smoke-test sizes on the suite's models (the name
    is kept for the record)."""
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; choose one of {sorted(SUITES)}")
    if not tiny:
        return SUITES[name]
    return dataclasses.replace(TINY, name=f"{name}-tiny", models=SUITES[name].models)


def reconstruction_models() -> list[str]:
    """The registry models of image or table data: the ones this suite can measure.

    A model of another kind of data (``autorec``: a ratings matrix with masks) cannot
    train on these data sets; it has a benchmark of its own (``python -m benchmarks
    recommendation``).
    """
    import aejax

    return [n for n, s in aejax.MODELS.items() if {"image", "tabular"} & set(s.kinds)]


def suite_models(suite: Suite) -> list[str]:
    """The registry models a suite's throughput and quality benchmarks measure."""
    return [n for n in reconstruction_models() if suite.models is None or n in suite.models]


def default_data(model: str, suite: Suite) -> str:
    """The data set a model's throughput is measured on."""
    return suite.only_data or DEFAULT_DATA.get(model, FALLBACK_DATA)
