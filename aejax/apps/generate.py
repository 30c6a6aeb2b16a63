"""Generation from a trained run: ``aejax sample`` and ``aejax interpolate`` write samples
and interpolations of a run directory as figures (images) or CSV tables (tabular rows).

The functions on a model and its variables (``sample``, ``interpolate``, ``has_prior``,
``interpolate_codes``) live in ``aejax.sampling`` and are re-exported here.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from aejax.data.pixels import to_unit
from aejax.errors import DataError
from aejax.outputs import atomic_path, check_output
from aejax.run import load_run, split_in_data_units
from aejax.sampling import default_sampler, has_prior, interpolate, interpolate_codes, sample
from aejax.sampling.registry import SAMPLERS, resolve_options

__all__ = [
    "has_prior",
    "interpolate",
    "interpolate_codes",
    "interpolate_run",
    "sample",
    "sample_run",
]

# --- run directories (the ``aejax sample`` / ``aejax interpolate`` commands) ------------------


def _is_image(model) -> bool:
    return len(model.input_shape) == 3


def _write_table(path, header: list[str], rows: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        np.savetxt(tmp, rows, delimiter=",", header=",".join(header), comments="", fmt="%.7g")


def _output(out, workdir: pathlib.Path, default: str, model) -> pathlib.Path:
    """The file ``sample_run`` / ``interpolate_run`` write: ``out``, or ``default`` + .png
    (images) or .csv (tables) in the run directory, which a re-run replaces."""
    image = _is_image(model)
    if out is None:
        return check_output(workdir / (default + (".png" if image else ".csv")), default=True)
    if image:
        from aejax import plots

        plots.check_figure_path(out)
    return pathlib.Path(out)


def sample_run(
    workdir,
    n: int = 64,
    seed: int = 0,
    out=None,
    *,
    force: bool = False,
    sampler: str | None = None,
    options: Mapping[str, Any] | None = None,
):
    """Writes ``n`` samples of a trained run: a PNG grid (images) or a CSV (tabular rows in
    data units, one sample per row). Returns the path written.

    Args:
      workdir: the run directory.
      n: samples.
      seed: the sampling key (``jax.random.key(seed)``) and the sampler fit's seed.
      out: the file to write (a figure's type follows its suffix); default
        ``samples.png`` / ``samples.csv`` in ``workdir``, replaced by each call. An existing
        ``out`` or one in a run's bookkeeping is refused (``aejax.outputs.check_output``).
      force: replace an existing ``out`` (never a run's ``config.json`` or checkpoints).
      sampler: a name of ``aejax.sampling.SAMPLERS``; None: the model's prior, or a
        Gaussian mixture fitted to the codes of the run's training split for a model with
        none. The figure's title names it.
      options: the sampler's own options, ``{name: value}`` (a string is read as the
        default's type, as ``aejax sample --sampler-set KEY=VALUE`` passes them).

    The training split is encoded (in data units through the saved scaler, as a user's
    data would be) only for a sampler fitted to codes.

    Raises:
      ConfigError: ``out`` exists, lies in a run's bookkeeping or (images) has a suffix
        matplotlib does not write (checked before anything is computed); an unknown
        sampler or option. DataError: a sampler that does not apply to the run's model.
    """
    if out is not None:
        check_output(out, force=force)
    # The sampler and its options are checked here, not only by ``sample``: before the run
    # is read, and so that an option named like one of ``sample``'s arguments (``seed``)
    # is refused as an unknown option rather than colliding with the argument.
    if sampler is not None:
        options = resolve_options(sampler, SAMPLERS[sampler], options or {})
    workdir = pathlib.Path(workdir)
    run = load_run(workdir)
    config, model, variables, _ = run
    out = _output(out, workdir, "samples", model)
    if sampler is None:
        sampler = default_sampler(model, variables)
        options = resolve_options(sampler, SAMPLERS[sampler], options or {})
    x = run.sample(n, seed, sampler, **options)
    if _is_image(model):
        from aejax import plots

        cols = int(np.ceil(np.sqrt(n)))
        title = f"{config.model}: {n} samples, {sampler} sampler (seed {seed})"
        with atomic_path(out) as tmp:
            plots.image_grid(tmp, x, ncols=cols, title=title)
    else:
        _write_table(out, [f"x{i}" for i in range(x[0].size)], x.reshape(n, -1))
    return out


def interpolate_run(
    workdir,
    steps: int = 10,
    method: str = "linear",
    pairs: int = 4,
    out=None,
    *,
    force: bool = False,
):
    """Writes interpolations between ``pairs`` pairs of the run's first ``2 * pairs`` test
    examples (0-1, 2-3, ...): a PNG grid, one row per pair (images), or a CSV with columns
    ``pair, step, t, x0, ...`` in data units (tabular). Returns the path written.

    ``out`` and ``force`` as in ``sample_run``; the default is ``interpolations.png`` /
    ``interpolations.csv`` in ``workdir``.
    """
    if out is not None:
        check_output(out, force=force)
    workdir = pathlib.Path(workdir)
    config, model, variables, scaler = load_run(workdir)
    out = _output(out, workdir, "interpolations", model)
    # Floats in [0, 1] for uint8 pixels: the endpoints are drawn beside the paths.
    x = to_unit(split_in_data_units(config, model, "test")[: 2 * pairs])
    if pairs < 1 or x.shape[0] < 2 * pairs:
        raise DataError(f"interpolate: {pairs} pairs need {2 * pairs} test examples, have {len(x)}")
    paths = interpolate(model, variables, x[0::2], x[1::2], steps, method, scaler=scaler)
    if _is_image(model):
        from aejax import plots

        with atomic_path(out) as tmp:
            plots.interpolation_grid(
                tmp,
                paths,
                title=f"{config.model}: {method} interpolation between test images",
                endpoints=(x[0::2], x[1::2]),
            )
    else:
        p, s = paths.shape[:2]
        pair, step = np.divmod(np.arange(p * s), s)
        t = np.linspace(0.0, 1.0, s)[step]
        table = np.column_stack([pair, step, t, paths.reshape(p * s, -1)])
        _write_table(out, ["pair", "step", "t", *(f"x{i}" for i in range(paths[0, 0].size))], table)
    return out
