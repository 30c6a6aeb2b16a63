"""Tables and headline ratios from a run's records (shared by the report and the README).

Ratios are aejax / peer, taken between medians of the same run: above 1 means aejax is
faster for speeds; below 1 means aejax's error is lower for errors.
"""

from __future__ import annotations

from collections import defaultdict


def _by(records: list[dict], benchmark: str) -> list[dict]:
    return [r for r in records if r["benchmark"] == benchmark]


def throughput_rows(records: list[dict], benchmark: str = "train_throughput") -> list[dict]:
    """One row per (model, data, batch size or encoded rows): aejax and PyTorch samples/s.

    PyTorch may be timed at several thread counts (``torch_by_threads``: threads ->
    ``{"median", "min", "max"}``); ``torch`` and ``ratio`` use the fastest of them.
    """
    groups: dict[tuple, dict] = defaultdict(lambda: {"torch": {}})
    for r in _by(records, benchmark):
        bench = r["config"].get("bench", {})
        g = groups[(r["model"], r["data"], bench.get("batch_size", bench.get("rows")))]
        feed = bench.get("feed", "step")  # the loop's epochs (host, device) or the bare step
        if r["implementation"] == "torch":
            g["torch"][bench.get("torch_threads", 0)] = r
        elif r["implementation"] == "aejax-epochs":
            g[f"aejax/{feed}"] = r
        else:
            g[r["implementation"]] = r
    rows = []
    for (model, data, batch), impls in groups.items():
        a, by_threads = impls.get("aejax"), impls["torch"]
        if a is None:
            continue
        best = max(by_threads.values(), key=lambda r: r["median"]) if by_threads else None
        rows.append(
            {
                "model": model,
                "data": data,
                "batch_size": batch,
                "aejax": a["median"],
                "aejax_min": a["min"],
                "aejax_max": a["max"],
                "compile_seconds": a["compile_seconds"],
                "repeats": a["repeats"],
                "torch": best["median"] if best else None,
                "torch_min": best["min"] if best else None,
                "torch_max": best["max"] if best else None,
                "torch_threads": best["config"]["bench"].get("torch_threads") if best else None,
                "torch_by_threads": {
                    n: {k: r[k] for k in ("median", "min", "max")}
                    for n, r in sorted(by_threads.items(), reverse=True)
                },
                "ratio": a["median"] / best["median"] if best else None,
                # The loop's epochs: host-fed, device-resident, streamed (benchmarks/throughput.py).
                **{
                    f"epoch_{feed}": impls[f"aejax/{feed}"]["median"]
                    if f"aejax/{feed}" in impls
                    else None
                    for feed in ("host", "device", "stream")
                },
                "peak_memory": a.get("peak_memory"),
                "init_seconds": a["values"].get("init_seconds"),
                "matmul_gflops": a["values"].get("matmul_gflops"),
                "fraction_of_matmul_peak": a["values"].get("fraction_of_matmul_peak"),
            }
        )
    return rows


def quality_rows(records: list[dict]) -> list[dict]:
    """One row per (data, latent, model): AE, PCA and twin errors and their ratios."""
    sklearn = {
        (r["data"], r["config"]["n_components"]): r["values"]
        for r in _by(records, "pca_fit")
        if r["implementation"] == "sklearn-pca"
    }
    groups: dict[tuple, dict] = defaultdict(dict)
    for r in _by(records, "quality"):
        groups[(r["data"], r["config"]["latent_dim"], r["model"])][r["implementation"]] = r
    rows = []
    for (data, latent, model), impls in groups.items():
        a, t = impls.get("aejax"), impls.get("torch")
        if a is None:
            continue
        v = a["values"]
        sk = sklearn.get((data, latent), {})
        rows.append(
            {
                "data": data,
                "latent": latent,
                "model": model,
                "epochs": a["config"]["epochs"],
                "seeds": a["repeats"],
                "ae_sse": a["median"],
                "ae_sse_min": a["min"],
                "ae_sse_max": a["max"],
                "ae_mse": v.get("test_recon_mse"),
                "pca_sse": v.get("pca_sse_per_example"),
                "pca_mse": v.get("pca_recon_mse"),
                "ae_over_pca": v.get("sse_ratio_ae_over_pca"),
                "sklearn_pca_sse": sk.get("test_sse_per_example"),
                "torch_sse": t["median"] if t else None,
                "torch_mse": t["values"].get("test_recon_mse") if t else None,
                "ratio_vs_torch": v.get("sse_ratio_vs_torch"),
                "config": a["config"],
            }
        )
    return sorted(rows, key=lambda row: (row["data"] != "digits", row["data"], row["model"]))


