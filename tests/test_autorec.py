"""AutoRec on ratings data: the masked loss, id mapping, the seeded split, RMSE vs biases, CLI."""

from __future__ import annotations

import gzip
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import aejax
from aejax import cli
from aejax.apps.recommend import predicted_matrix, ratings_report, topk_metrics
from aejax.assemble import dataset_for, train
from aejax.baselines.ratings import fit_als, fit_biases, fit_global_mean, rmse
from aejax.data.ratings import (
    TEST,
    TRAIN,
    VAL,
    make_ratings,
    ratings_dataset,
    read_ratings,
    split_ratings,
    synthetic_ratings,
)
from aejax.errors import DataError
from aejax.train.epoch import evaluate_arrays
from aejax.train.shard import make_mesh
from aejax.train.state import init_state
from aejax.train.step import make_eval_step, make_train_step

TINY = dict(
    model="autorec",
    latent_dim=16,
    activation="sigmoid",
    epochs=2,
    batch_size=16,
    progress=False,
    devices=1,
)


def _write_csv(path, users, items, values, header="userId,movieId,rating,timestamp"):
    lines = [header] if header else []
    lines += [
        f"{u},{i},{r:g},{1000 + k}"
        for k, (u, i, r) in enumerate(zip(users, items, values, strict=True))
    ]
    text = "\n".join(lines) + "\n"
    if str(path).endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


@pytest.fixture(scope="module")
def lowrank():
    """A 100-user x 300-item rank-3 matrix, 30% observed, as ``Ratings`` split with seed 0."""
    users, items, values = synthetic_ratings(100, 300, rank=3, density=0.3, noise=0.3, seed=1)
    return make_ratings(users, items, values, seed=0, val_fraction=0.1, test_fraction=0.1)


# --- the masked loss ---------------------------------------------------------------------


def test_the_masked_loss_ignores_unobserved_entries():
    model = aejax.create_model("autorec", (12,), "gaussian", latent_dim=4, activation="sigmoid")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 12)).astype(np.float32)
    mask = (rng.random((6, 12)) < 0.4).astype(np.float32)
    x = x * mask  # unobserved inputs are 0, as ratings_dataset lays them out
    other = np.where(mask > 0, x, rng.normal(10.0, 5.0, x.shape)).astype(np.float32)
    variables = model.init(jax.random.key(0), x)

    def loss(params, target):
        _, aux = model.apply({"params": params}, x, mask=mask, target=target)
        return aux["terms"]["reconstruction"].sum()

    # The term and its gradient only see the observed entries.
    a, ga = jax.value_and_grad(loss)(variables["params"], x)
    b, gb = jax.value_and_grad(loss)(variables["params"], other)
    assert float(a) == float(b) > 0
    for u, v in zip(jax.tree.leaves(ga), jax.tree.leaves(gb), strict=True):
        np.testing.assert_array_equal(u, v)
    recon, _ = model.apply(variables, x)
    want = np.sum(np.square(np.asarray(recon) - x) * mask)
    np.testing.assert_allclose(float(a), want, rtol=1e-5)
    # Without the mask, the same targets give another loss: the mask is what hides them.
    _, aux = model.apply(variables, x, target=other)
    assert float(aux["terms"]["reconstruction"].sum()) > 10 * float(a)

    # A training step and the evaluation agree: unobserved targets change no bit.
    tx = optax.adam(1e-2)
    state = init_state(model, tx, (12,), 0)
    step = jax.jit(make_train_step(model, tx))
    s1, m1 = step(state, {"x": x, "mask": mask, "target": x}, state.rng)
    s2, m2 = step(state, {"x": x, "mask": mask, "target": other}, state.rng)
    for u, v in zip(jax.tree.leaves(s1.params), jax.tree.leaves(s2.params), strict=True):
        np.testing.assert_array_equal(u, v)
    assert float(m1["loss"]) == float(m2["loss"])
    mesh = make_mesh(1)
    eval_step = jax.jit(make_eval_step(model))
    e1 = evaluate_arrays(eval_step, s1.variables(), x, 4, mesh, mask=mask, target=x)
    e2 = evaluate_arrays(eval_step, s1.variables(), x, 4, mesh, mask=mask, target=other)
    assert e1 == e2
    # recon_mse is per observed entry: the mean of the squared errors under the mask.
    r1, _ = model.apply(s1.variables(), x)
    want_mse = np.sum(np.square(np.asarray(r1) - x) * mask) / mask.sum()
    np.testing.assert_allclose(e1["recon_mse"], want_mse, rtol=1e-5)


