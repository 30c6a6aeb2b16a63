"""Command line: ``python -m benchmarks run | family | restoration | regularized | anomaly |
anomaly-cv | recommendation | nab | nab-cv | seq2seq | devices | ab | report | publish |
readme | validate``.

Examples::

    python -m benchmarks run --suite quick --out bench-out/quick   # within 10 min on 2 CPU cores
    python -m benchmarks run --suite full --out bench-out/full     # a GPU/TPU or a long CPU run
    python -m benchmarks family --out bench-out/family             # VAE/VQ-VAE/AAE figures
    python -m benchmarks restoration --out bench-out/restoration   # denoise/inpaint/superres
    python -m benchmarks regularized --out bench-out/regularized   # SSE and linear probe
    python -m benchmarks anomaly --out bench-out/anomaly           # ADBench, one-class MNIST
    python -m benchmarks nab --out bench-out/nab                   # NAB series, causal
    python -m benchmarks nab-cv --out bench-out/nab-cv             # NAB, leave one series out
    python -m benchmarks anomaly-cv --out bench-out/anomaly-cv     # ADBench, leave sets out
    python -m benchmarks seq2seq --out bench-out/seq2seq --repeats 3  # seq2seq_ae vs torch LSTM
    python -m benchmarks recommendation --out bench-out/rec        # AutoRec on MovieLens
    python -m benchmarks devices --out bench-out/devices           # every model, 1 vs 8 devices
    python -m benchmarks ab --against main --out bench-out/ab      # step speed, interleaved A/B
    python -m benchmarks publish --from bench-out/quick            # -> benchmarks/results/
    python -m benchmarks readme --from bench-out/quick             # rewrites docs/results.md
"""

from __future__ import annotations

import argparse
import pathlib
import sys

from benchmarks.suites import SUITES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run a suite; writes records.jsonl, meta.json, report.md, PNGs")
    r.add_argument("--suite", choices=sorted(SUITES), default="quick")
    r.add_argument("--out", required=True, help="output directory")
    r.add_argument(
        "--tiny",
        action="store_true",
        help="smoke-test sizes: digits only, 1 epoch, 2 repeats (seconds, not minutes)",
    )
    r.add_argument("--no-peers", action="store_true", help="skip the PyTorch twins")
    r.add_argument(
        "--require-peers",
        action="store_true",
        help="exit with an error (before measuring) when PyTorch is not installed",
    )
    r.add_argument(
        "--only",
        default="peak,throughput,quality,sweep",
        help="comma-separated parts to run (default: all)",
    )
    f = sub.add_parser(
        "family", help="VAE bounds, VQ-VAE codebook use, AAE codes, sample/interpolation grids"
    )
    f.add_argument("--out", required=True, help="output directory")
    f.add_argument("--tiny", action="store_true", help="digits, 2 epochs: every code path")
    f.add_argument(
        "--sections",
        default="family,catalogue",
        help="comma-separated: family (VAE/VQ/AAE/variants/WAE figures), catalogue (every "
        "model with a bound beside pythae's figures, samplers); default both",
    )
    s = sub.add_parser(
        "restoration",
        help="denoising, inpainting, super-resolution: aejax beside classical anchors",
    )
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--tiny", action="store_true", help="digits, 2 epochs: every code path")
    g = sub.add_parser(
        "regularized",
        help="the regularized family: test SSE and a linear probe on codes, beside PCA and pixels",
    )
    g.add_argument("--out", required=True, help="output directory")
    g.add_argument("--tiny", action="store_true", help="digits, 2 epochs: every code path")
    _anomaly_parser(sub)
    _nab_parser(sub)
    _nab_cv_parser(sub)
    _anomaly_cv_parser(sub)
    q = sub.add_parser("seq2seq", help="seq2seq_ae training throughput beside a PyTorch twin")
    q.add_argument("--out", required=True, help="output directory")
    q.add_argument("--lengths", default="32,128", help="sequence lengths")
    q.add_argument("--torch-threads", type=int, default=1, help="0 = PyTorch's default")
    q.add_argument("--repeats", type=int, default=1, help="runs per row; medians are reported")
    rec = sub.add_parser(
        "recommendation",
        help="I-AutoRec and U-AutoRec on MovieLens ml-latest-small beside rating baselines",
    )
    rec.add_argument("--out", required=True, help="output directory")
    rec.add_argument("--tiny", action="store_true", help="synthetic ratings: every code path")
    rec.add_argument("--data-dir", default=None, help="holds movielens/ (default: ../shared/data)")
    rec.add_argument("--seeds", default="0,1,2", help="split seeds (default 0,1,2)")
    d = sub.add_parser(
        "devices", help="every registry model at a realistic size on 1 and on 8 CPU devices"
    )
    d.add_argument("--out", required=True, help="output directory")
    d.add_argument("--models", default="", help="comma-separated registry models (default: all)")
    ab = sub.add_parser(
        "ab", help="the training step of this tree against a git revision, interleaved A/B"
    )
    ab.add_argument("--against", required=True, help="the other side: a git revision")
    ab.add_argument("--out", required=True, help="output directory")
    ab.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    ab.add_argument("--steps", type=int, default=200, help="timed steps per case and repeat")
    e = sub.add_parser("report", help="re-render report.md and the PNGs of a finished run")
    e.add_argument("--from", dest="source", required=True, help="a run's output directory")
    m = sub.add_parser("readme", help="rewrite the results page (docs/results.md) from a run")
    m.add_argument("--from", dest="source", required=True, help="a run's output directory")
    m.add_argument(
        "--page",
        "--readme",
        dest="page",
        default="docs/results.md",
        help="the Markdown file whose results markers are rewritten (default: docs/results.md)",
    )
    m.add_argument(
        "--experiments",
        default="experiments/results",
        help="folder of experiment results (*.json) to include",
    )
    u = sub.add_parser("publish", help="copy a run's report into benchmarks/results/")
    u.add_argument("--from", dest="source", required=True, help="a run's output directory")
    u.add_argument("--to", default="benchmarks/results")
    v = sub.add_parser("validate", help="check a run's records against the schema")
    v.add_argument("source", help="a run's output directory")
    return p


