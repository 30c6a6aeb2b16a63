"""A/B: the training step of this tree against another git revision, interleaved by process.

    python -m benchmarks ab --against ebb417b --out bench-out/ab        # minutes on 2 CPUs

Two versions of a library cannot live in one Python process, so each round starts one
process per side, in turn (A, B, A, B, ...): each imports its own tree (``PYTHONPATH``),
builds the library's step for every case (dense ``ae`` and ``conv_ae`` on 28x28x1 inputs,
batch 64 and 256, float32), compiles it ahead of time (compile seconds apart) and times
``--steps`` donated steps, three times; the process reports the fastest of its three per
case. The table gives, per case, the median over rounds of each side's steps/s and the ratio
of the medians (B / A: above 1 = this tree is faster). The other side is checked out with
``git worktree add --detach`` into a temporary folder and removed afterwards.

Writes ``ab.json`` (versions, device, both revisions, every round's figures) and ``ab.md``.
"""

from __future__ import annotations

import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile

from benchmarks import environment

ROOT = pathlib.Path(__file__).resolve().parent.parent
CASES = [("ae", 64), ("ae", 256), ("conv_ae", 64), ("conv_ae", 256)]

# Runs inside each side's process, importing that side's aejax. It reaches the step through
# names both the old and the new layout export at the top level.
_PROBE = r"""
import json, sys, time
import jax, jax.numpy as jnp, numpy as np
import aejax
from aejax import xla
steps = int(sys.argv[1]); cases = json.loads(sys.argv[2])
try:
    from aejax.train import init_state
except ImportError:
    from aejax.train.state import init_state
try:
    from aejax.models.objective import make_objective
except ImportError:  # before the models owned their objective
    from aejax.objective import make_objective
out = {}
shape = (28, 28, 1)
rng = np.random.default_rng(0)
for name, batch in cases:
    cfg = aejax.Config(model=name, latent_dim=16, progress=False, devices=1)
    model = aejax.model_from_config(cfg, shape, "image")
    total = 10**6
    opts = aejax.make_optimizers(cfg, total, model)
    state = jax.block_until_ready(init_state(model, opts, shape, 0))
    key = jax.tree.map(jnp.copy, state.rng)
    batches = [{"x": jax.device_put(rng.random((batch, *shape), np.float32))} for _ in range(4)]
    fn = aejax.make_train_step(model, opts, make_objective(cfg, total), nonfinite="stop")
    step = xla.jit(fn, platform="cpu", donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step.lower(state, batches[0], key).compile()
    compile_s = time.perf_counter() - t0
    for i in range(10):
        state, _ = compiled(state, batches[i % 4], key)
    jax.block_until_ready(state)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for i in range(steps):
            state, _ = compiled(state, batches[i % 4], key)
        jax.block_until_ready(state)
        best = min(best, time.perf_counter() - t0)
    out[f"{name}@{batch}"] = {"steps_per_s": steps / best, "compile_s": compile_s}
print("AB-RESULT " + json.dumps(out))
"""


def _side(tree: pathlib.Path, steps: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree), "JAX_PLATFORMS": "cpu"}
    env.pop("XLA_FLAGS", None)  # one CPU device on both sides
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(steps), json.dumps(CASES)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("AB-RESULT "):
            return json.loads(line[len("AB-RESULT ") :])
    raise RuntimeError(f"the probe failed in {tree}:\n{proc.stderr[-3000:]}")


def _revision(tree: pathlib.Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    )
    return out.stdout.strip() + ("+changes" if dirty.stdout.strip() else "")


def run(against: str, out: pathlib.Path, rounds: int = 5, steps: int = 200) -> dict:
    """Runs the interleaved A/B and writes ``ab.json`` and ``ab.md`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        other = pathlib.Path(tmp) / "a"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(other), against],
            check=True,
            capture_output=True,
        )
        try:
            sides = {"A": other, "B": ROOT}
            revisions = {k: _revision(v) for k, v in sides.items()}
            results: dict[str, list[dict]] = {"A": [], "B": []}
            for r in range(rounds):
                for name, tree in sides.items():
                    results[name].append(_side(tree, steps))
                    print(f"round {r + 1}/{rounds} {name} done", file=sys.stderr)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(other)],
                check=False,
                capture_output=True,
            )
    table = []
    for name, batch in CASES:
        case = f"{name}@{batch}"
        med = {s: statistics.median(r[case]["steps_per_s"] for r in results[s]) for s in "AB"}
        comp = {s: statistics.median(r[case]["compile_s"] for r in results[s]) for s in "AB"}
        table.append(
            {
                "case": case,
                "a_steps_per_s": med["A"],
                "b_steps_per_s": med["B"],
                "ratio_b_over_a": med["B"] / med["A"],
                "a_compile_s": comp["A"],
                "b_compile_s": comp["B"],
            }
        )
    record = {
        "benchmark": "ab",
        "when": environment.now(),
        "versions": environment.versions(),
        "machine": environment.machine_line(),
        "load_average": os.getloadavg(),
        "revisions": revisions,
        "rounds": rounds,
        "steps": steps,
        "table": table,
        "raw": results,
    }
    (out / "ab.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# Step speed A/B: {revisions['B']} (B) against {revisions['A']} (A)",
        "",
        f"{record['machine']}; {rounds} interleaved rounds of {steps} steps, float32, 1 device; "
        "median over rounds of each process's fastest of three.",
        "",
        "| case | A steps/s | B steps/s | B / A | A compile s | B compile s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in table:
        lines.append(
            f"| {row['case']} | {row['a_steps_per_s']:.1f} | {row['b_steps_per_s']:.1f} | "
            f"{row['ratio_b_over_a']:.3f} | {row['a_compile_s']:.2f} | {row['b_compile_s']:.2f} |"
        )
    (out / "ab.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return record
