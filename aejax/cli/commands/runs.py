"""Commands on a trained run: ``encode``, ``embed``, ``sample``, ``interpolate``,
``restore``, ``probe`` and ``recommend``. Each imports its application when it runs."""

from __future__ import annotations

import json

from aejax.cli.commands.train import parse_data_options


def encode(args) -> int:
    from aejax.apps.export import encode_run

    info = encode_run(
        args.workdir,
        args.out,
        data=args.data,
        split=args.split,
        data_options=parse_data_options(args.overrides),
        force=args.force,
    )
    print(
        f"wrote {info['out']}: {info['examples']} {info['split']} examples of {info['data']}, "
        f"codes of size {info['code_size']}" + (", with labels" if info["labels"] else "")
    )
    return 0


def embed(args) -> int:
    from aejax.apps.embed import write_embedding

    out = write_embedding(
        args.workdir,
        args.out,
        args.method,
        split=args.split,
        seed=args.seed,
        max_points=args.max_points,
        data=args.data,
        data_options=parse_data_options(args.overrides),
        force=args.force,
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"wrote {out['csv']} and {out['png']}: {out['method']} of {out['points']} of "
        f"{out['examples']} {out['split']} codes of {out['data']} (size {out['code_size']})"
        + ("" if out["labels"] else ", no labels")
    )
    return 0


def sample(args) -> int:
    from aejax.apps.generate import sample_run
    from aejax.errors import ConfigError
    from aejax.sampling.registry import parse_assignments

    if args.list_samplers:
        return _list_samplers(args.workdir)
    if args.workdir is None:
        raise ConfigError("the run directory RUN is required (or --list-samplers)")
    out = sample_run(
        args.workdir,
        args.n,
        args.seed,
        args.out,
        force=args.force,
        sampler=args.sampler,
        options=parse_assignments(args.sampler_options),
    )
    print(f"wrote {out}")
    return 0


def _list_samplers(workdir) -> int:
    """Each sampler: its description, options with defaults and, for a run, whether it
    serves the run's model (or why not)."""
    from aejax.cli.arguments.generate import sampler_listing
    from aejax.run import load_run
    from aejax.sampling import SAMPLERS, default_sampler

    run = load_run(workdir) if workdir is not None else None
    extra = {}
    for name, spec in SAMPLERS.items():
        options = ", ".join(f"{k}={v!r}" for k, v in spec.options.items())
        extra[name] = [f"options: {options or 'none'}"]
        if run is not None:
            reason = spec.applies(run.model, run.variables)
            if name == default_sampler(run.model, run.variables):
                extra[name].append("[the default for this run]")
            if reason is not None:
                extra[name].append(f"[does not apply to this run: {reason}]")
    print(sampler_listing(extra))
    return 0


def interpolate(args) -> int:
    from aejax.apps.generate import interpolate_run

    out = interpolate_run(
        args.workdir, args.steps, args.method, args.pairs, args.out, force=args.force
    )
    print(f"wrote {out}")
    return 0


def restore(args) -> int:
    from aejax.apps.restore import restore_run

    out = restore_run(
        args.workdir,
        args.task,
        n=args.n,
        out_dir=args.out,
        iterations=args.iterations,
        force=args.force,
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(
        f"{out['task']}: {out['n']} test images of {out['data']}, seed {out['seed']}; "
        f"PCA-{out['pca_components']} fitted on the training split"
    )
    for name, r in out["protocols"].items():
        methods = [("corrupted", r["corrupted"]), (f"restored ({out['model']})", r["restored"])]
        for i, (method, q) in enumerate([*methods, *r["baselines"].items()]):
            notes = [f"first {q['n']} images"] if q["n"] != out["n"] else []
            notes += [f"weight {q['weight']:g}"] if "weight" in q else []
            if i == 1 and r["worse_than_input"]:
                notes.append("worse than the corrupted input")
            missing = (
                f"  missing-pixel PSNR {q['missing_psnr']:6.2f} dB" if "missing_psnr" in q else ""
            )
            print(
                f"  {name if i == 0 else '':<12} {method:<24} PSNR {q['psnr']:6.2f} dB  "
                f"SSIM {q['ssim']:.3f}{missing}" + (f"  ({', '.join(notes)})" if notes else "")
            )
        print(f"  {'':<12} panel: {r['panel']}")
    for method, why in out["skipped_baselines"].items():
        print(f"  note: no {method} baseline: {why}")
    return 0


def probe(args) -> int:
    from aejax.apps.probe import linear_probe

    out = linear_probe(
        args.workdir, max_iter=args.max_iter, standardize=args.standardize, fit_on=args.fit_on
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    scaled = ", standardized" if out["standardize"] else ""
    print(
        f"linear probe (logistic regression, max_iter {out['max_iter']}{scaled}) on "
        f"{out['data']}: fitted on {out['n_fit']} {out['fit_on']} examples, scored on "
        f"{out['n_test']} test examples"
    )
    rows = (
        (f"{out['model']} codes ({out['code_size']})", "codes"),
        (f"PCA-{out['pca_components']} codes", "pca"),
        (f"raw input ({out['raw_features']})", "raw"),
    )
    for label, key in rows:
        note = "" if out["converged"][key] else f"  (not converged in {out['max_iter']} iterations)"
        print(f"  {label:<24} accuracy {out[key + '_accuracy']:.4f}{note}")
    return 0


def recommend(args) -> int:
    from aejax.apps.recommend import recommend

    out = recommend(
        args.workdir, args.user, args.k, data_options=parse_data_options(args.overrides)
    )
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"user {out['user']}: {out['n_rated']} rated item(s); top {len(out['items'])} unseen")
    if out["fallback"]:
        print(f"  note: {out['fallback']}")
    for rank, entry in enumerate(out["items"], 1):
        print(f"  {rank:>3}. item {entry['item']:<12} predicted {entry['predicted']:.3f}")
    return 0
