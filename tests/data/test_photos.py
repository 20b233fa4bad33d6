"""The colour datasets' readers on real photo patches in each layout: CIFAR's pickles (read safely), SVHN, STL-10, CelebA."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from mirror import write_stl10
from photos import patches, write_cifar, write_svhn
from PIL import Image

from udlcli.data import load_dataset, photos
from udlcli.errors import DataError


@pytest.fixture(scope="module")
def x32():
    return patches(32, 12, seed=0)  # 108 real 3x32x32 patches, 9 classes


@pytest.fixture
def cifar(tmp_path, x32):
    x, y, classes = x32
    return write_cifar(tmp_path / "data", x[20:], y[20:], x[:20], y[:20], classes)


def test_cifar10_layout_reads_every_image_and_label(cifar, x32):
    x, y, classes = x32
    ds = load_dataset("cifar10", cifar)
    assert ds.shape == (3, 32, 32) and ds.classes == classes
    assert (
        torch.equal(ds.test.x, torch.from_numpy(x[:20])) and ds.test.y.tolist() == y[:20].tolist()
    )
    assert torch.equal(ds.train.x, torch.from_numpy(x[20:]))
    mean, std = ds.stats
    assert len(mean) == 3 and mean == pytest.approx((x[20:] / 255).mean(axis=(0, 2, 3)), abs=1e-4)


def test_cifar100_layout(tmp_path, x32):
    x, y, _ = x32
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    for name, idx in (("train", slice(20, None)), ("test", slice(0, 20))):
        with open(d / name, "wb") as f:
            pickle.dump(
                {
                    b"data": x[idx].reshape(len(x[idx]), -1),
                    b"fine_labels": [int(v) for v in y[idx]],
                },
                f,
            )
    with open(d / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [b"c%d" % i for i in range(100)]}, f)
    ds = load_dataset("cifar100", tmp_path)
    assert len(ds.classes) == 100 and len(ds.train) == len(x) - 20 and ds.shape == (3, 32, 32)


class _Evil:
    """What a malicious pickle does: its __reduce__ makes unpickling call a function of its choice."""

    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


def test_a_malicious_pickle_in_cifars_layout_runs_nothing(cifar, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    batch = cifar / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(pickle.dumps({b"data": _Evil(), b"labels": [0]}, protocol=2))
    with pytest.raises(DataError, match="refused to load posix.system|refused to load os.system"):
        load_dataset("cifar10", cifar)
    assert not (tmp_path / "PWNED").exists()


def test_plain_pickle_would_have_run_it(tmp_path, monkeypatch):
    # The control for the test above: the same bytes through plain pickle do run the command.
    monkeypatch.chdir(tmp_path)
    pickle.loads(pickle.dumps(_Evil()))
    assert (tmp_path / "PWNED").exists()


def test_a_truncated_cifar_batch_is_a_clear_error(cifar):
    batch = cifar / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:2000])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_dataset("cifar10", cifar)


class _BadCodec:
    """Unpickles through _codecs.encode (allowed: numpy arrays use it) with a codec that does not exist."""

    def __reduce__(self):
        import _codecs

        return (_codecs.encode, ("x", "no-such-codec"))


@pytest.mark.parametrize(
    "obj, name, message",
    [
        ({b"data": _BadCodec(), b"labels": [0]}, "data_batch_2", "corrupt or truncated"),
        ({b"data": None, b"labels": [0]}, "data_batch_2", "expected 'data' uint8"),
        (None, "data_batch_2", "not a CIFAR batch"),
        ("labels", "test_batch", "are not class numbers"),
        ({b"label_names": [b"cat"]}, "batches.meta", "a name for each of the 9 classes"),
    ],
)
def test_damaged_cifar_files_are_one_clear_error(cifar, obj, name, message):
    f = cifar / "cifar-10-batches-py" / name
    if obj == "labels":  # the images are fine, the labels are words
        d = pickle.loads(f.read_bytes(), encoding="bytes")
        obj = {b"data": d[b"data"], b"labels": [b"cat"] * len(d[b"data"])}
    f.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(DataError, match=message):
        load_dataset("cifar10", cifar)


def test_offline_cifar_names_the_files_to_place(tmp_path, offline):
    with pytest.raises(DataError, match="data_batch_1.*batches.meta.*cifar-10-batches-py"):
        load_dataset("cifar10", tmp_path)


def test_svhn_mat_layout_maps_label_10_to_digit_0(tmp_path, x32):
    x, y, _ = x32
    y = y % 10
    root = write_svhn(tmp_path, x[20:], y[20:], x[:20], y[:20])
    ds = load_dataset("svhn", root)
    assert (
        torch.equal(ds.test.x, torch.from_numpy(x[:20])) and ds.test.y.tolist() == y[:20].tolist()
    )
    assert 0 in ds.train.y.tolist()  # written as 10 on disk


def test_a_bad_svhn_file_is_a_clear_error(tmp_path, x32):
    x, y, _ = x32
    root = write_svhn(tmp_path, x[20:], y[20:], x[:20], y[:20])
    (root / "SVHN" / "test_32x32.mat").write_bytes(b"MATLAB 5.0 but not really")
    with pytest.raises(DataError, match="not a readable SVHN"):
        load_dataset("svhn", root)


def test_stl10_binary_labelled_and_unlabelled_resized_to_64(tmp_path):
    x96, y, _ = patches(96, 1, seed=2)  # 9 real 96x96 patches
    write_stl10(tmp_path, x96, y, unlabeled=x96[:6])
    ds = load_dataset("stl10", tmp_path)
    assert ds.shape == (3, 64, 64) and any("96x96 to 64x64" in n for n in ds.notes)
    assert ds.test.y.tolist() == y[:4].tolist()
    raw = photos.read_stl10(tmp_path)[0]
    assert np.array_equal(raw["test"][0], x96[:4])  # the column-major layout undone
    un = load_dataset("stl10-unlabeled", tmp_path, image_size=32)
    assert len(un.train) == 6 and (un.train.y == -1).all() and un.shape == (3, 32, 32)
    assert not un.labelled


def test_a_truncated_stl10_file(tmp_path):
    x96, y, _ = patches(96, 1, seed=2)
    write_stl10(tmp_path, x96, y)
    f = tmp_path / "stl10_binary" / "train_X.bin"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError, match="truncated"):
        load_dataset("stl10", tmp_path)


def test_celeba_layout_centre_crops_148_then_resizes(tmp_path):
    d = tmp_path / "celeba" / "img_align_celeba"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        face = rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)
        face[:35], face[-35:], face[:, :15], face[:, -15:] = (
            0,
            0,
            0,
            0,
        )  # outside the 148 crop: black
        face[35:-35, 15:-15] = np.maximum(face[35:-35, 15:-15], 60)  # inside: never black
        Image.fromarray(face).save(d / f"{i:06d}.jpg", quality=95)
        lines.append(f"{i:06d}.jpg {0 if i < 4 else 2}")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines))
    ds = load_dataset("celeba", tmp_path, image_size=64)
    assert ds.shape == (3, 64, 64) and (len(ds.train), len(ds.test)) == (4, 2)
    assert not ds.labelled
    # The crop kept only the bright inside: no black border survived the resize.
    assert ds.train.x.float().mean(dim=(0, 1))[[0, -1]].min() > 40


def test_celeba_splits_follow_the_partition_file_in_any_order(tmp_path):
    # Test faces in the middle of the list: each split must still hold exactly its own files' faces.
    d = tmp_path / "celeba" / "img_align_celeba"
    d.mkdir(parents=True)
    part = [0, 2, 0, 2, 1]
    for i in range(5):
        Image.fromarray(np.full((218, 178, 3), 40 * (i + 1), np.uint8)).save(d / f"{i}.png")
    (d.parent / "list_eval_partition.txt").write_text(
        "".join(f"{i}.png {p}\n" for i, p in enumerate(part))
    )
    ds = load_dataset("celeba", tmp_path, image_size=32)
    level = lambda split: [round(float(v) / 40) - 1 for v in split.x.float().mean(dim=(1, 2, 3))]  # noqa: E731
    assert level(ds.train) == [0, 2, 4] and level(ds.test) == [1, 3]


def test_celeba_bad_partition_file(tmp_path):
    (tmp_path / "celeba" / "img_align_celeba").mkdir(parents=True)
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text("000001.jpg train\n")
    with pytest.raises(DataError, match="list_eval_partition"):
        load_dataset("celeba", tmp_path)


def test_celeba_faces_are_decoded_once_into_the_user_cache(tmp_path, monkeypatch):
    d = tmp_path / "data" / "celeba" / "img_align_celeba"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)).save(d / f"{i}.jpg")
    (d.parent / "list_eval_partition.txt").write_text("0.jpg 0\n1.jpg 0\n2.jpg 2\n")
    first = load_dataset("celeba", tmp_path / "data", image_size=32)
    cached = list((tmp_path / "cache" / "udl" / "decoded").glob("celeba-32-*.npy"))
    assert len(cached) == 1
    assert not list((tmp_path / "data").rglob("*.npy"))  # nothing beside the data
    monkeypatch.setattr(photos, "_decode_celeba", lambda *a: pytest.fail("decoded again"))
    again = load_dataset("celeba", tmp_path / "data", image_size=32)
    assert torch.equal(first.train.x, again.train.x)
