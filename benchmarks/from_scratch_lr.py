"""How the from_scratch baseline's default rate was chosen: validation accuracy over a few rates.

    python benchmarks/from_scratch_lr.py WORKDIR [CONFIG]

WORKDIR is a folder where the default experiment (or CONFIG's) has prepared
its data (results/<experiment>/data/target). For each rate, every
architecture is trained from scratch for freeze_epochs + n epochs at n = 1 and
n = max_epochs on three replicates; validation accuracy only (the test split
plays no part in the choice). Writes benchmarks/results/from_scratch_lr.csv.
"""

import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from epochbench.io import write_csv  # noqa: E402
from epochbench.jobs import LearnerSettings  # noqa: E402
from epochbench.train import train_cell  # noqa: E402

RATES = [0.001, 0.003, 0.01, 0.03]
REPLICATES = [100, 101, 102]  # not the experiment's own seeds


def main(workdir, config_path=ROOT / "config" / "config.yaml") -> pd.DataFrame:
    from snakemake.utils import validate

    config = yaml.safe_load(open(config_path))
    validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
    data_dir = Path(workdir) / "results" / config["experiment"] / "data" / "target"
    rows = []
    for arch in config["architectures"]:
        for lr in RATES:
            for n in (1, config["max_epochs"]):
                for seed in REPLICATES:
                    _, _, final = train_cell(data_dir, arch, n, seed, pretrained="none",
                                             fine_tune_args=config["fine_tune"], strategy="from_scratch",
                                             settings=LearnerSettings(batch_size=config["batch_size"], device="cpu",
                                                                      dataset=config["dataset"]),
                                             from_scratch_lr=lr, test_every_epoch=False)
                    rows.append(dict(architecture=arch, lr=lr, n=n, seed=seed,
                                     valid_accuracy=final["valid_accuracy"]))
    table = pd.DataFrame(rows)
    write_csv(ROOT / "benchmarks" / "results" / "from_scratch_lr.csv", table)
    return table.groupby(["architecture", "n", "lr"])["valid_accuracy"].mean().unstack("lr")


if __name__ == "__main__":
    print(main(*sys.argv[1:3]).to_string())