def _nab_parser(sub) -> None:
    n = sub.add_parser(
        "nab", help="NAB series, causal: seq2seq_ae and ae on windows beside the baselines"
    )
    n.add_argument("--out", required=True, help="output directory")
    n.add_argument("--data-dir", default=None, help="holds nab/ (default: $AEJAX_DATA_DIR)")
    n.add_argument("--window", type=int, default=32)
    n.add_argument("--stride", type=int, default=1)
    n.add_argument("--epochs", type=int, default=30)
    n.add_argument("--smooth", type=int, default=None, help="span of +smooth (4 windows)")
    n.add_argument("--only", default="", help="only series whose key contains one of these")


def _nab_cv_parser(sub) -> None:
    n = sub.add_parser(
        "nab-cv", help="NAB, leave one series out: the detect setting that holds on new series"
    )
    n.add_argument("--out", required=True, help="output directory (its cache/ is reused)")
    n.add_argument("--data-dir", default=None, help="holds nab/ (default: $AEJAX_DATA_DIR)")
    n.add_argument("--epochs", type=int, default=30)
    n.add_argument("--only", default="", help="only series whose key contains one of these")


def _anomaly_cv_parser(sub) -> None:
    a = sub.add_parser(
        "anomaly-cv",
        help="ADBench, leave sets out: the table detector's defaults and the peers beside them",
    )
    a.add_argument("--out", required=True, help="output directory (its rows-cache.json is reused)")
    a.add_argument("--data-dir", default=None, help="holds adbench/ (default: $AEJAX_DATA_DIR)")
    a.add_argument("--seeds", type=int, default=3, help="seeds per stochastic method")
    a.add_argument("--no-peers", action="store_true", help="the selection only")


