"""Settings are discoverable: every field documented, errors that say what is allowed."""

import dataclasses
import json
import pathlib

import pytest

from aejax import cli
from aejax.config import Config, all_keys, describe_fields
from aejax.data import load_dataset
from aejax.errors import ConfigError, DataError
from aejax.models import MODELS, create_model, model_from_config

DOCS = pathlib.Path(__file__).parent.parent / "docs" / "configuration.md"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"optimizer": "sgdd"}, "optimizer='sgdd' is not allowed: one of adam, adamw"),
        ({"optimizer": "adamm"}, "one of adam, adamw (did you mean 'adam'?)"),
        ({"latent_dim": 0}, "latent_dim=0 is not allowed: an integer >= 1"),
        ({"model": "vq_vae", "vq_decay": 1.0}, "vq_decay=1.0 is not allowed: a number in (0, 1)"),
        ({"val_fraction": 1.0}, "a number in [0, 1)"),
        ({"devices": 0}, "devices=0 is not allowed: an integer >= 1, or none"),
        ({"model": "conv_ae", "conv_features": ()}, "a non-empty list of integers >= 1"),
        ({"model": "vae", "beta": float("inf")}, "a finite number >= 0"),
        ({"activation": "gelo"}, "(did you mean 'gelu'?)"),
    ],
)
def test_a_bad_value_says_what_is_allowed(change, message):
    with pytest.raises(ConfigError) as e:
        Config().replace(**change)
    assert message in str(e.value)


def test_several_bad_values_are_one_error_naming_each():
    with pytest.raises(ConfigError) as e:
        Config().with_overrides(["optimizer=sgdd", "latent_dim=0", "schedule=cosin"])
    msg = str(e.value)
    assert "optimizer='sgdd'" in msg and "latent_dim=0" in msg
    assert (
        "schedule='cosin' is not allowed: one of cosine, constant (did you mean 'cosine'?)" in msg
    )


def test_edge_values_that_were_valid_stay_valid():
    c = Config(hidden=(), devices=None, warmup_steps=0, grad_clip=0.0, weight_decay=-1.0)
    assert c.hidden == () and c.warmup_steps == 0


def test_unknown_fields_suggest_the_nearest():
    msg = "unknown config field 'lattent_dim' (did you mean 'latent_dim'?)"
    for attempt in (
        lambda: Config().replace(lattent_dim=3),
        lambda: Config().with_overrides(["lattent-dim=3"]),
        lambda: Config.from_dict({"lattent_dim": 3}),
    ):
        with pytest.raises(ConfigError) as e:
            attempt()
        assert msg in str(e.value) and "aejax config" in str(e.value)


def test_model_names_are_case_insensitive_and_misspellings_suggested():
    assert Config(model="VAE").model == "vae"
    assert Config.from_dict(Config(model="Conv_VAE").to_dict()).model == "conv_vae"
    assert create_model("VAE", (4,), "gaussian", latent_dim=2).code.features == 4
    model_from_config(Config(model="VAE"), (4,), "tabular")
    args = cli._parser().parse_args(["train", "--model", "VAE", "--set", "beta=2"])
    assert cli.build_config(args).model == "vae"
    with pytest.raises(ConfigError) as e:
        create_model("vea", (4,), "gaussian")
    assert "unknown model 'vea' (did you mean 'vae'?); known models: ae, conv_ae," in str(e.value)


def test_unknown_data_spec_suggests_the_nearest_builtin():
    with pytest.raises(DataError, match=r"unknown data spec 'digit' \(did you mean 'digits'\?\)"):
        load_dataset("digit")


def test_every_field_is_documented():
    described = {f["name"]: f for f in describe_fields()}
    assert list(described) == list(all_keys())
    fields = [*dataclasses.fields(Config)]
    fields += [f for spec in MODELS.values() for f in dataclasses.fields(spec.options)]
    for f in fields:
        d = described[f.name]
        assert f.metadata.get("help"), f"{f.name} has no help line: use aejax.fields.field(...)"
        for key in ("help", "allowed", "type", "group"):
            assert d[key] and "\n" not in d[key], (f.name, key, d[key])
    groups = [d["group"] for d in described.values()]
    order = list(dict.fromkeys(groups))
    assert [g for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g] == order  # blocks
    known = [
        "model", "dense", "conv", "variational", "adversarial_ae", "vq_vae", "sparse_ae",
        "contractive_ae", "stacked_ae", "autorec", "seq2seq_ae", "data", "optimisation", "loop"
    ]  # fmt: skip
    assert [g for g in order if g in known] == known
    # A model registered later adds its own group, named after it, before the run's fields.
    added = [g for g in order if g not in known]
    assert set(added) <= set(MODELS) and order[-3:] == ["data", "optimisation", "loop"]


def test_activation_choices_are_the_ones_the_models_accept():
    from aejax.models._common import get_activation

    choices = {f["name"]: f for f in describe_fields()}["activation"]["choices"]
    assert "gelu" in choices
    for name in choices:
        get_activation(name)


def test_config_command_for_one_model(capsys):
    assert cli.main(["config", "--model", "vae"]) == 0
    out = capsys.readouterr().out
    assert "beta" in out and "latent_dim" in out and "lr" in out and "an integer >= 1" in out
    assert "codebook_size" not in out and "disc_hidden" not in out and "conv_features" not in out
    assert cli.main(["config", "--model", "vea"]) == 2
    assert "did you mean 'vae'?" in capsys.readouterr().err


def test_config_command_json(capsys):
    assert cli.main(["config", "--json"]) == 0
    fields = json.loads(capsys.readouterr().out)
    assert list(fields) == list(all_keys())
    for name, f in fields.items():
        assert {"type", "default", "allowed", "help"} <= set(f)
        owners = f["models"] or ["ae"]
        assert f["default"] == Config(model=owners[-1]).to_dict()[name]
    assert fields["optimizer"]["choices"] == ["adam", "adamw"]
    assert fields["beta"]["models"][:2] == ["vae", "conv_vae"] and fields["lr"]["models"] is None


def test_train_help_shows_choices_defaults_and_points_to_config(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(name in text for name in MODELS)
    assert "default 0.001" in text and "aejax config" in text and "--set KEY=VALUE" in text


def test_docs_configuration_is_current(capsys):
    assert cli.main(["config", "--markdown"]) == 0
    generated = capsys.readouterr().out
    assert DOCS.read_text() == generated, (
        "docs/configuration.md is stale: run `aejax config --markdown > docs/configuration.md`"
    )
    assert "aejax config --markdown" in DOCS.read_text().splitlines()[0]
