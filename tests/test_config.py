"""Spec loading and validation: YAML errors, unknown keys, bad values, overrides."""

from __future__ import annotations

import pytest

from udlcli.config import parse_set
from udlcli.core.spec import resolve_spec
from udlcli.errors import SpecError


def test_defaults_are_the_reports_best_ae():
    spec = resolve_spec("ae")
    assert (spec.model.channels, spec.model.latent_dim) == (12, 7)
    assert spec.train.optimizer == "adam"
    assert spec.train.lr == pytest.approx(0.002218)
    assert spec.train.weight_decay == pytest.approx(1.01e-5)
    assert spec.data.val_fraction == 0.2
    # udl's budget (the report gives none): 40 epochs of batch 64 with a cosine schedule (docs/finetune.md)
    assert (spec.train.batch_size, spec.train.epochs, spec.train.scheduler) == (64, 40, "cosine")


def test_layering_yaml_then_flags_then_set(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("model: {name: ae, channels: 8}\ntrain: {epochs: 3, lr: 0.01}\n")
    spec = resolve_spec(
        None,
        str(f),
        {"train.epochs": 5, "model.latent_dim": None},
        ["train.lr=1e-3", "model.latent_dim=4"],
    )
    assert spec.model.channels == 8  # from the file
    assert spec.train.epochs == 5  # the flag beats the file
    assert spec.train.lr == pytest.approx(1e-3)  # --set beats both
    assert spec.model.latent_dim == 4


def test_optimizer_name_case_is_ignored():
    assert resolve_spec("ae", sets=["train.optimizer=Adam"]).train.optimizer == "adam"


@pytest.mark.parametrize(
    "yaml_text, needle",
    [
        ("train: {epochs: -1}\n", "train.epochs"),
        ("model: {name: ae, latent_dim: seven}\n", "model.latent_dim"),
        ("train: {epocs: 3}\n", "train.epocs: unknown key (allowed: epochs"),
        ("bogus: 1\n", "bogus: unknown key"),
        (
            "model: {name: ae, chanels: 3}\n",
            "model.chanels: unknown key (allowed: name, channels, latent_dim)",
        ),
        ("train: {optimizer: adagrad}\n", "train.optimizer"),
        ("data: {dataset: cifar}\n", "unknown dataset 'cifar'"),
    ],
)
def test_bad_values_name_the_field(tmp_path, yaml_text, needle):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml_text)
    with pytest.raises(SpecError) as e:
        resolve_spec(None, str(f))
    msg = str(e.value)
    assert needle in msg
    assert "\n" not in msg
    assert e.value.exit_code == 2


def test_unparsable_yaml_gives_line(tmp_path):
    f = tmp_path / "broken.yaml"
    f.write_text("train:\n  epochs: [1, 2\n")
    with pytest.raises(SpecError, match=r"not valid YAML at line \d+"):
        resolve_spec(None, str(f))


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="spec file not found"):
        resolve_spec(None, str(tmp_path / "nope.yaml"))


def test_conflicting_model_names(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("model: {name: ae}\n")
    with pytest.raises(SpecError) as e:
        resolve_spec("vae", str(f))
    assert str(e.value) == (f"the command names model 'vae' but {f} has model.name 'ae'; drop one")
    assert e.value.exit_code == 2
    assert resolve_spec("ae", str(f)).model.name == "ae"  # the same name twice is no conflict


def test_unknown_model():
    with pytest.raises(SpecError, match="unknown model 'vqvae'"):
        resolve_spec("vqvae")


def test_parse_set():
    assert parse_set("train.lr=1e-3") == {"train": {"lr": 1e-3}}
    assert parse_set("data.dataset=folder:/tmp/x") == {"data": {"dataset": "folder:/tmp/x"}}
    assert parse_set("model.channels=16") == {"model": {"channels": 16}}
    with pytest.raises(SpecError):
        parse_set("train.lr")


def test_run_spec_yaml_reads_back(tmp_path):
    """A run's spec.yaml (with its meta: block) is accepted as --config as it is."""
    from udlcli.core import runs
    from udlcli.core.spec import spec_to_dict

    spec = resolve_spec("ae", sets=["train.epochs=3"])
    runs.write_spec(tmp_path, spec_to_dict(spec), {"command": "udl train ae"})
    again = resolve_spec(None, str(tmp_path / "spec.yaml"))
    assert again == spec
