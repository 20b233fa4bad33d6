"""The conformance suite: every registered family, on real digits, meets the guarantees udl makes of a run.

For each family in udlcli.models.REGISTRY (its `tiny` overlay, mnist-sample, 2 epochs):

    train       a real training run fills its folder (spec.yaml, metrics.csv, summary.json, weights)
    resume      stopped after epoch 1 (Ctrl-C, in process) and resumed: the weights, and the EMA,
                optimiser and history, of a run never stopped; the default family is also killed
                with SIGKILL mid-epoch (test_sigkill_then_resume_is_exact)
    two_ranks   2 gloo ranks train to the weights of 1 process (one torchrun job for every family)
    export      every ONNX graph the family declares matches torch in onnxruntime, and the export loads back
    load        udlcli.load(run) holds the run's weights and does what the family can
    runs        `udl runs` lists the run, finished, with its key metric
    bad_spec    an unknown model field is one line and writes nothing

A family that cannot meet a check says so in its entry (`exempt`, with the reason); the suite then
checks the declaration instead. A family trained by `udl finetune` is put on a tiny AE run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO, one_error_line

from udlcli.core.checkpoint import load_checkpoint
from udlcli.core.contracts import Classifies, Exports, Generates, Reconstructs
from udlcli.core.lifecycle import RunOptions
from udlcli.core.spec import resolve_spec
from udlcli.models import REGISTRY

CHECKS = ("train", "resume", "two_ranks", "export", "load", "runs", "bad_spec")
FAMILIES = sorted(REGISTRY)
BASE = {
    "data.dataset": "mnist-sample",
    "data.limit": 192,
    "train.epochs": 2,
    "train.batch_size": 64,
    "train.device": "cpu",
    "train.seed": 5,
    "train.scheduler": "none",  # one run of 2 epochs and 1 + 1 resumed follow the same schedule
}


def flags_of(name: str, backbone: Path | None = None) -> dict:
    from udlcli.config import flatten

    family = REGISTRY[name]
    out = {**BASE, **flatten(family.tiny)}
    if family.command == "finetune":
        # udl finetune's spec holds the model's head fields in its finetune: section, beside the encoder run.
        out = {k.replace("model.", "finetune.", 1): v for k, v in out.items()}
        out["finetune.ae"] = str(backbone)
    return out


def make_run(
    name: str, root: Path, run_name: str, backbone: Path | None, epochs: int = 2, **more
) -> Path:
    """A real run of the family through its engine (udl train, or udl finetune on the backbone)."""
    flags = {**flags_of(name, backbone), "train.epochs": epochs, **more}
    opts = RunOptions(out=root, name=run_name)
    if REGISTRY[name].command == "finetune":
        from udlcli.tasks import finetune as ft

        return ft.finetune(ft.resolve_finetune_spec(None, flags), opts).run_dir
    from udlcli.tasks.train import train

    return train(resolve_spec(name, None, flags), opts).run_dir


def resume_run(name: str, run: Path) -> Path:
    family = REGISTRY[name]
    if family.command == "finetune":
        from udlcli.tasks import finetune as ft

        return ft.resume(run).run_dir
    from udlcli.tasks.train import resume

    return resume(run, command=family.command).run_dir


def skip_if_exempt(name: str, check: str) -> None:
    why = REGISTRY[name].exempt.get(check)
    if why:
        pytest.skip(f"{name} declares it cannot meet {check}: {why}")


@pytest.fixture(scope="module")
def backbone(tmp_path_factory) -> Path:
    """A tiny real AE run for the families `udl finetune` trains."""
    root = tmp_path_factory.mktemp("backbone")
    return make_run("ae", root, "backbone", None, epochs=1)


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("families")


@pytest.fixture(scope="module")
def finished(runs_root, backbone) -> dict[str, Path]:
    """Every family's 2-epoch run, trained once for the checks that read it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(runs_root / "cache"))
        return {name: make_run(name, runs_root, f"{name}-whole", backbone) for name in FAMILIES}


def test_exemptions_are_declared_with_reasons():
    for name, family in REGISTRY.items():
        for check, why in family.exempt.items():
            assert check in CHECKS, (name, check, "is not a conformance check")
            assert isinstance(why, str) and len(why.split()) >= 4, (name, check, "needs a reason")


