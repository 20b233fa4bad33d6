"""--device and --devices: resolution, the round-robin of tuning workers, and one-line errors."""

from __future__ import annotations

import pytest
import torch

from udlcli.core.device import parse_devices, resolve_device, round_robin
from udlcli.errors import DeviceError


def test_round_robin_puts_two_workers_on_each_of_four_gpus():
    gpus = [f"cuda:{i}" for i in range(4)]
    assert round_robin(gpus, 8) == gpus + gpus
    assert round_robin(["cpu"], 3) == ["cpu", "cpu", "cpu"]


def test_parse_devices_checks_each_entry():
    assert parse_devices("cpu, cpu") == ["cpu", "cpu"]
    for bad, words in (
        ("gpu0", "not a device"),
        ("cpu:1", "not a device"),
        ("", "comma-separated"),
    ):
        with pytest.raises(DeviceError, match=words):
            parse_devices(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_a_gpu_that_is_not_there_is_one_line():
    with pytest.raises(DeviceError, match="^--devices cuda:0,cuda:1: CUDA is not available"):
        parse_devices("cuda:0,cuda:1")
    with pytest.raises(DeviceError, match="CUDA is not available"):
        resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_an_index_past_the_last_gpu_names_how_many_there_are():
    n = torch.cuda.device_count()
    with pytest.raises(DeviceError, match=f"has {n} GPU"):
        parse_devices(f"cuda:{n}")
