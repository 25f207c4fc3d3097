"""What a user would write instead of the pipeline: one Python process looping fine_tune(n) over every n and seed.

Same data (the pipeline's prepared arrays), same body weights, same settings,
torch's default thread count (all cores). Prints one JSON object: the wall
time measured from this process's start, the seconds spent in epochs, and
every cell's final metrics.
"""

import json
import sys
import time

START = time.time()

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))  # this checkout's epochbench

import torch  # noqa: E402
import yaml  # noqa: E402

from epochbench.jobs import LearnerSettings  # noqa: E402
from epochbench.train import train_cell  # noqa: E402


def main(workdir, config_path, threads=None, max_cells=None):
    """Loop over the grid with `threads` torch threads (default: torch's own choice), at most `max_cells` cells."""
    threads = int(threads) if threads else torch.get_num_threads()
    config = yaml.safe_load(open(config_path))
    # The schema's defaults (split_seed, the split mode, ...), as the pipeline fills them.
    from snakemake.utils import validate

    validate(config, str(__import__("pathlib").Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml"))
    results = f"{workdir}/results/{config['experiment']}"
    cells, epoch_seconds = [], 0.0
    for arch in config["architectures"]:
        for n in range(1, config["max_epochs"] + 1):
            for seed in config["seeds"]:
                if max_cells and len(cells) >= int(max_cells):
                    break
                _, seconds, final = train_cell(
                    f"{results}/data/target", arch, n, seed, pretrained=f"{results}/pretrained/{arch}.pt",
                    fine_tune_args=config.get("fine_tune", {}),
                    settings=LearnerSettings(batch_size=config.get("batch_size", 64), threads=threads, device="cpu",
                                             dataset=config["dataset"]),
                    test_every_epoch=n == config["max_epochs"],
                )
                cells.append(final)
                epoch_seconds += sum(seconds)
    print(json.dumps(dict(wall_seconds=time.time() - START, threads=threads, epoch_seconds=epoch_seconds,
                          cells=cells)))


if __name__ == "__main__":
    main(*sys.argv[1:5])
