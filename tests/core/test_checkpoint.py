"""Checkpoints load with weights_only=True; corrupt or foreign files give a one-line CheckpointError."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from udlcli.core.checkpoint import load_checkpoint, save_checkpoint
from udlcli.errors import CheckpointError


def test_roundtrip(tmp_path):
    p = tmp_path / "w" / "last.pt"
    save_checkpoint(p, {"epoch": 3, "model": {"w": torch.ones(2)}, "spec": {"train": {"lr": 0.1}}})
    back = load_checkpoint(p)
    assert back["epoch"] == 3 and torch.equal(back["model"]["w"], torch.ones(2))
    assert not (tmp_path / "w" / "last.pt.tmp").exists()


def test_random_bytes(tmp_path):
    p = tmp_path / "bad.pt"
    p.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match="not a readable udl checkpoint") as e:
        load_checkpoint(p)
    assert "\n" not in str(e.value)


def test_truncated_checkpoint(tmp_path):
    p = tmp_path / "last.pt"
    save_checkpoint(p, {"epoch": 1, "model": {"w": torch.randn(1000)}})
    p.write_bytes(p.read_bytes()[:500])
    with pytest.raises(CheckpointError):
        load_checkpoint(p)


class Evil:
    """What a malicious pickle does: its __reduce__ makes unpickling call a function of its choice."""

    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_pickled_code_is_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the payload would leave its marker
    p = tmp_path / "evil.pt"
    torch.save(
        {"format": "udl-checkpoint/1", "payload": Evil()},
        p,
        pickle_protocol=pickle.DEFAULT_PROTOCOL,
    )
    with pytest.raises(CheckpointError, match="not a readable udl checkpoint"):
        load_checkpoint(p)
    assert not (tmp_path / "PWNED").exists()


def test_plain_torch_load_would_have_run_it(tmp_path, monkeypatch):
    # The control for the test above: the same file through torch.load without weights_only runs the command.
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.pt"
    torch.save({"format": "udl-checkpoint/1", "payload": Evil()}, p)
    torch.load(p, weights_only=False)
    assert (tmp_path / "PWNED").exists()


def test_foreign_torch_file(tmp_path):
    p = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}}, p)
    with pytest.raises(CheckpointError, match="not a udl checkpoint"):
        load_checkpoint(p)


def test_missing(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
