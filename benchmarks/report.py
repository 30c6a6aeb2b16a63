"""The Markdown report of a run: headline, tables, figures, and how it was measured."""

from __future__ import annotations

from benchmarks import analysis


def _f(v, fmt: str = "{:.3g}") -> str:
    return "—" if v is None else fmt.format(v)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (
        ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
        + ["| " + " | ".join(r) + " |" for r in rows]
        + [""]
    )


def _range(median: float, lo: float, hi: float) -> str:
    return f"{median:,.0f} ({lo:,.0f}–{hi:,.0f})"


def _throughput(records: list[dict], benchmark: str) -> list[str]:
    rows = analysis.throughput_rows(records, benchmark)
    if not rows:
        return ["Not measured.", ""]
    threads = sorted({n for r in rows for n in r["torch_by_threads"]}, reverse=True)
    body = []
    for r in rows:
        by_n = r["torch_by_threads"]
        torch = [
            _range(by_n[n]["median"], by_n[n]["min"], by_n[n]["max"]) if n in by_n else "—"
            for n in threads
        ]
        mem = r["peak_memory"]
        train_cells = (
            [
                _f(r["init_seconds"], "{:.2f}"),
                analysis.flop_rate_cell(r),
                _f(r.get("epoch_host"), "{:,.0f}"),
                _f(r.get("epoch_device"), "{:,.0f}"),
                _f(r.get("epoch_stream"), "{:,.0f}"),
            ]
            if benchmark == "train_throughput"
            else []
        )
        body.append(
            [
                r["model"],
                r["data"],
                str(r["batch_size"]),
                _range(r["aejax"], r["aejax_min"], r["aejax_max"]),
                _f(r["compile_seconds"], "{:.2f}"),
                *train_cells,
                *torch,
                _f(r["ratio"], "**{:.2f}**"),
                "—" if mem is None else f"{mem['bytes'] / 2**20:,.0f}",
            ]
        )
    size = "batch" if benchmark == "train_throughput" else "rows"
    header = ["model", "data", size, "aejax samples/s (min–max)", "compile s"]
    if benchmark == "train_throughput":
        header += [
            "init s",
            "matmul GFLOP/s (% of peak)",
            "epochs host-fed samples/s",
            "epochs on device samples/s",
            "epochs streamed samples/s",
        ]
    header += [f"PyTorch, {n} thread{'s' if n > 1 else ''} (min–max)" for n in threads]
    sources = {r["peak_memory"]["source"] for r in rows if r["peak_memory"]}
    mem = "device peak MiB" if sources == {"device.memory_stats"} else "process peak RSS MiB"
    return _table(header + ["aejax / fastest PyTorch", mem], body)


def _quality(records: list[dict]) -> list[str]:
    rows = analysis.quality_rows(records)
    if not rows:
        return ["Not measured.", ""]
    body = [
        [
            r["data"],
            str(r["latent"]),
            r["model"],
            str(r["epochs"]),
            _f(r["ae_sse"], "{:.3f}"),
            _f(r["ae_mse"], "{:.4f}"),
            _f(r["pca_sse"], "{:.3f}"),
            _f(r["pca_mse"], "{:.4f}"),
            _f(r["ae_over_pca"], "**{:.2f}**"),
            _f(r["torch_sse"], "{:.3f}"),
            _f(r["ratio_vs_torch"], "{:.3f}"),
        ]
        for r in rows
    ]
    return _table(
        [
            "data",
            "latent",
            "model",
            "epochs",
            "AE SSE",
            "AE MSE",
            "PCA SSE",
            "PCA MSE",
            "AE / PCA (SSE)",
            "PyTorch twin SSE",
            "aejax / twin (SSE)",
        ],
        body,
    )


def _pca(records: list[dict]) -> list[str]:
    rows = analysis.pca_rows(records)
    if not rows:
        return ["Not measured.", ""]
    body = [
        [
            r["data"],
            str(r["k"]),
            f"{r['aejax_seconds'] * 1e3:.1f}",
            _f(r["compile_seconds"], "{:.2f}"),
            f"{r['sklearn_seconds'] * 1e3:.1f}",
            f"{r['speed_ratio']:.2f}",
            f"{r['aejax_sse']:.4f}",
            f"{r['sklearn_sse']:.4f}",
            f"{r['sse_ratio']:.5f}",
        ]
        for r in rows
    ]
    return _table(
        [
            "data",
            "k",
            "aejax fit ms",
            "compile s",
            "sklearn fit ms",
            "aejax / sklearn (speed)",
            "aejax SSE",
            "sklearn SSE",
            "aejax / sklearn (SSE)",
        ],
        body,
    )


def _sweep(records: list[dict]) -> list[str]:
    series = analysis.sweep_series(records)
    if not series:
        return ["Not measured.", ""]
    latents = sorted({p["latent"] for pts in series.values() for p in pts})
    body = []
    for name, pts in series.items():
        by_k = {p["latent"]: p for p in pts}
        body.append(
            [f"{name} (aejax)"]
            + [_f(by_k[k]["ae_sse"], "{:.3f}") if k in by_k else "—" for k in latents]
        )
    any_pts = {p["latent"]: p for pts in series.values() for p in pts}
    body.append(["PCA"] + [_f(any_pts[k]["pca_sse"], "{:.3f}") for k in latents])
    return _table(["test SSE per example \\ latent"] + [str(k) for k in latents], body)


