"""Throughput: training samples/s of the jitted step and encode samples/s, aejax vs PyTorch.

The aejax step is the library's own ``make_train_step`` jitted with state donation, and
compiled ahead of time (``.lower(...).compile()``) so compile seconds are apart from the
steady state. Both implementations cycle through the same device-resident batches (data
feeding is not timed), use float32 and the same batch size, and are timed in interleaved
rounds (aejax, torch, aejax, torch, ...), so the ratios come from the same conditions.

The ``feed`` dimension (``config.bench.feed``) times the engine's own epochs besides the
bare step, for the dense and the conv AE (``FEED_MODELS``): ``step`` is the step above;
``host`` whole epochs as ``aejax train`` feeds them from host arrays (``device_data=off``:
a batch gathered and copied per step); ``device`` whole epochs on the device-resident
split (``device_data=on``: each epoch one compiled program, ``aejax.train.resident``);
``stream`` whole epochs read from ArrayRecord files by grain (``stream=on``,
``aejax.train.streamed``; the split written as float32 to a temporary directory).
Both epoch modes sum the metrics on the device and fetch them once per epoch, as the loop
does; their records' implementation is ``aejax-epochs``.

PyTorch is timed with ``torch.set_num_threads`` at the core count and at 1: on a busy
machine its OpenMP threads wait for each other at every op, which can make the core-count
setting several times slower than one thread, so the ratio is taken against the faster.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

import aejax
from aejax import xla
from aejax.models.likelihoods import likelihood_for
from aejax.models.objective import make_objective
from aejax.train import epoch_permutation, init_state, resident, shard
from aejax.train.epoch import Carry, zero_metrics
from aejax.train.step import metric_names
from benchmarks import environment, flops, records, timing
from benchmarks.context import Context
from benchmarks.suites import default_data, suite_models

N_BATCHES = 8  # distinct batches cycled through, so no step sees the cache of the last


def _batches(ds: aejax.Dataset, batch_size: int, seed: int) -> list[np.ndarray]:
    """``N_BATCHES`` training batches ``[B, *input_shape]`` in the engine's epoch order."""
    perm = epoch_permutation(seed, 0, ds.x_train.shape[0])
    idx = np.resize(perm, N_BATCHES * batch_size)  # wraps around on small data sets
    return [ds.x_train[idx[i * batch_size : (i + 1) * batch_size]] for i in range(N_BATCHES)]


def aejax_trainer(name: str, ds: aejax.Dataset, config: aejax.Config, batches: list[np.ndarray]):
    """Builds and compiles the library's step, as ``aejax.train`` does.

    Returns:
      ``(timings, run_steps, get_params, model)``: ``timings`` holds ``init_seconds``
      (``init_state``, its compilation included), ``compile_seconds`` (the step's trace and
      compile) and ``flops_per_step`` (matmul and conv FLOPs, ``benchmarks.flops``).
    """
    model = aejax.model_from_config(config, ds.input_shape, ds.kind, n_train=ds.x_train.shape[0])
    total_steps = 10**6
    optimizers = aejax.make_optimizers(config, total_steps, model)
    t0 = time.perf_counter()
    state = jax.block_until_ready(init_state(model, optimizers, ds.input_shape, config.seed))
    init_seconds = time.perf_counter() - t0
    key = jax.tree.map(jnp.copy, state.rng)  # the state's own key is donated with it
    dev = [{"x": jax.device_put(b)} for b in batches]
    objective = make_objective(config, total_steps)
    step_fn = aejax.make_train_step(model, optimizers, objective, nonfinite=config.nonfinite)
    platform = dev[0]["x"].devices().pop().platform
    step = xla.jit(step_fn, platform=platform, donate_argnums=0)
    t0 = time.perf_counter()
    compiled = step.lower(state, dev[0], key).compile()
    timings = {
        "init_seconds": init_seconds,
        "compile_seconds": time.perf_counter() - t0,
        "flops_per_step": flops.matmul_flops(step_fn, state, dev[0], key),
    }
    run_steps, current_state = timing.step_loop(compiled, state, dev, key)

    # All the Linen variables (a VQ-VAE's codebook is model state, not a parameter).
    return timings, run_steps, lambda: current_state().variables(), model


