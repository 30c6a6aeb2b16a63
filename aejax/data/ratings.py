"""Ratings data (``ratings:PATH``): a user,item,rating CSV, split by rating, as matrix rows.

The file is read into COO triplets over dense ids (``Ratings``), the *ratings* (not the users
or items) are split by a seeded permutation into train / validation / test, and
``ratings_dataset`` lays the matrix out as rows for a row-wise autoencoder:

- ``rows="items"`` (I-AutoRec): one example per item, a vector over the users;
- ``rows="users"`` (U-AutoRec): one example per user, a vector over the items.

Every split's input is a row's *training* ratings; validation and test score the row's
held-out ratings (``Dataset.target_*`` under ``Dataset.mask_*``). Ratings enter centred
(``RatingsLayout.baseline``): less the training mean, or less the user + item bias
baseline (``centre="biases"``), so an unobserved input entry, 0, reads as "as expected".
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import io
import math
import pathlib
import zlib
from typing import Any

import numpy as np

from aejax.errors import DataError

# Header names recognised, case-insensitively, when ``columns`` is not given (MovieLens first).
USER_NAMES = ("userid", "user_id", "user", "uid")
ITEM_NAMES = ("movieid", "itemid", "item_id", "movie_id", "item", "iid")
RATING_NAMES = ("rating", "score", "stars")
ROWS = ("items", "users")
CENTRES = ("mean", "biases")
TRAIN, VAL, TEST = 0, 1, 2
PARTS = {"train": TRAIN, "val": VAL, "test": TEST}


@dataclasses.dataclass(frozen=True, eq=False)
class Ratings:
    """Ratings as COO triplets over dense indices, each assigned to one split.

    Attributes:
      user_ids, item_ids: ``[n_users]`` / ``[n_items]`` the original ids (strings, as in the
        file), in dense-index order: numeric ids sort numerically, others as text.
      users, items: ``[n]`` int32 dense indices of each rating.
      values: ``[n]`` float32 ratings in the file's units.
      part: ``[n]`` int8: ``TRAIN`` (0), ``VAL`` (1) or ``TEST`` (2).
      low, high: the smallest and largest rating in the file (predictions are clipped to it).
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    part: np.ndarray
    low: float
    high: float

    @property
    def n_users(self) -> int:
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.item_ids.shape[0])

    @property
    def offset(self) -> float:
        """The mean training rating: the model sees and predicts ratings less this."""
        return float(self.values[self.part == TRAIN].mean())

    def select(self, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(users, items, values)`` of split ``"train"``, ``"val"`` or ``"test"``."""
        keep = self.part == PARTS[name]
        return self.users[keep], self.items[keep], self.values[keep]

    def user_index(self, user_id) -> int | None:
        """The dense index of an original user id (``1`` or ``"1"``), or None if unknown."""
        return _lookup(self.user_ids, user_id)

    def item_index(self, item_id) -> int | None:
        """The dense index of an original item id, or None if unknown."""
        return _lookup(self.item_ids, item_id)

    def seen_in_training(self) -> tuple[np.ndarray, np.ndarray]:
        """``([n_users] bool, [n_items] bool)``: which ids have at least one training rating."""
        users, items, _ = self.select("train")
        u = np.zeros(self.n_users, bool)
        i = np.zeros(self.n_items, bool)
        u[users] = True
        i[items] = True
        return u, i


def _lookup(ids: np.ndarray, key) -> int | None:
    hit = np.flatnonzero(ids == str(key).strip())
    return int(hit[0]) if hit.size else None


def _count(fraction: float, n: int) -> int:
    """``ceil(fraction * n)``, as ``aejax.data.dataset`` counts its splits."""
    return math.ceil(round(fraction * n, 9))


def split_ratings(n: int, seed: int, val_fraction: float, test_fraction: float) -> np.ndarray:
    """The seeded partition of ``n`` ratings into train / validation / test.

    Exactly ``build_dataset``'s rule, applied to ratings: ``np.random.default_rng(seed)``
    permutes ``0..n-1``; the first ``ceil(test_fraction * n)`` permuted ratings are the test
    part, the first ``ceil(val_fraction * n_pool)`` of the rest the validation part, and the
    remaining ones train. Every rating is in exactly one part.

    Returns:
      ``[n]`` int8 part labels (``TRAIN``, ``VAL``, ``TEST``).
    """
    perm = np.random.default_rng(seed).permutation(n)
    n_test = _count(test_fraction, n)
    n_val = _count(val_fraction, n - n_test)
    part = np.full(n, TRAIN, np.int8)
    part[perm[:n_test]] = TEST
    part[perm[n_test : n_test + n_val]] = VAL
    return part


def _dense_ids(raw: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Original ids -> ``(sorted unique ids [K] str, dense index of each [n] int32)``."""
    arr = np.asarray(raw, dtype=str)
    try:
        numbers = arr.astype(np.int64)
    except ValueError:
        uniq, index = np.unique(arr, return_inverse=True)
        return uniq, index.astype(np.int32)
    uniq, first, index = np.unique(numbers, return_index=True, return_inverse=True)
    return arr[first], index.astype(np.int32)


def _open_text(path: pathlib.Path) -> str:
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return raw.decode("utf-8-sig")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
        raise DataError(f"ratings file {path}: cannot read it: {e}") from e


def _find_columns(header: list[str], columns: tuple[str, ...], where: str) -> tuple[int, ...]:
    """The positions of the user, item and rating columns in ``header``."""
    names = [h.strip().lower() for h in header]
    if columns:
        if len(columns) != 3:
            raise DataError(
                f"{where}: ratings_columns names {len(columns)} column(s); give three: "
                "user,item,rating"
            )
        wanted = [(c.strip().lower(),) for c in columns]
    else:
        wanted = [USER_NAMES, ITEM_NAMES, RATING_NAMES]
    found = []
    for role, options in zip(("user", "item", "rating"), wanted, strict=True):
        hit = next((names.index(o) for o in options if o in names), None)
        if hit is None:
            raise DataError(
                f"{where}: no {role} column: the header has {header}; expected one of "
                f"{list(options)} (set the names with --set ratings_columns=USER,ITEM,RATING)"
            )
        found.append(hit)
    return tuple(found)


def read_ratings(
    path: str | pathlib.Path, columns: tuple[str, ...] = ()
) -> tuple[list[str], list[str], np.ndarray]:
    """Reads a ``user,item,rating[,timestamp]`` CSV, plain or gzipped.

    A first row that is not numeric in its third field is a header; the user, item and
    rating columns are then found by name (``columns``, else ``USER_NAMES`` /
    ``ITEM_NAMES`` / ``RATING_NAMES``, case-insensitively: MovieLens' ``ratings.csv`` reads
    as is). Without a header they are the first three columns.

    Args:
      path: the file.
      columns: ``(user, item, rating)`` header names, or ``()`` for the defaults.

    Returns:
      ``(user ids, item ids, ratings [n] float32)``: the ids as the file spells them.

    Raises:
      DataError: no such file, an empty file or one with no rating, a missing column, a
        short row, a non-numeric or non-finite rating, or a (user, item) pair rated twice.
    """
    path = pathlib.Path(path).expanduser()
    where = f"ratings file {path}"
    if not path.is_file():
        raise DataError(f"{where}: no such file")
    rows = [r for r in csv.reader(io.StringIO(_open_text(path))) if r and any(f.strip() for f in r)]
    if not rows:
        raise DataError(f"{where}: the file is empty")
    first = rows[0]
    header = first if len(first) >= 3 and not _is_number(first[2]) else None
    if header is None and columns:
        raise DataError(
            f"{where}: ratings_columns={list(columns)} names columns, but the file has no header"
        )
    if header is not None:
        cols, rows, line0 = _find_columns(header, columns, where), rows[1:], 2
    else:
        cols, line0 = (0, 1, 2), 1
    if not rows:
        raise DataError(f"{where}: a header and no ratings")
    width = max(cols) + 1
    users, items, texts = [], [], []
    for k, r in enumerate(rows):
        if len(r) < width:
            raise DataError(
                f"{where}, line {line0 + k}: {len(r)} field(s), the ratings need {width}"
            )
        users.append(r[cols[0]].strip())
        items.append(r[cols[1]].strip())
        texts.append(r[cols[2]].strip())
    try:
        values = np.asarray(texts, dtype=np.float64)
    except ValueError:
        bad = next(k for k, t in enumerate(texts) if not _is_number(t))
        raise DataError(
            f"{where}, line {line0 + bad}: rating {texts[bad]!r} is not a number"
        ) from None
    if not np.isfinite(values).all():
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(f"{where}, line {line0 + bad}: rating {texts[bad]!r} is not finite")
    return users, items, values.astype(np.float32)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def make_ratings(
    users: list,
    items: list,
    values: np.ndarray,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    where: str = "ratings",
) -> Ratings:
    """Maps ids to dense indices and splits the ratings (``split_ratings``).

    Args:
      users, items: ``[n]`` original ids (anything ``str`` spells).
      values: ``[n]`` ratings.
      seed, val_fraction, test_fraction: the split (see ``split_ratings``).
      where: names the source in error messages.

    Raises:
      DataError: no rating, or a (user, item) pair rated more than once.
    """
    values = np.asarray(values, np.float32).reshape(-1)
    if values.shape[0] == 0:
        raise DataError(f"{where}: no ratings")
    user_ids, u = _dense_ids([str(x).strip() for x in users])
    item_ids, i = _dense_ids([str(x).strip() for x in items])
    pair = u.astype(np.int64) * len(item_ids) + i
    uniq, counts = np.unique(pair, return_counts=True)
    if (counts > 1).any():
        dup = int(uniq[np.argmax(counts > 1)])
        raise DataError(
            f"{where}: {int((counts > 1).sum())} (user, item) pair(s) rated more than once, "
            f"e.g. user {user_ids[dup // len(item_ids)]!r}, item {item_ids[dup % len(item_ids)]!r}"
            "; keep one rating per pair"
        )
    part = split_ratings(values.shape[0], seed, val_fraction, test_fraction)
    if not (part == TRAIN).any():
        raise DataError(f"{where}: {values.shape[0]} rating(s) leave none for training")
    return Ratings(user_ids, item_ids, u, i, values, part, float(values.min()), float(values.max()))


def dense_rows(ratings: Ratings, split: str, rows: str, baseline) -> tuple[np.ndarray, np.ndarray]:
    """The ratings of one split as a dense ``[n_rows, n_cols]`` matrix, centred, and its mask.

    Args:
      ratings: the split ratings.
      split: ``"train"``, ``"val"`` or ``"test"``.
      rows: ``"items"`` or ``"users"``: what a row is.
      baseline: the centre, a ``BiasedModel`` (``.predict(users, items)``).

    Returns:
      ``(values - baseline where observed else 0, 0/1 mask)``, float32.
    """
    users, items, values = ratings.select(split)
    r, c = (items, users) if rows == "items" else (users, items)
    n_rows, n_cols = (ratings.n_items, ratings.n_users)
    shape = (n_rows, n_cols) if rows == "items" else (n_cols, n_rows)
    x = np.zeros(shape, np.float32)
    m = np.zeros(shape, np.float32)
    x[r, c] = values - baseline.predict(users, items).astype(np.float32)
    m[r, c] = 1.0
    return x, m


def ratings_dataset(name: str, ratings: Ratings, rows: str = "items", centre: str = "mean"):
    """Lays ``ratings`` out as a ``Dataset`` of kind ``"ratings"`` (see the module docstring).

    Args:
      name: the spec, stored as ``Dataset.name``.
      ratings: the split ratings.
      rows: ``"items"`` (I-AutoRec: ``D = n_users``) or ``"users"`` (U-AutoRec).
      centre: what is subtracted from every rating: ``"mean"`` (the training mean) or
        ``"biases"`` (``mu + b_u + b_i`` of ``fit_bias_baseline``: the model then learns
        what the biases miss, and an unobserved input, 0, means "as the biases predict").

    Returns:
      A Dataset whose ``x_train: [N_train, D]`` are the rows with a training rating,
      ``x_val`` / ``x_test`` the rows with a held-out rating of that split (their
      *training* ratings: the model's input), ``mask_train`` the observed training
      entries, ``target_*`` / ``mask_*`` the held-out ratings and their entries, and
      ``ratings`` the ``RatingsLayout`` that maps rows back to ids. All float32.
    """
    from aejax.baselines.ratings import fit_bias_baseline, fit_global_mean
    from aejax.data.dataset import Dataset

    if rows not in ROWS:
        raise DataError(f"ratings rows {rows!r}: choose one of {ROWS}")
    if centre not in CENTRES:
        raise DataError(f"ratings centre {centre!r}: choose one of {CENTRES}")
    if centre == "biases":
        baseline = fit_bias_baseline(ratings)
    else:
        baseline = fit_global_mean(*ratings.select("train"), ratings.n_users, ratings.n_items)
    x_all, m_train = dense_rows(ratings, "train", rows, baseline)
    row_index, arrays = {}, {}
    for split in ("train", "val", "test"):
        if split == "train":
            x_split, m_split = x_all, m_train
        else:
            x_split, m_split = dense_rows(ratings, split, rows, baseline)
        keep = np.flatnonzero(m_split.any(axis=1))
        row_index[split] = keep.astype(np.int32)
        arrays[split] = (
            np.ascontiguousarray(x_all[keep]),
            np.ascontiguousarray(x_split[keep]),
            np.ascontiguousarray(m_split[keep]),
        )
    layout = RatingsLayout(
        ratings, rows, row_index["train"], row_index["val"], row_index["test"], baseline
    )
    return Dataset(
        name=name,
        kind="ratings",
        x_train=arrays["train"][0],
        x_val=arrays["val"][0],
        x_test=arrays["test"][0],
        mask_train=arrays["train"][2],
        target_val=arrays["val"][1],
        mask_val=arrays["val"][2],
        target_test=arrays["test"][1],
        mask_test=arrays["test"][2],
        ratings=layout,
    )


@dataclasses.dataclass(frozen=True, eq=False)
class RatingsLayout:
    """How a ratings Dataset's rows map back to the matrix.

    Attributes:
      ratings: the split ratings (ids, triplets, parts, range).
      rows: ``"items"`` (each example an item over users) or ``"users"``.
      train_rows, val_rows, test_rows: ``[N_split]`` int32: the user or item index of each
        example of that split.
      baseline: the centre subtracted from every rating (an
        ``aejax.baselines.ratings.BiasedModel``); predictions add it back.
    """

    ratings: Ratings
    rows: str
    train_rows: np.ndarray
    val_rows: np.ndarray
    test_rows: np.ndarray
    baseline: Any

    @property
    def n_rows(self) -> int:
        return self.ratings.n_items if self.rows == "items" else self.ratings.n_users


def load_ratings(
    path: str,
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    rows: str = "items",
    columns: tuple[str, ...] = (),
    centre: str = "mean",
):
    """``ratings:PATH``: reads, maps, splits and lays out a ratings file.

    Returns:
      A Dataset of kind ``"ratings"`` (see ``ratings_dataset``) named ``ratings:PATH``.
    """
    users, items, values = read_ratings(path, columns)
    where = f"ratings file {pathlib.Path(path).expanduser()}"
    ratings = make_ratings(
        users,
        items,
        values,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        where=where,
    )
    return ratings_dataset(f"ratings:{path}", ratings, rows, centre)


def synthetic_ratings(
    n_users: int = 60,
    n_items: int = 120,
    *,
    rank: int = 3,
    density: float = 0.3,
    noise: float = 0.3,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A low-rank ratings matrix on the 1..5 scale, partly observed (tests and examples).

    ``rating = clip(round(3.5 + b_u + b_i + p_u . q_i + noise), 1, 5)`` with ``rank``
    factors, observed with probability ``density`` per entry (at least one per user).

    Returns:
      ``(users [n] int, items [n] int, ratings [n] float32)``.
    """
    rng = np.random.default_rng(seed)
    p = rng.normal(0, 1, (n_users, rank))
    q = rng.normal(0, 1, (n_items, rank))
    score = 3.5 + rng.normal(0, 0.4, (n_users, 1)) + rng.normal(0, 0.4, (1, n_items))
    score = score + p @ q.T / math.sqrt(rank) + rng.normal(0, noise, (n_users, n_items))
    seen = rng.random((n_users, n_items)) < density
    seen[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    u, i = np.nonzero(seen)
    return u, i, np.clip(np.round(score[u, i] * 2) / 2, 1.0, 5.0).astype(np.float32)
