"""FusedAdam against fastai's own Adam: the same update to float rounding, fastai's flags kept, gradients dropped."""

import pytest
import torch
from fastai.optimizer import Adam
from torch import nn

from epochbench import train
from epochbench.jobs import LearnerSettings
from epochbench.optim import FusedAdam


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))


def steps_of(opt_func, no_decay=True):
    """Six steps: body frozen for three (so the head's and the body's step counts differ), hypers moving each step.

    The gradients are drawn, the same for both optimizers, so that what differs is the update alone.
    """
    model = small_net()
    opt = opt_func([list(model[:2].parameters()), list(model[4].parameters())], lr=1e-2)  # fastai's two groups
    if no_decay:  # as Learner(wd_bn_bias=False) marks them
        for p in [*model[1].parameters(), model[0].bias, model[4].bias]:
            opt.state[p]["do_wd"] = False
    opt.freeze()
    generator = torch.Generator().manual_seed(1)
    for step in range(6):
        if step == 3:
            opt.unfreeze()
        opt.set_hypers(lr=[1e-3 * (step + 1), 1e-2 / (step + 1)], mom=0.95 - 0.01 * step, wd=0.1)
        for p in model.parameters():
            if p.requires_grad:
                p.grad = torch.randn(p.shape, generator=generator) * 0.1
        opt.step()
        opt.zero_grad()
    return model, opt


def test_fused_adam_makes_fastais_adam_update():
    (fused, fused_opt), (fastai, fastai_opt) = steps_of(FusedAdam), steps_of(Adam)
    for ours, theirs in zip(fused.parameters(), fastai.parameters()):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)
    ours, theirs = fused_opt.state_dict()["state"], fastai_opt.state_dict()["state"]
    assert [s.get("step") for s in ours] == [s.get("step") for s in theirs]
    assert {3, 6} <= {s.get("step") for s in theirs}  # the body's 3 steps and the head's 6 were both made
    for mine, fastais in zip(ours, theirs):
        assert mine.get("do_wd", True) == fastais.get("do_wd", True)
        for key in ("grad_avg", "sqr_avg"):
            if key in fastais:
                torch.testing.assert_close(mine[key], fastais[key], rtol=1e-5, atol=1e-9)


def test_the_comparison_sees_weight_decay_on_biases():
    """The test above can fail: decaying the weights fastai leaves alone is far outside its tolerance."""
    (fused, _), (fastai, _) = steps_of(FusedAdam, no_decay=False), steps_of(Adam)
    assert not torch.allclose(fused[4].bias, fastai[4].bias, rtol=1e-5, atol=1e-7)


def test_learners_use_it_with_fastais_flags(tiny_data):
    train.seed_everything(0, 1)
    _, learn, _ = train.seeded_learner(tiny_data, "test_resnet", "none", "",
                                       LearnerSettings(batch_size=16, device="cpu"))
    learn.create_opt()
    assert isinstance(learn.opt, FusedAdam)
    batch_norm = next(m for m in learn.model.modules() if isinstance(m, nn.BatchNorm2d))
    assert learn.opt.state[batch_norm.weight]["do_wd"] is False  # fastai's wd_bn_bias=False reached it


def test_a_cell_with_fused_adam_ends_near_one_with_fastais_adam(tiny_data, monkeypatch):
    cell = dict(data_dir=tiny_data, arch="test_resnet", n=2, seed=1, pretrained="none",
                settings=LearnerSettings(batch_size=16),
                fine_tune_args=dict(base_lr=2e-3, freeze_epochs=1, lr_mult=100))
    ours = train.train_cell(**cell)[0]
    monkeypatch.setattr(train, "OPT_FUNC", Adam)
    theirs = train.train_cell(**cell)[0]
    # Rounding apart, the same training: the losses of three epochs within a part in a thousand.
    for mine, fastais in zip(ours, theirs, strict=True):
        assert mine["train_loss"] == pytest.approx(fastais["train_loss"], rel=1e-3)
        assert mine["valid_loss"] == pytest.approx(fastais["valid_loss"], rel=1e-3)


def test_gradients_are_dropped_after_each_step_and_frozen_weights_stay_put(tiny_data):
    from fastai.callback.core import Callback

    seen = []

    class GradientSpy(Callback):
        def before_step(self):
            seen.append(sum(p.grad is not None for p in self.learn.model.parameters()))

    train.seed_everything(0, 1)
    _, learn, _ = train.seeded_learner(tiny_data, "test_resnet", "none", "",
                                       LearnerSettings(batch_size=16, device="cpu"))
    learn.add_cb(GradientSpy())
    learn.freeze()
    body = {name: p.clone() for name, p in learn.model[0].named_parameters() if not p.requires_grad}
    with learn.no_bar(), learn.no_logging():
        learn.fit(1, 1e-2)
    assert all(p.grad is None for p in learn.model.parameters())
    trainable = sum(p.requires_grad for p in learn.model.parameters())
    assert seen and set(seen) == {trainable}  # each backward pass gave exactly the trainable weights a gradient
    assert body and all(torch.equal(p, body[name]) for name, p in learn.model[0].named_parameters() if name in body)


def test_the_workflows_optimizer_param_names_the_one_learners_use():
    """The `optimizer` param reruns cells made with another optimizer; it must change when OPT_FUNC does."""
    import re
    from pathlib import Path

    common = (Path(__file__).resolve().parents[1] / "workflow" / "rules" / "common.smk").read_text()
    assert re.search(r'^OPTIMIZER = "(\w+)"$', common, re.M).group(1) == train.OPT_FUNC.__name__
