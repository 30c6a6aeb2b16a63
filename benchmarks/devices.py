"""Several devices equal one: every registry model at a realistic size, 1 vs 8 CPU devices.

Each registry model trains with the library's default sizes (not the tests' tiny
configs) on its natural data, once on 1 device and once on 8 fake CPU devices
(``jax_num_cpu_devices``), each in a process of its own, with the same seed and data;
the table reports whether each run completed (a crashed or hung process is reported,
not raised), the wall time of each process, the optimizer steps, and the largest
absolute difference between the two final training states (parameters, optimizer and
model state).

Data per model: MNIST-lite images (``[N, 28, 28, 1]``; a uniform-noise stand-in of the
same shape when the files are absent) for every model that takes images; MovieLens
ml-latest-small item rows (a synthetic low-rank matrix of the same shape when absent)
for ``autorec``; noisy sines of 32 steps for ``seq2seq_ae``.

    python -m benchmarks devices --out bench-out/devices        # ~11 min on 2 CPU cores
    python -m benchmarks devices --out bench-out/devices --models vq_vae,adversarial_ae

writes ``devices.json`` and ``devices.md``. Up to jaxlib 0.10.2 at least, XLA's CPU
client could abort such a run ("Expected 8 threads to join the rendezvous"); aejax paces
its dispatch around it (``aejax.train.shard.pace``, docs/scaling.md), and
``benchmarks/xla_cpu_rendezvous.py`` reproduces the XLA side without aejax.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

N_DEVICES = 8
EPOCHS = 3  # MNIST-lite: 4,500 training images / 64 = 70 steps per epoch
BATCH = 64
TIMEOUT_SECONDS = 600  # per process: a deadlocked run ends by XLA's abort after 40 s
# Tolerance of the comparison (as tests/test_registry.py's 8 devices = 1): an all-reduce
# sums the per-device partial sums in another order than one device does, so float32
# values may differ in their last bits, and these differences grow a little per step.
RTOL, ATOL = 2e-4, 2e-5


def image_data(rows: int | None = None, data_dir: str | None = None):
    """MNIST-lite (``[N, 28, 28, 1]`` in [0, 1]), or uniform noise of its shape when absent.

    Args:
      rows: use this many training rows (default: all).
      data_dir: aejax's data dir (default: ``resolve_data_dir``'s lookup).

    Returns:
      ``(Dataset, description)``.
    """
    from aejax.data import Dataset, load_dataset
    from aejax.data.pixels import float_images
    from aejax.errors import DataError

    try:
        ds = float_images(load_dataset("mnist-lite", data_dir=data_dir))
        name = "mnist-lite"
    except DataError:
        ds = synthetic_images(5000)
        name = "uniform noise [5000, 28, 28, 1] (mnist-lite absent)"
    if rows is not None:
        ds = Dataset(ds.name, ds.kind, ds.x_train[:rows], ds.x_val, ds.x_test)
        name += f", {rows} training rows"
    return ds, name


def synthetic_images(n: int, seed: int = 0):
    """``n`` training images of uniform noise ``[n, 28, 28, 1]`` in [0, 1] (plus 256
    validation and 256 test images): MNIST-lite's shape without its files."""
    from aejax.data import Dataset

    x = np.random.default_rng(seed).uniform(size=(n + 512, 28, 28, 1)).astype(np.float32)
    return Dataset("uniform-28x28", "image", x[:n], x[n : n + 256], x[n + 256 :])


def ratings_data(data_dir: str | None = None):
    """MovieLens ml-latest-small as I-AutoRec item rows, or a synthetic matrix of its shape."""
    from aejax.data.ratings import make_ratings, ratings_dataset, read_ratings, synthetic_ratings
    from benchmarks.recommendation import data_path

    path = data_path(data_dir)
    if path is not None:
        users, items, values = read_ratings(path)
        name = "MovieLens ml-latest-small (item rows)"
    else:
        users, items, values = synthetic_ratings(610, 9000, density=0.02, seed=0)
        name = "synthetic ratings 610 users x 9000 items (MovieLens absent)"
    return ratings_dataset("ratings", make_ratings(users, items, values, seed=0)), name


