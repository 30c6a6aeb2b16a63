"""Writing a trained run's codes to a file: ``aejax encode RUN --out codes.npy|.npz|.csv``."""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np

from aejax.errors import DataError
from aejax.outputs import atomic_path, check_output

FORMATS = (".npy", ".npz", ".csv")


def encode_run(
    workdir: str | pathlib.Path,
    out: str | pathlib.Path,
    *,
    data: str | None = None,
    split: str = "test",
    data_options: dict[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Encodes one split of a run's data (or of the spec ``data``) and writes the codes.

    The examples go through the run's saved scaler, as a user's raw rows would
    (``aejax.Run.encode``). The file's type follows ``out``'s suffix:

    - ``.npy``: the ``[N, K]`` float32 codes (a code grid is flattened to K values);
    - ``.npz``: ``codes`` ``[N, K]`` and, when the data has labels, ``labels`` ``[N]``;
    - ``.csv``: a header ``z1,...,zK`` (then ``label``), one example per row.

    Args:
      workdir: the run directory.
      out: the file to write; written whole to a temporary file, then renamed. An existing
        file is refused, and so is a path in a run directory's bookkeeping
        (``aejax.outputs.check_output``).
      data: another dataset spec (default: the run's own data).
      split: ``train``, ``val``, ``test`` or ``all`` (the three, in that order).
      data_options: where and how to read the data (``aejax.run.with_data_options``).
      force: replace an existing ``out`` (never a run's ``config.json`` or checkpoints).

    Returns:
      ``{"out", "examples", "code_size", "split", "data", "labels"}``.

    Raises:
      DataError: an unknown suffix or split, data of another shape, an empty split.
      ConfigError: ``out`` exists or lies in a run's bookkeeping (checked before loading).
      CheckpointError: see ``aejax.load_run``.
    """
    from aejax.run import labelled_split, load_run, with_data_options

    out = check_output(out, force=force)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"--out {out}: unknown file type {suffix!r}; one of {', '.join(FORMATS)}")
    run = load_run(workdir)
    config = with_data_options(run.config, data_options)
    # In data units: the run's own scaler reads them, as it would a user's rows.
    x, y, name = labelled_split(config, run.model, split, data)
    if x.shape[0] == 0:
        raise DataError(f"data {name!r} has no {split} examples to encode")
    codes = np.asarray(run.encode(x), np.float32).reshape(x.shape[0], -1)
    _write(out, codes, y)
    return {
        "out": str(out),
        "examples": int(codes.shape[0]),
        "code_size": int(codes.shape[1]),
        "split": split,
        "data": name,
        "labels": y is not None and suffix != ".npy",
    }


def _write(out: pathlib.Path, codes: np.ndarray, labels: np.ndarray | None) -> None:
    """Writes atomically: a reader never sees half a file, a failure leaves none."""
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        suffix = out.suffix.lower()
        if suffix == ".npy":
            np.save(f, codes)
        elif suffix == ".npz":
            arrays = {"codes": codes}
            if labels is not None:
                arrays["labels"] = labels
            np.savez(f, **arrays)
        else:
            header = [f"z{i + 1}" for i in range(codes.shape[1])]
            table = codes.astype(np.float64)
            fmt = ["%.7g"] * codes.shape[1]
            if labels is not None:
                header.append("label")
                table = np.column_stack([table, labels])
                fmt.append("%d" if np.issubdtype(labels.dtype, np.integer) else "%.7g")
            np.savetxt(f, table, delimiter=",", header=",".join(header), comments="", fmt=fmt)
