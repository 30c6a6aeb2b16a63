"""One suite run: measure, then write ``records.jsonl``, ``meta.json``, ``report.md`` and PNGs."""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

import jax

from benchmarks import environment, flops, plots, quality, records, report, sweep, throughput
from benchmarks.context import Context
from benchmarks.peers import torch_status
from benchmarks.suites import get_suite

PARTS = {
    "peak": flops.run,
    "throughput": throughput.run,
    "quality": quality.run,
    "sweep": sweep.run,
}

METHOD_NOTES = (
    "Ratios are aejax / peer between medians of the same run, repeats interleaved "
    "(aejax, PyTorch, aejax, ...): speed ratios above 1 and error ratios below 1 favour aejax.",
    "The suite's models are measured (quick: the engine's six networks; full: every model of "
    "`aejax.models.MODELS`); a model's throughput data is "
    "`benchmarks.suites.DEFAULT_DATA` (digits when unlisted or unavailable). One device, "
    "float32, the library's default hyperparameters unless a table says otherwise.",
    "Peak memory: the accelerator's peak bytes in use where `memory_stats()` reports it, "
    "else the process RSS high-water mark (`ru_maxrss`), which covers the whole run so far.",
)


def _torch_setup(peers: bool) -> tuple[bool, str]:
    if not peers:
        return False, "disabled (--no-peers)"
    ok, reason = torch_status()
    if not ok:
        return False, reason
    import torch

    cores = environment.cpu_count()
    torch.set_num_threads(cores)
    return True, (
        f"torch {torch.__version__}, eager mode; throughput timed with "
        f"torch.set_num_threads({cores}) (the cores this process may use) and (1); "
        "the twin's quality run uses the faster"
    )


def run_suite(
    suite_name: str,
    out: str | pathlib.Path,
    *,
    tiny: bool = False,
    peers: bool = True,
    only: tuple[str, ...] = tuple(PARTS),
    command: str | None = None,
) -> dict:
    """Runs a suite and writes its outputs into ``out``.

    Args:
      suite_name: ``quick`` or ``full``.
      out: the output directory (created).
      tiny: smoke-test sizes (digits only, seconds per part).
      peers: run the PyTorch twins where torch is installed.
      only: the parts to run, a subset of ``PARTS``.
      command: the command line to record (default: rebuilt from ``sys.argv``).

    Returns:
      The run's ``meta`` dict (also written to ``meta.json``).
    """
    suite = get_suite(suite_name, tiny)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0, started, load0 = time.perf_counter(), environment.now(), os.getloadavg()[0]
    torch_ok, torch_line = _torch_setup(peers)
    env = {"versions": environment.versions(), "device": environment.device()}
    ctx = Context(suite=suite, env=env, torch_ok=torch_ok, overrides=dict(suite.overrides))
    ctx.notes.extend(METHOD_NOTES)
    if not torch_ok:
        ctx.note(f"PyTorch peers skipped: {torch_line}")  # logged on stderr too
    if jax.config.jax_compilation_cache_dir:
        ctx.note(
            "a persistent compilation cache is set (jax_compilation_cache_dir): compile "
            "seconds may be cache reads"
        )
    recs: list[dict] = []
    for name in only:
        recs += PARTS[name](ctx)
    records.write(out / "records.jsonl", recs)
    meta = {
        "command": command or "python -m benchmarks " + " ".join(sys.argv[1:]),
        "suite": suite.to_dict(),
        "started": started,
        "finished": environment.now(),
        "wall_seconds": time.perf_counter() - t0,
        "loadavg": [load0, os.getloadavg()[0]],
        "machine": environment.machine_line(env["device"]),
        "device": env["device"],
        "versions": env["versions"],
        "torch": torch_line,
        "parts": list(only),
        "n_records": len(recs),
        "notes": ctx.notes,
    }
    render(out, recs, meta)
    return meta


def render(
    out: str | pathlib.Path, recs: list[dict] | None = None, meta: dict | None = None
) -> None:
    """Writes ``meta.json``, the PNGs and ``report.md`` of a run directory.

    Args:
      out: the run directory.
      recs: its records (default: read from ``records.jsonl``).
      meta: its meta (default: read from ``meta.json``), re-rendering a finished run.
    """
    out = pathlib.Path(out)
    recs = records.read(out / "records.jsonl") if recs is None else recs
    meta = json.loads((out / "meta.json").read_text()) if meta is None else meta
    figures = {}
    for name, draw in (
        ("throughput", plots.throughput),
        ("quality", plots.quality),
        ("latent_sweep", plots.latent_sweep),
    ):
        if draw(out / f"{name}.png", recs) is not None:
            figures[name] = f"{name}.png"
    meta["figures"] = figures
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    (out / "report.md").write_text(report.render(recs, meta, figures))