def sequence_data():
    """4,096 noisy sines of 32 steps (1 feature), lengths 16..32."""
    from aejax.data.sequence import build_sequence_dataset

    rng = np.random.default_rng(0)
    n, t = 4096, 32
    x = np.sin(np.arange(t)[None, :] / 3.0 + rng.uniform(0, 6, (n, 1)))[..., None]
    x = (x + 0.05 * rng.normal(size=x.shape)).astype(np.float32)
    ds = build_sequence_dataset("sines", x, lengths=rng.integers(16, t + 1, n))
    return ds, f"noisy sines [{n}, {t}, 1]"


def data_for(model: str, *, data: str = "natural", rows: int | None = None, data_dir=None):
    """The data a model is checked on: ``data="natural"`` (see the module docstring) or
    ``"synthetic"`` (uniform noise images of MNIST's shape, ``rows`` of them)."""
    from aejax.models import MODELS

    kinds = MODELS[model].kinds
    if "ratings" in kinds:
        return ratings_data(data_dir)
    if "sequence" in kinds:
        return sequence_data()
    if data == "synthetic":
        n = rows or 5000
        return synthetic_images(n), f"uniform noise [{n}, 28, 28, 1]"
    return image_data(rows, data_dir)


def config_for(model: str, devices: int, epochs: int = EPOCHS):
    """The library's default config of ``model``: batch 64, seed 0, no progress bar."""
    from aejax import Config

    return Config(
        model=model, epochs=epochs, batch_size=BATCH, devices=devices, seed=0, progress=False
    )


def train_once(model: str, devices: int, out: str, *, data="natural", rows=None, epochs=EPOCHS):
    """Trains ``model`` on ``devices`` devices and saves its final state to ``out`` (.npz).

    The arrays are the state's leaves in tree order (``leaf_0``, ...); ``meta`` holds a
    JSON string with the seconds of training, the steps and the data's description.
    """
    from aejax.assemble import train

    ds, name = data_for(model, data=data, rows=rows)
    t0 = time.perf_counter()
    result = train(config_for(model, devices, epochs), dataset=ds)
    seconds = time.perf_counter() - t0
    paths, leaves = state_leaves(result.state)
    last = result.history[-1]
    meta = {"train_seconds": seconds, "steps": int(result.stats["steps"]), "data": name}
    meta["paths"] = paths
    meta["train_loss"], meta["val_loss"] = last["train_loss"], last.get("val_loss")
    np.savez(out, meta=json.dumps(meta), **{f"leaf_{i}": a for i, a in enumerate(leaves)})


def state_leaves(state) -> tuple[list[str], list[np.ndarray]]:
    """A training state's leaves as host arrays (a typed key as its key data), with paths."""
    import jax

    paths, leaves = [], []
    for path, x in jax.tree_util.tree_flatten_with_path(state)[0]:
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        paths.append(jax.tree_util.keystr(path))
        leaves.append(np.asarray(x))
    return paths, leaves


def start_process(model: str, devices: int, workdir: pathlib.Path, **kwargs) -> dict:
    """Starts ``train_once`` in a fresh process with 8 fake CPU devices; see ``finish``."""
    out = workdir / f"{model}-{devices}.npz"
    args = [f"{k}={v}" for k, v in kwargs.items() if v is not None]
    cmd = [sys.executable, "-m", "benchmarks.devices", "worker", model, str(devices), str(out)]
    proc = subprocess.Popen(
        cmd + args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": _pythonpath()},
        cwd=pathlib.Path(__file__).resolve().parent.parent,
    )
    return {"proc": proc, "out": out, "t0": time.perf_counter()}