FEEDS = ("host", "device", "stream")  # the engine's epochs: host-fed, device-resident, streamed
FEED_MODELS = ("ae", "conv_ae")  # whose epochs are timed both ways (two compiles each)


def epoch_trainer(ds: aejax.Dataset, config: aejax.Config, batch_size: int, feed: str):
    """The loop's epochs, fed as ``feed`` says (``host`` or ``device``), on one device.

    Returns:
      ``(run_epochs, steps_per_epoch)``: ``run_epochs(n)`` runs ``n`` whole epochs in the
      engine's order and returns their seconds (compiled beforehand, not timed).
    """
    model = aejax.model_from_config(config, ds.input_shape, ds.kind, n_train=ds.x_train.shape[0])
    total_steps = 10**6
    optimizers = aejax.make_optimizers(config, total_steps, model)
    mesh = shard.make_mesh(1)
    state = shard.replicate(init_state(model, optimizers, ds.input_shape, config.seed), mesh)
    key = jax.tree.map(jnp.copy, state.rng)
    step_fn = aejax.make_train_step(
        model, optimizers, make_objective(config, total_steps), nonfinite=config.nonfinite
    )
    spec = {"x": jax.ShapeDtypeStruct((batch_size, *ds.input_shape), jnp.float32)}
    acc0 = zero_metrics(metric_names(model, state.variables(), spec), mesh)
    platform = mesh.devices.flat[0].platform
    arrays = {"x": np.asarray(ds.x_train, np.float32)}
    if feed == "stream":  # the split in ArrayRecord files, read batch by batch by grain
        arrays = {"x": _streamed(arrays["x"])}
    compiled, data = resident.compile_steps(
        step_fn, platform, mesh, (state, acc0, spec), arrays, feed == "device"
    )
    planner = resident.ChunkPlanner() if feed == "device" else None
    carry, n = Carry(state, acc0), arrays["x"].shape[0]
    counter = {"epoch": 0}

    def run_epochs(epochs: int) -> float:
        t0 = time.perf_counter()
        for _ in range(epochs):
            perm = epoch_permutation(config.seed, counter["epoch"], n)
            carry.acc = jax.tree.map(jnp.zeros_like, acc0)
            resident.run_steps(compiled, carry, key, data, perm, batch_size, mesh, planner)
            counter["epoch"] += 1
        return time.perf_counter() - t0

    return run_epochs, n // batch_size


def _streamed(x: np.ndarray):
    """``x`` ``[N, H, W, C]`` float32 in [0, 1] written to ArrayRecord files (a temporary
    directory, removed at exit) and opened as a ``StreamedArray``."""
    import atexit
    import shutil
    import tempfile

    from aejax.data.arrayrecord import open_arrayrecord, writer
    from aejax.data.stream import StreamedArray

    tmp = tempfile.mkdtemp(prefix="aejax-stream-bench-")
    atexit.register(shutil.rmtree, tmp, True)
    with writer(tmp, split="train", shape=x.shape[1:], dtype="float32") as w:
        for i in range(0, len(x), 1024):
            w.write(x[i : i + 1024])
    d = open_arrayrecord(tmp)
    return StreamedArray(d.source, np.arange(len(x)), d.shape, d.dtype, "benchmark split")


