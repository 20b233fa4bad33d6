"""The EMA of the weights (train.ema) on real digits: it averages, it is scored and loaded, and a resumed run continues it exactly."""

from __future__ import annotations

import json

import torch

from udlcli.core.checkpoint import load_checkpoint
from udlcli.core.ema import EMA
from udlcli.core.loading import load_run
from udlcli.core.spec import resolve_spec
from udlcli.tasks.train import RunOptions, resume, train

FLAGS = {
    "data.dataset": "mnist-sample",
    "data.limit": 200,
    "model.channels": 4,
    "train.batch_size": 32,
    "train.device": "cpu",
    "train.ema": 0.9,
    "train.scheduler": "none",  # a cosine schedule over 1 epoch is another run than over 2
}


def test_the_average_warms_up_then_follows_the_weights():
    net = torch.nn.Linear(3, 2)
    ema = EMA(net, 0.75)
    w0 = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update()  # the first update warms up: d = min(0.75, 2 / 11), so it moves 9/11 of the way
    torch.testing.assert_close(ema.state_dict()["weight"], w0 + 9 / 11)
    ema.updates = 1000  # warmed up: d is the decay itself
    avg = ema.state_dict()["weight"].clone()
    ema.update()
    want = 0.75 * avg + 0.25 * (w0 + 1)
    torch.testing.assert_close(ema.state_dict()["weight"], want)
    with ema.swapped():
        torch.testing.assert_close(net.weight, want)
    torch.testing.assert_close(net.weight, w0 + 1.0)  # its own weights back after the block


def test_ema_is_checkpointed_scored_loaded_and_resumed_exactly(tmp_path):
    whole = train(
        resolve_spec("ae", flags={**FLAGS, "train.epochs": 2}),
        RunOptions(out=tmp_path, name="whole"),
    )
    first = train(
        resolve_spec("ae", flags={**FLAGS, "train.epochs": 1}),
        RunOptions(out=tmp_path, name="split"),
    )
    again = resume(first.run_dir, epochs=2)
    a, b = (load_checkpoint(r.run_dir / "weights" / "last.pt") for r in (whole, again))
    assert set(a["ema"]) == set(a["model"]) | {"_ema_updates"}
    assert (
        int(a["ema"]["_ema_updates"]) == int(b["ema"]["_ema_updates"]) == 2 * 5
    )  # 160 digits at batch 32: 5 steps an epoch
    assert all(torch.equal(a["ema"][k], b["ema"][k]) for k in a["ema"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    # The average is not the weights, and it is what a loaded run holds (samples, exports, the API).
    key = "to_latent.weight"
    assert not torch.equal(a["ema"][key], a["model"][key])
    best = load_checkpoint(whole.run_dir / "weights" / "best.pt")
    loaded = load_run(whole.run_dir)
    assert torch.equal(loaded.model.state_dict()[key], best["ema"][key])
    # The test numbers are the average's: the summary's test loss is the loaded model's MSE on the test split.
    from udlcli.data import load_dataset

    test = load_dataset("mnist-sample").test
    with torch.no_grad():
        mse = sum(
            float(((loaded.model.reconstruct(x) - x) ** 2).mean()) * len(x)
            for x, _ in test.batches(500)
        ) / len(test)
    s = json.loads((whole.run_dir / "summary.json").read_text())
    assert abs(s["test"]["loss"] - mse) < 1e-5 and abs(s["test_mse"] - mse) < 1e-5


def test_buffers_are_copied_not_averaged_and_a_checkpoint_without_a_count_is_warm():
    """Batch norm's running statistics are the model's own, copied at every update (an average of
    them would describe no weights); a checkpoint from before the warmup resumes at full decay."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = EMA(net, 0.5)
    ema.updates = 1000
    net(torch.randn(16, 3) * 5 + 2)  # training mode: the running statistics move
    avg_w = ema.state_dict()["0.weight"].clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    ema.update()
    s = ema.state_dict()
    torch.testing.assert_close(s["1.running_mean"], net[1].running_mean)  # copied, exactly
    torch.testing.assert_close(s["1.running_var"], net[1].running_var)
    assert int(s["1.num_batches_tracked"]) == 1
    torch.testing.assert_close(s["0.weight"], 0.5 * avg_w + 0.5 * net[0].weight)  # averaged
    old = {k: v for k, v in s.items() if k != "_ema_updates"}  # written before the count existed
    fresh = EMA(net, 0.5)
    fresh.load_state_dict(old)
    assert fresh.updates == 1_000_000
    fresh.load_state_dict(s)
    assert fresh.updates == 1001


def test_the_scored_weights_are_the_average_when_there_is_one():
    from udlcli.core.ema import scored_weights

    own, avg = {"w": torch.zeros(2)}, {"w": torch.ones(2), "_ema_updates": torch.tensor(3)}
    assert scored_weights({"model": own}) is own
    assert scored_weights({"model": own, "ema": None}) is own
    got = scored_weights({"model": own, "ema": avg})
    assert set(got) == {"w"} and torch.equal(got["w"], torch.ones(2))
