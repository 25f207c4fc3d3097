"""One training cell: fastai's `vision_learner` + `learn.fine_tune(n)` on prepared arrays, with its history recorded.

Each (strategy, architecture, n, seed) is its own run: fine_tune(n) runs
`freeze_epochs` frozen epochs, then a one-cycle schedule over n epochs whose
shape depends on n, so epoch 5 of fine_tune(10) is not fine_tune(5).

The strategies answer "does fine-tuning help at all?" on the same seeds and data:
- fine_tune: fastai's `learn.fine_tune(n)`.
- head_only: the same two one-cycle fits with the same rates, but the body
  stays frozen throughout, as fastai's `freeze` leaves it: only the head and
  the batch-norm layers train. Does unfreezing the body help?
- from_scratch: the same architecture with random weights, trained for the
  epochs fine_tune(n) trains (freeze_epochs + n) with `fit_one_cycle` at its
  own rate, on inputs normalised as the pretrained runs' are. Does the
  pretrained body help, at the same epochs?

fine_tune's first fit (the frozen one) is the same for every n and for
head_only: the pipeline runs it once per (architecture, replicate) with
`frozen_job` and the cells resume from its checkpoint (`train_cell(...,
frozen_state=path)`), with numbers bit-identical to running straight through.
"""

import contextlib
import inspect
import io
import logging
import os
import random
import re
import time
from pathlib import Path

import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.callback.schedule import fine_tune, fit_one_cycle  # noqa: F401  (patches Learner)
from fastai.data.core import DataLoaders, TfmdDL
from fastai.callback.fp16 import MixedPrecision
from fastai.data.transforms import IntToFloatTensor, Normalize
from fastai.learner import Learner, Recorder
from fastai.losses import CrossEntropyLossFlat
from fastai.metrics import accuracy
from fastai.torch_core import TensorCategory, TensorImage, find_bs, set_seed, to_float
from fastai.vision.core import imagenet_stats
from fastai.vision.augment import aug_transforms
from fastai.vision.learner import vision_learner

from .data import TEST, TRAIN, VALID, PreparedData, load_prepared
from .devices import pick_device
from .io import atomic_path
from .jobs import LearnerSettings
from .lrfind import check_rate
from .optim import FusedAdam

log = logging.getLogger("epochbench")

# `fit` counts the calls to fit within a run (fine_tune makes two); `phase` says
# whether the body was training. `train_loss` is fastai's smoothed loss (what its
# progress table shows); `train_loss_epoch` is the plain mean over the epoch's
# batches, what Prechelt's training progress needs. Test metrics never choose
# anything; they are NaN at epochs where the cell does not score the test split
# (fine_tune(N) scores it at every epoch, for the early-stopping comparison).
HISTORY_COLUMNS = [
    "fit", "phase", "epoch", "train_loss", "train_loss_epoch", "valid_loss", "valid_accuracy", "test_loss",
    "test_accuracy", "lr",
]
STRATEGIES = ("fine_tune", "head_only", "from_scratch")
# fastai's own defaults for fine_tune's arguments, so head_only follows the very same schedule.
FINE_TUNE_DEFAULTS = {
    name: p.default for name, p in inspect.signature(Learner.fine_tune).parameters.items() if p.default is not p.empty
}


# fastai's default Adam, stepped by PyTorch's fused AdamW kernel (epochbench/optim.py): same algorithm, faster.
OPT_FUNC = FusedAdam


class WeightsError(ValueError):
    """A weights file that does not fit the architecture; the message names the file."""


# Up to torch 2.5.1, a crafted file could run code through torch.load(weights_only=True) (CVE-2025-32434);
# `pretrained: <path>` loads whatever file the config names, so an older torch must not load it.
SAFE_WEIGHTS_ONLY_TORCH = (2, 6)


def load_weights(path):
    """torch.load restricted to tensors and plain types, refused on a torch where that restriction can be bypassed."""
    version = tuple(int(part) for part in re.match(r"(\d+)\.(\d+)", torch.__version__).groups())
    if version < SAFE_WEIGHTS_ONLY_TORCH:
        raise WeightsError(f"{path}: not loaded: torch {torch.__version__} can be made to run code from a weights "
                           f"file (CVE-2025-32434); install torch>=2.6")
    return torch.load(path, map_location="cpu", weights_only=True)


