"""Config: typed overrides, round trips and clear errors."""

import pytest

from aejax.config import Config
from aejax.errors import ConfigError


def test_overrides_are_coerced_to_field_types():
    c = Config().with_overrides(
        ["hidden=1000,500,250", "lr=3e-4", "progress=false", "devices=none", "epochs=7"]
    )
    assert c.hidden == (1000, 500, 250) and c.lr == 3e-4 and c.progress is False
    assert c.devices is None and c.epochs == 7


def test_json_round_trip_and_hashable():
    c = Config(hidden=(8, 4), latent_dim=2)
    assert Config.from_dict(c.to_dict()) == c
    assert hash(c) == hash(Config.from_dict(c.to_dict()))


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"latent_dim": 0}, "latent_dim=0"),
        ({"optimizer": "sgdx"}, "optimizer='sgdx'"),
        ({"val_fraction": 1.5}, "val_fraction"),
        ({"nonfinite": "ignore"}, "nonfinite"),
    ],
)
def test_invalid_values_are_named(change, match):
    with pytest.raises(ConfigError, match=match):
        Config().replace(**change)


def test_unknown_fields_and_unparsable_values():
    with pytest.raises(ConfigError, match="unknown config field"):
        Config().replace(latnet_dim=3)
    with pytest.raises(ConfigError, match="cannot read 'abc'"):
        Config().with_overrides(["epochs=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        Config().with_overrides(["epochs"])


def test_semantic_dict_ignores_presentation_fields():
    a = Config(progress=True, workdir="a").semantic_dict()
    b = Config(progress=False, workdir="b").semantic_dict()
    assert a == b
    assert Config(lr=1.0).semantic_dict() != Config(lr=2.0).semantic_dict()
