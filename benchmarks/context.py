"""What every benchmark of a run shares: the suite, the environment, the data and the peers."""

from __future__ import annotations

import dataclasses
import sys
import time

import aejax
from aejax.data.pixels import float_images  # the peers compute on float pixels
from aejax.errors import AejaxError
from benchmarks import environment
from benchmarks.suites import FALLBACK_DATA, Suite

# The data split is fixed across model seeds, so seeds vary only the model.
DATA_SEED = 0


@dataclasses.dataclass
class Context:
    """Shared state of one ``run``.

    Attributes:
      suite: the sizes.
      env: ``{"versions": ..., "device": ...}`` stamped on every record.
      torch_ok: whether the PyTorch peers run.
      notes: lines for the report (skips and their reasons, what was measured how).
      overrides: ``aejax.Config`` fields set in every benchmark config (the smoke test's
        small models); empty for the library's defaults.
      torch_threads: model -> the PyTorch thread count that trained fastest in the
        throughput benchmark (at the default batch size where measured); the quality run's
        twin uses it.
      matmul_peak_gflops: the machine's float32 matmul GFLOP/s (``benchmarks.flops``),
        once measured.
    """

    suite: Suite
    env: dict
    torch_ok: bool
    notes: list[str] = dataclasses.field(default_factory=list)
    overrides: dict = dataclasses.field(default_factory=dict)
    torch_threads: dict = dataclasses.field(default_factory=dict)
    matmul_peak_gflops: float | None = None
    _data: dict = dataclasses.field(default_factory=dict)
    _runs: dict = dataclasses.field(default_factory=dict)
    _t0: float = dataclasses.field(default_factory=time.perf_counter)

    def log(self, message: str) -> None:
        """Progress on stderr (stdout stays free for the final summary)."""
        print(
            f"[bench {time.perf_counter() - self._t0:6.1f}s] {message}", file=sys.stderr, flush=True
        )

    def note(self, message: str) -> None:
        """A line for the report's notes, also logged."""
        if message not in self.notes:
            self.notes.append(message)
            self.log(message)

    def dataset(self, spec: str) -> aejax.Dataset | None:
        """Loads ``spec`` once (with the library's loader); None with a note when unavailable."""
        if spec not in self._data:
            try:
                self._data[spec] = float_images(aejax.load_dataset(spec, seed=DATA_SEED))
            except AejaxError as e:
                first = str(e).splitlines()[0]
                self.note(f"data set {spec!r} skipped: {first}")
                self._data[spec] = None
        return self._data[spec]

    def dataset_or_fallback(self, spec: str) -> tuple[str, aejax.Dataset]:
        """``spec`` if it loads, else the fallback (digits), with a note."""
        ds = self.dataset(spec)
        if ds is None and spec != FALLBACK_DATA:
            self.note(f"{spec!r} unavailable: measured on {FALLBACK_DATA!r} instead")
            return FALLBACK_DATA, self.dataset(FALLBACK_DATA)
        return spec, ds

    def train_and_evaluate(self, config: aejax.Config, ds: aejax.Dataset) -> dict:
        """The summary of ``aejax.train_and_evaluate(config, dataset=ds)``, run once per config.

        The sweep thereby reuses the quality run of the same model, data, latent and epochs.
        """
        key = (config, ds.name)
        if key not in self._runs:
            self._runs[key], _ = aejax.train_and_evaluate(config, dataset=ds, plot=False)
        return self._runs[key]

    def config(self, **fields) -> aejax.Config:
        """An aejax config for a benchmark: library defaults, one device, no progress bar."""
        from aejax.models.registry import get_spec, model_keys

        base = aejax.Config(progress=False, devices=1)
        merged = {**self.overrides, **fields}
        # Suite-wide architecture overrides apply to the models that read them.
        foreign = model_keys() - set(get_spec(merged.get("model", base.model)).hparams)
        return base.replace(**{k: v for k, v in merged.items() if k not in foreign})

    def stamp(self) -> dict:
        """Fields every record repeats: environment and time."""
        return {"env": self.env, "timestamp": environment.now()}