class ArrayImages(torch.utils.data.Dataset):
    """(image, label) pairs from a decoded uint8 array; fastai's IntToFloatTensor scales batches to [0, 1].

    `split_idx` is fastai's: 0 for the training split, 1 for the others. A
    TfmdDL hands it to its batch transforms, and fastai's random augmentations
    (RandTransform, split_idx 0) apply only where it is 0.
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, split_idx: int = 1):
        self.images, self.labels, self.split_idx = images, labels, split_idx

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return TensorImage(torch.from_numpy(np.array(self.images[i]))), TensorCategory(int(self.labels[i]))


def augmentations(augment, image_size: int) -> list:
    """fastai's `aug_transforms` for the config's `augment`: False (none), True (fastai's defaults) or its keyword arguments.

    `size` defaults to the prepared images' size, which the validation and test
    batches keep (fastai needs a size for `min_scale` < 1, its random resized crop).
    """
    if augment is False or augment is None:
        return []
    kwargs = {} if augment is True else dict(augment)
    size = kwargs.get("size", image_size)
    kwargs["size"] = tuple(size) if isinstance(size, (list, tuple)) else size
    return aug_transforms(**kwargs)


def make_dataloaders(data: PreparedData, batch_size: int, device, num_workers: int = 0, augment=False) -> DataLoaders:
    """Train/valid DataLoaders for the learner (the test split gets its loader from `test_loader`).

    The images are decoded already and memory-mapped: a batch is an index into
    an array, so worker processes rarely pay off (num_workers 0 by default).
    Pinned memory speeds up the copy to a GPU. `augment` (see `augmentations`)
    adds fastai's aug_transforms to the training loader's batch transforms
    alone, after IntToFloatTensor (on the device, as float TensorImages): the
    validation batches, and the test batches made from them, never change.
    """
    on_gpu = torch.device(device).type == "cuda"

    def loader(split, train=False):
        images, labels = data.split(split)
        extra = augmentations(augment, images.shape[-1]) if train else []
        return TfmdDL(
            ArrayImages(images, labels, split_idx=0 if train else 1),
            bs=min(batch_size, len(labels)),
            shuffle=train,
            drop_last=train and len(labels) > batch_size,
            after_batch=[IntToFloatTensor(), *extra],
            device=device,
            num_workers=num_workers,
            pin_memory=on_gpu,
        )

    loaders = loader(TRAIN, train=True), loader(VALID)
    for dl in loaders:
        # fastai passes one batch through a loader's transforms to learn its types, lazily: when a batch
        # first asks for `n_inp`, inside the first fit. With random augmentation that pass draws random
        # numbers, which a learner resumed after the frozen fit would draw again; done here, with every
        # random stream left as it was, it draws none that training sees.
        with random_state_kept(torch.device(device) if on_gpu else None):
            dl.n_inp  # noqa: B018  (the property runs the pass)
    return DataLoaders(*loaders, device=device)


def test_loader(learn, data: PreparedData) -> TfmdDL:
    """The test split with exactly the validation batches' transforms.

    Made from the learner's validation loader, after `vision_learner` has added
    its Normalize for ImageNet weights: a loader built beside the others would
    miss it and score the test split on unnormalised inputs.
    """
    images, labels = data.split(TEST)
    return learn.dls.valid.new(ArrayImages(images, labels, split_idx=1), bs=min(learn.dls.valid.bs, len(labels)),
                               shuffle=False)


def resolve_architecture(name: str):
    """The torchvision model function of this name, or the timm name (fastai's vision_learner takes both)."""
    from .config import architecture_source

    if architecture_source(name) == "torchvision":
        import torchvision.models

        return getattr(torchvision.models, name)
    return name


def make_learner(arch: str, dls, n_classes: int, pretrained: str, cbs=(), normalize_as: str = None):
    """fastai's vision_learner with body weights from ImageNet, a state_dict file, or random init.

    `normalize_as="imagenet"` gives a randomly initialised model the input
    Normalize that vision_learner adds only for pretrained weights, so that a
    from-scratch baseline sees the same inputs as the runs it is compared with.
    """
    learn = vision_learner(
        dls,
        resolve_architecture(arch),
        n_out=n_classes,
        pretrained=pretrained == "imagenet",
        loss_func=CrossEntropyLossFlat(),
        metrics=accuracy,
        opt_func=OPT_FUNC,
        cbs=list(cbs),
    )
    if pretrained not in ("imagenet", "none"):
        load_body_weights(learn, pretrained)
    if normalize_as == "imagenet" and pretrained != "imagenet" and not learn.dls.after_batch.fs.filter(
        lambda t: isinstance(t, Normalize)
    ):
        learn.dls.add_tfms([Normalize.from_stats(*imagenet_stats)], "after_batch")
    return learn


def load_body_weights(learn, path) -> None:
    """Load a state_dict of the network body (as `pretrain_body` saves it) into `learn.model[0]`."""
    try:
        state = load_weights(path)
    except WeightsError:
        raise
    except Exception as err:  # torch raises several kinds for a bad file
        raise WeightsError(f"{path}: cannot read as a state_dict ({type(err).__name__}: {err})") from None
    body = learn.model[0]
    try:
        body.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise WeightsError(f"{path}: does not fit the body of this architecture ({first})") from None


@contextlib.contextmanager
def random_state_kept(cuda_device=None):
    """Leave Python's, NumPy's and torch's random streams (on the CPU, and on `cuda_device` if given) as they were.

    Iterating a DataLoader draws a seed from torch's global generator, so a
    test pass between epochs would shift every later random draw (shuffling,
    dropout): scoring the test split, or not, must not change the training.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [torch.device(cuda_device).index or 0] if cuda_device else []
    with torch.random.fork_rng(devices=devices):
        yield
    random.setstate(python_state)
    np.random.set_state(numpy_state)


class EpochHistory(Callback):
    """Collect one row per epoch across every fit of a run, with the test split's metrics at that epoch.

    fastai's Recorder (and CSVLogger) start afresh at each `fit`, and fine_tune
    calls fit twice (frozen, then unfrozen), so this callback keeps its own
    list. It runs after the Recorder so that the epoch's values are there.
    The test pass reads the model as validation left it (eval mode) and
    changes nothing that training uses. It scores the test split after every
    epoch when `test_every_epoch` (the runs whose curves early stopping
    reads), else after the last epoch of the last fit only.
    """

    order = Recorder.order + 1

    def __init__(self, label: str = "", test_every_epoch: bool = True, total_epochs: int = None):
        self.label, self.rows, self.seconds, self.fits, self.test_dl = label, [], [], 0, None
        self.test_every_epoch, self.total_epochs, self.epochs_shared = test_every_epoch, total_epochs, 0

    def before_fit(self):
        self.fits += 1

    def before_epoch(self):
        self.epoch_start = time.perf_counter()
        self.loss_sum, self.loss_count = 0.0, 0

    def after_batch(self):
        if self.training:
            bs = find_bs(self.yb)
            self.loss_sum, self.loss_count = self.loss_sum + float(self.loss.detach()) * bs, self.loss_count + bs

    def after_epoch(self):
        train_loss, valid_loss, valid_accuracy = (float(v) for v in self.recorder.values[-1])
        final_epoch = len(self.rows) + 1 == self.total_epochs
        scored = self.test_dl is not None and (self.test_every_epoch or final_epoch)
        test_loss, test_accuracy = self.evaluate_test() if scored else (float("nan"),) * 2
        # A frozen optimizer trains only its last parameter group (the head).
        phase = "frozen" if self.opt.frozen_idx > 0 else "unfrozen"
        lr = float(self.opt.hypers[-1]["lr"])
        self.rows.append(dict(
            fit=self.fits, phase=phase, epoch=self.epoch + 1, train_loss=train_loss,
            train_loss_epoch=self.loss_sum / max(self.loss_count, 1), valid_loss=valid_loss,
            valid_accuracy=valid_accuracy, test_loss=test_loss, test_accuracy=test_accuracy, lr=lr,
        ))
        self.seconds.append(time.perf_counter() - self.epoch_start)
        log.info(
            "%s%s epoch %d/%d | train_loss %.4f valid_loss %.4f valid_accuracy %.4f test_accuracy %.4f lr %.2e | %.1fs",
            self.label, phase, self.epoch + 1, self.n_epoch, train_loss, valid_loss, valid_accuracy, test_accuracy, lr,
            self.seconds[-1],
        )

    @torch.no_grad()
    def evaluate_test(self) -> tuple:
        """Mean loss and accuracy over the test split, weighted by batch size as fastai's validation is.

        Under mixed precision the forward pass and the loss run inside the very
        autocast that fastai's MixedPrecision callback opens for every
        validation batch (and the predictions are cast back to float as it
        does), so test and validation metrics come from the same arithmetic.
        """
        total_loss = correct = count = 0.0
        precision = next((cb for cb in self.learn.cbs if isinstance(cb, MixedPrecision)), None)
        with random_state_kept():
            for xb, yb in self.test_dl:
                with precision.autocast if precision is not None else contextlib.nullcontext():
                    preds = to_float(self.model(xb))
                    loss = self.loss_func(preds, yb)
                total_loss += float(loss) * len(yb)
                correct += float((preds.argmax(dim=-1) == yb).sum())
                count += len(yb)
        return total_loss / count, correct / count


def seed_everything(seed: int, threads: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch; fix cuDNN's algorithm choice; optionally require deterministic kernels."""
    # One thread per job by default: several single-threaded jobs side by side
    # beat one multi-threaded job on small models, and never oversubscribe the cores.
    torch.set_num_threads(max(1, threads))
    set_seed(seed, reproducible=True)  # also cudnn.deterministic = True, cudnn.benchmark = False
    if deterministic:
        # cuBLAS needs a fixed workspace to be deterministic (PyTorch docs, "Reproducibility").
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)


def speed_up(learn, device, precision: str = "fp32", channels_last: bool = False) -> None:
    """Mixed precision (fastai's to_fp16 / to_bf16) and channels-last memory, where the device has them."""
    if precision != "fp32":
        if device.type != "cuda":
            log.warning("precision %s needs a CUDA device; training in fp32 on %s", precision, device)
        elif precision == "fp16":
            learn.to_fp16()
        else:
            learn.to_bf16()
    if channels_last:
        learn.model.to(memory_format=torch.channels_last)


def seeded_learner(data_dir, arch: str, pretrained: str, label: str, settings: LearnerSettings, seed: int = 0,
                   score_test: bool = True, normalize_as: str = None) -> tuple:
    """(data, learner with an EpochHistory, scoring the test split too if `score_test`), after `seed_everything`.

    `settings.dataset` (the config's dataset block) and `seed` pick the replicate's split and label
    noise; on a GPU, the job shares its device with up to `settings.jobs_per_gpu` - 1 others.
    """
    data = load_prepared(data_dir, settings.dataset, seed)
    dev = pick_device(settings.device, settings.jobs_per_gpu)
    dls = make_dataloaders(data, settings.batch_size, dev, settings.num_workers, augment=settings.augment)
    history = EpochHistory(label=label)
    learn = make_learner(arch, dls, len(data.classes), pretrained, cbs=[history], normalize_as=normalize_as)
    learn.model.to(dev)
    speed_up(learn, dev, settings.precision, settings.channels_last)
    if score_test:
        history.test_dl = test_loader(learn, data)
    return data, learn, history


def epochs_trained(n: int, fine_tune_args: dict) -> int:
    """The epochs fine_tune(n) trains, frozen epochs included; the baselines train as many."""
    return {**FINE_TUNE_DEFAULTS, **fine_tune_args}["freeze_epochs"] + n


def frozen_fit(learn, fine_tune_args: dict) -> None:
    """fine_tune's first fit, the same whatever n is: the body frozen, one cycle of freeze_epochs at base_lr."""
    args = {**FINE_TUNE_DEFAULTS, **fine_tune_args}
    check_rate(args)
    learn.freeze()
    learn.fit_one_cycle(args["freeze_epochs"], slice(args["base_lr"]), pct_start=0.99)


def second_fit(learn, strategy: str, n: int, fine_tune_args: dict) -> None:
    """fine_tune's second fit, over n epochs at half base_lr: the body unfrozen, or left frozen for head_only."""
    args = {**FINE_TUNE_DEFAULTS, **fine_tune_args}
    check_rate(args)
    base_lr = args["base_lr"] / 2
    if strategy == "fine_tune":
        learn.unfreeze()
    else:
        # head_only is fine_tune with the `unfreeze()` left out: same fits, same rates, the body's weights stay
        # put. unfreeze() -> freeze_to(0) also clears the optimizer's state (Adam's moments): so does head_only.
        learn.opt.clear_state()
    learn.fit_one_cycle(n, slice(base_lr / args["lr_mult"], base_lr), pct_start=args["pct_start"], div=args["div"])


def train_strategy(learn, strategy: str, n: int, fine_tune_args: dict, from_scratch_lr: float = None) -> None:
    """Train `learn` for n epochs plus fine_tune's frozen epochs: every strategy trains as many epochs."""
    args = {**FINE_TUNE_DEFAULTS, **fine_tune_args}
    if strategy != "from_scratch" or not from_scratch_lr:
        check_rate(args)
    if strategy == "fine_tune":
        learn.fine_tune(n, **fine_tune_args)  # fastai's own, straight through: what the shared frozen fit must equal
    elif strategy == "head_only":
        frozen_fit(learn, fine_tune_args)
        second_fit(learn, strategy, n, fine_tune_args)
    elif strategy == "from_scratch":
        learn.unfreeze()
        learn.fit_one_cycle(args["freeze_epochs"] + n, from_scratch_lr or args["base_lr"])
    else:
        raise ValueError(f"strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")


def train_cell(
    data_dir, arch: str, n: int, seed: int, pretrained: str, fine_tune_args: dict, strategy: str = "fine_tune",
    settings: LearnerSettings = LearnerSettings(), from_scratch_lr: float = None, test_every_epoch: bool = True,
    frozen_state=None,
):
    """Run one cell of the grid; return (history rows, seconds per epoch, final metrics).

    `settings.dataset` and `seed` pick the replicate's split and label noise (see
    `data.load_prepared`); `test_every_epoch` scores the test split after
    every epoch rather than after the last one only. `frozen_state`, a
    checkpoint of `frozen_job` for this architecture and seed, replaces
    fine_tune's (or head_only's) frozen fit. `settings.augment` applies to every strategy alike.
    """
    seed_everything(seed, settings.threads, settings.deterministic)
    weights = "none" if strategy == "from_scratch" else pretrained
    data, learn, history = seeded_learner(
        data_dir, arch, weights, f"{arch} {strategy}({n}) seed {seed} | ", settings, seed=seed,
        normalize_as="imagenet" if strategy == "from_scratch" and pretrained == "imagenet" else None,
    )
    history.test_every_epoch = test_every_epoch
    history.total_epochs = epochs_trained(n, fine_tune_args)
    with learn.no_bar(), learn.no_logging():
        if frozen_state is not None and strategy in ("fine_tune", "head_only"):
            resume_after_frozen_fit(learn, history, frozen_state)
            second_fit(learn, strategy, n, fine_tune_args)
        else:
            train_strategy(learn, strategy, n, fine_tune_args, from_scratch_lr)
    # The last epoch's validation and test passes ran on the final weights, in eval mode.
    last = history.rows[-1]
    final = dict(
        strategy=strategy, architecture=arch, n=n, seed=seed,
        valid_loss=last["valid_loss"], valid_accuracy=last["valid_accuracy"],
        test_loss=last["test_loss"], test_accuracy=last["test_accuracy"],
        epochs_trained=len(history.rows),
        # The leading epochs this job did not compute: fine_tune's frozen fit, shared by every n (rule frozen_fit).
        epochs_shared=history.epochs_shared,
        n_train=int((data.splits == TRAIN).sum()), n_valid=int((data.splits == VALID).sum()),
        n_test=int((data.splits == TEST).sum()),
    )
    log.info("%sfinal | valid_accuracy %.4f test_accuracy %.4f", history.label, last["valid_accuracy"],
             last["test_accuracy"])
    return history.rows, history.seconds, final


def with_settings(args: dict) -> dict:
    """A job spec's arguments with its learner settings rebuilt from the plain data the spec holds (JSON)."""
    return dict(args, settings=LearnerSettings(**args["settings"]))


def frozen_job(spec: dict) -> None:
    """The `frozen_fit` rule's job: fine_tune's frozen fit for one architecture and seed, saved for its cells."""
    learn, history = run_frozen_fit(**with_settings(spec["cell"]))
    save_frozen_state(learn, history, spec["checkpoint"])


def run_frozen_fit(
    data_dir, arch: str, seed: int, pretrained: str, fine_tune_args: dict,
    settings: LearnerSettings = LearnerSettings(),
) -> tuple:
    """(learner, history) after fine_tune's frozen fit, the learner built exactly as `train_cell` builds it."""
    seed_everything(seed, settings.threads, settings.deterministic)
    _, learn, history = seeded_learner(data_dir, arch, pretrained, f"{arch} frozen fit seed {seed} | ", settings,
                                       seed=seed)
    # The test split is scored at the frozen epochs for fine_tune(N)'s per-epoch curve; cells that
    # score it at their end only leave those values out (`resume_after_frozen_fit`).
    history.test_every_epoch = True
    with learn.no_bar(), learn.no_logging():
        frozen_fit(learn, fine_tune_args)
    return learn, history


def save_frozen_state(learn, history: EpochHistory, path) -> None:
    """Save what fine_tune's second fit depends on, after the first; `resume_after_frozen_fit` restores it.

    The model's trained parameters (the head, and batch norm, which fastai's
    freeze keeps training) and every buffer: the frozen weights are those the
    learner is built with. The optimizer's state; the random streams of
    Python, NumPy and torch (on the CPU and every CUDA device) and of the
    DataLoaders (fastai's `rng`, which shuffles); the history so far.
    Kept to plain types and tensors, so that it loads with `weights_only`.
    """
    trained = {name for name, p in learn.model.named_parameters() if p.requires_grad}
    trained |= {name for name, _ in learn.model.named_buffers()}
    numpy_state = np.random.get_state()
    state = dict(
        model={name: t.cpu() for name, t in learn.model.state_dict().items() if name in trained},
        optimizer=dict(
            state=learn.opt.state_dict()["state"],
            hypers=[{k: v.item() if isinstance(v, np.generic) else v for k, v in h.items()} for h in learn.opt.hypers],
        ),
        python_random=random.getstate(),
        numpy_random=(numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]),
        torch_random=torch.get_rng_state(),
        cuda_random=torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        loader_random=[dl.rng.getstate() for dl in learn.dls.loaders],
        history=dict(rows=history.rows, seconds=history.seconds, fits=history.fits),
    )
    save_torch(state, path)


