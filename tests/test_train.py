"""The training cell on a tiny dataset: fastai's own fine_tune, its history, determinism, and weight loading."""

import json
import math
import os
import subprocess
import sys
import warnings
from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
import torch
from fastai.callback.core import Callback
from fastai.callback.fp16 import MixedPrecision
from fastai.vision.core import imagenet_stats

from epochbench import data, train
from epochbench.jobs import LearnerSettings

FT = dict(base_lr=2e-3, freeze_epochs=1, lr_mult=100, pct_start=0.3, div=5.0)
BATCH_16 = LearnerSettings(batch_size=16)
BATCH_8_CPU = LearnerSettings(batch_size=8, device="cpu")


def frozen_job(cell: dict, checkpoint) -> None:
    """Rule frozen_fit's job for `cell`, its learner settings handed over as plain data, as a job's spec holds them."""
    train.frozen_job(dict(cell=dict(cell, settings=asdict(cell["settings"])), checkpoint=checkpoint))


def test_history_covers_frozen_and_unfrozen_epochs(tiny_data):
    rows, seconds, final = train.train_cell(tiny_data, "test_resnet", 3, seed=0, pretrained="none",
                                            fine_tune_args=dict(FT, freeze_epochs=2), settings=BATCH_16)
    assert [(r["fit"], r["phase"], r["epoch"]) for r in rows] == [
        (1, "frozen", 1), (1, "frozen", 2), (2, "unfrozen", 1), (2, "unfrozen", 2), (2, "unfrozen", 3)]
    assert len(seconds) == 5 and all(s > 0 for s in seconds)
    # fine_tune halves base_lr for the unfrozen fit, whose one-cycle schedule ends far below its peak.
    unfrozen_lrs = [r["lr"] for r in rows if r["phase"] == "unfrozen"]
    assert max(unfrozen_lrs) <= FT["base_lr"] / 2 and unfrozen_lrs[-1] < max(unfrozen_lrs) / 10
    # The final metrics are those of the last epoch; the test split is scored at every epoch.
    assert final["valid_accuracy"] == pytest.approx(rows[-1]["valid_accuracy"])
    assert final["valid_loss"] == pytest.approx(rows[-1]["valid_loss"])
    assert final["test_accuracy"] == rows[-1]["test_accuracy"] and final["test_loss"] == rows[-1]["test_loss"]
    assert final["n_test"] > 0 and all(0 <= r["test_accuracy"] <= 1 for r in rows)
    assert (final["strategy"], final["architecture"], final["n"], final["seed"]) == ("fine_tune", "test_resnet", 3, 0)
    assert final["epochs_trained"] == 5


def test_per_epoch_test_metrics_match_fastai_validate(tiny_data):
    """The callback's own test pass agrees with fastai's `learn.validate` on the same weights."""
    train.seed_everything(0, 1)
    prepared, learn, history = train.seeded_learner(tiny_data, "test_resnet", "none", "", BATCH_8_CPU)
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-3)
        learn.remove_cb(history)
        loss, accuracy = learn.validate(dl=history.test_dl)
    assert history.rows[-1]["test_loss"] == pytest.approx(float(loss), rel=1e-5)
    assert history.rows[-1]["test_accuracy"] == pytest.approx(float(accuracy))
    assert len(history.test_dl.dataset) == int((prepared.splits == data.TEST).sum())


def body_parameters(learn):
    """The body's weights outside batch norm: fastai's `freeze` keeps batch-norm layers training (train_bn=True)."""
    norm = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)
    return [p.detach().clone() for m in learn.model[0].modules() if not isinstance(m, norm)
            for p in m.parameters(recurse=False)]


def test_head_only_follows_fine_tunes_schedule_with_the_body_frozen(tiny_data, monkeypatch):
    args = dict(FT, freeze_epochs=1)
    ft_rows, _, _ = train.train_cell(tiny_data, "test_resnet", 2, seed=0, pretrained="none", fine_tune_args=args,
                                     settings=BATCH_16)
    trained = {}
    real_train_strategy = train.train_strategy

    def spy(learn, strategy, n, fine_tune_args, from_scratch_lr=None):
        before = body_parameters(learn)
        real_train_strategy(learn, strategy, n, fine_tune_args, from_scratch_lr)
        trained[strategy] = (before, body_parameters(learn))

    monkeypatch.setattr(train, "train_strategy", spy)
    head_rows, _, final = train.train_cell(tiny_data, "test_resnet", 2, seed=0, pretrained="none",
                                           fine_tune_args=args, strategy="head_only", settings=BATCH_16)
    assert [r["lr"] for r in head_rows] == pytest.approx([r["lr"] for r in ft_rows])
    assert [(r["fit"], r["phase"]) for r in head_rows] == [(1, "frozen"), (2, "frozen"), (2, "frozen")]
    before, after = trained["head_only"]
    assert before and all(torch.equal(a, b) for a, b in zip(before, after))
    assert final["strategy"] == "head_only" and final["epochs_trained"] == 3


