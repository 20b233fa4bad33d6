"""`udl denoise` end to end on small real data: train + evaluate, --eval, --compare, --like, and --input on image files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_error_line
from PIL import Image
from typer.testing import CliRunner

from udlcli.cli.app import app

TINY = ["--dataset", "mnist-sample", "--channels", "4", "--latent-dim", "3", "-q"]


def invoke(*args: str):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """A tiny plain AE and a tiny DAE (4 channels, 3 latent dims) trained on the mnist-sample digits, compared."""
    root = tmp_path_factory.mktemp("denoise") / "runs"
    invoke("train", "ae", *TINY, "--limit", "500", "--epochs", "1", "--out", root)
    out = invoke(
        "denoise",
        *TINY,
        "--limit",
        "2000",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--out",
        root,
        "--compare",
        root / "ae" / "ae",
    ).output
    return {"root": root, "ae": root / "ae" / "ae", "dae": root / "denoise" / "dae", "output": out}


def test_writes_a_training_run_folder_with_the_denoising_table_and_figures(trained):
    run = trained["dae"]
    for f in (
        "spec.yaml",
        "metrics.csv",
        "weights/best.pt",
        "figures/loss.png",
        "figures/reconstructions.png",
        "figures/noise_types.png",
        "figures/denoised.png",
    ):
        assert (run / f).is_file() and (run / f).stat().st_size > 0, f
    s = json.loads((run / "summary.json").read_text())
    assert (
        s["model"] == "dae" and s["epochs"] == 2 and "test_mse" in s
    )  # the shared trainer's summary is kept
    table = s["denoise"]
    assert list(table["rows"]) == ["none", "gaussian", "saltpepper", "both"]
    assert table["compare"] == str(trained["ae"]) and table["test_images"] == 1000
    for row in table["rows"].values():
        assert set(row) >= {"noisy", "dae", "ae"}
        assert 0 < row["dae"]["ssim"] <= 1 and 0 < row["ae"]["ssim"] <= 1
    assert table["rows"]["none"]["noisy"] == {"psnr": None, "ssim": pytest.approx(1.0)}
    # noisier inputs score lower: both noises at once is the hardest
    assert table["rows"]["both"]["noisy"]["psnr"] < min(
        table["rows"][k]["noisy"]["psnr"] for k in ("gaussian", "saltpepper")
    )
    assert "salt & pepper" in trained["output"] and "gain dB" in trained["output"]


def test_the_dae_cleans_heavy_noise_better_than_the_noisy_input(trained):
    rows = json.loads((trained["dae"] / "summary.json").read_text())["denoise"]["rows"]
    # Even after 100 steps on 2,000 digits the DAE's output is closer to the clean digit than the noisy input.
    assert rows["both"]["gain_db"] > 1.0
    assert rows["both"]["dae"]["psnr"] == pytest.approx(
        rows["both"]["noisy"]["psnr"] + rows["both"]["gain_db"]
    )


def test_eval_reproduces_the_numbers_and_other_noise_gets_its_own_entry(trained):
    run = trained["dae"]
    before = json.loads((run / "summary.json").read_text())["denoise"]
    invoke("denoise", "--eval", run, "--compare", trained["ae"], "--sigma", "0.5", "-q")
    s = json.loads((run / "summary.json").read_text())
    assert s["denoise"] == before  # the run's own entry is kept
    again = s["denoise_sigma0.5_p0.2_salt0.5"]["rows"]
    assert (run / "figures" / "denoised_sigma0.5_p0.2_salt0.5.png").is_file()
    # Clean inputs and salt-and-pepper do not depend on sigma: same seed, same best checkpoint, same numbers.
    assert (
        again["none"] == before["rows"]["none"]
        and again["saltpepper"] == before["rows"]["saltpepper"]
    )
    # Half the sigma is a quarter of the noise power: about 6 dB less noise (a little less, through clamping).
    assert again["gaussian"]["noisy"]["psnr"] > before["rows"]["gaussian"]["noisy"]["psnr"] + 4


def test_like_copies_the_ae_architecture(trained):
    from udlcli.errors import SpecError
    from udlcli.tasks.denoise.run import denoise_spec

    spec = denoise_spec(None, {}, None, like=trained["ae"])
    assert (spec.model.name, spec.model.channels, spec.model.latent_dim) == ("dae", 4, 3)
    with pytest.raises(SpecError, match="--like"):
        denoise_spec(None, {"model.channels": 8}, None, like=trained["ae"])


def _write_digit_pngs(folder: Path, n: int = 4) -> tuple[list[Path], torch.Tensor]:
    """Test digits saved as 56x56 dark-on-light PNGs with salt-and-pepper noise, like a dirty scan; returns clean digits."""
    from udlcli.data import load_dataset
    from udlcli.data.noise import NoiseConfig, add_noise

    clean = load_dataset("mnist-sample").test.images(torch.arange(n))
    noisy = add_noise(
        clean, NoiseConfig(noise="saltpepper", p=0.1), generator=torch.Generator().manual_seed(0)
    )
    folder.mkdir(parents=True)
    paths = []
    for i, img in enumerate(noisy):
        a = ((1 - img[0].numpy()) * 255).round().astype(np.uint8)
        p = folder / f"scan_{i}.png"
        Image.fromarray(a, mode="L").resize((56, 56), Image.NEAREST).save(p)
        paths.append(p)
    return paths, clean


def test_input_cleans_user_images_into_another_folder(trained, tmp_path):
    paths, clean = _write_digit_pngs(tmp_path / "scans")
    before = {p: p.read_bytes() for p in paths}
    out = tmp_path / "clean"
    # as a shell passes `--input scans/*.png`: the first file after --input, the rest as arguments
    r = invoke("denoise", "--input", *paths, "--out", out, "--run", trained["dae"])
    assert "inverted" in r.output
    for p in paths:
        assert p.read_bytes() == before[p]  # inputs untouched
        with Image.open(out / p.name) as im:
            assert im.size == (28, 28) and im.mode == "L"
            a = np.asarray(im, dtype=np.float32) / 255
        assert a.mean() > 0.5  # given back in the input's polarity (dark on light)
    invoke(
        "denoise",
        "--input",
        str(tmp_path / "scans" / "*.png"),
        "--out",
        tmp_path / "big",
        "--keep-size",
        "--run",
        trained["dae"],
    )
    with Image.open(tmp_path / "big" / "scan_0.png") as im:
        assert im.size == (56, 56)
    # Cleaning into a folder that already holds those names refuses, naming the first, and writes nothing ...
    written = {f: f.read_bytes() for f in (tmp_path / "big").iterdir()}
    r = CliRunner().invoke(
        app,
        [
            "denoise",
            "--input",
            str(tmp_path / "scans" / "*.png"),
            "--out",
            str(tmp_path / "big"),
            "--run",
            str(trained["dae"]),
        ],
    )
    assert (
        r.exit_code == 2
        and "scan_0.png already exists (and 3 more); pass --overwrite" in one_error_line(r)
    )
    assert {f: f.read_bytes() for f in (tmp_path / "big").iterdir()} == written
    # ... unless --overwrite is given: then the 28x28 outputs replace the 56x56 ones.
    invoke(
        "denoise",
        "--input",
        str(tmp_path / "scans" / "*.png"),
        "--out",
        tmp_path / "big",
        "--overwrite",
        "--run",
        trained["dae"],
    )
    with Image.open(tmp_path / "big" / "scan_0.png") as im:
        assert im.size == (28, 28)


def test_input_uses_the_newest_dae_and_refuses_the_inputs_folder(trained, tmp_path, monkeypatch):
    paths, _ = _write_digit_pngs(tmp_path / "scans", n=2)
    monkeypatch.chdir(trained["root"].parent)  # runs/ here holds the DAE: found without --run
    invoke("denoise", "--input", paths[0], "--out", tmp_path / "clean")
    assert (tmp_path / "clean" / "scan_0.png").is_file()
    r = CliRunner().invoke(
        app, ["denoise", "--input", str(paths[0]), str(paths[1]), "--out", str(tmp_path / "scans")]
    )
    assert r.exit_code != 0 and "is the folder of the input" in r.output
    assert sorted(p.name for p in (tmp_path / "scans").iterdir()) == ["scan_0.png", "scan_1.png"]
