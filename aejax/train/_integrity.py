"""Hashes that let a checkpoint prove it holds the bytes that were saved.

Orbax 0.12 writes arrays as zarr3 chunks (zstd, no checksum; only the shard *index* has a
crc32c), so flipped bytes in a chunk restore silently as other numbers. A checkpoint
therefore carries a manifest in its JSON metadata, written in the same atomic commit:

    meta["integrity"] = {
        "algorithm": "blake2b-128",
        "arrays": {"state/params/decoder/dense_2/kernel": "<hex>", ...},
        "meta": "<hex of the canonical JSON of meta without this field>",
    }

Each array hash covers the leaf's dtype, shape and host bytes, computed from what is
being saved before ``save`` returns (the training loop donates the state at its next
step). The hashes detect any changed byte of an array or of the metadata; they do not
protect against someone who rewrites both the arrays and the manifest.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jax
import numpy as np

ALGORITHM = "blake2b-128"
# How many damaged leaves a message names before it says "and N more".
_SHOW = 3


class IntegrityError(ValueError):
    """A checkpoint's bytes differ from the hashes recorded when it was written."""


def leaf_hashes(tree: Any, prefix: str) -> dict[str, str]:
    """``{"<prefix>/<leaf path>": hex digest}`` for every leaf that can be read here.

    Args:
      tree: a pytree of arrays (jax or numpy); typed PRNG keys are hashed as their key
        data.
      prefix: the item's name (``"state"``, ``"best"``).

    Returns:
      One digest per leaf. A leaf sharded over processes (not fully replicated and not
      fully addressable) has no host copy of its own here and is left out, so it is not
      verified; aejax replicates its state, so every leaf is hashed in practice.
    """
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        array = _host_array(leaf)
        if array is not None:
            out[f"{prefix}/{jax.tree_util.keystr(path, simple=True, separator='/')}"] = _digest(
                array
            )
    return out


def meta_digest(meta: dict) -> str:
    """The hash of ``meta``'s canonical JSON, its own ``integrity.meta`` field left out.

    Canonical (sorted keys) JSON is what a reader recomputes from the parsed file, so the
    layout Orbax writes the file in does not matter, while any changed value or key does.
    """
    integrity = {k: v for k, v in meta.get("integrity", {}).items() if k != "meta"}
    body = {**meta, "integrity": integrity} if "integrity" in meta else meta
    text = json.dumps(body, sort_keys=True, allow_nan=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def seal(meta: dict, items: dict[str, Any]) -> dict:
    """``meta`` with the manifest of ``items`` (``{"state": tree, "best": tree}``) added.

    The hashes are computed now, from the arrays as they are when this is called.
    """
    arrays = {}
    for name, tree in items.items():
        arrays.update(leaf_hashes(tree, name))
    sealed = {**meta, "integrity": {"algorithm": ALGORITHM, "arrays": arrays}}
    sealed["integrity"]["meta"] = meta_digest(sealed)
    return sealed


def check_meta(meta: dict) -> None:
    """Raises IntegrityError unless ``meta``'s manifest is whole and matches ``meta``.

    Call it only on metadata that should carry a manifest (see ``checkpoint.FORMAT``).
    """
    integrity = meta.get("integrity")
    if not isinstance(integrity, dict) or not isinstance(integrity.get("arrays"), dict):
        raise IntegrityError("its metadata has no integrity manifest: damaged")
    if integrity.get("algorithm") != ALGORITHM:
        raise IntegrityError(
            f"its manifest's algorithm is {integrity.get('algorithm')!r}, not {ALGORITHM!r}"
        )
    if integrity.get("meta") != meta_digest(meta):
        raise IntegrityError("its metadata differs from the hash recorded with it: damaged")


def check_arrays(meta: dict, items: dict[str, Any]) -> None:
    """Raises IntegrityError naming the leaves of ``items`` whose hash differs from ``meta``'s.

    Args:
      meta: metadata that passed ``check_meta``.
      items: the restored trees, ``{"state": tree, "best": tree}``.
    """
    recorded = meta["integrity"]["arrays"]
    bad = []
    for name, tree in items.items():
        for leaf, digest in leaf_hashes(tree, name).items():
            # A leaf the writer could not hash (sharded over processes) has no entry; the
            # manifest itself is covered by the metadata's hash.
            if leaf in recorded and recorded[leaf] != digest:
                bad.append(leaf)
    if bad:
        more = f" and {len(bad) - _SHOW} more" if len(bad) > _SHOW else ""
        raise IntegrityError(
            f"damaged: {', '.join(bad[:_SHOW])}{more} differ from the hashes recorded when "
            "it was written"
        )


def _host_array(leaf: Any) -> np.ndarray | None:
    """This process's complete host copy of ``leaf``, or None when it has none."""
    if isinstance(leaf, jax.Array):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        if leaf.is_fully_replicated:  # one replica: no gather, no copy per device
            return np.asarray(leaf.addressable_shards[0].data)
        if leaf.is_fully_addressable:
            return np.asarray(leaf)
        return None
    return np.asarray(leaf)


def _digest(array: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    h.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8))
    return h.hexdigest()
