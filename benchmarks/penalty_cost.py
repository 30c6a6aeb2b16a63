"""The step-time cost of contractive_ae's Jacobian penalty, per way of computing it.

For each encoder (one sigmoid layer, where the closed form applies, and a deep one) and
each input size, the library's jitted train step is timed without the penalty (the same
model with ``penalty=None``) and with it, computed by ``closed_form``, ``forward``
(``jax.jacfwd``) and ``reverse`` (``jax.jacrev``). Steps are compiled ahead of time, so
compile seconds stand apart; repeats are interleaved across the variants so machine noise
hits all alike, and each record holds the median, min and max over the repeats. The cost
is the ratio of median step times, penalty / no penalty.

    python -m benchmarks.penalty_cost --out bench-out/penalty     # ~1-2 min on 2 CPU cores

writes ``records.jsonl`` (the schema of ``benchmarks/records.py``, as
``train_throughput`` records of ``contractive_ae`` with ``config.bench.penalty`` naming
the variant) and ``penalty_cost.md`` (one Markdown table row per variant).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import aejax
from aejax import xla
from aejax.models.objective import make_objective
from aejax.train import init_state
from benchmarks import environment, records, timing

BATCH = 64
N_BATCHES = 4
REPEAT_SECONDS = 0.25  # each repeat runs about this long (at least one step)
# (input shape, hidden): digits-sized and MNIST-sized inputs, one sigmoid layer and deep.
CASES = (((8, 8, 1), ()), ((8, 8, 1), (256, 128)), ((28, 28, 1), ()), ((28, 28, 1), (256, 128)))
LATENT = 32


def _variants(hidden: tuple[int, ...]) -> tuple[str, ...]:
    one_layer = ("closed_form",) if not hidden else ()
    return ("none", *one_layer, "forward", "reverse")


def _trainer(model, config: aejax.Config, input_shape, batches):
    """The compiled step and ``(compile_seconds, run_steps)``, as ``aejax.train`` builds it."""
    optimizers = aejax.make_optimizers(config, 10**6, model)
    state = init_state(model, optimizers, input_shape, config.seed)
    key = jax.tree.map(jnp.copy, state.rng)  # the state's own key is donated with it
    step_fn = aejax.make_train_step(model, optimizers, make_objective(config, 10**6))
    step = xla.jit(step_fn, platform=jax.devices()[0].platform, donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step.lower(state, batches[0], key).compile()
    compile_seconds = time.perf_counter() - t0
    run_steps, _ = timing.step_loop(compiled, state, batches, key)

    return compile_seconds, run_steps


def measure_case(input_shape, hidden, repeats: int, seed: int = 0) -> list[dict]:
    """Records for every variant of one ``(input_shape, hidden)`` case."""
    config = aejax.Config(
        model="contractive_ae", hidden=hidden, latent_dim=LATENT, batch_size=BATCH, seed=seed
    )
    rng = np.random.default_rng(seed)
    batches = [
        {"x": jax.device_put(rng.random((BATCH, *input_shape), np.float32))}
        for _ in range(N_BATCHES)
    ]
    compiles, runners, steps = {}, {}, {}
    for variant in _variants(hidden):
        method = "auto" if variant == "none" else variant
        model = aejax.create_model(
            "contractive_ae", input_shape, hidden=hidden, latent_dim=LATENT,
            contractive_jacobian=method,
        )  # fmt: skip
        if variant == "none":
            model = model.clone(penalty=None)
        compiles[variant], run = _trainer(model, config, input_shape, batches)
        one = run(1)  # warm-up, and the size of a repeat
        steps[variant] = max(1, round(REPEAT_SECONDS / max(one, 1e-6)))
        runners[variant] = lambda run=run, n=steps[variant]: run(n) / n
    seconds = timing.interleaved(runners, repeats)
    base = float(np.median(seconds["none"]))
    env = {"versions": environment.versions(), "device": environment.device()}
    out = []
    for variant, secs in seconds.items():
        median = float(np.median(secs))
        bench = {
            "penalty": variant,
            "input_shape": list(input_shape),
            "steps_per_repeat": steps[variant],
            "timed": "jitted train_step only (compiled ahead of time), interleaved repeats",
        }
        out.append(
            records.make_record(
                benchmark="train_throughput",
                implementation="aejax",
                model="contractive_ae",
                data=f"uniform{list(input_shape)}",
                config={**config.to_dict(), "bench": bench},
                seed=seed,
                env=env,
                metric="train_samples_per_sec",
                unit="samples/s",
                samples=[BATCH / s for s in secs],
                compile_seconds=compiles[variant],
                values={
                    "step_ms_median": 1e3 * median,
                    "step_ms_min": 1e3 * min(secs),
                    "step_ms_max": 1e3 * max(secs),
                    "cost_vs_no_penalty": median / base,
                    "load_average_1min": os.getloadavg()[0],
                },
                peak_memory=environment.peak_memory(),
                timestamp=environment.now(),
            )
        )
    return out


def markdown(recs: list[dict]) -> str:
    """A table: one row per (case, variant)."""
    lines = [
        "| input | hidden | penalty | step ms (median, min-max) | x no penalty | compile s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in recs:
        b, v = r["config"]["bench"], r["values"]
        shape = "x".join(str(d) for d in b["input_shape"])
        hidden = ",".join(str(h) for h in r["config"]["hidden"]) or "()"
        lines.append(
            f"| {shape} | {hidden} | {b['penalty']} | {v['step_ms_median']:.2f} "
            f"({v['step_ms_min']:.2f}-{v['step_ms_max']:.2f}) | "
            f"{v['cost_vs_no_penalty']:.2f} | {r['compile_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="directory for the records and table")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="digits-sized cases only, 2 repeats")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cases = CASES[:2] if args.tiny else CASES
    repeats = 2 if args.tiny else args.repeats
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    recs = [r for shape, hidden in cases for r in measure_case(shape, hidden, repeats)]
    records.write(out / "records.jsonl", recs)
    head = (
        f"Contractive penalty cost, batch {BATCH}, latent {LATENT}, float32; "
        f"{environment.machine_line()}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after; {time.perf_counter() - t0:.0f} s.\n\n"
    )
    (out / "penalty_cost.md").write_text(head + markdown(recs))
    print(head + markdown(recs), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
