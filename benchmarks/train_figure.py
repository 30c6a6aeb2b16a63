"""``aejax train``'s reported samples/s beside the throughput benchmark's step-only figure.

Usage: ``python -m benchmarks.train_figure [--data mnist-lite] [--batch 64 256]
[--repeats 5] [--epochs 4]``. For each batch size, in interleaved rounds: ``aejax.train``
host-fed (``device_data=off``), ``aejax.train`` device-resident (``device_data=on``), both
reporting ``stats["train_samples_per_sec"]`` (the epochs after the first, compile apart),
and the benchmark's bare jitted step (``benchmarks.throughput.aejax_trainer``) over as
many steps. Prints the medians, each train figure's ratio to the step's, and the median
of the per-round ratios (less exposed to a load that changes between rounds).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import aejax
from aejax.assemble import train
from benchmarks.throughput import _batches, aejax_trainer


def measure(data: str, batch_size: int, repeats: int, epochs: int) -> dict:
    config = aejax.Config(
        model="ae", data=data, batch_size=batch_size, epochs=epochs, progress=False, devices=1
    )
    ds = aejax.load_dataset(data, seed=config.seed)
    steps = (epochs - 1) * (ds.x_train.shape[0] // batch_size)  # what train's figure times
    _, run_step, _, _ = aejax_trainer("ae", ds, config, _batches(ds, batch_size, config.seed))
    run_step(steps)  # warm-up, as the benchmark does
    speed: dict[str, list[float]] = {"host": [], "device": [], "step": []}
    for _ in range(repeats):
        for mode in ("off", "on"):
            stats = train(config.replace(device_data=mode), dataset=ds).stats
            assert stats["device_data"] == (mode == "on")
            speed["host" if mode == "off" else "device"].append(stats["train_samples_per_sec"])
        speed["step"].append(steps * batch_size / run_step(steps))
    med = {k: float(np.median(v)) for k, v in speed.items()}
    return {
        "data": data,
        "batch_size": batch_size,
        "timed_steps": steps,
        "repeats": repeats,
        "samples_per_sec": speed,
        "median": med,
        "host_over_step": med["host"] / med["step"],
        "device_over_step": med["device"] / med["step"],
        # Each round's own ratio (its three runs back to back, under the same load).
        "paired_median": {
            f"{k}_over_step": float(np.median(np.array(speed[k]) / np.array(speed["step"])))
            for k in ("host", "device")
        },
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="mnist-lite")
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--epochs", type=int, default=4)
    args = p.parse_args()
    for b in args.batch:
        print(json.dumps(measure(args.data, b, args.repeats, args.epochs)), flush=True)


if __name__ == "__main__":
    main()