class OptimizerStateAtFit(Callback):
    """Whether Adam's moments are there when each fit starts (fastai's unfreeze() clears them)."""

    def __init__(self):
        self.has_state = []

    def before_fit(self):
        self.has_state.append(any("sqr_avg" in state for state in self.opt.state.values()))


@pytest.mark.parametrize("strategy", ["fine_tune", "head_only"])
def test_optimizer_state_is_cleared_between_the_two_fits(tiny_data, monkeypatch, strategy):
    probe = OptimizerStateAtFit()
    real_make_learner = train.make_learner
    monkeypatch.setattr(train, "make_learner", lambda *a, **k: real_make_learner(*a, **{**k, "cbs": [*k["cbs"], probe]}))
    train.train_cell(tiny_data, "test_resnet", 1, seed=0, pretrained="none", fine_tune_args=FT, strategy=strategy,
                     settings=BATCH_16)
    assert probe.has_state == [False, False]


def test_from_scratch_trains_fine_tunes_epochs_at_its_own_rate_without_the_source_weights(tiny_data, tmp_path,
                                                                                          monkeypatch):
    weights = tmp_path / "body.pt"
    train.pretrain_body(tiny_data, "test_resnet", weights, epochs=1, lr=1e-3, batch_size=16)
    used = []
    real_make_learner = train.make_learner
    monkeypatch.setattr(train, "make_learner", lambda *a, **k: used.append((a[3], k["normalize_as"]))
                        or real_make_learner(*a, **k))
    rows, _, final = train.train_cell(tiny_data, "test_resnet", 2, seed=0, pretrained=str(weights),
                                      fine_tune_args=FT, strategy="from_scratch", settings=BATCH_16,
                                      from_scratch_lr=5e-3)
    assert used == [("none", None)]
    # freeze_epochs + n = 3 epochs, as many as fine_tune(2) trains, in one one-cycle fit at from_scratch_lr.
    assert [(r["fit"], r["phase"], r["epoch"]) for r in rows] == [(1, "unfrozen", e) for e in (1, 2, 3)]
    assert FT["base_lr"] < max(r["lr"] for r in rows) <= 5e-3 and final["epochs_trained"] == 3
    assert final["epochs_trained"] == train.epochs_trained(2, FT)
    with pytest.raises(ValueError, match="strategy: 'probe'"):
        train.train_cell(tiny_data, "test_resnet", 1, seed=0, pretrained="none", fine_tune_args=FT, strategy="probe")


def test_from_scratch_gets_imagenet_normalize_beside_imagenet_runs(tiny_data, monkeypatch):
    used = []
    real_make_learner = train.make_learner
    monkeypatch.setattr(train, "make_learner", lambda *a, **k: used.append((a[3], k["normalize_as"]))
                        or real_make_learner(*a, **k))
    train.train_cell(tiny_data, "test_resnet", 1, seed=0, pretrained="imagenet", fine_tune_args=FT,
                     strategy="from_scratch", settings=BATCH_16)
    assert used == [("none", "imagenet")]
    learn = real_make_learner("test_resnet", train.make_dataloaders(data.load_prepared(tiny_data), 16, "cpu"), 3,
                              "none", normalize_as="imagenet")
    normalize = [t for t in learn.dls.valid.after_batch.fs if type(t).__name__ == "Normalize"]
    assert len(normalize) == 1
    assert normalize[0].mean.flatten().tolist() == pytest.approx(list(imagenet_stats[0]))
    plain = real_make_learner("test_resnet", train.make_dataloaders(data.load_prepared(tiny_data), 16, "cpu"), 3,
                              "none")
    assert not [t for t in plain.dls.valid.after_batch.fs if type(t).__name__ == "Normalize"]