def test_l2_is_half_the_squared_kernels_and_left_out_of_the_validation_loss():
    model = aejax.create_model("autorec", (5,), "gaussian", latent_dim=3)
    x = jnp.ones((2, 5))
    variables = model.init(jax.random.key(0), x)
    _, aux = model.apply(variables, x)
    p = variables["params"]
    want = 0.5 * sum(
        float(jnp.sum(jnp.square(p[part]["dense_0"]["kernel"]))) for part in ("encoder", "decoder")
    )
    np.testing.assert_allclose(np.asarray(aux["terms"]["l2"]), [want, want], rtol=1e-6)
    objective = aejax.make_objective(aejax.Config(model="autorec", autorec_l2=0.5), 10)
    terms = {"reconstruction": jnp.ones(2), "l2": jnp.full(2, 4.0)}
    np.testing.assert_allclose(np.asarray(objective(terms, 0)[0]), [3.0, 3.0])
    np.testing.assert_allclose(np.asarray(objective.for_evaluation()(terms, 0)[0]), [1.0, 1.0])


# --- ids, the file, the split ------------------------------------------------------------


def test_ids_round_trip_through_the_dense_indices(tmp_path):
    users = ["10", "2", "2", "33", "10", "7"]
    items = ["b", "a", "c", "a", "a", "b"]
    values = [4.0, 3.5, 1.0, 5.0, 2.0, 3.0]
    r = make_ratings(users, items, np.array(values), seed=0, val_fraction=0.0, test_fraction=0.0)
    assert list(r.user_ids) == ["2", "7", "10", "33"]  # numeric ids sort as numbers
    assert list(r.item_ids) == ["a", "b", "c"]
    for k in range(len(values)):
        assert (r.user_ids[r.users[k]], r.item_ids[r.items[k]]) == (users[k], items[k])
        assert r.values[k] == values[k]
    for idx, uid in enumerate(r.user_ids):
        assert r.user_index(uid) == idx
    assert r.user_index(10) == r.user_index("10") == 2
    assert r.user_index("404") is None and r.item_index("z") is None
    # The same through a gzipped MovieLens-style file, and in either row layout.
    path = _write_csv(tmp_path / "r.csv.gz", users, items, values)
    u2, i2, v2 = read_ratings(path)
    assert (u2, i2, v2.tolist()) == (users, items, values)
    for rows in ("items", "users"):
        ds = ratings_dataset("r", r, rows)
        assert ds.kind == "ratings" and ds.input_shape == ((4,) if rows == "items" else (3,))
        rebuilt = {}
        for row, x, m in zip(ds.ratings.train_rows, ds.x_train, ds.mask_train, strict=True):
            for col in np.flatnonzero(m):
                u, i = (col, row) if rows == "items" else (row, col)
                rebuilt[(r.user_ids[u], r.item_ids[i])] = float(x[col]) + r.offset
        assert rebuilt == pytest.approx(
            dict(zip(zip(users, items, strict=True), values, strict=True))
        )


def test_the_split_is_the_documented_seeded_partition(lowrank):
    n = lowrank.values.shape[0]
    part = split_ratings(n, 3, 0.1, 0.2)
    perm = np.random.default_rng(3).permutation(n)
    n_test = math.ceil(0.2 * n)
    n_val = math.ceil(0.1 * (n - n_test))
    assert set(np.flatnonzero(part == TEST)) == set(perm[:n_test])
    assert set(np.flatnonzero(part == VAL)) == set(perm[n_test : n_test + n_val])
    assert (part == TRAIN).sum() == n - n_test - n_val
    np.testing.assert_array_equal(part, split_ratings(n, 3, 0.1, 0.2))
    assert not np.array_equal(part, split_ratings(n, 4, 0.1, 0.2))
    # In the Dataset every rating is an entry of exactly one split's mask.
    ds = ratings_dataset("r", lowrank, "items")
    seen = np.zeros((lowrank.n_items, lowrank.n_users))
    for rows, mask in (
        (ds.ratings.train_rows, ds.mask_train),
        (ds.ratings.val_rows, ds.mask_val),
        (ds.ratings.test_rows, ds.mask_test),
    ):
        seen[rows] += mask
    assert seen.max() == 1 and seen.sum() == n
    np.testing.assert_array_equal(seen[lowrank.items, lowrank.users], 1)
    assert ds.mask_val.sum() == (lowrank.part == VAL).sum()
    # Validation and test rows take the row's training ratings as input.
    pos = {int(r): k for k, r in enumerate(ds.ratings.train_rows)}
    for k, row in enumerate(ds.ratings.test_rows):
        want = ds.x_train[pos[int(row)]] if int(row) in pos else np.zeros(ds.input_shape)
        np.testing.assert_array_equal(ds.x_test[k], want)
        assert not np.any(ds.mask_test[k] * (ds.x_test[k] != 0))  # held out, not in input


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("userId,movieId,rating\n", "a header and no ratings"),
        ("user,thing,rating\n1,2,3\n", "no item column"),
        ("userId,movieId,score2\n1,2,3\n", "no rating column"),
        ("userId,movieId,rating\n1,2,good\n", "line 2: rating 'good' is not a number"),
        ("userId,movieId,rating\n1,2,4\n1,3,nan\n", "line 3: rating 'nan' is not finite"),
        ("userId,movieId,rating\n1,2\n", "line 2: 2 field(s)"),
    ],
)
def test_bad_ratings_files_say_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match="ratings file") as e:
        aejax.load_dataset(f"ratings:{path}")
    assert message in str(e.value)


