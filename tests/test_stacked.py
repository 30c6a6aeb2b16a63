"""stacked_ae: greedy layer-wise pretraining, then fine-tuning from its parameters."""

import json

import numpy as np
import pytest
from _trees import host_leaves

import aejax
from aejax.errors import ConfigError
from aejax.train import loop as loop_mod
from aejax.train import pretrain

CONFIG = aejax.Config(
    model="stacked_ae",
    data="digits",
    hidden=(32, 16),
    latent_dim=4,
    pretrain_epochs=3,
    epochs=3,
    batch_size=64,
    lr=3e-3,
    warmup_steps=5,
    progress=False,
    devices=1,
    checkpoint_every=1,
)


def _same(a, b):
    la, lb = host_leaves(a), host_leaves(b)  # a list of numpy leaves is its own leaves
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def pre(digits):
    return pretrain.pretrain(CONFIG, digits)


@pytest.fixture(scope="module")
def run(digits):
    """``train_and_evaluate`` of CONFIG, in memory, with the fine-tuning's initial state."""
    started = []
    real_init = loop_mod.init_state

    def init_state(model, tx, input_shape, seed, init_params=None):
        state = real_init(model, tx, input_shape, seed, init_params)
        # Copied now: the training step donates (deletes) the state's buffers.
        started.append((host_leaves(init_params), host_leaves(state.params)))
        return state

    with pytest.MonkeyPatch.context() as m:
        m.setattr(loop_mod, "init_state", init_state)
        summary, result = aejax.train_and_evaluate(CONFIG, dataset=digits, plot=False)
    return summary, result, started


def test_each_layer_trains_in_turn_on_the_previous_codes(pre, digits):
    # Layer l reads the codes of layer l - 1: the data, then widths 32 and 16.
    assert [layer["input_shape"] for layer in pre.layers] == [(8, 8, 1), (32,), (16,)]
    assert [layer["width"] for layer in pre.layers] == [32, 16, 4]
    for layer in pre.layers:
        h = layer["history"]
        assert [r["epoch"] for r in h] == [1, 2, 3]
        assert h[-1]["train_reconstruction"] < h[0]["train_reconstruction"], h
        assert h[-1]["val_reconstruction"] < h[0]["val_reconstruction"], h
    # The stacked encoders and the mirrored decoders fill the deep model's tree.
    names = {f"dense_{i}" for i in range(3)}
    assert set(pre.params["encoder"]) == set(pre.params["decoder"]) == names
    assert pre.params["encoder"]["dense_0"]["kernel"].shape == (64, 32)
    assert pre.params["decoder"]["dense_2"]["kernel"].shape == (32, 64)
    model = aejax.model_from_config(CONFIG, digits.input_shape, digits.kind)
    _, aux = model.apply({"params": pre.params}, digits.x_test[:5])
    assert np.isfinite(np.asarray(aux["terms"]["reconstruction"])).all()
    assert pre.test["sse_per_example"] > 0