def save_torch(obj, path) -> None:
    """`torch.save` to `path`, atomically, with the same bytes for the same object.

    Saved through a buffer: torch.save names the archive after the file it writes,
    and the temporary file's random name would make identical objects differ in bytes.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(buffer.getvalue())


def resume_after_frozen_fit(learn, history: EpochHistory, path) -> None:
    """Put `learn` (built as `frozen_job` built its own) and `history` where fine_tune's frozen fit left them."""
    state = load_weights(path)
    learn.freeze()  # creates the optimizer, as fine_tune's first step does
    misfit = WeightsError(f"{path}: does not fit this learner (a frozen fit of another architecture or head)")
    try:
        missing, unexpected = learn.model.load_state_dict(state["model"], strict=False)
    except RuntimeError:  # shapes that differ
        raise misfit from None
    frozen = {name for name, p in learn.model.named_parameters() if not p.requires_grad}
    if unexpected or not set(missing) <= frozen:
        raise misfit
    learn.opt.load_state_dict(dict(state["optimizer"], state=[
        {k: v.to(p.device) if torch.is_tensor(v) else v for k, v in s.items()}
        for s, (p, *_) in zip(state["optimizer"]["state"], learn.opt.all_params())
    ]))
    random.setstate(state["python_random"])
    name, key, *rest = state["numpy_random"]
    np.random.set_state((name, key.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch_random"])
    if state["cuda_random"]:
        torch.cuda.set_rng_state_all(state["cuda_random"])
    for dl, rng_state in zip(learn.dls.loaders, state["loader_random"]):
        dl.rng.setstate(rng_state)
    history.rows, history.seconds, history.fits = (state["history"][k] for k in ("rows", "seconds", "fits"))
    history.epochs_shared = len(history.rows)
    if not history.test_every_epoch:  # as if this cell had run the frozen fit itself: test at its end only
        history.rows = [dict(row, test_loss=float("nan"), test_accuracy=float("nan")) for row in history.rows]


def find_lr(
    data_dir, arch: str, seed: int, pretrained: str, suggestion: str = "valley",
    settings: LearnerSettings = LearnerSettings(), num_it: int = 100,
) -> tuple:
    """fastai's `learn.lr_find()` on replicate `seed`'s training split: (result, curve).

    The learner is built as the training jobs build theirs (`seeded_learner`:
    the same weights, batches and augmentation) and frozen, as for fine_tune's
    first fit, whose rate base_lr is (the second runs at half of it). lr_find
    trains on training batches only, at exponentially rising rates, and puts the
    weights back. `result` holds the chosen suggestion's rate beside every other
    suggestion's; `curve` the recorded rates and smoothed losses, one row per batch.
    """
    import tempfile

    import pandas as pd
    from fastai.callback import schedule

    from .lrfind import CURVE_COLUMNS, SUGGESTIONS

    if suggestion not in SUGGESTIONS:
        raise ValueError(f"suggestion {suggestion!r} is not one of fastai's {', '.join(SUGGESTIONS)}")
    seed_everything(seed, settings.threads, settings.deterministic)
    data, learn, history = seeded_learner(data_dir, arch, pretrained, f"{arch} lr_find seed {seed} | ", settings,
                                          seed=seed, score_test=False)
    learn.remove_cb(history)  # lr_find skips validation: there is no epoch to record
    learn.freeze()
    with tempfile.TemporaryDirectory() as tmp, learn.no_bar(), learn.no_logging():
        learn.path = Path(tmp)  # where lr_find keeps the weights it restores; not the job's folder
        found = learn.lr_find(num_it=num_it, show_plot=False,
                              suggest_funcs=tuple(getattr(schedule, name) for name in SUGGESTIONS))
    rates = {name: float(rate) for name, rate in zip(SUGGESTIONS, found)}
    if not np.isfinite(rates[suggestion]) or rates[suggestion] <= 0:
        raise ValueError(f"lr_find's {suggestion} suggestion is {rates[suggestion]} for {arch}: "
                         f"give fine_tune.base_lr as a number, or another suggestion ({rates})")
    curve = pd.DataFrame(dict(lr=[float(v) for v in learn.recorder.lrs],
                              loss=[float(v) for v in learn.recorder.losses]), columns=CURVE_COLUMNS)
    result = dict(architecture=arch, suggestion=suggestion, lr=rates[suggestion], suggestions=rates, seed=seed,
                  train_images=int((data.splits == TRAIN).sum()), iterations=len(curve), num_it=num_it)
    log.info("%s lr_find seed %d | %s suggests %.3g (%s)", arch, seed, suggestion, rates[suggestion],
             ", ".join(f"{name} {rate:.3g}" for name, rate in rates.items()))
    return result, curve


def lr_find_job(spec: dict) -> None:
    """The `lr_find` rule's job: one architecture's lr_find, its result (json) and curve (csv)."""
    from .io import write_csv, write_json

    result, curve = find_lr(**with_settings(spec["settings"]))
    write_json(spec["result"], result)
    write_csv(spec["curve"], curve)


def pretrain_body(
    data_dir, arch: str, out_path, epochs: int, lr: float, batch_size: int = 64, seed: int = 0,
    threads: int = 1, device: str = "auto", deterministic: bool = False, dataset: dict = None,
    jobs_per_gpu: int = 1,
) -> dict:
    """Train `arch` from scratch on a source task and save its body's state_dict (the head is task-specific).

    One body per architecture, as one ImageNet checkpoint serves every
    replicate in real use: the source task's split is split_seed's.
    """
    seed_everything(seed, threads, deterministic)
    # Rule pretrain has settings of its own (its params): the others keep their defaults (fp32, no augmentation).
    settings = LearnerSettings(batch_size=batch_size, device=device, deterministic=deterministic, dataset=dataset,
                               jobs_per_gpu=jobs_per_gpu, threads=threads)
    # The source task's test split plays no part in anything: no need to score it every epoch.
    _, learn, history = seeded_learner(data_dir, arch, "none", f"{arch} pretrain | ", settings, score_test=False)
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(epochs, lr)
    save_torch({k: v.cpu() for k, v in learn.model[0].state_dict().items()}, out_path)
    return dict(architecture=arch, epochs=epochs, source_valid_accuracy=history.rows[-1]["valid_accuracy"])


def train_job(spec: dict) -> None:
    """The `train` rule's job: run the cell `spec["cell"]` and write its history, epoch seconds and metrics."""
    import pandas as pd

    from .io import write_csv, write_json

    rows, seconds, final = train_cell(**with_settings(spec["cell"]))
    history = pd.DataFrame(rows, columns=HISTORY_COLUMNS)
    # Seconds vary from run to run; keeping them apart keeps history.csv and
    # metrics.json byte-identical across reruns of the same cell.
    shared = np.arange(len(history)) < final["epochs_shared"]  # their seconds were spent in the shared job
    write_csv(spec["epoch_seconds"], history[["phase", "epoch"]].assign(seconds=seconds, shared=shared))
    write_csv(spec["history"], history)
    write_json(spec["metrics"], final)
