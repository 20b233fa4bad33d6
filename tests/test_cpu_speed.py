"""benchmarks/cpu_speed.py (issue #34) at its smallest, so the CPU speed benchmark cannot rot: every
variant's training and sampling images/s, the ratios against fp32, the machine it names, bf16's
loss parity, and the default runs' command lines parsed by udl's CLI."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "cpu_speed.py"
spec = importlib.util.spec_from_file_location("cpu_speed", SCRIPT)
cpu_speed = importlib.util.module_from_spec(spec)
sys.modules["cpu_speed"] = cpu_speed  # its dataclasses look their module up there
spec.loader.exec_module(cpu_speed)

VARIANTS = ["fp32", "channels-last", "bf16", "compile"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[dict, str]:
    """One run of `cpu_speed.py --tiny --families ae,flow --parity --markdown --json OUT`, one thread."""
    tmp = tmp_path_factory.mktemp("cpu_speed")
    out = tmp / "speed.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(tmp / "cache")}
    args = ["--tiny", "--families", "ae,flow", "--parity", "--markdown", "--json", str(out)]
    p = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(out.read_text()), p.stdout


def test_every_variant_of_each_family_is_timed_against_fp32(tiny):
    r, _ = tiny
    assert list(r["families"]) == ["ae", "flow"]
    assert r["settings"]["compile_backend"] == "eager"  # --tiny: traced, not compiled to C++
    for name, fam in r["families"].items():
        for what in ("train", "sample"):  # both families generate
            rows = fam[what]
            assert list(rows) == VARIANTS, (name, what)
            base = rows["fp32"]["images_per_s"]
            for v, row in rows.items():
                assert row["images_per_s"] > 0, (name, what, v, row)
                assert row["vs_fp32"] == pytest.approx(row["images_per_s"] / base), (name, what, v)
                assert row["steps"] == 2 and row["warmup_steps"] == 1
            assert rows["fp32"]["vs_fp32"] == 1.0
            assert rows["fp32"]["layout"] == "contiguous"
            assert {rows[v]["layout"] for v in VARIANTS[1:]} == {"channels_last"}
            assert rows["bf16"]["precision"] == "bf16"
            assert "compile_s" in rows["compile"] and "compile_s" not in rows["fp32"]
        t = fam["train"]["compile"]
        # The compile time is counted apart and in the total of every step, warm-up included.
        assert 0 <= t["compile_s"] <= t["total_s"] and t["total_steps"] == 3
        assert t["total_images_per_s"] == pytest.approx(fam["batch"] * 3 / t["total_s"])
        assert fam["batch"] == 16 and fam["parameters"] > 0
    assert r["families"]["flow"]["bf16_pays"] and not r["families"]["ae"]["bf16_pays"]
    assert r["families"]["flow"]["sampler"] == "Euler, 20 steps"


def test_the_machine_and_its_bf16_units_are_recorded(tiny):
    from udlcli.core.fastpath import cpu_bf16_units

    r, out = tiny
    m = r["machine"]
    assert isinstance(m["cpu"], str) and m["cpu"]
    assert m["bf16_units"] == cpu_bf16_units()
    assert m["threads"] == 1 and m["cores"] >= 1 and m["torch"]
    assert f"CPU: {m['cpu']}; bf16 units: {m['bf16_units'] or 'none'}" in out
    # --markdown: a table for docs/ headed by the CPU.
    assert f"### {m['cpu']} ({m['bf16_units'] or 'no bf16 units'}), 1 thread" in out
    assert "| family | variant | layout | batch | train img/s | vs fp32 |" in out
    assert "| flow | bf16 | channels_last | 16 |" in out


def test_bf16_loss_is_within_the_stated_tolerance_of_fp32(tiny):
    r, out = tiny
    p = r["parity"]
    assert p["tolerance"] == cpu_speed.PARITY_TOL == 0.05 and p["dataset"] == "mnist-sample"
    assert list(p["families"]) == ["flow", "simclr"]
    for name, row in p["families"].items():
        assert math.isfinite(row["fp32_loss"]) and row["fp32_loss"] > 0, name
        assert row["relative"] == pytest.approx(row["bf16_loss"] / row["fp32_loss"] - 1)
        assert row["within"] is (abs(row["relative"]) <= 0.05)
        assert row["within"], (name, row)  # a few steps of a tiny model: bf16 barely moves it
    assert "within 5%: yes" in out


def test_default_runs_are_command_lines_udl_takes(tmp_path):
    out, j = tmp_path / "runs", tmp_path / "r.json"
    args = ["--no-speed", "--default-runs", "--dry-run", "--out", str(out), "--json", str(j)]
    assert cpu_speed.main(args) == 0
    d = json.loads(j.read_text())["default_runs"]
    assert d["dry_run"] is True
    rows = d["commands"]
    assert [c["command"] for c in rows] == [
        "train flow --precision 32",
        "train flow --precision bf16",
        "train simclr --precision 32",
        "train simclr --precision bf16",
        "evaluate flow",
        "probe simclr fp32",
        "probe simclr bf16",
    ]
    assert all(c["exit"] is None and c["error"] == "" for c in rows), rows
    assert rows[4]["line"] == f"udl evaluate {out}/flow/fp32 {out}/flow/bf16 --device cpu -q"
    assert rows[1]["line"].endswith(f"--out {out} --name bf16")
    # Nothing ran: no runs, no numbers.
    assert not out.exists()
    assert d["numbers"]["bf16"] == {
        "flow_fid": None,
        "simclr_linear_probe": None,
        "simclr_knn200_cosine": None,
    }


def test_variants_are_interleaved_after_a_warm_up_each():
    calls: list[str] = []
    timed = [
        cpu_speed.Timed(v, lambda n=v.name: calls.append(n), 8, 1 if v.name == "bf16" else 3)
        for v in cpu_speed.VARIANTS
    ]
    rows = cpu_speed.interleaved(timed, warmup=1)
    warm, rounds = calls[:4], calls[4:]
    assert warm == VARIANTS
    assert rounds == VARIANTS + ["fp32", "channels-last", "compile"] * 2  # bf16 capped at 1 step
    assert rows["bf16"]["steps"] == 1 and rows["fp32"]["steps"] == 3
    assert all(r["images_per_s"] > 0 for r in rows.values())


def test_an_unknown_family_is_refused():
    with pytest.raises(SystemExit) as e:
        cpu_speed.main(["--families", "ae,resnet"])
    assert e.value.code == 2