@pytest.mark.parametrize("name", FAMILIES)
def test_train_fills_the_run_folder(name, finished):
    run = finished[name]
    for f in ("spec.yaml", "metrics.csv", "summary.json", "weights/last.pt"):
        assert (run / f).is_file(), f
    s = json.loads((run / "summary.json").read_text())
    assert s["status"] == "finished" and s["epochs"] == 2 and s["model"] == name
    ck = load_checkpoint(run / "weights" / "last.pt")
    assert ck["kind"] == name and ck["epoch"] == 2 and len(ck["history"]) == 2


@pytest.mark.parametrize("name", FAMILIES)
def test_resume_after_an_interruption_is_exact(name, finished, runs_root, backbone, monkeypatch):
    """Ctrl-C after epoch 1's checkpoint, then --resume: the run never stopped, bit for bit on the CPU."""
    skip_if_exempt(name, "resume")
    from udlcli.core.trainer import Trainer
    from udlcli.errors import Interrupted

    end_epoch = Trainer._end_epoch

    def stop_after_first(self, epoch, *a, **k):
        end_epoch(self, epoch, *a, **k)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_end_epoch", stop_after_first)
    with pytest.raises(Interrupted):
        make_run(name, runs_root, f"{name}-stopped", backbone)
    monkeypatch.setattr(Trainer, "_end_epoch", end_epoch)
    stopped = runs_root / REGISTRY[name].task / f"{name}-stopped"
    assert json.loads((stopped / "summary.json").read_text())["status"] == "interrupted"
    resume_run(name, stopped)
    a, b = (load_checkpoint(r / "weights" / "last.pt") for r in (finished[name], stopped))
    for key in ("model", "ema"):
        assert set(a.get(key) or {}) == set(b.get(key) or {})
        assert all(torch.equal(a[key][k], b[key][k]) for k in a.get(key) or {}), key
    strip = lambda h: [
        {k: v for k, v in r.items() if k not in ("time_s", "images_per_s")} for r in h
    ]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])


@pytest.mark.parametrize("name", FAMILIES)
def test_export_every_declared_graph(name, finished, tmp_path):
    skip_if_exempt(name, "export")
    import udlcli
    from udlcli.tasks.export import export

    loaded = udlcli.load(finished[name])
    if not isinstance(loaded.module, Exports):
        pytest.skip(f"{name} declares no graphs")
    declared = set(loaded.module.graphs())
    result = export(finished[name], "onnx", tmp_path / "onnx")
    assert {f.stem for f in result.files if f.suffix == ".onnx"} == declared
    assert set(result.checked) == declared and max(result.checked.values()) <= 1e-4, result.checked
    back = udlcli.load(tmp_path / "onnx")
    a, b = loaded.module.state_dict(), back.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", FAMILIES)
def test_load_round_trip_does_what_the_family_can(name, finished):
    skip_if_exempt(name, "load")
    import udlcli
    from udlcli.data import load_dataset

    run = finished[name]
    model = udlcli.load(run)
    best = load_checkpoint(
        run / "weights" / ("best.pt" if (run / "weights" / "best.pt").is_file() else "last.pt")
    )
    from udlcli.core.ema import scored_weights

    state = scored_weights(best)
    assert all(torch.equal(model.module.state_dict()[k], state[k]) for k in state)
    x = load_dataset("mnist-sample").test.x[:4]
    c, h, w = model.shape
    if isinstance(model.module, Reconstructs):
        assert model.reconstruct(x).shape == (4, c, h, w)
    if isinstance(model.module, Classifies):
        assert model.classify(x).shape == (4,)
    if isinstance(model.module, Generates):
        a, b = model.sample(3, seed=1), model.sample(3, seed=1)
        assert a.shape == (3, c, h, w) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1


def test_runs_lists_every_family(finished, runs_root):
    from udlcli.tasks.runs import list_runs

    listed = {Path(r.path).name: r for r in list_runs(runs_root)}
    for name in FAMILIES:
        if REGISTRY[name].exempt.get("runs"):
            continue
        info = listed[f"{name}-whole"]
        assert (info.status, info.epochs, info.epochs_planned) == ("finished", 2, 2), name
        assert info.metric is not None and info.value is not None, name
        if REGISTRY[name].key_metric:
            assert info.metric == REGISTRY[name].key_metric[1], name


