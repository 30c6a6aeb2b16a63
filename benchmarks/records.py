"""The measurement record: one JSON object per line of ``records.jsonl``, and its schema.

Every record carries what is needed to reproduce and compare it: the benchmark and the
implementation, model and data, the full config, the seed, package versions, the device,
compile time apart from the steady state, and median/min/max over ``repeats``.
"""

from __future__ import annotations

import json
import math
import pathlib
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

SCHEMA_VERSION = 1

# key -> allowed types; None is allowed only where listed.
SCHEMA: dict[str, tuple[type, ...]] = {
    "schema": (int,),
    "benchmark": (str,),  # train_throughput | encode_throughput | pca_fit | quality | sweep
    "implementation": (str,),  # aejax | aejax-epochs | torch | aejax-pca | sklearn-pca
    "model": (str,),
    "data": (str,),
    "config": (dict,),
    "seed": (int,),
    "versions": (dict,),
    "device": (dict,),
    "metric": (str,),  # what median/min/max measure
    "unit": (str,),
    "compile_seconds": (float, type(None)),
    "median": (float,),
    "min": (float,),
    "max": (float,),
    "repeats": (int,),
    "values": (dict,),  # the other metrics of the same measurement
    "peak_memory": (dict, type(None)),
    "timestamp": (str,),
}
BENCHMARKS = ("matmul_peak", "train_throughput", "encode_throughput", "pca_fit", "quality", "sweep")
DEVICE_KEYS = ("kind", "platform", "count")
VERSION_KEYS = ("python", "jax", "jaxlib", "flax", "optax", "numpy")


def summarize(samples: Sequence[float]) -> dict[str, float | int]:
    """``{"median", "min", "max", "repeats"}`` of a list of measurements."""
    if not samples:
        raise ValueError("no samples to summarize")
    return {
        "median": float(statistics.median(samples)),
        "min": float(min(samples)),
        "max": float(max(samples)),
        "repeats": len(samples),
    }


def make_record(
    *,
    benchmark: str,
    implementation: str,
    model: str,
    data: str,
    config: dict,
    seed: int,
    env: dict,
    metric: str,
    unit: str,
    samples: Sequence[float],
    compile_seconds: float | None = None,
    values: dict | None = None,
    peak_memory: dict | None = None,
    timestamp: str,
) -> dict[str, Any]:
    """Builds one record and checks it against ``SCHEMA``.

    Args:
      benchmark: one of ``BENCHMARKS``.
      implementation: who was measured (``"aejax"``, ``"torch"``, ``"sklearn-pca"``, ...).
      model: registry name, or ``"pca"``.
      data: the dataset spec.
      config: the full configuration of the measurement (JSON-serializable).
      seed: the seed.
      env: ``{"versions": ..., "device": ...}`` of the run.
      metric: the name of the quantity in ``samples`` (e.g. ``"train_samples_per_sec"``).
      unit: its unit.
      samples: one value per repeat.
      compile_seconds: compilation time, measured apart from the steady state (None if
        the implementation does not compile).
      values: other metrics of this measurement, e.g. the PCA error beside the AE error.
      peak_memory: from ``environment.peak_memory()``.
      timestamp: ISO time of the measurement.

    Returns:
      The record dict.
    """
    record = {
        "schema": SCHEMA_VERSION,
        "benchmark": benchmark,
        "implementation": implementation,
        "model": model,
        "data": data,
        "config": config,
        "seed": int(seed),
        "versions": env["versions"],
        "device": env["device"],
        "metric": metric,
        "unit": unit,
        "compile_seconds": None if compile_seconds is None else float(compile_seconds),
        **summarize([float(s) for s in samples]),
        "values": values or {},
        "peak_memory": peak_memory,
        "timestamp": timestamp,
    }
    problems = validate(record)
    if problems:
        raise ValueError(f"malformed benchmark record: {problems}")
    return record


def validate(record: dict) -> list[str]:
    """Lists what is wrong with ``record`` (empty when it matches the schema)."""
    problems = [f"missing {k!r}" for k in SCHEMA if k not in record]
    for key, types in SCHEMA.items():
        if key in record and not isinstance(record[key], types):
            problems.append(
                f"{key!r} is {type(record[key]).__name__}, expected "
                + " or ".join(t.__name__ for t in types)
            )
    if problems:
        return problems
    if record["benchmark"] not in BENCHMARKS:
        problems.append(f"unknown benchmark {record['benchmark']!r}")
    problems += [f"device lacks {k!r}" for k in DEVICE_KEYS if k not in record["device"]]
    problems += [f"versions lack {k!r}" for k in VERSION_KEYS if k not in record["versions"]]
    if record["repeats"] < 1:
        problems.append("repeats < 1")
    stats = (record["min"], record["median"], record["max"])
    if not all(math.isfinite(v) for v in stats) or not stats[0] <= stats[1] <= stats[2]:
        problems.append(f"expected finite min <= median <= max, got {stats}")
    return problems


def write(path: str | pathlib.Path, records: Iterable[dict]) -> None:
    """Writes one JSON object per line."""
    with open(path, "w") as f:
        for r in records:
            f.write(json.dumps(r, sort_keys=True) + "\n")


def read(path: str | pathlib.Path) -> list[dict]:
    """Reads ``records.jsonl``."""
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines() if line]