class CPUMixedPrecision(MixedPrecision):
    """fastai's MixedPrecision with its autocast on the CPU (fastai's own opens a CUDA autocast, inert here)."""

    def before_fit(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fastai's CUDA GradScaler/autocast warn without a GPU
            super().before_fit()
        self.autocast = torch.autocast("cpu", dtype=torch.bfloat16)


def test_test_metrics_run_under_the_validations_autocast(tiny_data):
    """Scoring the validation split as a test split, under bf16 autocast, gives fastai's own validation numbers."""
    train.seed_everything(0, 1)
    _, learn, history = train.seeded_learner(tiny_data, "test_resnet", "none", "", BATCH_8_CPU)
    learn.remove_cb(history)
    precision = CPUMixedPrecision(amp_mode="bf16")
    learn.add_cb(precision)
    with learn.no_bar(), learn.no_logging():
        valid_loss, valid_accuracy = learn.validate()  # runs MixedPrecision's before_batch/after_loss per batch
    precision.before_fit()  # its autocast, as it stands during a fit's after_epoch, where the test pass runs
    history.learn, history.test_dl = learn, learn.dls.valid
    test_loss, test_accuracy = history.evaluate_test()
    assert test_loss == pytest.approx(float(valid_loss), rel=1e-6)
    assert test_accuracy == pytest.approx(float(valid_accuracy))
    # In full precision the same weights give another loss: the check above can tell the two apart.
    learn.remove_cb(precision)
    history.learn = learn
    full_precision_loss, _ = history.evaluate_test()
    assert abs(full_precision_loss - float(valid_loss)) > 1e-5 * float(valid_loss)


class BatchLosses(Callback):
    order = train.EpochHistory.order + 1

    def __init__(self):
        self.losses = []

    def after_batch(self):
        if self.training:
            self.losses.append((float(self.loss), len(self.yb[0])))


def test_history_records_the_epoch_mean_training_loss_beside_fastais_smoothed_one(tiny_data):
    train.seed_everything(0, 1)
    _, learn, history = train.seeded_learner(tiny_data, "test_resnet", "none", "", BATCH_8_CPU)
    batches = BatchLosses()
    learn.add_cb(batches)
    with learn.no_bar(), learn.no_logging():
        learn.fit(2, 1e-3)
    per_epoch = len(batches.losses) // 2
    for epoch, row in enumerate(history.rows):
        losses = batches.losses[epoch * per_epoch:(epoch + 1) * per_epoch]
        expected = sum(loss * bs for loss, bs in losses) / sum(bs for _, bs in losses)
        assert row["train_loss_epoch"] == pytest.approx(expected)
    assert history.rows[1]["train_loss_epoch"] != pytest.approx(history.rows[1]["train_loss"])


def test_test_split_scored_only_at_the_end_unless_asked(tiny_data):
    every, _, final_every = train.train_cell(tiny_data, "test_resnet", 2, seed=0, pretrained="none",
                                             fine_tune_args=FT, settings=BATCH_16)
    last, _, final_last = train.train_cell(tiny_data, "test_resnet", 2, seed=0, pretrained="none",
                                           fine_tune_args=FT, settings=BATCH_16, test_every_epoch=False)
    assert all(math.isnan(r["test_accuracy"]) for r in last[:-1]) and not math.isnan(last[-1]["test_accuracy"])
    # Skipping the test passes changes nothing else: same training, same final numbers.
    assert final_last == final_every
    assert [r["valid_loss"] for r in last] == [r["valid_loss"] for r in every]


def same_history(rows, other) -> bool:
    """Equal row for row, bit for bit, NaN (an epoch without a test pass) equal to NaN."""
    return pd.DataFrame(rows).equals(pd.DataFrame(other))


@pytest.mark.parametrize("strategy", ["fine_tune", "head_only"])
def test_cells_resumed_from_the_shared_frozen_fit_equal_running_straight_through(tiny_data, tmp_path, strategy):
    args = dict(FT, freeze_epochs=2)
    cell = dict(data_dir=tiny_data, arch="test_resnet", seed=3, pretrained="none", fine_tune_args=args,
                settings=BATCH_16)
    checkpoint = tmp_path / "frozen.pt"
    frozen_job(cell, checkpoint)
    for n, test_every_epoch in [(1, False), (3, True)]:
        straight = train.train_cell(**cell, n=n, strategy=strategy, test_every_epoch=test_every_epoch)
        resumed = train.train_cell(**cell, n=n, strategy=strategy, test_every_epoch=test_every_epoch,
                                   frozen_state=checkpoint)
        assert same_history(resumed[0], straight[0])
        assert [r["fit"] for r in resumed[0]] == [1] * 2 + [2] * n  # the frozen fit's epochs shown too
        assert resumed[2] == dict(straight[2], epochs_shared=2)
        # The frozen epochs' seconds are the shared job's: what fine_tune(n) straight through would have spent.
        assert len(resumed[1]) == len(straight[1])


def test_every_random_stream_in_the_frozen_checkpoint_counts(tiny_data, tmp_path):
    """Resuming without the DataLoader's own shuffling stream gives other numbers: the test above can fail."""
    cell = dict(data_dir=tiny_data, arch="test_resnet", seed=3, pretrained="none", fine_tune_args=FT,
                settings=BATCH_16)
    checkpoint = tmp_path / "frozen.pt"
    frozen_job(cell, checkpoint)
    straight, _, _ = train.train_cell(**cell, n=2)
    state = torch.load(checkpoint, weights_only=True)
    torch.save(dict(state, loader_random=[]), checkpoint)
    resumed, _, _ = train.train_cell(**cell, n=2, frozen_state=checkpoint)
    assert same_history(resumed[:1], straight[:1]) and not same_history(resumed, straight)


def test_a_frozen_checkpoint_of_another_architecture_names_its_file(tiny_data, tmp_path):
    cell = dict(data_dir=tiny_data, seed=0, pretrained="none", fine_tune_args=FT, settings=BATCH_16)
    checkpoint = tmp_path / "frozen.pt"
    frozen_job(dict(cell, arch="test_resnet"), checkpoint)
    with pytest.raises(train.WeightsError, match=str(checkpoint)):
        train.train_cell(**cell, arch="resnet18", n=1, frozen_state=checkpoint)


def test_cells_of_one_replicate_share_its_split_across_n_and_strategies(tmp_path, monkeypatch):
    spec = dict(name="digits", classes=["0", "1", "2"], train_size=48, label_noise=0.2, valid_fraction=0.15,
                test_fraction=0.15, split_seed=0)
    data.prepare_dataset(spec, 16, tmp_path, split="per_seed")
    seen = []
    real_load = train.load_prepared
    monkeypatch.setattr(train, "load_prepared", lambda *a: seen.append(real_load(*a)) or seen[-1])
    for n, strategy, seed in [(1, "fine_tune", 3), (2, "head_only", 3), (1, "fine_tune", 4)]:
        _, _, final = train.train_cell(tmp_path, "test_resnet", n, seed=seed, pretrained="none", fine_tune_args=FT,
                                       strategy=strategy, settings=LearnerSettings(batch_size=16, dataset=spec))
        assert final["n_train"] == 48
    assert np.array_equal(seen[0].splits, seen[1].splits) and np.array_equal(seen[0].labels, seen[1].labels)
    assert not np.array_equal(seen[0].splits, seen[2].splits)


def test_same_seed_same_numbers_other_seed_other_numbers(tiny_data):
    def run(seed):
        rows, _, final = train.train_cell(tiny_data, "test_resnet", 1, seed=seed, pretrained="none",
                                          fine_tune_args=FT, settings=BATCH_16)
        return rows, final

    first, again, other = run(0), run(0), run(1)
    assert first == again
    assert first[0] != other[0]


def test_pretrained_body_round_trips_and_bad_files_name_their_path(tiny_data, tmp_path):
    weights = tmp_path / "body.pt"
    result = train.pretrain_body(tiny_data, "test_resnet", weights, epochs=1, lr=1e-3, batch_size=16)
    assert weights.is_file() and 0 <= result["source_valid_accuracy"] <= 1
    saved = torch.load(weights, weights_only=True)

    dls = train.make_dataloaders(data.load_prepared(tiny_data), 16, "cpu")
    learn = train.make_learner("test_resnet", dls, 3, str(weights))
    for key, value in learn.model[0].state_dict().items():
        assert torch.equal(value, saved[key]), key

    with pytest.raises(train.WeightsError, match="body.pt.*does not fit"):
        train.make_learner("resnet18", dls, 3, str(weights))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a state dict")
    with pytest.raises(train.WeightsError, match="garbage.pt"):
        train.make_learner("test_resnet", dls, 3, str(garbage))


@pytest.mark.parametrize("version", ["2.5.1", "2.1.0+cpu"])
def test_a_torch_whose_weights_only_can_be_bypassed_loads_no_weights_file(tmp_path, monkeypatch, version):
    weights = tmp_path / "body.pt"
    torch.save({"w": torch.zeros(1)}, weights)
    loads = []
    monkeypatch.setattr(torch, "load", lambda *args, **kwargs: loads.append(args))
    monkeypatch.setattr(torch, "__version__", version)
    with pytest.raises(train.WeightsError) as err:
        train.load_weights(weights)
    assert str(err.value) == (f"{weights}: not loaded: torch {version} can be made to run code from a weights file "
                              f"(CVE-2025-32434); install torch>=2.6")
    assert loads == []
    monkeypatch.setattr(torch, "__version__", "2.6.0")
    train.load_weights(weights)
    assert len(loads) == 1


def test_torchvision_imagenet_weights_come_from_the_torch_hub_cache(tiny_data, tmp_path, monkeypatch):
    """The real ImageNet path (torchvision's weights download) served from a local TORCH_HOME fixture."""
    import torchvision

    fixture = torchvision.models.resnet18().state_dict()
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    checkpoints = tmp_path / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(fixture, checkpoints / url.rsplit("/", 1)[1])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    prepared = data.load_prepared(tiny_data)
    learn = train.make_learner("resnet18", train.make_dataloaders(prepared, 16, "cpu"), 3, "imagenet")
    assert torch.equal(learn.model[0][0].weight, fixture["conv1.weight"])
    assert torch.equal(learn.model[0][4][0].conv1.weight, fixture["layer1.0.conv1.weight"])
    # vision_learner normalises with ImageNet statistics for these weights: the test split must be too.
    normalize = [type(t).__name__ for t in train.test_loader(learn, prepared).after_batch.fs]
    assert normalize == [type(t).__name__ for t in learn.dls.valid.after_batch.fs] and "Normalize" in normalize


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
dls = train.make_dataloaders(data.load_prepared({str(tiny_data)!r}), 16, "cpu")
learn = train.make_learner(name, dls, 3, "imagenet")
body = learn.model[0].model.state_dict()
assert all(torch.equal(body[k], v) for k, v in fixture.items()), "weights differ from the cache fixture"
print("loaded", len(fixture), "tensors")
"""
    env = dict(os.environ, HF_HOME=str(tmp_path), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loaded" in result.stdout


class DevicePicked(Exception):
    """Stops a job at its device choice: what it asked for is all a test of the pass-through needs."""


def test_training_and_pretraining_jobs_ask_for_one_of_jobs_per_gpu_slots(tiny_data, tmp_path, monkeypatch):
    asked = []

    def pick_device(choice, jobs_per_gpu=1):
        asked.append((choice, jobs_per_gpu))
        raise DevicePicked

    monkeypatch.setattr(train, "pick_device", pick_device)
    with pytest.raises(DevicePicked):
        train.train_cell(tiny_data, "test_resnet", 1, seed=0, pretrained="none", fine_tune_args=FT,
                         settings=LearnerSettings(device="cuda", jobs_per_gpu=3))
    with pytest.raises(DevicePicked):
        train.pretrain_body(tiny_data, "test_resnet", tmp_path / "body.pt", epochs=1, lr=1e-3, device="cuda",
                            jobs_per_gpu=4)
    assert asked == [("cuda", 3), ("cuda", 4)]


class BatchesSeen(Callback):
    """Every batch the model sees, as it sees it (after the batch transforms), by fit and split."""

    def __init__(self):
        self.batches = []

    def before_batch(self):
        fit = len([b for b in self.batches if b[0] == "start"])
        self.batches.append(("train" if self.training else "valid", fit, self.xb[0].detach().clone()))

    def before_fit(self):
        self.batches.append(("start", None, None))


def images_seen(batches, split, fit) -> list:
    """The images of one fit's batches of a split, in the order seen."""
    return [image for s, f, xb in batches if s == split and f == fit for image in xb]


def as_multiset(images) -> list:
    """The images regardless of order: the training loader shuffles every epoch."""
    return sorted(image.numpy().tobytes() for image in images)


def test_augmentation_changes_the_training_batches_alone(tiny_data, monkeypatch):
    """Two epochs (fine_tune's frozen and unfrozen one) with the same seed: augmented training images differ from
    epoch to epoch; the validation batches are exactly those of a run without augmentation."""
    seen = {}
    real_make_learner = train.make_learner

    def with_probe(*args, **kwargs):
        seen[kwargs.pop("_run", None) or len(seen)] = probe = BatchesSeen()
        return real_make_learner(*args, **{**kwargs, "cbs": [*kwargs["cbs"], probe]})

    monkeypatch.setattr(train, "make_learner", with_probe)
    cell = dict(data_dir=tiny_data, arch="test_resnet", n=1, seed=0, pretrained="none", fine_tune_args=FT,
                settings=BATCH_16)
    train.train_cell(**cell)
    train.train_cell(**dict(cell, settings=LearnerSettings(batch_size=16, augment=True)))
    plain, augmented = seen[0].batches, seen[1].batches
    # Without augmentation each epoch shows the same training images, shuffled: the control of the check below.
    assert as_multiset(images_seen(plain, "train", 1)) == as_multiset(images_seen(plain, "train", 2))
    first, second = (as_multiset(images_seen(augmented, "train", fit)) for fit in (1, 2))
    assert first != second and first != as_multiset(images_seen(plain, "train", 1))
    # Validation: the very same batches, bit for bit, in every epoch and with augmentation or without.
    for fit in (1, 2):
        assert all(torch.equal(a, b) for a, b in zip(images_seen(augmented, "valid", fit), images_seen(plain, "valid", 1)))
        assert len(images_seen(augmented, "valid", fit)) == int((data.load_prepared(tiny_data).splits == data.VALID).sum())


def test_augmented_test_batches_are_the_plain_ones(tiny_data):
    loaders = []
    for augment in (False, dict(max_rotate=30, p_affine=1.0, p_lighting=1.0)):
        train.seed_everything(0, 1)
        _, learn, history = train.seeded_learner(tiny_data, "test_resnet", "none", "",
                                                 LearnerSettings(batch_size=8, device="cpu", augment=augment))
        loaders.append(history.test_dl)
        assert not [t for t in history.test_dl.after_batch.fs if "RandTransform" in [c.__name__ for c in type(t).__mro__]]
    plain, augmented = ([xb.clone() for xb, _ in dl] for dl in loaders)
    again = [xb.clone() for xb, _ in loaders[1]]
    assert len(plain) == len(augmented) and all(torch.equal(a, b) and torch.equal(a, c)
                                                for a, b, c in zip(plain, augmented, again))


def test_fastai_lighting_reaches_the_training_loader_by_its_split_idx(tiny_data):
    """fastai's Brightness and Contrast apply only where the loader's dataset says split_idx 0: training's does."""
    prepared = data.load_prepared(tiny_data)
    lighting = dict(do_flip=False, max_rotate=0, max_warp=0, max_zoom=1, p_lighting=1.0)
    images = {}
    for name, augment in [("plain", False), ("lighting", lighting)]:
        train.seed_everything(0, 1)
        dls = train.make_dataloaders(prepared, 16, "cpu", augment=augment)
        assert dls.train.dataset.split_idx == 0 and dls.valid.dataset.split_idx == 1
        images[name] = as_multiset(image for xb, _ in dls.train for image in xb)
        images[name + " valid"] = [xb.clone() for xb, _ in dls.valid]
    assert images["lighting"] != images["plain"]
    assert all(torch.equal(a, b) for a, b in zip(images["lighting valid"], images["plain valid"]))
    # Named as fastai names them; `true` is aug_transforms' defaults; `size` defaults to the images' own.
    assert [type(t).__name__ for t in train.augmentations(True, 16)] == ["Flip", "Brightness"]
    assert train.augmentations(False, 16) == [] and train.augmentations(dict(size=[16, 16]), 16)[0].size == (16, 16)
    crop = [t for t in train.augmentations(dict(min_scale=0.75), 16) if type(t).__name__ == "RandomResizedCropGPU"]
    assert crop and crop[0].size == (16, 16)


def test_augmented_cells_repeat_bit_for_bit_and_resume_from_the_frozen_fit(tiny_data, tmp_path):
    augment = dict(max_rotate=20, p_affine=1.0)
    cell = dict(data_dir=tiny_data, arch="test_resnet", seed=3, pretrained="none", fine_tune_args=FT,
                settings=LearnerSettings(batch_size=16, augment=augment))
    checkpoint = tmp_path / "frozen.pt"
    frozen_job(cell, checkpoint)
    straight = train.train_cell(**cell, n=2)
    again = train.train_cell(**cell, n=2)
    resumed = train.train_cell(**cell, n=2, frozen_state=checkpoint)
    assert same_history(again[0], straight[0]) and again[2] == straight[2]
    assert same_history(resumed[0], straight[0]) and resumed[2] == dict(straight[2], epochs_shared=1)
    plain = train.train_cell(**dict(cell, settings=LearnerSettings(batch_size=16, augment=False)), n=2)
    assert not same_history(plain[0], straight[0])


def test_find_lr_suggests_a_rate_from_the_frozen_learner_and_leaves_no_file(tiny_data, tmp_path, monkeypatch):
    from epochbench.lrfind import SUGGESTIONS, with_found_rate

    monkeypatch.chdir(tmp_path)  # fastai's lr_find would keep its weights under learn.path, the working folder
    learners = []
    real_make_learner = train.make_learner
    monkeypatch.setattr(train, "make_learner", lambda *a, **k: learners.append(real_make_learner(*a, **k)) or learners[-1])
    weights = tmp_path / "body.pt"
    train.pretrain_body(tiny_data, "test_resnet", weights, epochs=1, lr=1e-3, batch_size=16)
    finder = dict(data_dir=tiny_data, arch="test_resnet", seed=0, pretrained=str(weights),
                  settings=LearnerSettings(batch_size=16, device="cpu"))
    result, curve = train.find_lr(**finder, suggestion="valley")
    learn = learners[-1]
    # The body the cells start from, frozen as for fine_tune's first fit, and put back after the mock training.
    assert learn.opt.frozen_idx == len(learn.opt.param_lists) - 1
    saved = torch.load(weights, weights_only=True)
    assert all(torch.equal(v, saved[k]) for k, v in learn.model[0].state_dict().items() if "num_batches" not in k
               and "running" not in k)
    assert result["suggestion"] == "valley" and set(result["suggestions"]) == set(SUGGESTIONS)
    assert result["lr"] == result["suggestions"]["valley"] and 1e-7 < result["lr"] < 10
    assert result["train_images"] == 48 and result["seed"] == 0
    assert list(curve.columns) == ["lr", "loss"] and len(curve) == result["iterations"] <= 100
    assert curve["lr"].iloc[0] == pytest.approx(1e-7) and curve["lr"].is_monotonic_increasing
    again, again_curve = train.find_lr(**finder, suggestion="valley")
    assert again == result and again_curve.equals(curve)
    # The job writes both files; the cells read the rate back from the result.
    files = dict(result=tmp_path / "out" / "test_resnet.json", curve=tmp_path / "out" / "test_resnet.csv")
    train.lr_find_job(dict(settings=dict(finder, settings=asdict(finder["settings"]), suggestion="steep"), **files))
    steep = json.loads(files["result"].read_text())
    assert steep["suggestion"] == "steep" and steep["lr"] == result["suggestions"]["steep"]
    assert pd.read_csv(files["curve"])["lr"].to_numpy() == pytest.approx(curve["lr"].to_numpy(), rel=1e-7)
    assert with_found_rate(dict(FT, base_lr="steep"), files["result"]) == dict(FT, base_lr=steep["lr"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["body.pt", "out"]  # no models/ folder left behind
    with pytest.raises(ValueError, match="suggestion 'valey'"):
        train.find_lr(**finder, suggestion="valey")


def test_a_cell_without_its_lr_find_result_stops_but_from_scratch_needs_none(tiny_data):
    args = dict(FT, base_lr="valley")
    with pytest.raises(ValueError, match="lr_find result"):
        train.train_cell(tiny_data, "test_resnet", 1, seed=0, pretrained="none", fine_tune_args=args,
                         settings=BATCH_16)
    rows, _, _ = train.train_cell(tiny_data, "test_resnet", 1, seed=0, pretrained="none", fine_tune_args=args,
                                  settings=BATCH_16, strategy="from_scratch", from_scratch_lr=5e-3)
    assert max(r["lr"] for r in rows) <= 5e-3
