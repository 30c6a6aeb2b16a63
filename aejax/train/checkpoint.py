"""Atomic Orbax checkpoints of the whole run: state, best parameters and loop metadata."""

from __future__ import annotations

import os
import pathlib
import tempfile
import warnings
from typing import Any

import jax
import orbax.checkpoint as ocp

from aejax.errors import CheckpointError


def abstract_like(tree: Any) -> Any:
    """Shape/dtype/sharding skeleton of ``tree``, the restore target Orbax needs.

    Carrying each leaf's sharding lets a checkpoint written on N devices restore on M.
    """
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None)),
        tree,
    )


class Checkpointer:
    """Saves and restores ``{"state", "best", "meta"}`` under ``directory``.

    Orbax writes every save to a temporary directory and renames it when complete, so a
    killed process never leaves a half-written checkpoint that looks valid. ``restore``
    walks back from the newest step and skips (with a warning) any that fail to load.
    """

    def __init__(self, directory: str | os.PathLike, keep: int = 2, *, read_only: bool = False):
        self.directory = pathlib.Path(directory).absolute()
        if not read_only:
            _check_writable(self.directory)
        elif not self.directory.is_dir():
            raise CheckpointError(f"no checkpoint directory at {self.directory}")
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=not read_only,
                                               read_only=read_only)
        self._manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=("state", "best", "meta")
        )

    def steps(self) -> list[int]:
        """Committed checkpoint steps, oldest first."""
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, best: Any, meta: dict) -> None:
        """Starts an asynchronous save; device buffers are copied before it returns."""
        try:
            self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state),
                    best=ocp.args.StandardSave(best),
                    meta=ocp.args.JsonSave(meta),
                ),
                force=True,
            )
        except OSError as e:
            raise CheckpointError(f"cannot write checkpoint {step} in {self.directory}: {e}") from e

    def restore(self, state_like: Any, best_like: Any) -> tuple[Any, Any, dict, int] | None:
        """Restores the newest loadable checkpoint onto the shapes/shardings of the examples.

        Args:
          state_like: a state (or abstract state) with the target structure and shardings.
          best_like: likewise for the best-parameter tree.

        Returns:
          ``(state, best, meta, step)``, or None when there is no checkpoint at all.

        Raises:
          CheckpointError: checkpoints exist but none matches the target structure.
        """
        steps = self.steps()
        if not steps:
            return None
        errors = []
        for step in reversed(steps):
            try:
                meta = self._manager.restore(
                    step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
                )["meta"]
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is skipped
                errors.append(f"step {step}: {type(e).__name__}: {e}")
                warnings.warn(f"skipping unreadable checkpoint {self.directory}/{step}: {e}",
                              stacklevel=2)
                continue
            try:
                restored = self._manager.restore(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(abstract_like(state_like)),
                        best=ocp.args.StandardRestore(abstract_like(best_like)),
                    ),
                )
            except (ValueError, KeyError, TypeError) as e:
                if _looks_structural(e):
                    raise CheckpointError(
                        f"checkpoint {self.directory}/{step} does not match this model "
                        f"(missing, extra or reshaped parameters): {e}"
                    ) from e
                errors.append(f"step {step}: {type(e).__name__}: {e}")
                warnings.warn(f"skipping unreadable checkpoint {self.directory}/{step}: {e}",
                              stacklevel=2)
                continue
            except Exception as e:  # noqa: BLE001
                errors.append(f"step {step}: {type(e).__name__}: {e}")
                warnings.warn(f"skipping unreadable checkpoint {self.directory}/{step}: {e}",
                              stacklevel=2)
                continue
            return restored["state"], restored["best"], meta, step
        raise CheckpointError(
            f"no loadable checkpoint in {self.directory}:\n  " + "\n  ".join(errors)
        )

    def read_meta(self, step: int | None = None) -> dict | None:
        """The JSON metadata of ``step`` (default: newest), or None if there is none."""
        steps = self.steps()
        if not steps:
            return None
        step = steps[-1] if step is None else step
        return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]

    def wait(self) -> None:
        """Blocks until pending asynchronous saves are committed."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _looks_structural(e: Exception) -> bool:
    text = str(e).lower()
    return any(w in text for w in ("missing", "unexpected", "structure", "shape", "mismatch",
                                   "not found in", "keys"))


def _check_writable(directory: pathlib.Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as e:
        raise CheckpointError(f"checkpoint directory {directory} is not writable: {e}") from e