def busy_line(meta: dict) -> str | None:
    """A warning when other processes were using the CPU during the run, else None."""
    cores, load = meta["device"]["cpu_cores"], max(meta["loadavg"])
    if load <= cores:
        return None
    return (
        f"**Busy machine**: the 1-minute load average reached {load:.1f} on {cores} cores "
        "during this run (this run's own threads included), so other processes competed "
        "for the CPU and timings are noisy; the ratios come from interleaved repeats, "
        "which spreads that noise over both sides."
    )


def render(records: list[dict], meta: dict, figures: dict[str, str]) -> str:
    """The report's Markdown.

    Args:
      records: the run's records.
      meta: the run's ``meta.json`` (command, machine, versions, suite, timings, notes).
      figures: figure name -> file name beside the report.
    """
    suite = meta["suite"]
    lines = [f"# aejax benchmarks — `{suite['name']}` suite", ""]
    lines += [
        f"- Command: `{meta['command']}`",
        f"- Date: {meta['started']} (wall time {meta['wall_seconds'] / 60:.1f} min)",
        f"- Machine: {meta['machine']}",
        f"- Load average (1 min) at start / end: {meta['loadavg'][0]:.2f} / "
        f"{meta['loadavg'][1]:.2f} on {meta['device']['cpu_cores']} cores",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- PyTorch peers: {meta['torch']}",
        "",
    ]
    peak = analysis.matmul_peak(records)
    if peak:
        lines.insert(
            -1,
            f"- Float32 matmul peak ({peak['size']}³, best repeat): "
            + ", ".join(f"{k} {v:.0f}" for k, v in peak["by_impl"].items())
            + f" GFLOP/s; the faster, {peak['gflops']:.0f}, is the peak",
        )
    busy = busy_line(meta)
    if busy:
        lines += [busy, ""]
    lines += ["## Headline", ""] + [f"- {h}" for h in analysis.headline(records)] + [""]
    lines += [
        "## Training throughput",
        "",
        "Samples/s of one jitted `train_step` (forward, backward, clip, Adam) on "
        "device-resident batches, float32, median over interleaved repeats "
        f"({suite['repeats']} x {suite['samples_per_repeat']} samples); the PyTorch "
        "twin runs the same architecture, initialization, loss, clipping and Adam on the "
        "same batches. Compile seconds are the ahead-of-time compile of the step; init "
        "seconds are `init_state` (parameters and optimizer state), its compile included. "
        "Matmul GFLOP/s counts the FLOPs of the step's matrix products and convolutions "
        "(`benchmarks/flops.py`); the peak is the machine's float32 2048³ matmul at its "
        "best repeat. "
        "PyTorch is timed at the core count and at one thread (`torch.set_num_threads`): "
        "on a busy machine its OpenMP threads stall each other at every op, so the "
        "ratio is taken against whichever was faster.",
        "",
    ]
    lines += _throughput(records, "train_throughput")
    if "throughput" in figures:
        lines += [f"![throughput]({figures['throughput']})", ""]
    lines += [
        "## Encode throughput",
        "",
        "`aejax.encode` (host array in and out, rows per call chosen from the model's "
        "widest activation) vs the twin's `encode` under `torch.no_grad()` (host array in "
        "and out, chunks of 1024); compile seconds are the first call minus the steady "
        "median.",
        "",
    ]
    lines += _throughput(records, "encode_throughput")
    lines += [
        "## Reconstruction quality vs PCA",
        "",
        "Test split; SSE is the summed squared error per example (the unit of Hinton & "
        "Salakhutdinov 2006), MSE per element. aejax is trained and scored by "
        "`aejax.train_and_evaluate` (best validation epoch); PCA is fitted on the training "
        "split at the same latent size; the PyTorch twin trains on the same splits, "
        "batches, schedule and epochs and is scored by the same metric code. The "
        "end-to-end training speed of these runs is in the records "
        "(`values.train_samples_per_sec`) but not compared here: the twin trains with one "
        "thread setting, which on a busy machine can be far from its best; the throughput "
        "table above is the speed comparison.",
        "",
    ]
    lines += _quality(records)
    if "quality" in figures:
        lines += [f"![quality]({figures['quality']})", ""]
    lines += ["## PCA baseline: aejax vs scikit-learn", ""] + _pca(records)
    lines += ["## Latent-size sweep", ""] + _sweep(records)
    if "latent_sweep" in figures:
        lines += [f"![latent sweep]({figures['latent_sweep']})", ""]
    lines += ["## Notes", ""] + [f"- {n}" for n in meta["notes"]] + [""]
    lines += [
        f"Records: `records.jsonl` ({len(records)} measurements, one JSON object per "
        "line; schema in `benchmarks/records.py`).",
        "",
    ]
    return "\n".join(lines)
