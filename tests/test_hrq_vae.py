"""hrq_vae: residual quantization level by level on a hand-set codebook; its training pass."""

import jax
import jax.numpy as jnp
import numpy as np

from aejax.models.hrq import HierarchicalQuantizer, init_codebooks, norm_penalty, uniform_kl

# Three levels of three 2-d codes, norms 1, 0.5, 0.25.
CODEBOOKS = jnp.array(
    [
        [[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]],
        [[0.5, 0.0], [0.0, 0.5], [0.0, -0.5]],
        [[0.25, 0.0], [0.0, 0.25], [-0.25, 0.0]],
    ]
)
# Two cells: [B=1, h=1, w=2, D=2].
H = jnp.array([[[[1.3, -0.4], [-0.9, 0.8]]]])


def _quantizer(**kw):
    fields = {"grid": (1, 2), "levels": 3, "codebook_size": 3, "code_dim": 2}
    return HierarchicalQuantizer(**{**fields, **kw})


def _variables(steps=0.0):
    return {"params": {"codebooks": CODEBOOKS}, "hrq": {"steps": jnp.float32(steps)}}


def test_each_level_quantizes_the_residual_and_the_code_is_the_sum():
    hrq = _quantizer()

    @jax.jit
    def apply(v, h):
        return hrq.apply(v, h), hrq.apply(v, h, method=hrq.codes)

    (z, aux), codes = apply(_variables(), H)
    # By hand: cell 1 (1.3, -0.4) -> (1, 0), then residual (0.3, -0.4) -> (0, -0.5), then
    # (0.3, 0.1) -> (0.25, 0); cell 2 (-0.9, 0.8) -> (-1, 0), (0.1, 0.8) -> (0, 0.5),
    # (0.1, 0.3) -> (0, 0.25).
    np.testing.assert_array_equal(codes, [[[[0, 2, 0], [2, 1, 1]]]])
    np.testing.assert_array_equal(aux["outputs"]["codes"], codes)
    np.testing.assert_allclose(z, [[[[1.25, -0.5], [-1.0, 0.75]]]], atol=1e-6)
    chosen = np.stack([np.asarray(CODEBOOKS)[lvl][np.asarray(codes)[..., lvl]] for lvl in range(3)])
    np.testing.assert_allclose(z, chosen.sum(0), atol=1e-6)
    # The residual error falls level by level in every cell.
    resid = np.asarray(H) - np.concatenate([np.zeros_like(chosen[:1]), np.cumsum(chosen, 0)])
    norms = np.linalg.norm(resid, axis=-1).reshape(4, 2)  # [levels + 1, cells]
    np.testing.assert_allclose(norms[:, 0], [1.3601, 0.5, 0.3162, 0.1118], atol=1e-4)
    assert (np.diff(norms, axis=0) < 0).all()
    # Norms 1, 0.5, 0.25: each ratio 0.5 * 1.5 <= 1, so no norm penalty.
    np.testing.assert_allclose(aux["terms"]["hrq_norm"], 0.0, atol=1e-7)
    assert aux["terms"]["hrq_kl"].shape == (1,) and float(aux["terms"]["hrq_kl"][0]) > 0


def test_penalties_by_hand_and_the_initial_norms():
    @jax.jit
    def values(q, logits, key):
        books = init_codebooks(key, (3, 5, 4), 2.0, 0.5)
        return norm_penalty(q, 1.5), uniform_kl(logits), uniform_kl(jnp.zeros(4)), books

    q = jnp.array([[[1.0, 0.0], [0.0, 0.9], [0.0, 0.3]]])
    logits = jnp.log(jnp.array([0.5, 0.25, 0.25]))
    penalty, kl, kl_uniform, books = values(q, logits, jax.random.key(0))
    # ratios 0.9 * 1.5 = 1.35 -> 0.35^2, and 0.3 / 0.9 * 1.5 = 0.5 -> 0; mean over two.
    np.testing.assert_allclose(penalty, [0.35**2 / 2], rtol=1e-5)
    np.testing.assert_allclose(kl_uniform, 0.0, atol=1e-7)
    # KL(U || (1/2, 1/4, 1/4)) = -log 3 - mean(log q)
    np.testing.assert_allclose(kl, -np.log(3) - np.mean(np.log([0.5, 0.25, 0.25])), rtol=1e-5)
    np.testing.assert_allclose(
        np.linalg.norm(books, axis=-1), [[2.0] * 5, [1.0] * 5, [0.5] * 5], rtol=1e-6
    )


def test_a_training_pass_draws_codebook_rows_drops_finer_levels_and_counts_itself():
    hrq = _quantizer(depth_drop=0.5, temp_steps=10.0)
    h = jax.random.normal(jax.random.key(0), (4, 1, 2, 2))

    @jax.jit
    def train_pass(v, h, key):
        def loss(books):
            variables = {**v, "params": {"codebooks": books}}
            rngs = dict(zip(("sample", "dropout"), jax.random.split(key), strict=True))
            (z, aux), state = hrq.apply(variables, h, train=True, mutable=["hrq"], rngs=rngs)
            return jnp.sum(z**2) + aux["terms"]["hrq_kl"].sum(), (z, aux, state)

        return jax.grad(loss, has_aux=True)(v["params"]["codebooks"])

    grads, (z, aux, state) = train_pass(_variables(steps=5.0), h, jax.random.key(1))
    assert float(state["hrq"]["steps"]) == 6.0
    np.testing.assert_allclose(aux["stats"]["temperature"], max(np.exp(-5 / 10), 0.5), rtol=1e-6)
    assert np.isfinite(grads).all() and np.abs(grads).sum() > 0
    # Each cell's value is the sum of a prefix of its drawn codes' rows (depth dropout
    # removes a level and every finer one); with rate 0.5 over 8 cells some are cut.
    codes = np.asarray(aux["outputs"]["codes"]).reshape(-1, 3)
    rows = np.stack([np.asarray(CODEBOOKS)[lvl][codes[:, lvl]] for lvl in range(3)], 1)
    prefixes = np.concatenate([np.zeros((8, 1, 2)), np.cumsum(rows, 1)], 1)  # [8, 4, 2]
    err = np.abs(prefixes - np.asarray(z).reshape(8, 1, 2)).max(-1)  # [8, 4]
    depth = err.argmin(1)
    np.testing.assert_allclose(err.min(1), 0.0, atol=1e-6)
    assert (depth < 3).any()
