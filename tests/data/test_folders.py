"""folder:PATH datasets: colour detected, sizes kept or resized (and said), splits, and unreadable files."""

from __future__ import annotations

import numpy as np
import pytest
from photos import patches, write_folder
from PIL import Image

from udlcli.data import folders, load_dataset
from udlcli.errors import DataError


@pytest.fixture(scope="module")
def p32(tmp_path_factory):
    x, y, classes = patches(32, 6, seed=0)
    return write_folder(tmp_path_factory.mktemp("p32"), x, y, classes), x


def test_colour_is_detected_and_the_size_kept(p32, capsys):
    root, x = p32
    ds = load_dataset(f"folder:{root}")
    assert ds.shape == (3, 32, 32) and len(ds.classes) == 9
    assert "colour images found: read as rgb" in capsys.readouterr().out
    assert len(ds.train) + len(ds.test) == len(x)


def test_image_size_and_color_are_applied_and_said(p32, capsys):
    root, _ = p32
    ds = load_dataset(f"folder:{root}", image_size=48, color="gray")
    out = capsys.readouterr().out
    assert ds.shape == (1, 48, 48)
    assert "rgb images converted to gray" in out and "resized to 48x48" in out


def test_gray_pngs_saved_as_rgba_stay_gray(tmp_path):
    # matplotlib writes gray figures as RGBA: equal channels are not colour.
    for i in range(3):
        a = np.full((30, 30), 40 * i, np.uint8)
        Image.fromarray(np.stack([a, a, a, np.full_like(a, 255)], -1), "RGBA").save(
            tmp_path / f"{i}.png"
        )
    assert folders.probe(tmp_path / "0.png") == ((30, 30), False)
    assert load_dataset(f"folder:{tmp_path}").shape == (1, 30, 30)


def test_train_and_test_subfolders_are_the_splits(tmp_path):
    for split, n in (("train", 5), ("test", 2)):
        for c in ("a", "b"):
            d = tmp_path / split / c
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((28, 28), i * 20, np.uint8)).save(d / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert (len(ds.train), len(ds.test)) == (10, 4) and ds.classes == ["a", "b"]


def test_images_beyond_64_pixels_are_resized_to_the_default(tmp_path, capsys):
    for i in range(3):
        Image.fromarray(np.full((100, 80, 3), (i * 50, 0, 0), np.uint8)).save(tmp_path / f"{i}.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.shape == (3, 28, 28) and "3 image(s) resized to 28x28" in capsys.readouterr().out


def test_a_non_image_among_images_is_named(tmp_path):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG but cut short")
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        load_dataset(f"folder:{tmp_path}")


def test_a_16_bit_scan_is_scaled_not_clipped(tmp_path):
    # PIL's convert("L") clips 16-bit values at 255: a mid-grey 16-bit scan would read as white.
    import numpy as np
    from PIL import Image

    from udlcli.data.folders import read_image

    a = np.zeros((28, 28), np.uint16)
    a[:, 14:] = 32768  # half of 16-bit white
    Image.fromarray(a).save(tmp_path / "scan16.png")
    px, _ = read_image(tmp_path / "scan16.png", 28, 1)
    assert px.shape == (1, 28, 28)
    assert px[0, 0, 0] == 0 and abs(int(px[0, 0, 20]) - 128) <= 1