def finish(started: dict) -> dict:
    """Waits for a ``start_process`` run (at most ``TIMEOUT_SECONDS``).

    Returns:
      ``{"completed", "returncode", "seconds", "leaves", "meta", "error"}``: ``leaves``
      (a list of arrays) and ``meta`` when the process completed, else the line of its
      output that says why in ``error`` (a crash or a hang is reported, not raised).
    """
    proc, out = started["proc"], started["out"]
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        proc.kill()
        output = f"timed out after {TIMEOUT_SECONDS} s\n" + proc.communicate()[0]
    row = {"completed": proc.returncode == 0 and out.exists(), "returncode": proc.returncode}
    row["seconds"] = time.perf_counter() - started["t0"]
    if row["completed"]:
        with np.load(out) as z:
            row["meta"] = json.loads(str(z["meta"]))
            row["leaves"] = [z[f"leaf_{i}"] for i in range(len(z.files) - 1)]
    else:
        lines = [ln for ln in output.splitlines() if ln.strip() and not ln.startswith("    @")]
        stuck = [ln for ln in lines if "rendezvous" in ln]  # XLA's abort names it last
        row["error"] = (stuck or lines or [""])[-1]
    return row


def run_process(model: str, devices: int, workdir: pathlib.Path, **kwargs) -> dict:
    """``train_once`` in a fresh process with 8 fake CPU devices: ``finish``'s row."""
    return finish(start_process(model, devices, workdir, **kwargs))


def _pythonpath() -> str:
    """This checkout first, so the worker imports the code under test."""
    root = str(pathlib.Path(__file__).resolve().parent.parent)
    return os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)


def compare(model: str, *, devices: int = N_DEVICES, **kwargs) -> dict:
    """Trains ``model`` on 1 and on ``devices`` devices (separate processes) and compares.

    Returns:
      A row: ``model``, ``data``, ``steps``, ``completed_1``/``completed_n``, their
      ``seconds_1``/``seconds_n`` (whole processes) and ``train_seconds_1``/``_n``,
      ``max_abs_diff`` and ``within_tolerance`` (``RTOL``/``ATOL``) of the final states
      (None when either run failed), ``bitwise_equal``, and ``error`` for a failed run.
    """
    with tempfile.TemporaryDirectory(prefix="aejax-devices-") as tmp:
        one = run_process(model, 1, pathlib.Path(tmp), **kwargs)
        many = run_process(model, devices, pathlib.Path(tmp), **kwargs)
    row = {"model": model, "devices": devices}
    for suffix, run in (("1", one), ("n", many)):
        row[f"completed_{suffix}"] = run["completed"]
        row[f"seconds_{suffix}"] = round(run["seconds"], 2)
        row[f"returncode_{suffix}"] = run["returncode"]
        if run["completed"]:
            row[f"train_seconds_{suffix}"] = round(run["meta"]["train_seconds"], 2)
            row["steps"], row["data"] = run["meta"]["steps"], run["meta"]["data"]
            row[f"val_loss_{suffix}"] = run["meta"]["val_loss"]
        else:
            row.setdefault("error", run["error"])
    row["max_abs_diff"] = row["within_tolerance"] = row["bitwise_equal"] = None
    if one["completed"] and many["completed"]:
        a, b = one["leaves"], many["leaves"]
        diffs = [
            float(np.max(np.abs(x.astype(np.float64) - y), initial=0.0))
            for x, y in zip(a, b, strict=True)
        ]
        worst = int(np.argmax(diffs))
        row["max_abs_diff"] = diffs[worst]
        row["worst_leaf"] = one["meta"]["paths"][worst]
        row["worst_leaf_max_abs"] = float(np.max(np.abs(a[worst]), initial=0.0))
        row["bitwise_equal"] = all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
        row["within_tolerance"] = all(
            np.allclose(x, y, rtol=RTOL, atol=ATOL) for x, y in zip(a, b, strict=True)
        )
    return row


