"""fastai against bare PyTorch: training images per second of one epoch, same model, data, batch size and threads.

fastai: the learner epochbench builds (vision_learner, unfrozen, FusedAdam),
`fit_one_cycle`, timed from before_train to after_train (validation excluded),
and the same learner with fastai's own Adam. PyTorch: the same network, a
plain loop with torch.optim.AdamW (fused, as FusedAdam) over the same batches.
Alternates the three, epoch by epoch, and prints the medians as JSON.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's epochbench

import numpy as np
import torch
from fastai.callback.core import Callback
from fastai.optimizer import Adam

from epochbench.data import TRAIN, load_prepared
from epochbench.train import make_dataloaders, make_learner, seed_everything


class TrainTimer(Callback):
    def before_train(self):
        self.start = time.perf_counter()

    def after_train(self):
        self.seconds = time.perf_counter() - self.start


def fastai_epoch(data, arch, batch_size, opt_func=None):
    """A function that trains one epoch of fastai's learner and returns its training images per second.

    The learner epochbench builds; with `opt_func`, that optimizer instead of epochbench's (FusedAdam).
    """
    dls = make_dataloaders(data, batch_size, "cpu")
    timer = TrainTimer()
    learn = make_learner(arch, dls, len(data.classes), "none", cbs=[timer])
    if opt_func is not None:
        learn.opt_func = opt_func
    learn.unfreeze()

    def epoch():
        with learn.no_bar(), learn.no_logging():
            learn.fit_one_cycle(1, 1e-3)
        return len(dls.train) * dls.train.bs / timer.seconds

    return epoch


def pytorch_epoch(data, arch, batch_size):
    """A function that trains one epoch of a plain PyTorch loop and returns its training images per second."""
    dls = make_dataloaders(data, batch_size, "cpu")
    model = make_learner(arch, dls, len(data.classes), "none").model
    images, labels = data.split(TRAIN)
    x = torch.from_numpy(images[: len(dls.train) * dls.train.bs].copy()).float() / 255
    y = torch.from_numpy(labels[: len(x)].astype("int64"))
    # The kernel epochbench's FusedAdam calls: what differs is fastai's loop and callbacks alone.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01, fused=True)
    loss_func = torch.nn.CrossEntropyLoss()

    def epoch():
        model.train()
        order = torch.randperm(len(x))
        start = time.perf_counter()
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            loss = loss_func(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        return len(x) / (time.perf_counter() - start)

    return epoch


def main(data_dir, arch="resnet18", threads=1, batch_size=64, epochs=7):
    """Alternate one epoch of each `epochs` times, after one warm-up epoch of each.

    The three: epochbench's learner, the same with fastai's own Adam, and bare
    PyTorch. Alternating cancels the drift of a shared machine's speed that
    timing one after the other would put into the ratios; medians are reported.
    """
    seed_everything(0, int(threads))
    data = load_prepared(data_dir)
    runs = [fastai_epoch(data, arch, int(batch_size)), fastai_epoch(data, arch, int(batch_size), opt_func=Adam),
            pytorch_epoch(data, arch, int(batch_size))]
    for run in runs:
        run()  # warm up allocators and caches
    ips = np.array([[run() for run in runs] for _ in range(int(epochs))])
    print(json.dumps(dict(architecture=arch, threads=int(threads), batch_size=int(batch_size), epochs=int(epochs),
                          fastai_images_per_second=float(np.median(ips[:, 0])),
                          fastai_adam_images_per_second=float(np.median(ips[:, 1])),
                          pytorch_images_per_second=float(np.median(ips[:, 2])),
                          ratio=float(np.median(ips[:, 0] / ips[:, 2])),
                          fastai_adam_ratio=float(np.median(ips[:, 1] / ips[:, 2])))))


if __name__ == "__main__":
    main(*sys.argv[1:])
