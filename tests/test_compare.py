"""``aejax compare`` and ``aejax.compare`` on fabricated run directories (no training):
mean ± std against a hand computation, the best marked, CSV/Markdown, the curves figure,
files never overwritten, and one-line errors for paths that are not runs."""

from __future__ import annotations

import csv
import json
import math

import matplotlib.image
import pytest

import aejax
from aejax import cli

# latent_dim -> seed -> (test_recon_mse, test_psnr, test_kl, pca_recon_mse)
VALUES = {
    4: {0: (0.30, 10.0, 5.0, 0.40), 1: (0.32, 9.0, 6.0, 0.40), 2: (0.37, 8.5, 4.0, 0.40)},
    8: {0: (0.20, 12.0, 7.0, 0.25), 1: (0.26, 11.0, 7.5, 0.25), 2: (0.23, 11.5, 6.5, 0.25)},
}


def _fake_run(path, latent_dim, seed, values, epochs=3):
    """A run directory as ``aejax train`` leaves it, with made-up numbers."""
    (path / "checkpoints").mkdir(parents=True)
    config = {"model": "vae", "latent_dim": latent_dim, "hidden": [16], "lr": 0.001}
    config.update(seed=seed, workdir=str(path), progress=False)
    (path / "config.json").write_text(json.dumps(config))
    mse, psnr, kl, pca = values
    summary = {"model": "vae", "latent_dim": latent_dim, "seed": seed, "epochs": epochs}
    summary.update(test_recon_mse=mse, test_psnr=psnr, test_kl=kl, pca_recon_mse=pca)
    summary.update(pca_components=latent_dim, compile_seconds=1.0, warnings=[])
    (path / "summary.json").write_text(json.dumps(summary))
    lines = [
        {"epoch": e, "train_loss": 50.0 / e + seed, "train_kl": 1.0 + e, "val_loss": 60.0 / e}
        for e in range(1, epochs + 1)
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


@pytest.fixture
def runs(tmp_path):
    return [
        _fake_run(tmp_path / f"k{k}-s{s}", k, s, v)
        for k, seeds in VALUES.items()
        for s, v in seeds.items()
    ]


def _hand(values):
    n = len(values)
    mean = sum(values) / n
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


def test_mean_and_sample_std_per_setting_match_a_hand_computation(runs):
    rows = aejax.compare(runs)
    assert [r["latent_dim"] for r in rows] == [4, 8]
    # The settings are the fields that differ: not the seed, nor the workdir.
    assert list(rows[0])[:4] == ["model", "latent_dim", "n", "seeds"]
    for row in rows:
        k = row["latent_dim"]
        assert row["n"] == 3 and row["seeds"] == "0,1,2"
        for i, metric in enumerate(("test_recon_mse", "test_psnr", "test_kl")):
            mean, std = _hand([VALUES[k][s][i] for s in range(3)])
            assert row[f"{metric}_mean"] == pytest.approx(mean, rel=1e-12)
            assert row[f"{metric}_std"] == pytest.approx(std, rel=1e-12)
        assert row["pca_recon_mse_std"] == 0.0  # the same baseline for every seed
    # Lower MSE and higher PSNR are better; the KL has no direction: never marked.
    assert rows[0]["best"] == "" and rows[1]["best"] == "test_recon_mse test_psnr pca_recon_mse"
    assert all(isinstance(v, str | int | float | type(None)) for r in rows for v in r.values())
    per_run = aejax.compare(runs, per_run=True, metrics="test_recon_mse")
    assert len(per_run) == 6 and per_run[3]["seed"] == 0 and per_run[3]["test_recon_mse"] == 0.20
    assert per_run[3]["best"] == "test_recon_mse" and per_run[3]["run"] == str(runs[3])


def test_rows_go_into_a_dataframe_as_they_are(runs):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(aejax.compare(runs))
    assert frame.shape[0] == 2 and frame["test_recon_mse_mean"].dtype.kind == "f"


def test_cli_table_markdown_csv_and_curves(runs, tmp_path, capsys):
    out_csv, out_png = tmp_path / "table.csv", tmp_path / "curves.png"
    argv = ["compare", *map(str, runs), "--csv", str(out_csv), "--curves", str(out_png)]
    assert cli.main(argv) == 0
    table = capsys.readouterr().out
    assert "0.33 ± 0.036" in table and "0.23 ± 0.03 *" in table  # latent 4's mean; 8's best
    with open(out_csv) as f:
        written = list(csv.DictReader(f))
    rows = aejax.compare(runs)
    assert [float(r["test_recon_mse_mean"]) for r in written] == [
        r["test_recon_mse_mean"] for r in rows
    ]
    assert written[1]["best"] == rows[1]["best"]
    image = matplotlib.image.imread(out_png)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400
    assert cli.main(["compare", *map(str, runs), "--markdown", "--metrics", "test_*"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0] == "| model | latent_dim | n | test_recon_mse | test_psnr | test_kl |"
    assert md[3].startswith("| vae | 8 | 3 | **0.23 ± 0.03** | **11.5 ± 0.5** | 7 ± 0.5 |")


def test_never_overwrites_a_users_file_without_force(runs, tmp_path, capsys):
    mine = tmp_path / "mine.csv"
    mine.write_text("my own data\n")
    assert cli.main(["compare", str(runs[0]), "--csv", str(mine)]) == 2
    err = capsys.readouterr().err
    assert "exists: refusing to overwrite it" in err and len(err.splitlines()) == 1
    assert mine.read_text() == "my own data\n"
    assert cli.main(["compare", str(runs[0]), "--csv", str(mine), "--force"]) == 0
    assert mine.read_text().startswith("model,n,seeds,")
    # Nor a run's own records: its curves.png is the run's.
    assert cli.main(["compare", str(runs[0]), "--curves", str(runs[0] / "curves.png")]) == 2
    assert "refusing to write into the run's records" in capsys.readouterr().err


def test_a_sweeps_unfinished_runs_are_left_out_with_a_warning(runs, tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    names = ["a", "b"]
    _fake_run(sweep / "a", 4, 0, VALUES[4][0])
    (sweep / "b" / "checkpoints").mkdir(parents=True)  # interrupted: no summary.json
    manifest = {"aejax_sweep": 1, "runs": [{"name": n, "settings": {}, "seed": 0} for n in names]}
    (sweep / "sweep.json").write_text(json.dumps(manifest))
    with pytest.warns(UserWarning, match="1 of its 2 runs have not finished"):
        rows = aejax.compare([sweep, runs[0]])  # the same numbers twice, two runs
    assert rows[0]["n"] == 2


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "nope", "no such run or sweep directory"),
        (lambda p: p, "is neither a run directory (config.json and checkpoints/) nor a sweep"),
        (lambda p: _unfinished(p), "has no summary.json: the run has not finished"),
        (lambda p: _broken(p), "summary.json is unreadable"),
    ],
)
def test_a_path_that_is_not_a_finished_run_or_sweep_is_one_line(tmp_path, capsys, make, message):
    assert cli.main(["compare", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_an_unknown_metric_names_those_there_are(runs, capsys):
    assert cli.main(["compare", str(runs[0]), "--metrics", "test_mse"]) == 2
    err = capsys.readouterr().err
    assert "metric 'test_mse' is in no summary; there are test_recon_mse, test_psnr" in err


def _unfinished(path):
    (path / "run" / "checkpoints").mkdir(parents=True)
    (path / "run" / "config.json").write_text("{}")
    return path / "run"


def _broken(path):
    run = _fake_run(path / "run", 4, 0, VALUES[4][0])
    (run / "summary.json").write_text("{not json")
    return run
