"""`udl embed`: 2-D maps of real test codes, their scores, reproducibility, VAE means, and one-line errors."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_error_line

from udlcli.cli.app import app
from udlcli.core.checkpoint import load_checkpoint
from udlcli.core.loading import load_run
from udlcli.data import load_dataset
from udlcli.tasks.embed.run import embed, scores, stratified_subset


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_pca_and_tsne_maps_are_written_and_scored(runner, latent_runs):
    test_y = load_dataset("mnist-sample").test.y.numpy()
    for method in ("pca", "tsne"):
        r = runner.invoke(
            app, ["embed", str(latent_runs["ae"]), "--method", method, "--n", "300", "-q"]
        )
        assert r.exit_code == 0, r.output
        assert "trustworthiness" in r.output and "5-NN accuracy" in r.output
        out = latent_runs["ae"] / "embed"
        assert (out / f"{method}_n300.png").stat().st_size > 10_000
        rows = _rows(out / f"{method}_n300.csv")
        idx = np.array([int(row["test_index"]) for row in rows])
        labels = np.array([int(row["label"]) for row in rows])
        assert len(rows) == 300 and len(set(idx)) == 300
        assert (
            labels == test_y[idx]
        ).all()  # the label column is the test split's label at that index
        assert (
            np.bincount(labels) == 30
        ).all()  # stratified: mnist-sample's test split has 100 of each digit
    pca, tsne = (
        json.loads((latent_runs["ae"] / "embed" / f"{m}_n300.json").read_text())
        for m in ("pca", "tsne")
    )
    for info in (pca, tsne):
        m = info["metrics"]
        assert info["n"] == 300 and info["latent_dim"] == 7
        assert m["knn5_latent"] > 0.3  # chance is 0.1
        assert -1 <= m["silhouette_latent"] <= 1 and -1 <= m["silhouette_map"] <= 1
        assert 0.5 < m["trustworthiness_k10"] <= 1
    assert (
        pca["metrics"]["knn5_latent"] == tsne["metrics"]["knn5_latent"]
    )  # same points, same codes
    # t-SNE keeps neighbourhoods that a linear 2-D projection of 7-D codes cannot.
    assert tsne["metrics"]["trustworthiness_k10"] > pca["metrics"]["trustworthiness_k10"]
    assert tsne["metrics"]["knn5_map"] > pca["metrics"]["knn5_map"]


@pytest.mark.slow  # three t-SNE runs: ~50 s on 2 cores
def test_same_seed_same_map(latent_runs, tmp_path):
    a = embed(latent_runs["ae"], method="tsne", n=200, seed=1)
    first = (latent_runs["ae"] / "embed" / "tsne_n200_seed1.csv").read_text()
    b = embed(latent_runs["ae"], method="tsne", n=200, seed=1)
    assert (latent_runs["ae"] / "embed" / "tsne_n200_seed1.csv").read_text() == first
    assert a.info["metrics"] == b.info["metrics"]
    embed(latent_runs["ae"], method="tsne", n=200, seed=2)
    assert (latent_runs["ae"] / "embed" / "tsne_n200_seed2.csv").read_text() != first


def test_other_settings_write_beside_the_earlier_map(latent_runs):
    out = latent_runs["vae"] / "embed"
    embed(latent_runs["vae"], method="pca")  # the whole test split: pca.*
    whole = (out / "pca.csv").read_text()
    embed(latent_runs["vae"], method="pca", n=100)
    embed(latent_runs["vae"], method="tsne", n=100, perplexity=20)
    assert (out / "pca.csv").read_text() == whole  # not replaced by the smaller maps
    assert len((out / "pca_n100.csv").read_text().splitlines()) == 101
    assert (out / "tsne_n100_perp20.json").is_file() and (out / "tsne_n100_perp20.png").is_file()


def test_vae_with_latent_dim_2_plots_its_means_directly(latent_runs):
    res = embed(latent_runs["vae"], method="tsne")
    assert res.info["kind"] == "vae" and "plotted directly" in res.info["implementation"]
    loaded = load_run(latent_runs["vae"], family="vae")
    test = load_dataset("mnist-sample").test
    with torch.no_grad():
        mu = loaded.model.posterior(test.images())[0].numpy()
    xy = np.array(
        [[float(r["x"]), float(r["y"])] for r in _rows(latent_runs["vae"] / "embed" / "tsne.csv")]
    )
    assert np.allclose(xy, mu, atol=1e-4)  # the map is the means, not samples of the posterior


def test_scores_separate_clusters_from_noise():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 50)
    centres = rng.normal(scale=20, size=(4, 5))
    codes = centres[y] + rng.normal(size=(200, 5))
    good = scores(codes, codes[:, :2], y)
    assert good["knn5_latent"] == 1.0 and good["silhouette_latent"] > 0.7
    shuffled = scores(codes, codes[:, :2], rng.permutation(y))
    assert shuffled["knn5_latent"] < 0.5 and shuffled["silhouette_latent"] < 0.1
    noise = scores(codes, rng.normal(size=(200, 2)), y)  # a map unrelated to the codes
    assert noise["trustworthiness_k10"] < good["trustworthiness_k10"] - 0.2


def test_stratified_subset_keeps_class_proportions():
    y = np.array([0] * 80 + [1] * 20)
    idx = stratified_subset(y, 50, seed=0)
    assert len(set(idx)) == 50 and np.bincount(y[idx]).tolist() == [40, 10]
    assert not np.array_equal(idx, stratified_subset(y, 50, seed=1))


def test_bad_input_is_one_line_and_writes_nothing(runner, latent_runs, tmp_path):
    # A run of another kind: the AE's own checkpoint relabelled as a classifier, so only the kind differs.
    other = tmp_path / "lenet"
    (other / "weights").mkdir(parents=True)
    payload = load_checkpoint(latent_runs["ae"] / "weights" / "best.pt")
    torch.save({**payload, "kind": "lenet"}, other / "weights" / "best.pt")
    fresh = (
        tmp_path / "fresh"
    )  # the same AE with no embed/ folder yet, outside the shared runs root
    fresh.mkdir()
    (fresh / "weights").symlink_to(latent_runs["ae"] / "weights")
    cases = {
        "not an AE or VAE": ([str(other)], "is a LeNet run: a LeNet cannot encode images"),
        "--n larger than the test split": (
            [str(fresh), "--n", "5000"],
            "larger than the test split",
        ),
        "unknown method": (
            [str(fresh), "--method", "umap"],
            "unknown method; choose one of pca, tsne",
        ),
        "perplexity with pca": (
            [str(fresh), "--method", "pca", "--perplexity", "20"],
            "--perplexity applies to --method tsne",
        ),
        "perplexity too large": (
            [str(fresh), "--n", "30", "--perplexity", "20"],
            "too large for 30 points",
        ),
        "no run at all": (["--out", str(tmp_path / "nothing")], "make one first (udl train ae"),
    }
    for label, (args, needle) in cases.items():
        r = runner.invoke(app, ["embed", *args])
        assert r.exit_code != 0, label
        assert needle in one_error_line(r), (label, r.output)
    assert not (other / "embed").exists() and not (fresh / "embed").exists()