def torch_trainer(name: str, ds: aejax.Dataset, config: aejax.Config, batches: list[np.ndarray]):
    """The PyTorch twin's ``(run_steps, twin)``, or None when the model has no twin."""
    import torch

    from benchmarks.peers import torch_train
    from benchmarks.peers.torch_twins import create_twin

    torch.manual_seed(config.seed)
    try:
        twin = create_twin(name, ds.input_shape, config)
    except ValueError:  # e.g. an activation the twins do not mirror
        twin = None
    if twin is None:
        return None
    tb = [twin.to_input(b) for b in batches]
    step = torch_train.make_step(
        twin,
        torch_train.make_optimizer(twin, config),
        likelihood_for(ds.kind).name,
        config.grad_clip,
    )

    def run_steps(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            step(tb[i % len(tb)], config.lr)
        return time.perf_counter() - t0

    return run_steps, twin


def thread_counts() -> list[int]:
    """PyTorch intra-op thread counts to time: the cores this process may use, and 1."""
    return sorted({environment.cpu_count(), 1}, reverse=True)


def with_threads(n: int, run: Callable[[], float]) -> Callable[[], float]:
    """``run`` with ``torch.set_num_threads(n)`` in force."""

    def wrapped() -> float:
        import torch

        torch.set_num_threads(n)
        return run()

    return wrapped


def run(ctx: Context) -> list[dict]:
    """Measures the suite's models on their default data at every suite batch size."""
    out = []
    for name in suite_models(ctx.suite):
        data, ds = ctx.dataset_or_fallback(default_data(name, ctx.suite))
        for batch_size in ctx.suite.batch_sizes:
            ctx.log(f"throughput {name} on {data}, batch {batch_size}")
            try:
                out += _measure(ctx, name, data, ds, batch_size)
            except aejax.AejaxError as e:
                ctx.note(f"throughput of {name!r} on {data!r} skipped: {e}")
    return out


def _measure(ctx: Context, name: str, data: str, ds: aejax.Dataset, batch_size: int) -> list:
    suite = ctx.suite
    config = ctx.config(model=name, data=data, batch_size=batch_size)
    steps = suite.steps(batch_size)
    batches = _batches(ds, batch_size, config.seed)
    timings, run_a, get_params, model = aejax_trainer(name, ds, config, batches)
    runners = {"aejax": lambda: run_a(steps)}
    samples = {"aejax": steps * batch_size}
    for feed in FEEDS if name in FEED_MODELS else ():  # whole epochs, ~the step's count
        run_e, per_epoch = epoch_trainer(ds, config, batch_size, feed)
        epochs = max(1, round(steps / per_epoch))
        runners[f"aejax/{feed}"] = functools.partial(run_e, epochs)
        samples[f"aejax/{feed}"] = epochs * per_epoch * batch_size
    twin = None
    if ctx.torch_ok:
        peer = torch_trainer(name, ds, config, batches)
        if peer is None:
            ctx.note(f"{name!r} has no PyTorch twin: its peer comparison is skipped")
        else:
            run_t, twin = peer
            for n in thread_counts():
                runners[f"torch/{n}"] = with_threads(n, lambda: run_t(steps))
    for run_one in runners.values():  # warm-up: first-touch allocations, caches, lazy init
        run_one()
    seconds = timing.interleaved(runners, suite.repeats)
    speed = {k: [samples.get(k, steps * batch_size) / s for s in v] for k, v in seconds.items()}
    best = _best_torch(speed)
    if best is not None and (
        name not in ctx.torch_threads or batch_size == aejax.Config().batch_size
    ):
        ctx.torch_threads[name] = int(best.split("/")[1])  # the quality run's twin uses it
    bench = {
        "batch_size": batch_size,
        "steps_per_repeat": steps,
        "n_batches": N_BATCHES,
        "timed": "jitted train_step only, after one untimed repeat",
    }
    recs = [
        _record(
            ctx,
            "train_throughput",
            key,
            name,
            data,
            config,
            _feed_bench(bench, key, samples),
            "train_samples_per_sec",
            speed,
            timings["compile_seconds"] if key == "aejax" else None,
            extra=_flop_values(ctx, timings, speed[key], batch_size) if key == "aejax" else None,
        )
        for key in speed
    ]
    if batch_size == suite.batch_sizes[0]:  # encoding does not depend on the training batch
        recs += _encode(ctx, name, data, ds, config, model, get_params(), twin)
    return recs


def _encode(ctx, name, data, ds, config, model, params, twin) -> list:
    """Encode samples/s with ``aejax.encode`` and the twin's ``encode``, both from a host
    array to a host array (the twin's ``torch.from_numpy`` and ``.numpy()`` are timed)."""
    x = ds.x_test[: ctx.suite.encode_rows]
    runners = {"aejax": lambda: timing.timed(lambda: aejax.encode(model, params, x))[1]}
    if twin is not None:
        import torch

        from benchmarks.peers import torch_train

        twin.eval()
        # The layout change stays outside the timer (a PyTorch user's images are NCHW).
        xt = twin.to_input(x).numpy()
        for n in thread_counts():
            runners[f"torch/{n}"] = with_threads(
                n,
                lambda: timing.timed(lambda: torch_train.encode_all(twin, torch.from_numpy(xt)))[1],
            )
    first = runners["aejax"]()  # compiles the encoder for this shape
    for r in runners.values():
        r()
    seconds = timing.interleaved(runners, ctx.suite.repeats)
    compile_s = max(first - float(np.median(seconds["aejax"])), 0.0)
    speed = {k: [x.shape[0] / s for s in v] for k, v in seconds.items()}
    bench = {
        "rows": int(x.shape[0]),
        "chunk": "aejax: aejax.inference.plan_chunks; torch: 1024",
        "timed": "encode, host array in and out on both sides",
        "compile": "first call minus steady median",
    }
    return [
        _record(
            ctx,
            "encode_throughput",
            key,
            name,
            data,
            config,
            bench,
            "encode_samples_per_sec",
            speed,
            compile_s if key == "aejax" else None,
        )
        for key in speed
    ]


def _flop_values(ctx: Context, timings: dict, samples_per_sec: list[float], batch: int) -> dict:
    """Init seconds, matmul FLOP rate and its share of the machine's matmul peak."""
    per_sample = timings["flops_per_step"] / batch
    gflops = float(np.median(samples_per_sec)) * per_sample / 1e9
    peak = ctx.matmul_peak_gflops
    return {
        "init_seconds": timings["init_seconds"],
        "matmul_flops_per_sample": per_sample,
        "matmul_gflops": gflops,
        "matmul_peak_gflops": peak,
        "fraction_of_matmul_peak": gflops / peak if peak else None,
    }


def _feed(key: str) -> str:
    """``config.bench.feed`` of runner ``key``: ``step`` (the bare step), ``host`` or
    ``device`` (the loop's epochs); PyTorch's bare step is ``step`` too."""
    return key.split("/")[1] if key.startswith("aejax/") else "step"


def _feed_bench(bench: dict, key: str, samples: dict) -> dict:
    """The ``bench`` of runner ``key``, with its ``feed`` (and an epoch runner's samples)."""
    if not key.startswith("aejax/"):
        return {**bench, "feed": _feed(key)}
    timed = f"the loop's whole epochs, {_feed(key)}-fed, after one untimed repeat"
    return {**bench, "feed": _feed(key), "samples_per_repeat": samples[key], "timed": timed}


def _best_torch(speed: dict[str, list[float]]) -> str | None:
    """The ``torch/N`` runner with the highest median, or None without PyTorch."""
    keys = [k for k in speed if k.startswith("torch/")]
    return max(keys, key=lambda k: float(np.median(speed[k]))) if keys else None


def _record(
    ctx, benchmark, key, name, data, config, bench, metric, speed, compile_s, extra=None
) -> dict:
    """One record for runner ``key`` (``aejax`` or ``torch/N``) of a throughput measurement."""
    values, cfg = dict(extra or {}), {**config.to_dict(), "bench": bench}
    best = _best_torch(speed)
    if key == "aejax" and best is not None:
        aejax_median = float(np.median(speed["aejax"]))
        values["ratio_vs_torch"] = aejax_median / float(np.median(speed[best]))
        values["torch_best_threads"] = int(best.split("/")[1])
        values["ratio_vs_torch_by_threads"] = {
            k.split("/")[1]: aejax_median / float(np.median(v))
            for k, v in speed.items()
            if k.startswith("torch/")
        }
    if key.startswith("torch/"):
        cfg["bench"] = {**bench, "torch_threads": int(key.split("/")[1])}
    stamp = ctx.stamp()
    return records.make_record(
        benchmark=benchmark,
        implementation="aejax-epochs" if key.startswith("aejax/") else key.split("/")[0],
        model=name,
        data=data,
        config=cfg,
        seed=config.seed,
        env=stamp["env"],
        metric=metric,
        unit="samples/s",
        samples=speed[key],
        compile_seconds=compile_s,
        values=values,
        peak_memory=environment.peak_memory(),
        timestamp=stamp["timestamp"],
    )
