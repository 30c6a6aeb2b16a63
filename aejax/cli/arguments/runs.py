"""The options of the commands on a trained run: ``sample``, ``interpolate``, ``encode``,
``embed``, ``restore``, ``probe`` and ``recommend``."""

from __future__ import annotations

import argparse

from aejax.cli.arguments import data_options, force_option, generate, seed_arg

HELP = {
    "sample": generate.SAMPLE,
    "interpolate": generate.INTERPOLATE,
    "encode": dict(help="write the codes of a trained run's data (.npy, .npz or .csv)"),
    "embed": dict(
        help="a 2-D view of a run's codes (PCA, t-SNE, UMAP): embedding.csv and embedding.png",
        description="Encode one split of a trained run's data, map the codes to 2-D and "
        "write embedding.csv (index,x,y[,label]) and embedding.png (coloured by label).",
    ),
    "restore": dict(
        help="denoise, inpaint or super-resolve a run's test images; PSNR/SSIM and PNG panels",
        description="Corrupt a trained image run's test split with the task's fixed protocol "
        "(denoise: gaussian:0.5; inpaint: a centre hole of half the side, and 50%% of the "
        "pixels at random; superres: 2x2 mean-pooling), restore it with the run and print "
        "the mean PSNR (dB) and SSIM of the corrupted and of the restored images.",
    ),
    "probe": dict(
        help="linear probe: logistic-regression accuracy on a run's codes, PCA codes and raw input",
        description="Fit scikit-learn's LogisticRegression (defaults, max_iter 2000) on a "
        "run's codes of the training and validation splits, on PCA codes of the same size and "
        "on the raw features, and print each one's accuracy on the test split (labels "
        "required).",
    ),
    "recommend": dict(
        help="an autorec run's top-k unseen items for a user, with their predicted ratings",
        description="Predict a user's ratings of every item with a trained autorec run on "
        "ratings:PATH data and print the k best the user has not rated. A user without "
        "training ratings gets the item-bias baseline's ranking (aejax.apps.recommend).",
    ),
}


def sample(g: argparse.ArgumentParser) -> None:
    generate.sample_arguments(g, seed_type=seed_arg)
    force_option(g)


def interpolate(i: argparse.ArgumentParser) -> None:
    generate.interpolate_arguments(i)
    force_option(i)


def encode(c: argparse.ArgumentParser) -> None:
    c.add_argument("workdir")
    c.add_argument(
        "--out",
        required=True,
        help="codes.npy ([N, K] float32), codes.npz or codes.csv; never an existing file "
        "without --force",
    )
    force_option(c)
    c.add_argument("--data", default=None, help="encode another dataset spec")
    c.add_argument(
        "--split",
        choices=("train", "val", "test", "all"),
        default="test",
        help="which split (default test; all = train, val, test in that order)",
    )
    data_options(c)


def embed(m: argparse.ArgumentParser) -> None:
    from aejax.apps.embed import MAX_POINTS, METHODS

    m.add_argument("workdir")
    m.add_argument(
        "--method",
        default="pca",
        metavar="|".join(METHODS),
        help="pca (default), tsne (scikit-learn), umap (pip install 'aejax[umap]'), or none "
        "(codes of size 2 as they are)",
    )
    m.add_argument("--split", choices=("train", "val", "test", "all"), default="test")
    m.add_argument(
        "--out",
        default=None,
        help="folder for the two files; existing ones in it only with --force (default: "
        "WORKDIR, replaced by each run)",
    )
    force_option(m)
    m.add_argument("--seed", type=seed_arg, default=0, help="subsample and method seed (default 0)")
    m.add_argument(
        "--max-points",
        type=int,
        default=MAX_POINTS,
        metavar="N",
        help=f"embed a seeded random N examples at most (default {MAX_POINTS}; 0: all)",
    )
    m.add_argument("--data", default=None, help="embed another dataset spec")
    data_options(m)
    m.add_argument("--json", action="store_true", help="print the result as JSON")


def restore(r: argparse.ArgumentParser) -> None:
    r.add_argument("workdir")
    r.add_argument("--task", required=True, choices=("denoise", "inpaint", "superres"))
    r.add_argument("--n", type=int, default=None, help="only the first N test images")
    r.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="inpaint: reconstructions, the known pixels kept each time (default: 10 for "
        "the centre hole, 1 for the random pixels)",
    )
    r.add_argument(
        "--out",
        default=None,
        help="folder for the PNG panels; existing panels in it only with --force (default: "
        "WORKDIR, replaced by each run)",
    )
    force_option(r)
    r.add_argument("--json", action="store_true", help="print the result as JSON")


def probe(pr: argparse.ArgumentParser) -> None:
    pr.add_argument("workdir")
    pr.add_argument("--max-iter", type=int, default=2000, help="lbfgs iterations (default 2000)")
    pr.add_argument(
        "--standardize",
        action="store_true",
        help="scale each feature on the training split first (default: scikit-learn's "
        "defaults, no scaling)",
    )
    pr.add_argument(
        "--fit-on",
        choices=("train+val", "train"),
        default="train+val",
        help="the examples the probe (and PCA) is fitted on (default train+val)",
    )
    pr.add_argument("--json", action="store_true", help="print the result as JSON")


def recommend(rc: argparse.ArgumentParser) -> None:
    rc.add_argument("workdir")
    rc.add_argument("--user", required=True, help="the user's id as in the ratings file")
    rc.add_argument("-k", type=int, default=10, help="how many items (default 10)")
    data_options(rc)
    rc.add_argument("--json", action="store_true", help="print the result as JSON")
