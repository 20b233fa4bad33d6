"""benchmarks/gpu_check.py on the CPU, so the one GPU check cannot rot between GPU runs: every command
line parsed by udl's CLI, the fast paths and the throughput measured at their smallest."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check  # its dataclass looks its module up there
spec.loader.exec_module(gpu_check)

ASKED = [  # issue 25: every command, one short epoch each
    "train ae", "train vae", "train dae", "denoise", "finetune", "finetune --unfreeze", "gan",
    "gan --arch dcgan", "tune ae, 4 trials, 2 workers", "embed", "sample ae", "sample vae",
    "sample gan", "evaluate", "export onnx", "export safetensors",
    # issues 27 and 28: the diffusion and self-supervised families on the device
    "train ddpm --precision bf16", "train flow --conditional --precision bf16", "sample ddpm",
    "sample flow --class 3 --guidance 2", "evaluate ddpm flow", "train simclr", "train byol",
    "probe simclr", "reproduce --profile quick",
]  # fmt: skip


def result(out: Path) -> dict:
    assert (out / "gpu_check.md").is_file()
    return json.loads((out / "gpu_check.json").read_text())


def test_dry_run_parses_every_command_line(tmp_path):
    out = tmp_path / "check"
    assert gpu_check.main(["--dry-run", "--device", "cpu", "--out", str(out)]) == 0
    r = result(out)
    assert [c["command"] for c in r["commands"]] == ASKED
    assert all(c["exit"] is None and c["error"] == "" for c in r["commands"] + r["fastpath"])
    assert [f["variant"] for f in r["fastpath"]] == ["fp32", "bf16", "compile"]
    t = r["throughput"]
    assert 3e6 < t["flops_per_image"] < 4e6  # the default AE: 3.36 MFLOP forward and backward
    assert [(x["variant"], x["batch"]) for x in t["rows"]][:3] == [
        ("fp32", 256),
        ("fp32", 1024),
        ("fp32", 4096),
    ]
    assert "| command | result | command line |" in (out / "gpu_check.md").read_text()


def test_a_command_line_the_cli_does_not_take_fails_the_check(tmp_path, monkeypatch):
    real = gpu_check.commands
    monkeypatch.setattr(
        gpu_check, "commands", lambda c: [*real(c), ("made up", ["train", "ae", "--epoch", "1"])]
    )
    out = tmp_path / "check"
    assert gpu_check.main(["--dry-run", "--device", "cpu", "--out", str(out)]) == 1
    (bad,) = [c for c in result(out)["commands"] if c["exit"] is not None]
    assert bad["command"] == "made up" and "No such option: --epoch" in bad["error"]


def test_the_cards_peaks_and_an_unknown_card():
    assert gpu_check.peak_of("NVIDIA H200") == {"fp32": 67.0, "tf32": 494.5, "bf16": 989.5}
    assert gpu_check.peak_of("NVIDIA H100 PCIe")["bf16"] == 756.0
    assert gpu_check.peak_of("NVIDIA H100 80GB HBM3")["bf16"] == 989.5
    assert gpu_check.peak_of("NVIDIA L40S")["bf16"] == 362.0  # not L4's
    assert gpu_check.peak_of("NVIDIA GeForce GTX 1080") is None


def test_tiny_fast_paths_and_throughput_measure_on_the_cpu(tmp_path):
    out = tmp_path / "check"
    args = ["--device", "cpu", "--tiny", "--only", "fastpath,throughput", "--out", str(out)]
    assert gpu_check.main(args) == 0
    r = result(out)
    fp32, bf16, compiled = r["fastpath"]
    assert fp32["exit"] == bf16["exit"] == 0 and 0 < fp32["test_mse"] < 1
    assert bf16["within_bar"] is True and abs(bf16["vs_fp32"]) <= 0.05
    assert compiled["exit"] is None  # a CPU compiles each shape for ~40 s: parsed, not run
    measured = {(x["variant"], x["batch"]): x["images_per_s"] for x in r["throughput"]["rows"]}
    assert all(measured[v, b] > 0 for v in ("fp32", "bf16") for b in (32, 128))
    assert measured["compile", 32] is None
    assert all(c["exit"] is None for c in r["commands"])  # parsed, not run


@pytest.mark.slow
def test_tiny_runs_every_command_on_the_cpu(tmp_path):
    out = tmp_path / "check"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--out", str(out)]) == 0
    r = result(out)
    assert [(c["command"], c["exit"]) for c in r["commands"]] == [(a, 0) for a in ASKED]


def test_the_anchor_is_parsed_by_default_and_runs_tiny_on_the_cpu(tmp_path):
    dry = tmp_path / "dry"
    assert gpu_check.main(["--dry-run", "--device", "cpu", "--out", str(dry)]) == 0
    a = result(dry)["anchor"]
    assert [c["command"] for c in a["commands"]] == ["train simclr, ResNet-18", "probe"]
    line = a["commands"][0]["line"]
    # lightly's setting: CIFAR-10, the ResNet-18 layout at width 64, 200 epochs of batch 512.
    for words in (
        "--dataset cifar10",
        "model.backbone=resnet",
        "model.width=64",
        "--epochs 200",
        "--batch-size 512",
        "data.val_fraction=0.01",
    ):
        assert words in line, line
    assert a["knn"] is None and all(c["exit"] is None for c in a["commands"])
    out = tmp_path / "tiny"
    assert gpu_check.main(["--device", "cpu", "--tiny", "--only", "anchor", "--out", str(out)]) == 0
    a = result(out)["anchor"]
    assert all(c["exit"] == 0 for c in a["commands"]), a
    probe = json.loads((out / "anchor" / "simclr" / "anchor" / "probe.json").read_text())
    assert a["knn"] == probe["knn200_cosine"] and 0.1 < a["knn"] <= 1
    assert a["reached"] is False  # one epoch of 200 digits is not lightly's 0.848
    assert "kNN (k = 200, cosine)" in (out / "gpu_check.md").read_text()