def pca_rows(records: list[dict]) -> list[dict]:
    """One row per (data, k): aejax and scikit-learn fit seconds and errors."""
    groups: dict[tuple, dict] = defaultdict(dict)
    for r in _by(records, "pca_fit"):
        groups[(r["data"], r["config"]["n_components"])][r["implementation"]] = r
    rows = []
    for (data, k), impls in groups.items():
        a, s = impls.get("aejax-pca"), impls.get("sklearn-pca")
        if a is None or s is None:
            continue
        rows.append(
            {
                "data": data,
                "k": k,
                "aejax_seconds": a["median"],
                "sklearn_seconds": s["median"],
                "compile_seconds": a["compile_seconds"],
                "speed_ratio": s["median"] / a["median"],
                "aejax_sse": a["values"]["test_sse_per_example"],
                "sklearn_sse": s["values"]["test_sse_per_example"],
                "sse_ratio": a["values"]["sse_ratio_vs_sklearn"],
            }
        )
    return rows


def sweep_series(records: list[dict]) -> dict[str, list[dict]]:
    """model -> points ``{"latent", "ae_sse", "pca_sse", "ae_mse", "pca_mse"}`` by latent."""
    series: dict[str, list[dict]] = defaultdict(list)
    for r in _by(records, "sweep"):
        series[r["model"]].append(
            {
                "latent": r["config"]["latent_dim"],
                "data": r["data"],
                "ae_sse": r["median"],
                "pca_sse": r["values"]["pca_sse_per_example"],
                "ae_mse": r["values"]["test_recon_mse"],
                "pca_mse": r["values"]["pca_recon_mse"],
                "epochs": r["config"]["epochs"],
            }
        )
    return {m: sorted(p, key=lambda q: q["latent"]) for m, p in series.items()}


def matmul_peak(records: list[dict]) -> dict | None:
    """``{"gflops", "size", "by_impl": {impl: best repeat}}`` of the run's peak matmul, or None."""
    peak = _by(records, "matmul_peak")
    if not peak:
        return None
    return {
        "gflops": peak[0]["values"]["peak_gflops"],
        "size": peak[0]["config"]["n"],
        "by_impl": {r["implementation"]: r["max"] for r in peak},
    }


def flop_rate_cell(row: dict) -> str:
    """``"146 (80%)"``: a training row's matmul GFLOP/s and share of the peak, or "—"."""
    rate, share = row["matmul_gflops"], row["fraction_of_matmul_peak"]
    if rate is None:
        return "—"
    return f"{rate:.0f}" + ("" if share is None else f" ({share:.0%})")


def best_flop_rates(records: list[dict]) -> list[dict]:
    """Per model, the training row with the highest share of the matmul peak."""
    best: dict[str, dict] = {}
    for row in throughput_rows(records):
        f = row["fraction_of_matmul_peak"]
        if f is not None and f > best.get(row["model"], {}).get("fraction_of_matmul_peak", -1):
            best[row["model"]] = row
    return list(best.values())


def headline(records: list[dict]) -> list[str]:
    """The lines to quote: training speed vs the PyTorch twin, AE vs PCA on mnist-lite."""
    lines = []
    peak = matmul_peak(records)
    for row in best_flop_rates(records):
        lines.append(
            f"{row['model']} training at its best batch ({row['batch_size']}): "
            f"**{100 * row['fraction_of_matmul_peak']:.0f}% of the matmul peak** "
            f"({row['matmul_gflops']:.0f} of {peak['gflops']:.0f} GFLOP/s)"
        )
    for row in throughput_rows(records):
        if row["ratio"] is not None:
            lines.append(
                f"{row['model']} training speed, aejax / PyTorch at batch {row['batch_size']} "
                f"on {row['data']}: **{row['ratio']:.2f}x** ({row['aejax']:,.0f} vs "
                f"{row['torch']:,.0f} samples/s, PyTorch's faster thread setting: "
                f"{row['torch_threads']})"
            )
    quality = quality_rows(records)
    # The mnist-lite rows are the ones to quote; a run without them (--tiny) quotes what it has.
    quote = "mnist-lite" if any(r["data"] == "mnist-lite" for r in quality) else None
    for row in quality:
        if quote is None or row["data"] == quote:
            twin = f"; PyTorch twin {row['torch_sse']:.2f}" if row["torch_sse"] is not None else ""
            lines.append(
                f"{row['model']} vs PCA-{row['latent']} on {row['data']} (epochs: {row['epochs']}"
                f"): SSE/example **{row['ae_sse']:.2f} vs {row['pca_sse']:.2f}** "
                f"(AE/PCA {row['ae_over_pca']:.2f}{twin})"
            )
    return lines