def test_fine_tuning_starts_from_the_pretrained_parameters_and_improves(pre, run):
    summary, result, started = run
    ((given, initial),) = started
    _same(given, host_leaves(pre.params))  # pretraining is deterministic: the same bits
    _same(initial, host_leaves(pre.params))  # and fine-tuning starts from exactly those
    assert summary["pretrain_test_sse_per_example"] == pre.test["sse_per_example"]
    assert summary["test_sse_per_example"] < summary["pretrain_test_sse_per_example"]
    assert summary["pretrain_layers"] == [32, 16, 4]
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_a_killed_run_resumes_without_pretraining_again(run, digits, monkeypatch, tmp_path):
    full = run[0]
    trained = []
    real = pretrain.train_layer

    def killed_in_the_last_layer(config, model, x_train, x_val, seed):
        if model.code.latent_dim == CONFIG.latent_dim:
            raise KeyboardInterrupt
        trained.append(model.code.latent_dim)
        return real(config, model, x_train, x_val, seed)

    monkeypatch.setattr(pretrain, "train_layer", killed_in_the_last_layer)
    with pytest.raises(KeyboardInterrupt):
        aejax.train_and_evaluate(CONFIG, tmp_path, dataset=digits, plot=False)
    assert [p.name for p in sorted((tmp_path / "pretrain").glob("*.npz"))] == [
        "layer_0.npz",
        "layer_1.npz",
    ]

    def recording(config, model, x_train, x_val, seed):
        trained.append(model.code.latent_dim)
        return real(config, model, x_train, x_val, seed)

    trained.clear()
    monkeypatch.setattr(pretrain, "train_layer", recording)
    resumed, _ = aejax.train_and_evaluate(CONFIG, tmp_path, dataset=digits, plot=False)
    assert trained == [4]  # the first two layers were read back, not retrained
    for key in ("pretrain_test_sse_per_example", "test_sse_per_example"):
        assert resumed[key] == full[key]  # the same bits as a run never interrupted

    def never(*args, **kwargs):
        raise AssertionError("a run with a checkpoint pretrained again")

    monkeypatch.setattr(pretrain, "train_layer", never)
    again, _ = aejax.train_and_evaluate(CONFIG, tmp_path, dataset=digits, plot=False)
    assert again["already_complete"]
    assert again["pretrain_test_sse_per_example"] == full["pretrain_test_sse_per_example"]
    saved = json.loads((tmp_path / "pretrain" / "summary.json").read_text())
    assert saved["pretrain_layers"] == [32, 16, 4]

    # Layers pretrained with another config are refused before anything trains.
    (tmp_path / "checkpoints").rename(tmp_path / "old-checkpoints")
    (tmp_path / "config.json").unlink()
    with pytest.raises(aejax.CheckpointError, match="pretrain_lr"):
        aejax.train_and_evaluate(CONFIG.replace(pretrain_lr=0.01), tmp_path, dataset=digits)


def test_the_pretraining_fields_belong_to_stacked_ae(digits):
    with pytest.raises(ConfigError, match="pretrain_epochs"):
        aejax.model_from_config(aejax.Config(model="ae", pretrain_epochs=3), (8, 8, 1), "image")
    with pytest.raises(ConfigError, match="corruption"):
        aejax.Config(model="stacked_ae", pretrain_corruption="masking:2")
    with pytest.raises(ConfigError, match="pretrain_corruption='block:3' is not allowed"):
        CONFIG.replace(pretrain_corruption="block:3")
    with pytest.raises(ConfigError, match="not a dense autoencoder"):
        pretrain.pretrain(aejax.Config(model="conv_ae", conv_features=(8,)), digits)


def test_denoising_layers_train_on_corrupted_inputs(pre, digits):
    config = CONFIG.replace(pretrain_corruption="masking:0.3")
    model = pretrain.layer_model(config, 0, digits.input_shape, digits.kind)
    seed = pretrain.layer_seed(config.seed, 0)
    _, noisy = pretrain.train_layer(config, model, digits.x_train, digits.x_val, seed)
    clean = pre.layers[0]["history"]  # the same layer, seed and schedule, uncorrupted
    assert noisy[-1]["train_reconstruction"] < noisy[0]["train_reconstruction"]
    # The training term reconstructs clean pixels from masked ones: a harder task.
    assert all(
        n["train_reconstruction"] > c["train_reconstruction"]
        for n, c in zip(noisy, clean, strict=True)
    )


def test_the_pretraining_experiment_writes_its_table(tmp_path, monkeypatch):
    import pathlib

    monkeypatch.syspath_prepend(str(pathlib.Path(__file__).resolve().parents[1]))
    from experiments import pretraining

    argv = ["--data", "digits", "--variants", "ae,stacked", "--epochs", "1", "--no-progress"]
    argv += ["--set", "hidden=16", "--set", "pretrain_epochs=1", "--set", "devices=1"]
    assert pretraining.main([*argv, "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "pretraining-digits.json").read_text())
    assert set(result["summary"]["variants"]) == {"ae", "stacked"}
    assert "pretrain_test_sse_per_example" in result["summary"]["variants"]["stacked"]
    assert result["summary"]["probes"]["ae"]["raw_accuracy"] > 0.9
    assert "| stacked autoencoders |" in (tmp_path / "pretraining-digits.md").read_text()
