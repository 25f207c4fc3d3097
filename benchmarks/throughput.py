"""fastai against bare PyTorch: training images per second of one epoch, same model, data, batch size and threads.

fastai: the learner epochbench builds (vision_learner, unfrozen), `fit_one_cycle`,
timed from before_train to after_train (validation excluded). PyTorch: the same
network, a plain loop with torch.optim.AdamW over the same batches. Prints JSON.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's epochbench

import torch
from fastai.callback.core import Callback

from epochbench.data import TRAIN, load_prepared
from epochbench.train import make_dataloaders, make_learner, seed_everything


class TrainTimer(Callback):
    def before_train(self):
        self.start = time.perf_counter()

    def after_train(self):
        self.seconds = time.perf_counter() - self.start


def fastai_images_per_second(data, arch, batch_size, epochs):
    dls = make_dataloaders(data, batch_size, "cpu")
    timer = TrainTimer()
    learn = make_learner(arch, dls, len(data.classes), "none", cbs=[timer])
    learn.unfreeze()
    seconds = []
    with learn.no_bar(), learn.no_logging():
        for _ in range(epochs + 1):  # the first epoch warms up allocators and caches
            learn.fit_one_cycle(1, 1e-3)
            seconds.append(timer.seconds)
    return len(dls.train) * dls.train.bs / min(seconds[1:])


def pytorch_images_per_second(data, arch, batch_size, epochs):
    dls = make_dataloaders(data, batch_size, "cpu")
    model = make_learner(arch, dls, len(data.classes), "none").model
    images, labels = data.split(TRAIN)
    x = torch.from_numpy(images[: len(dls.train) * dls.train.bs].copy()).float() / 255
    y = torch.from_numpy(labels[: len(x)].astype("int64"))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    loss_func = torch.nn.CrossEntropyLoss()
    seconds = []
    for _ in range(epochs + 1):
        model.train()
        order = torch.randperm(len(x))
        start = time.perf_counter()
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            loss = loss_func(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        seconds.append(time.perf_counter() - start)
    return len(x) / min(seconds[1:])


def main(data_dir, arch="resnet18", threads=1, batch_size=64, epochs=3):
    seed_everything(0, int(threads))
    data = load_prepared(data_dir)
    fastai_ips = fastai_images_per_second(data, arch, int(batch_size), int(epochs))
    pytorch_ips = pytorch_images_per_second(data, arch, int(batch_size), int(epochs))
    print(json.dumps(dict(architecture=arch, threads=int(threads), batch_size=int(batch_size),
                          fastai_images_per_second=fastai_ips, pytorch_images_per_second=pytorch_ips,
                          ratio=fastai_ips / pytorch_ips)))


if __name__ == "__main__":
    main(*sys.argv[1:])
