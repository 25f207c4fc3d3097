"""The training cell on a tiny dataset: fastai's own fine_tune, its history, determinism, and weight loading."""

import os
import subprocess
import sys

import pytest
import torch

from epochbench import data, train

FT = dict(base_lr=2e-3, freeze_epochs=1, lr_mult=100, pct_start=0.3, div=5.0)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    spec = dict(name="digits", classes=["0", "1", "2"], train_size=48, label_noise=0.0,
                valid_fraction=0.15, test_fraction=0.15, split_seed=0)
    data.prepare_dataset(spec, 16, folder)
    return folder


def test_history_covers_frozen_and_unfrozen_epochs(tiny_data):
    rows, seconds, final = train.fine_tune_cell(tiny_data, "test_resnet", 3, seed=0, pretrained="none",
                                                fine_tune_args=dict(FT, freeze_epochs=2), batch_size=16)
    assert [(r["phase"], r["epoch"]) for r in rows] == [
        ("frozen", 1), ("frozen", 2), ("unfrozen", 1), ("unfrozen", 2), ("unfrozen", 3)]
    assert len(seconds) == 5 and all(s > 0 for s in seconds)
    # fine_tune halves base_lr for the unfrozen fit, whose one-cycle schedule ends far below its peak.
    unfrozen_lrs = [r["lr"] for r in rows if r["phase"] == "unfrozen"]
    assert max(unfrozen_lrs) <= FT["base_lr"] / 2 and unfrozen_lrs[-1] < max(unfrozen_lrs) / 10
    # The final validation metrics are those of the last epoch; the test split is evaluated apart.
    assert final["valid_accuracy"] == pytest.approx(rows[-1]["accuracy"])
    assert final["valid_loss"] == pytest.approx(rows[-1]["valid_loss"])
    assert final["n_test"] > 0 and 0 <= final["test_accuracy"] <= 1
    assert (final["architecture"], final["n"], final["seed"]) == ("test_resnet", 3, 0)


def test_same_seed_same_numbers_other_seed_other_numbers(tiny_data):
    def run(seed):
        rows, _, final = train.fine_tune_cell(tiny_data, "test_resnet", 1, seed=seed, pretrained="none",
                                              fine_tune_args=FT, batch_size=16)
        return rows, final

    first, again, other = run(0), run(0), run(1)
    assert first == again
    assert first[0] != other[0]


def test_pretrained_body_round_trips_and_bad_files_name_their_path(tiny_data, tmp_path):
    weights = tmp_path / "body.pt"
    result = train.pretrain_body(tiny_data, "test_resnet", weights, epochs=1, lr=1e-3, batch_size=16)
    assert weights.is_file() and 0 <= result["source_valid_accuracy"] <= 1
    saved = torch.load(weights, weights_only=True)

    dls, _ = train.make_dataloaders(data.load_prepared(tiny_data), 16, "cpu")
    learn = train.make_learner("test_resnet", dls, 3, str(weights))
    for key, value in learn.model[0].state_dict().items():
        assert torch.equal(value, saved[key]), key

    with pytest.raises(train.WeightsError, match="body.pt.*does not fit"):
        train.make_learner("resnet18", dls, 3, str(weights))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a state dict")
    with pytest.raises(train.WeightsError, match="garbage.pt"):
        train.make_learner("test_resnet", dls, 3, str(garbage))


def test_torchvision_imagenet_weights_come_from_the_torch_hub_cache(tiny_data, tmp_path, monkeypatch):
    """The real ImageNet path (torchvision's weights download) served from a local TORCH_HOME fixture."""
    import torchvision

    fixture = torchvision.models.resnet18().state_dict()
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(fixture, checkpoints / url.rsplit("/", 1)[1])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    dls, _ = train.make_dataloaders(data.load_prepared(tiny_data), 16, "cpu")
    learn = train.make_learner("resnet18", dls, 3, "imagenet")
    assert torch.equal(learn.model[0][0].weight, fixture["conv1.weight"])
    assert torch.equal(learn.model[0][4][0].conv1.weight, fixture["layer1.0.conv1.weight"])


def test_timm_imagenet_weights_come_from_the_hugging_face_cache(tiny_data, tmp_path):
    """The real timm path (pretrained weights from the Hugging Face hub) served offline from a cache fixture."""
    script = f"""
import timm, torch, safetensors.torch, pathlib
from epochbench import data, train
name = "test_resnet"
cfg = timm.models.get_pretrained_cfg(name)
fixture = timm.create_model(name, num_classes=0).state_dict()
snapshot = pathlib.Path({str(tmp_path)!r}) / "hub" / ("models--" + cfg.hf_hub_id.replace("/", "--"))
(snapshot / "refs").mkdir(parents=True)
(snapshot / "refs" / "main").write_text("0" * 40)
files = snapshot / "snapshots" / ("0" * 40)
files.mkdir(parents=True)
safetensors.torch.save_file(fixture, str(files / "model.safetensors"))
dls, _ = train.make_dataloaders(data.load_prepared({str(tiny_data)!r}), 16, "cpu")
learn = train.make_learner(name, dls, 3, "imagenet")
body = learn.model[0].model.state_dict()
assert all(torch.equal(body[k], v) for k, v in fixture.items()), "weights differ from the cache fixture"
print("loaded", len(fixture), "tensors")
"""
    env = dict(os.environ, HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded" in result.stdout
