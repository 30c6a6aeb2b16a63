"""Input modes side by side: samples/s and peak RSS of host-fed, device-resident and
streamed training, each an ``aejax train`` process of its own (peak RSS is per process).

    python -m benchmarks.stream_memory --data arrayrecord:DIR --out DIR \\
        [--models ae,conv_ae] [--batches 64,256] [--epochs 2] [--rounds 2] [--modes ...]

Modes (``--set``): ``host`` = ``stream=off device_data=off`` (the split loaded, a batch
gathered per step), ``device`` = ``stream=off device_data=on`` (the split loaded and
kept on the device, an epoch one compiled program), ``stream`` = ``stream=on`` (read
from the ArrayRecord files by grain batch by batch). Runs are interleaved (every mode of
a model and batch, then the next round), and samples/s is ``aejax train``'s own figure
(the epochs after the first when there are several). Peak RSS is the child's
``ru_maxrss`` (``os.wait4``). Writes ``stream_memory.json`` and ``stream_memory.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

from benchmarks import environment

MODES = {
    "host": ("stream=off", "device_data=off"),
    "device": ("stream=off", "device_data=on"),
    "stream": ("stream=on",),
}


def run_one(data: str, model: str, batch: int, epochs: int, mode: str) -> dict:
    """One ``aejax train`` process: its samples/s, peak RSS (MiB) and wall seconds."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "aejax.cli", "train", "--model", model, "--data", data]
        cmd += ["--epochs", str(epochs), "--batch-size", str(batch), "--devices", "1"]
        cmd += ["--workdir", str(pathlib.Path(tmp) / "run"), "--no-progress", "--json"]
        for s in MODES[mode]:
            cmd += ["--set", s]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = proc.communicate()
        # communicate() reaped the child: its rusage is in RUSAGE_CHILDREN's maximum only,
        # so the child is waited for by wait4 instead.
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"error": err.strip().splitlines()[-1] if err.strip() else "failed", "wall": wall}
    summary = json.loads(out)
    return {
        "samples_per_sec": summary.get("train_samples_per_sec"),
        "device_data": summary.get("device_data"),
        "report_sample": summary.get("report_sample"),
        "wall": wall,
    }


def run_measured(data: str, model: str, batch: int, epochs: int, mode: str) -> dict:
    """``run_one`` in a child of its own, whose peak RSS ``os.wait4`` reports."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: runs aejax train as its own child, reports through the pipe
        os.close(r)
        result = run_one(data, model, batch, epochs, mode)
        os.write(w, json.dumps(result).encode())
        os._exit(0)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, _, usage = os.wait4(pid, 0)
    result = json.loads(b"".join(chunks))
    # ru_maxrss of the forked child covers its own child (the largest of the two).
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--models", default="ae,conv_ae")
    p.add_argument("--batches", default="64,256")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--modes", default="host,device,stream")
    args = p.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = args.models.split(",")
    batches = [int(b) for b in args.batches.split(",")]
    modes = args.modes.split(",")
    runs: dict[str, list] = {}
    t0 = time.perf_counter()
    for _ in range(args.rounds):
        for model in models:
            for batch in batches:
                for mode in modes:
                    key = f"{model}/{batch}/{mode}"
                    r = run_measured(args.data, model, batch, args.epochs, mode)
                    print(key, r, flush=True)
                    runs.setdefault(key, []).append(r)
    rows = []
    for key, rs in runs.items():
        model, batch, mode = key.split("/")
        ok = [r for r in rs if "error" not in r]
        rows.append(
            {
                "model": model,
                "batch_size": int(batch),
                "mode": mode,
                "samples_per_sec": [r["samples_per_sec"] for r in ok],
                "median_samples_per_sec": statistics.median([r["samples_per_sec"] for r in ok])
                if ok
                else None,
                "peak_rss_mib": max((r["peak_rss_mib"] for r in rs), default=None),
                "errors": [r["error"] for r in rs if "error" in r],
            }
        )
    meta = {
        "command": "python -m benchmarks.stream_memory " + " ".join(argv or sys.argv[1:]),
        "data": args.data,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "versions": environment.versions(),
        "device": environment.device(),
        "timestamp": environment.now(),
        "wall_seconds": time.perf_counter() - t0,
        "rows": rows,
    }
    (out / "stream_memory.json").write_text(json.dumps(meta, indent=2))
    lines = [
        f"# Input modes on {args.data}",
        "",
        f"`{meta['command']}` on {environment.machine_line(meta['device'])}, "
        f"{meta['timestamp']}, {meta['wall_seconds'] / 60:.1f} min; {args.epochs} epoch(s) "
        f"per run, {args.rounds} interleaved round(s); samples/s is `aejax train`'s figure, "
        "peak RSS the process's `ru_maxrss`.",
        "",
        "| model | batch | mode | samples/s (median) | peak RSS MiB | errors |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        med = r["median_samples_per_sec"]
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['mode']} | "
            f"{'' if med is None else f'{med:,.0f}'} | {r['peak_rss_mib']:,.0f} | "
            f"{'; '.join(r['errors'])} |"
        )
    (out / "stream_memory.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'stream_memory.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