def _anomaly_parser(sub) -> None:
    a = sub.add_parser(
        "anomaly",
        help="anomaly detection: ADBench sets and one-class MNIST, aejax beside the baselines",
    )
    a.add_argument("--out", required=True, help="output directory")
    a.add_argument(
        "--data-dir", default=None, help="holds adbench/ and mnist/ (default: $AEJAX_DATA_DIR)"
    )
    a.add_argument("--protocols", default="adbench,mnist", help="adbench, mnist or both")
    a.add_argument("--methods", choices=("all", "baselines", "aejax"), default="all")
    a.add_argument("--seeds", type=int, default=3, help="seeds per stochastic method (ADBench)")
    a.add_argument("--sets", default=None, help="only these ADBench sets, e.g. cardio,Pima")
    a.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9", help="one-class MNIST digits")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        from benchmarks.peers import torch_status
        from benchmarks.run import PARTS, run_suite

        only = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = sorted(set(only) - set(PARTS))
        if unknown:
            print(f"error: unknown part(s) {unknown}; choose from {sorted(PARTS)}", file=sys.stderr)
            return 2
        if args.require_peers and not torch_status()[0]:
            print(f"error: {torch_status()[1]}", file=sys.stderr)
            return 2
        meta = run_suite(args.suite, args.out, tiny=args.tiny, peers=not args.no_peers, only=only)
        print(
            f"{meta['n_records']} records, report: {pathlib.Path(args.out) / 'report.md'} "
            f"({meta['wall_seconds']:.0f} s)"
        )
        return 0
    if args.command == "ab":
        from benchmarks.ab import run as run_ab

        run_ab(args.against, pathlib.Path(args.out), rounds=args.rounds, steps=args.steps)
        return 0
    if args.command == "anomaly-cv":
        from benchmarks.anomaly_cv import run_anomaly_cv

        rec = run_anomaly_cv(
            args.out, data_dir=args.data_dir, seeds=args.seeds, peers=not args.no_peers
        )
        print(
            f"left out: ROC-AUC {rec['loo']['auc']:.3f} AP {rec['loo']['ap']:.3f}; "
            f"pick {rec['pick_all']}; wrote {pathlib.Path(args.out) / 'anomaly_cv.md'}"
        )
        return 0
    if args.command == "family":
        sections = [x.strip() for x in args.sections.split(",") if x.strip()]
        unknown = sorted(set(sections) - {"family", "catalogue"})
        if unknown or not sections:
            bad = unknown[0] if unknown else ""
            print(
                f"error: --sections: unknown section {bad!r}; choose family, catalogue",
                file=sys.stderr,
            )
            return 2
        if "family" in sections:
            from benchmarks.family import run_family

            meta = run_family(args.out, tiny=args.tiny)
            print(f"wrote {pathlib.Path(args.out) / 'family.md'} ({meta['wall_seconds']:.0f} s)")
        if "catalogue" in sections:
            from benchmarks.catalogue import run_catalogue

            meta = run_catalogue(args.out, tiny=args.tiny)
            out = pathlib.Path(args.out) / "catalogue.md"
            print(f"wrote {out} ({meta['wall_seconds']:.0f} s)")
        return 0
    if args.command == "restoration":
        from benchmarks.restoration import run_restoration

        meta = run_restoration(args.out, tiny=args.tiny)
        out = pathlib.Path(args.out) / "restoration.md"
        print(f"wrote {out} ({meta['wall_seconds']:.0f} s)")
        return 0
    if args.command == "regularized":
        from benchmarks.regularized import run_regularized

        record = run_regularized(args.out, tiny=args.tiny)
        out = pathlib.Path(args.out) / "regularized.md"
        print(f"wrote {out} ({record['seconds']:.0f} s)")
        return 0
    if args.command == "seq2seq":
        from benchmarks.seq2seq_torch import run_seq2seq

        lengths = tuple(int(t) for t in args.lengths.split(","))
        record = run_seq2seq(
            args.out, lengths=lengths, torch_threads=args.torch_threads, repeats=args.repeats
        )
        print(f"wrote {pathlib.Path(args.out) / 'seq2seq.md'} ({record['seconds']:.0f} s)")
        return 0
    if args.command == "nab":
        from benchmarks.nab import run_nab

        record = run_nab(
            args.out,
            data_dir=args.data_dir,
            window=args.window,
            stride=args.stride,
            epochs=args.epochs,
            smooth=args.smooth,
            only=tuple(o for o in args.only.split(",") if o),
        )
        print(f"wrote {pathlib.Path(args.out) / 'nab.md'} ({record['seconds']:.0f} s)")
        return 0
    if args.command == "nab-cv":
        from benchmarks.nab_cv import run_nab_cv

        record = run_nab_cv(
            args.out,
            data_dir=args.data_dir,
            epochs=args.epochs,
            only=tuple(o for o in args.only.split(",") if o),
        )
        print(f"wrote {pathlib.Path(args.out) / 'nab_cv.md'} ({record['seconds']:.0f} s)")
        return 0
    if args.command == "anomaly":
        from benchmarks.anomaly import run_anomaly

        record = run_anomaly(
            args.out,
            data_dir=args.data_dir,
            protocols=tuple(args.protocols.split(",")),
            which=args.methods,
            seeds=args.seeds,
            sets=tuple(args.sets.split(",")) if args.sets else None,
            digits=tuple(int(d) for d in args.digits.split(",")),
        )
        print(f"wrote {pathlib.Path(args.out) / 'anomaly.md'} ({record['seconds']:.0f} s)")
        return 0
    if args.command == "recommendation":
        from benchmarks.recommendation import run_recommendation

        record = run_recommendation(
            args.out,
            tiny=args.tiny,
            data_dir=args.data_dir,
            seeds=tuple(int(s) for s in args.seeds.split(",")),
        )
        if "skipped" in record:
            print(f"skipped: {record['skipped']}")
            return 0
        print(f"wrote {pathlib.Path(args.out) / 'recommendation.md'} ({record['seconds']:.0f} s)")
        return 0
    if args.command == "devices":
        from benchmarks.devices import run_devices

        models = tuple(m for m in args.models.split(",") if m) or None
        record = run_devices(args.out, models=models)
        print(f"wrote {pathlib.Path(args.out) / 'devices.md'} ({record['seconds']:.0f} s)")
        return 0
    if args.command == "report":
        from benchmarks.run import render

        render(args.source)
        print(f"rewrote {pathlib.Path(args.source) / 'report.md'}")
        return 0
    if args.command == "readme":
        from benchmarks.readme import update_page

        update_page(args.source, args.page, args.experiments)
        print(f"rewrote the results section of {args.page} from {args.source}")
        return 0
    if args.command == "publish":
        from benchmarks.readme import publish

        for path in publish(args.source, args.to):
            print(path)
        return 0
    from benchmarks import records

    problems = {
        i: records.validate(r)
        for i, r in enumerate(records.read(pathlib.Path(args.source) / "records.jsonl"))
    }
    bad = {i: p for i, p in problems.items() if p}
    for i, p in bad.items():
        print(f"record {i}: {'; '.join(p)}", file=sys.stderr)
    print(f"{len(problems)} records, {len(bad)} invalid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
