"""load_user_images: grayscale 28x28, resize and inversion flags, and one-line errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from udlcli.data.user_images import load_user_images
from udlcli.errors import DataError


def _digit(size: int, dark_on_light: bool) -> np.ndarray:
    """A plus sign drawn on a size x size canvas, white-on-black or black-on-white."""
    a = np.zeros((size, size), np.uint8)
    a[size // 4 : 3 * size // 4, size // 2 - size // 14 : size // 2 + size // 14 + 1] = 255
    a[size // 2 - size // 14 : size // 2 + size // 14 + 1, size // 4 : 3 * size // 4] = 255
    return 255 - a if dark_on_light else a


def test_resizes_inverts_and_reports(tmp_path):
    Image.fromarray(_digit(28, False)).save(tmp_path / "a_mnist_like.png")
    Image.fromarray(_digit(100, True)).convert("RGB").save(tmp_path / "b_scan.jpg")
    Image.fromarray(_digit(56, True)).save(tmp_path / "c_drawing.png")
    imgs = load_user_images([tmp_path / "a_mnist_like.png", str(tmp_path / "[bc]_*")])
    assert [p.name for p in imgs.paths] == ["a_mnist_like.png", "b_scan.jpg", "c_drawing.png"]
    assert imgs.x.shape == (3, 1, 28, 28) and imgs.x.dtype.is_floating_point
    assert 0.0 <= float(imgs.x.min()) and float(imgs.x.max()) <= 1.0
    assert imgs.sizes == [(28, 28), (100, 100), (56, 56)]
    assert imgs.resized == [False, True, True]
    assert imgs.inverted == [False, True, True]
    # after inversion every image is a white digit on black, like MNIST
    assert all(float(m) < 0.5 for m in imgs.x.mean(dim=(1, 2, 3)))
    # the untouched 28x28 image is its pixels / 255 exactly
    assert np.allclose(imgs.x[0, 0].numpy(), _digit(28, False) / 255.0)
    assert imgs.notes == [
        "2 images resized to 28x28, the run's size",
        "2 images were dark-on-light and were inverted (MNIST digits are white on black)",
    ]


@pytest.mark.parametrize(
    "dataset, inverts",
    [("mnist", True), ("mnist-sample", True), ("fashion-mnist", True), ("cifar10", False)]
    + [("folder:photos", False)],
)
def test_only_white_on_black_data_inverts_a_bright_image(tmp_path, dataset, inverts):
    # A gray run on photos (--color gray) must see a bright photo as it is, not as a negative.
    from udlcli.data.sources import light_on_dark

    Image.fromarray(_digit(28, True)).save(tmp_path / "bright.png")
    imgs = load_user_images([tmp_path / "bright.png"], (1, 28, 28), light_on_dark(dataset))
    assert imgs.inverted == [inverts]
    assert (float(imgs.x.mean()) < 0.5) == inverts
    assert any("inverted" in n for n in imgs.notes) == inverts


def test_folder_gives_its_images(tmp_path):
    Image.fromarray(_digit(28, False)).save(tmp_path / "one.png")
    (tmp_path / "readme.txt").write_text("not an image")
    imgs = load_user_images([tmp_path])
    assert [p.name for p in imgs.paths] == ["one.png"] and imgs.notes == []


@pytest.mark.parametrize(
    "make, expect",
    [
        (
            lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt",
            "notes.txt: not a readable image",
        ),
        (
            lambda d: (
                (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage") and d / "broken.png"
            ),
            "broken.png: not a readable image",
        ),
        (lambda d: d / "missing.png", "missing.png: no such file"),
        (lambda d: str(d / "*.webp"), "*.webp: the pattern matches no file"),
    ],
)
def test_bad_input_is_one_line_naming_the_file(tmp_path, make, expect):
    with pytest.raises(DataError) as e:
        load_user_images([make(tmp_path)])
    msg = str(e.value)
    assert expect in msg and "\n" not in msg
