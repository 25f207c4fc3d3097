"""Several training jobs on one GPU: aggregate training images/s with K = 1, 2, 4 jobs sharing it.

    python benchmarks/gpu.py [OUT.csv]   # one CUDA device, a few minutes; default benchmarks/results/gpu.csv

A Pets-sized job, as `config/pets.yaml` trains: 224 px images, 37 classes, batch size 64,
fastai's `to_fp16`, resnet18 and resnet34 built by epochbench (random init: no download,
and the weights do not change the speed). The images are random, made in memory by
each job. For each K, K processes start side by side; each claims one of the GPU's K
slots through `epochbench.devices.claim_device`, as a pipeline job with `jobs_per_gpu: K`
does, trains one warm-up epoch, waits for the others, then trains one timed epoch.
Aggregate images/s is every job's timed images over the span from the first timed start
to the last timed end, so a job that finishes early and leaves the GPU to the rest
cannot inflate it. Without a CUDA device it exits at once with status 2.
"""

import multiprocessing
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's epochbench

import pandas as pd  # noqa: E402

from epochbench.io import write_csv  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "gpu.csv"
ARCHITECTURES = ["resnet18", "resnet34"]
JOBS_PER_GPU = [1, 2, 4]
IMAGE_SIZE, CLASSES, BATCH_SIZE = 224, 37, 64
TRAIN_BATCHES = 24  # per epoch: long enough to time, short enough for 6 runs in under 5 minutes
JOB_TIMEOUT_S = 120


def synthetic_data(seed: int):
    """Random uint8 images and labels in the layout of the pipeline's prepared data, with a one-batch valid split."""
    import numpy as np

    from epochbench.data import TRAIN, VALID, PreparedData

    n_train = TRAIN_BATCHES * BATCH_SIZE
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_train + BATCH_SIZE, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, size=len(images))
    splits = np.where(np.arange(len(images)) < n_train, TRAIN, VALID)
    return PreparedData(images, labels, splits, [str(c) for c in range(CLASSES)])


def timed_epoch_callback(barrier):
    """A fastai callback timing the last epoch's training pass, started together with the other jobs."""
    import torch
    from fastai.callback.core import Callback

    class TimedLastEpoch(Callback):
        def before_train(self):
            if self.epoch == self.n_epoch - 1:
                torch.cuda.synchronize()  # the warm-up's kernels are done before the clock starts
                barrier.wait(timeout=JOB_TIMEOUT_S)
                self.start = time.monotonic()  # system-wide clock on Linux: comparable across the jobs

        def after_train(self):
            if self.epoch == self.n_epoch - 1:
                torch.cuda.synchronize()
                self.end = time.monotonic()
                self.images = len(self.dls.train) * self.dls.train.bs

    return TimedLastEpoch()


def job(arch: str, slots: int, lock_dir: str, barrier, results) -> None:
    """One training job: claim a slot of the first GPU, train a warm-up and a timed epoch, report the timing."""
    import torch

    from epochbench import devices
    from epochbench.train import make_dataloaders, make_learner, seed_everything, speed_up

    # Only the first device's key: the K jobs must share one GPU, not spread over several.
    claim = devices.claim_device(devices.cuda_device_keys()[:1], lock_dir=lock_dir, timeout=30, slots=slots)
    torch.cuda.set_device(claim.index)
    device = torch.device("cuda", claim.index)
    seed_everything(claim.slot, threads=1)  # one thread per job, as the pipeline's training jobs
    dls = make_dataloaders(synthetic_data(claim.slot), BATCH_SIZE, device)
    timer = timed_epoch_callback(barrier)
    learn = make_learner(arch, dls, CLASSES, "none", cbs=[timer])
    learn.model.to(device)
    speed_up(learn, device, precision="fp16")
    learn.unfreeze()
    with learn.no_bar(), learn.no_logging():
        learn.fit(2, 1e-3)
    results.put(dict(slot=claim.slot, start=timer.start, end=timer.end, images=timer.images))


def collect(jobs: list, results) -> list:
    """Every job's timing; a RuntimeError as soon as one fails (the others would wait for it at the barrier)."""
    import queue

    timings, deadline = [], time.monotonic() + JOB_TIMEOUT_S
    while len(timings) < len(jobs):
        try:
            timings.append(results.get(timeout=1))
        except queue.Empty:
            failed = [process.exitcode for process in jobs if process.exitcode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                raise RuntimeError(f"a training job failed (exit status {failed}) or ran past {JOB_TIMEOUT_S} s; "
                                   "its traceback is above") from None
    return timings


def run_side_by_side(arch: str, slots: int) -> dict:
    """Start `slots` jobs at once on one GPU; their aggregate and per-job training images/s."""
    # spawn, not fork: a CUDA context does not survive a fork, and each job is a process of its own.
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(slots), context.Queue()
    with tempfile.TemporaryDirectory(prefix="epochbench-gpu-locks-") as lock_dir:  # apart from running pipelines
        jobs = [context.Process(target=job, args=(arch, slots, lock_dir, barrier, results)) for _ in range(slots)]
        for process in jobs:
            process.start()
        try:
            timings = collect(jobs, results)
        finally:
            for process in jobs:  # only after a failure is one still running
                process.terminate()
                process.join()
    if sorted(t["slot"] for t in timings) != list(range(slots)):
        raise RuntimeError(f"{arch}, {slots} jobs: claimed slots {sorted(t['slot'] for t in timings)}")
    span = max(t["end"] for t in timings) - min(t["start"] for t in timings)
    per_job = [t["images"] / (t["end"] - t["start"]) for t in timings]
    return dict(architecture=arch, jobs_per_gpu=slots, images_per_second=sum(t["images"] for t in timings) / span,
                mean_job_images_per_second=sum(per_job) / len(per_job), timed_images_per_job=timings[0]["images"])


def markdown(table: pd.DataFrame, gpu: str) -> str:
    """The table for BENCHMARKS.md."""
    lines = [f"Training jobs sharing one GPU (`python benchmarks/gpu.py`, {gpu}, {time.strftime('%Y-%m-%d')}): "
             f"{IMAGE_SIZE} px, {CLASSES} classes, batch {BATCH_SIZE}, fp16, random init.", "",
             "| architecture | jobs on the GPU | images/s, all jobs | images/s per job | vs one job |",
             "|---|---|---|---|---|"]
    for row in table.itertuples():
        lines.append(f"| {row.architecture} | {row.jobs_per_gpu} | {row.images_per_second:.0f} | "
                     f"{row.mean_job_images_per_second:.0f} | {row.speedup_vs_one_job:.2f} |")
    return "\n".join(lines) + "\n"


def main(out=RESULT) -> int:
    import torch

    if not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device is visible (torch.cuda.is_available() is False); "
              "this benchmark needs one GPU", file=sys.stderr)
        return 2
    gpu = torch.cuda.get_device_name(0)
    rows = [run_side_by_side(arch, slots) for arch in ARCHITECTURES for slots in JOBS_PER_GPU]
    table = pd.DataFrame(rows).assign(gpu=gpu, image_size=IMAGE_SIZE, batch_size=BATCH_SIZE, precision="fp16")
    alone = table[table.jobs_per_gpu == 1].set_index("architecture").images_per_second
    table["speedup_vs_one_job"] = table.images_per_second / table.architecture.map(alone)
    write_csv(out, table)
    print(markdown(table, gpu))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