def run_devices(out: str | pathlib.Path, *, models: tuple[str, ...] | None = None) -> dict:
    """Compares every registry model (or ``models``) on 1 vs 8 devices; writes the report."""
    from aejax.models import MODELS
    from benchmarks import environment

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = []
    for model in models or tuple(sorted(MODELS)):
        rows.append(compare(model))
        print(_line(rows[-1]), flush=True)
    record = {
        "benchmark": "devices",
        "devices": N_DEVICES,
        "epochs": EPOCHS,
        "batch_size": BATCH,
        "rtol": RTOL,
        "atol": ATOL,
        "rows": rows,
        "seconds": time.perf_counter() - t0,
        "versions": environment.versions(),
        "device": {**environment.device(), "count": N_DEVICES},
        "timestamp": environment.now(),
    }
    (out / "devices.json").write_text(json.dumps(record, indent=2))
    (out / "devices.md").write_text(markdown(record))
    return record


def _line(row: dict) -> str:
    diff = row["max_abs_diff"]
    return f"{row['model']}: completed {row['completed_1']}/{row['completed_n']}, diff {diff}"


def markdown(record: dict) -> str:
    """One table row per model."""
    from benchmarks import environment

    n = record["devices"]
    lines = [
        f"# Every registry model on 1 and on {n} devices",
        "",
        f"{environment.machine_line(record['device'])}; {n} fake CPU devices "
        f"(`jax_num_cpu_devices`); {record['timestamp']}. Library defaults, batch "
        f"{record['batch_size']}, seed 0, {record['epochs']} epochs; each run in a process of "
        "its own. `max |diff|`: the largest absolute difference between the two final "
        "training states (parameters, optimizer and model state); `close`: every array "
        f"within rtol {record['rtol']:g}, atol {record['atol']:g}. Seconds: the whole "
        "process (start, data, compile, training).",
        "",
        f"| model | data | steps | completed 1 / {n} | seconds 1 / {n} | val loss 1 / {n} "
        "| max abs diff (array, its max abs) | bitwise | close |",
        "|---|---|---:|---|---:|---:|---:|---|---|",
    ]
    for r in record["rows"]:
        done = f"{'yes' if r['completed_1'] else 'NO'} / {'yes' if r['completed_n'] else 'NO'}"
        diff = "-"
        if r["max_abs_diff"] is not None:
            diff = f"{r['max_abs_diff']:.2g} (`{r['worst_leaf']}`, {r['worst_leaf_max_abs']:.2g})"
        val = "-"
        if r.get("val_loss_1") is not None and r.get("val_loss_n") is not None:
            val = f"{r['val_loss_1']:.6g} / {r['val_loss_n']:.6g}"
        yes = {True: "yes", False: "no", None: "-"}
        lines.append(
            f"| {r['model']} | {r.get('data', '-')} | {r.get('steps', '-')} | {done} "
            f"| {r['seconds_1']:.0f} / {r['seconds_n']:.0f} | {val} | {diff} "
            f"| {yes[r['bitwise_equal']]} | {yes[r['within_tolerance']]} |"
        )
    failed = [r for r in record["rows"] if "error" in r]
    if failed:
        lines += ["", "Failures:", ""]
        lines += [f"- {r['model']}: {r['error']}" for r in failed]
    lines += ["", f"Total {record['seconds'] / 60:.1f} min.", ""]
    return "\n".join(lines)


def _worker(argv: list[str]) -> None:
    """``worker MODEL DEVICES OUT [data=...] [rows=...] [epochs=...]``: one training run."""
    import jax

    jax.config.update("jax_num_cpu_devices", N_DEVICES)
    model, devices, out = argv[0], int(argv[1]), argv[2]
    kwargs = dict(a.split("=", 1) for a in argv[3:])
    for key in ("rows", "epochs"):
        if key in kwargs:
            kwargs[key] = int(kwargs[key])
    train_once(model, devices, out, **kwargs)


if __name__ == "__main__":  # the worker; the command line is ``python -m benchmarks devices``
    _worker(sys.argv[2:] if sys.argv[1:2] == ["worker"] else sys.argv[1:])
