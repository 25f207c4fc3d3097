"""Pilots for retuning the default experiment: fine_tune(n) at a few n, a few seeds, one setting changed.

    python benchmarks/pilots.py RESULTS ARCH "SEEDS" "NS" [key=value ...]

RESULTS is an experiment's results folder (results/<experiment>) in which the
pipeline has prepared the target data and pretrained ARCH's body on the
source task (any run of config/sequential.yaml does). Each cell is
`train.train_cell` as the pipeline's `train` rule runs it, with fastai's own
fine_tune (no shared frozen fit). The keys change one thing against
config/config.yaml: batch (batch_size), noise (dataset.label_noise), train
(dataset.train_size), lr (fine_tune.base_lr), mult (fine_tune.lr_mult), ps
(the dropout of vision_learner's head, fastai's `ps`). Validation accuracy of
every cell is appended to benchmarks/results/pilots.csv; the test split plays
no part. docs/default-experiment.md says what each pilot showed.
"""

import functools
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from epochbench import train  # noqa: E402
from epochbench.io import write_csv  # noqa: E402
from epochbench.jobs import LearnerSettings  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "pilots.csv"
KEYS = ("batch", "noise", "train", "lr", "mult", "ps")


def pilot(results, arch: str, seeds, ns, changes: dict) -> pd.DataFrame:
    unknown = set(changes) - set(KEYS)
    if unknown:
        raise SystemExit(f"pilots.py: unknown key(s) {', '.join(sorted(unknown))} (use {', '.join(KEYS)})")
    from snakemake.utils import validate

    results = Path(results)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))  # fills in the defaults
    dataset = dict(config["dataset"], train_size=int(changes.get("train", config["dataset"]["train_size"])),
                   label_noise=float(changes.get("noise", config["dataset"]["label_noise"])))
    settings = LearnerSettings(batch_size=int(changes.get("batch", config["batch_size"])), dataset=dataset, threads=1)
    fine_tune = dict(config["fine_tune"], base_lr=float(changes.get("lr", config["fine_tune"]["base_lr"])),
                     lr_mult=float(changes.get("mult", config["fine_tune"]["lr_mult"])))
    if "ps" in changes:
        train.vision_learner = functools.partial(train.vision_learner, ps=float(changes["ps"]))
    setting = " ".join(f"{key}={changes[key]}" for key in KEYS if key in changes) or "default"
    rows = []
    for seed in seeds:
        for n in ns:
            start = time.time()
            _, _, final = train.train_cell(results / "data" / "target", arch, n, seed,
                                           str(results / "pretrained" / f"{arch}.pt"), fine_tune,
                                           settings=settings, test_every_epoch=False)
            rows.append(dict(setting=setting, architecture=arch, seed=seed, n=n,
                             valid_accuracy=final["valid_accuracy"], seconds=time.time() - start))
            print(rows[-1], flush=True)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    results, arch, seeds, ns = sys.argv[1:5]
    found = pilot(results, arch, [int(s) for s in seeds.split()], [int(n) for n in ns.split()],
                  dict(change.split("=", 1) for change in sys.argv[5:]))
    if OUT.exists():
        found = pd.concat([pd.read_csv(OUT), found], ignore_index=True)
    write_csv(OUT, found)
