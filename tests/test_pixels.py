"""uint8 pixels (``aejax.data.pixels``): image data sets keep 8-bit pixels and every
consumer reads them as the floats the loaders stored before, to the bit."""

import jax
import numpy as np
import pytest

import aejax
from aejax import bounds, inference
from aejax.data import Dataset
from aejax.data.dataset import build_dataset
from aejax.data.pixels import UNIT_VALUES, to_unit
from aejax.evaluate import evaluate_pca, mean_baseline_mse
from tests._configs import SMALL


@pytest.fixture(scope="module")
def pair():
    """The same mnist-lite-like images twice: as 8-bit pixels, and as the floats k / 255
    that the loaders stored before (what the float path trains on)."""
    rng = np.random.default_rng(0)
    x = (rng.random((160, 8, 8)) ** 3 * 256).astype(np.uint8)  # mostly dark, like MNIST
    y = rng.integers(0, 10, 160)
    ds8 = build_dataset("pixels", x, y, seed=0)
    as_float = {k: to_unit(getattr(ds8, k)) for k in ("x_train", "x_val", "x_test")}
    labels = {k: getattr(ds8, k) for k in ("y_train", "y_val", "y_test")}
    ds32 = Dataset("pixels", "image", **as_float, **labels)
    return ds8, ds32


def test_integer_images_are_kept_as_uint8_and_read_as_before(pair):
    ds8, ds32 = pair
    assert ds8.x_train.dtype == np.uint8 and ds8.input_shape == (8, 8, 1)
    assert ds32.x_train.dtype == np.float32
    # What to_model_input stored before: float32(k) / float32(255), bit for bit.
    k = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(UNIT_VALUES, k.astype(np.float32) / np.float32(255.0))
    np.testing.assert_array_equal(np.asarray(jax.jit(to_unit)(k)), UNIT_VALUES)
    assert to_unit(ds32.x_train) is ds32.x_train  # floats pass unchanged


def test_training_on_uint8_gives_the_float_paths_params(pair):
    """A few steps of a model that binarizes, corrupts and augments its batches: the
    same parameters, metrics and held-out figures to the bit from uint8 and float data."""
    ds8, ds32 = pair
    config = SMALL.replace(
        model="vae",
        epochs=1,
        hidden=(16,),
        batch_size=32,
        binarize=True,
        corruption="masking:0.2",
        augment="shift:1",
        checkpoint_every=0,
    )
    r8 = aejax.train_run(config, dataset=ds8)
    r32 = aejax.train_run(config, dataset=ds32)
    jax.tree.map(np.testing.assert_array_equal, r8.params, r32.params)
    untimed = [
        [{k: v for k, v in e.items() if "seconds" not in k} for e in r.history] for r in (r8, r32)
    ]
    assert untimed[0] == untimed[1]
    for a, b in ((ds8, ds32),):
        # inference, the metrics and the baselines on the uint8 test split
        np.testing.assert_array_equal(
            aejax.encode(r8.model, r8.variables, a.x_test),
            aejax.encode(r32.model, r32.variables, b.x_test),
        )
        ev8 = inference.evaluate_model(r8.model, r8.variables, a.x_test, "image")
        assert ev8 == inference.evaluate_model(r32.model, r32.variables, b.x_test, "image")
        assert evaluate_pca(a, 4)[0] == evaluate_pca(b, 4)[0]
        assert mean_baseline_mse(a) == mean_baseline_mse(b)
        key = jax.random.key(0)
        assert bounds.posterior_report(
            r8.model, r8.variables, a.x_test, key
        ) == bounds.posterior_report(r32.model, r32.variables, b.x_test, key)


def test_inference_reads_uint8_as_pixels_and_keeps_floats(pair, digits):
    """``aejax.encode`` takes floats in [0, 1] as before and uint8 pixels as k / 255."""
    ds8, _ = pair
    model = aejax.model_from_config(SMALL.replace(model="ae"), ds8.input_shape, "image")
    variables = model.init(jax.random.key(0), np.zeros((1, *ds8.input_shape), np.float32))
    x8 = ds8.x_test[:5]
    np.testing.assert_array_equal(
        aejax.encode(model, variables, x8), aejax.encode(model, variables, to_unit(x8))
    )
    assert inference.check_input(x8, ds8.input_shape).dtype == np.uint8


def test_estimators_take_uint8_pixel_rows_as_floats():
    rows = np.random.default_rng(1).integers(0, 256, (12, 16), np.uint8)
    est = aejax.AutoencoderTransformer(image_shape=(4, 4, 1))
    got = est._validated(rows, reset=True, method="fit")
    np.testing.assert_array_equal(got, to_unit(rows))
    tables = aejax.AutoencoderTransformer()  # no image_shape: a table of small integers
    assert tables._validated(rows, reset=True, method="fit").max() > 1