@pytest.mark.parametrize("name", FAMILIES)
def test_a_bad_spec_is_one_line(name, runner, tmp_path):
    skip_if_exempt(name, "bad_spec")
    from udlcli.cli.app import app

    r = runner.invoke(
        app, ["train", name, "--set", "model.no_such_field=1", "--out", str(tmp_path / "runs")]
    )
    assert r.exit_code == 2 and "model.no_such_field: unknown key" in one_error_line(r)
    assert not (tmp_path / "runs").exists()


KILLED_AT_STEP = """
import os, signal, sys
from torch.optim.optimizer import register_optimizer_step_post_hook
steps = 0
def kill(*_):
    global steps
    steps += 1
    if steps == int(os.environ["KILL_AT_STEP"]):
        os.kill(os.getpid(), signal.SIGKILL)
register_optimizer_step_post_hook(kill)
from udlcli.cli.app import main
sys.argv[0] = "udl"
main()
"""


@pytest.fixture
def one_thread():
    """torch on one thread, as the killed run's process: the same reduction order, the same bits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_sigkill_then_resume_is_exact(tmp_path, runner, one_thread):
    """kill -9 a run of the default family (the AE) in epoch 3 of 4, mid-epoch; --resume ends with the
    weights and history of the same run never stopped (its cosine schedule included)."""
    from udlcli.cli.app import app
    from udlcli.models import default

    name = default().name
    # 480 training images in batches of 32: 15 steps an epoch; the default cosine schedule over 4 epochs.
    args = ["train", name, "--dataset", "mnist-sample", "--limit", "600", "--channels", "4"]
    args += ["--batch-size", "32", "--epochs", "4", "--device", "cpu", "-q"]
    ref = runner.invoke(app, [*args, "--out", str(tmp_path / "ref")])
    assert ref.exit_code == 0, ref.output
    env = {**os.environ, "OMP_NUM_THREADS": "1", "KILL_AT_STEP": "38"}  # epoch 3, its 8th step
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT_STEP, *args, "--out", str(tmp_path / "killed")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run = tmp_path / "killed" / name / name
    assert load_checkpoint(run / "weights" / "last.pt")["epoch"] == 2
    resumed = runner.invoke(app, ["train", "--resume", str(run), "-q"])
    assert resumed.exit_code == 0, resumed.output
    a = load_checkpoint(tmp_path / "ref" / name / name / "weights" / "last.pt")
    b = load_checkpoint(run / "weights" / "last.pt")
    assert a["epoch"] == b["epoch"] == 4
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k

    def strip(history):
        return [
            {k: v for k, v in r.items() if k not in ("time_s", "images_per_s")} for r in history
        ]

    assert strip(a["history"]) == strip(b["history"])


# ---------------------------------------------------------------- 2 ranks = 1 process, one job for every family


RANKS_SCRIPT = """
import sys
from pathlib import Path

sys.path.insert(0, {tests!r})
from models.test_families import make_run  # noqa: E402

from udlcli.core import distributed  # noqa: E402

# One job trains every family in turn: rank 1 keeps going after each run instead of ending there.
distributed.rest_on_main = lambda: None
out, backbone, names = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
for name in names:
    make_run(name, out, name, backbone, epochs=1, **{{"train.precision": "32"}})
distributed.exit_rank(0)
"""


@pytest.mark.timeout(600)
def test_two_ranks_train_as_one_process(backbone, tmp_path):
    names = [n for n in FAMILIES if not REGISTRY[n].exempt.get("two_ranks")]
    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT.format(tests=str(REPO / "tests")))
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    r = subprocess.run(
        [*cmd, str(script), str(tmp_path / "two"), str(backbone), *names],
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    worst = {}
    for name in names:
        # float32 on both sides: bf16 (--precision auto's choice for some families on a CPU with
        # bf16 units) rounds a batch split in two shards differently, by about 1e-3
        one = make_run(
            name, tmp_path / "one", name, backbone, epochs=1, **{"train.precision": "32"}
        )
        two = tmp_path / "two" / REGISTRY[name].task / name
        a, b = (load_checkpoint(p / "weights" / "last.pt") for p in (one, two))
        assert b["world_size"] == 2
        worst[name] = max(
            float((a["model"][k].float() - b["model"][k].float()).abs().max()) for k in a["model"]
        )
    assert all(w <= 1e-5 for w in worst.values()), worst
