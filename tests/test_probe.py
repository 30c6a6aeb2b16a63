"""The linear probe: logistic regression on a run's codes, PCA codes and raw features."""

import json

import pytest
from _configs import SMALL

import aejax
from aejax import cli
from aejax.apps.probe import linear_probe
from aejax.data import Dataset


@pytest.fixture(scope="module")
def trained(digits, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("probe") / "run"
    result = aejax.train_run(SMALL.replace(epochs=2), workdir, dataset=digits)
    return workdir, result


def test_three_accuracies_of_a_run(trained, digits):
    workdir, result = trained
    out = linear_probe(workdir)
    for key in ("codes_accuracy", "pca_accuracy", "raw_accuracy"):
        assert 0.0 <= out[key] <= 1.0
    assert out["raw_accuracy"] > 0.9  # 64 pixels of sklearn's digits are nearly separable
    assert out["code_size"] == out["pca_components"] == SMALL.latent_dim
    assert out["raw_features"] == 64
    n_pool = digits.x_train.shape[0] + digits.x_val.shape[0]  # fitted on train + val
    assert (out["n_fit"], out["n_test"]) == (n_pool, digits.x_test.shape[0])
    assert out["converged"] == {"codes": True, "pca": True, "raw": True}
    # A Run, a RunResult and the directory give the same answer, and so does a rerun.
    same = ("codes_accuracy", "pca_accuracy", "raw_accuracy")
    for other in (aejax.load_run(workdir), result, workdir):
        again = linear_probe(other, dataset=digits)
        assert {k: again[k] for k in same} == {k: out[k] for k in same}


def test_options_standardize_fit_on_and_iteration_cap(trained, digits):
    _, result = trained
    scaled = linear_probe(result, standardize=True, fit_on="train")
    assert scaled["standardize"] and 0.9 < scaled["raw_accuracy"] <= 1.0
    assert scaled["n_fit"] == digits.x_train.shape[0]
    with pytest.raises(aejax.DataError, match="fit_on"):
        linear_probe(result, fit_on="test")
    capped = linear_probe(result, max_iter=1)  # reported, not raised (warnings are errors)
    assert capped["converged"]["raw"] is False and capped["iterations"]["raw"] == 1


def test_data_without_labels_is_refused(trained, digits):
    _, result = trained
    unlabeled = Dataset("digits", "image", digits.x_train, digits.x_val, digits.x_test)
    with pytest.raises(aejax.DataError, match="no labels"):
        linear_probe(result, dataset=unlabeled)


def test_cli_probe(trained, capsys):
    workdir, _ = trained
    assert cli.main(["probe", str(workdir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["raw_accuracy"] > 0.9
    assert cli.main(["probe", str(workdir)]) == 0
    text = capsys.readouterr().out
    assert "PCA-8 codes" in text and "raw input (64)" in text and "accuracy" in text
    assert cli.main(["probe", str(workdir / "missing")]) == 2
    assert "aejax probe: error:" in capsys.readouterr().err