def test_header_names_are_configurable_and_duplicates_refused(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("when,who,what,stars\n0,u1,i1,4\n0,u2,i1,2\n0,u1,i2,5\n")
    with pytest.raises(DataError, match="no user column"):
        aejax.load_dataset(f"ratings:{path}")
    ds = aejax.load_dataset(
        f"ratings:{path}", ratings_columns=("who", "what", "stars"), test_fraction=0.0
    )
    assert list(ds.ratings.ratings.user_ids) == ["u1", "u2"]
    config = aejax.Config(data=f"ratings:{path}", ratings_columns=("WHO", "what", "stars"))
    assert dataset_for(config.replace(test_fraction=0.0)).ratings.ratings.n_items == 2
    path.write_text("1,1,4\n1,1,5\n")  # no header: user, item, rating
    with pytest.raises(DataError, match="1 .user, item. pair.s. rated more than once"):
        aejax.load_dataset(f"ratings:{path}")


# --- the model against the baselines -----------------------------------------------------


def test_autorec_beats_the_bias_baseline_on_a_low_rank_matrix(lowrank):
    ds = ratings_dataset("lowrank", lowrank, "items")
    config = aejax.Config(
        **{**TINY, "epochs": 60, "latent_dim": 32, "batch_size": 32, "lr": 1e-2},
        autorec_l2=1e-3,
        corruption="masking:0.25",
    )
    result = train(config, dataset=ds)
    pred = predicted_matrix(result.model, result.variables, ds)
    model_rmse = ratings_report(pred, lowrank)["rmse"]
    train_part = lowrank.select("train")
    users, items, values = lowrank.select("test")
    shape = (lowrank.n_users, lowrank.n_items)
    bias = fit_biases(*train_part, *shape, reg=3.0)
    bias_rmse = rmse(bias.predict(users, items), values, 1.0, 5.0)
    mean_rmse = rmse(fit_global_mean(*train_part, *shape).predict(users, items), values)
    als_rmse = rmse(fit_als(*train_part, *shape, rank=3, reg=5.0).predict(users, items), values)
    assert model_rmse < 0.9 * bias_rmse < mean_rmse, (model_rmse, bias_rmse, mean_rmse)
    assert als_rmse < 0.9 * bias_rmse  # the rank-3 truth: the factors find it too


def test_topk_metrics_on_a_hand_made_case():
    users = [0, 0, 0, 0, 1, 1]
    items = [0, 1, 2, 3, 0, 1]
    r = make_ratings(users, items, np.array([5.0, 4.0, 2.0, 5.0, 1.0, 4.5]), seed=0,
                     val_fraction=0.0, test_fraction=0.0)  # fmt: skip
    part = np.array([TRAIN, TEST, TEST, TEST, TRAIN, TEST], np.int8)
    r = type(r)(r.user_ids, r.item_ids, r.users, r.items, r.values, part, r.low, r.high)
    # User 0: relevant {1, 3}; candidates {1, 2, 3}; the top 2 are 3 then 2: one hit.
    # User 1: relevant {1}; candidates {1, 2, 3}; 1 is ranked first.
    scores = np.array([[9.0, 1.0, 2.0, 3.0], [9.0, 5.0, 0.0, 0.0]])
    out = topk_metrics(scores, r, k=2)
    assert out["ranked_users"] == 2
    assert out["recall@2"] == pytest.approx((1 / 2 + 1 / 1) / 2)
    idcg0 = 1 + 1 / math.log2(3)
    assert out["ndcg@2"] == pytest.approx((1 / idcg0 + 1.0) / 2)


# --- the command line and the Python API -------------------------------------------------


def test_train_writes_test_rmse_and_recommend_ranks_unseen_items(tmp_path, capsys):
    users, items, values = synthetic_ratings(40, 80, density=0.3, seed=2)
    path = _write_csv(tmp_path / "ratings.csv", users + 1, items + 100, values)
    run = tmp_path / "run"
    code = cli.main(
        ["train", "--model", "autorec", "--data", f"ratings:{path}", "--epochs", "2",
         "--latent-dim", "8", "--batch-size", "16", "--workdir", str(run),
         "--set", "devices=1", "--set", "progress=false", "--set", "autorec_variant=user"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["variant"] == "user" and summary["input_shape"] == [80]
    for key in ("test_rmse", "test_recall@10", "test_ndcg@10", "bias_test_rmse"):
        assert np.isfinite(summary[key]), key
    assert 0 < summary["test_rmse"] < summary["global_mean_test_rmse"] + 0.5
    capsys.readouterr()

    assert cli.main(["recommend", str(run), "--user", "3", "-k", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    rated = {str(i + 100) for u, i in zip(users, items, strict=True) if u + 1 == 3}
    assert out["known"] and out["fallback"] is None and out["n_rated"] == len(rated)
    got = [e["item"] for e in out["items"]]
    assert len(got) == 5 and not set(got) & rated
    predicted = [e["predicted"] for e in out["items"]]
    assert predicted == sorted(predicted, reverse=True)
    assert all(1.0 <= p <= 5.0 for p in predicted)
    # The Python equivalent gives the same list; an unknown user gets the documented fallback.
    assert aejax.recommend(run, 3, 5)["items"] == out["items"]
    cold = aejax.recommend(aejax.load_run(run), "no-such-user", k=3)
    assert not cold["known"] and "item-bias baseline" in cold["fallback"]
    assert len(cold["items"]) == 3
    assert cli.main(["recommend", str(run), "--user", "3"]) == 0
    assert "predicted" in capsys.readouterr().out
    # `aejax evaluate` reports the same test figures again.
    assert cli.main(["evaluate", str(run), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["test_rmse"] == pytest.approx(summary["test_rmse"])


def test_bias_centred_rows_predict_the_biases_where_the_model_adds_nothing(lowrank):
    from aejax.baselines.ratings import fit_bias_baseline

    ds = ratings_dataset("lowrank", lowrank, "users", centre="biases")
    bias = fit_bias_baseline(lowrank)
    users, items, values = lowrank.select("train")
    want = values - bias.predict(users, items)
    pos = {int(r): k for k, r in enumerate(ds.ratings.train_rows)}
    got = ds.x_train[[pos[int(u)] for u in users], items]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    model = aejax.create_model("autorec", ds.input_shape, "gaussian", latent_dim=4)
    zero = jax.tree.map(jnp.zeros_like, model.init(jax.random.key(0), ds.x_train[:1]))
    pred = predicted_matrix(model, zero, ds)
    every = np.clip(bias.predict_users(np.arange(lowrank.n_users)), lowrank.low, lowrank.high)
    np.testing.assert_allclose(pred, every, rtol=1e-5, atol=1e-5)


def test_the_recommendation_benchmark_runs_tiny_and_skips_without_data(tmp_path):
    import sys

    root = str(__import__("pathlib").Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)  # benchmarks/ is not an installed package
    from benchmarks import recommendation

    empty = tmp_path / "empty"
    empty.mkdir()
    skipped = recommendation.run_recommendation(tmp_path / "none", data_dir=str(empty))
    assert "not found" in skipped["skipped"]
    record = recommendation.run_recommendation(tmp_path / "tiny", tiny=True)
    methods = [r["method"] for r in record["runs"]]
    assert methods == ["global mean", "user + item biases", "biased MF (ALS, rank 20)",
                       "I-AutoRec", "U-AutoRec"]  # fmt: skip
    assert all(0 < r["test_rmse"] < 2 for r in record["runs"])
    text = (tmp_path / "tiny" / "recommendation.md").read_text()
    assert "| I-AutoRec |" in text and "NDCG@10" in text
    saved = json.loads((tmp_path / "tiny" / "recommendation.json").read_text())
    assert saved["versions"]["jax"] and saved["device"]["kind"]


def test_ties_at_the_top_rating_are_broken_by_the_stated_rule():
    from aejax.apps.recommend import rank_items

    # Items a..e; training ratings per item: a 1, b 3, c 3, d 0 (val only), e 1.
    users = ["1", "2", "3", "1", "2", "3", "1", "2", "9"]
    items = ["a", "b", "b", "b", "c", "c", "c", "e", "d"]
    r = make_ratings(users, items, np.full(9, 4.0), seed=0, val_fraction=0.0, test_fraction=0.0)
    r.part[r.items == r.item_index("d")] = 1  # d: a validation rating only
    # Shown clipped to 5.0 they all tie; unclipped, e (5.4) leads, then a/b/c/d at 5.2.
    scores = np.array([5.2, 5.2, 5.2, 5.2, 5.4])
    ranked = [str(r.item_ids[i]) for i in rank_items(scores, r)]
    # e first (highest prediction); among the 5.2s: b, c (3 ratings; b's id first), a, d.
    assert ranked == ["e", "b", "c", "a", "d"]
