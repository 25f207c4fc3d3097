"""fine_tune.base_lr by fastai's lr_find: the suggestion names, how a found rate reaches the jobs, and its files.

Light on purpose (json and pandas, no torch): the thin job scripts import it.
The lr_find run itself is `train.find_lr`.
"""

import json
from pathlib import Path

# fastai's suggestion functions (fastai.callback.schedule), by the names a config gives them.
SUGGESTIONS = ("valley", "slide", "minimum", "steep")
CURVE_COLUMNS = ["lr", "loss"]


def with_found_rate(fine_tune_args: dict, result_path=None) -> dict:
    """fine_tune's arguments with base_lr, where it names a suggestion, replaced by the rate lr_find found.

    `result_path` is the architecture's lr_find result (rule lr_find's json). A
    numeric base_lr needs none, and neither do from_scratch cells, which train at
    their own rate: without a result, base_lr stays the name, and `check_rate`
    stops a job that would train at it.
    """
    base_lr = fine_tune_args.get("base_lr")
    if not isinstance(base_lr, str) or not result_path:
        return fine_tune_args
    result = json.loads(Path(str(result_path)).read_text())
    if result["suggestion"] != base_lr:
        raise ValueError(f"{result_path}: lr_find's {result['suggestion']!r} suggestion, not fine_tune.base_lr {base_lr!r}")
    return dict(fine_tune_args, base_lr=float(result["lr"]))


def read_results(result_paths, curve_paths) -> tuple:
    """(results, curves): one row per architecture's lr_find result, and every curve's (lr, loss) rows with its architecture."""
    import pandas as pd

    results = pd.DataFrame([json.loads(Path(p).read_text()) for p in result_paths])
    curves = [pd.read_csv(p).assign(architecture=json.loads(Path(r).read_text())["architecture"])
              for r, p in zip(result_paths, curve_paths)]
    curves = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=["architecture", *CURVE_COLUMNS])
    return results, curves


def check_rate(fine_tune_args: dict) -> None:
    """Stop a job whose fine_tune base_lr is still a suggestion's name: it needed its lr_find result."""
    base_lr = fine_tune_args.get("base_lr")
    if isinstance(base_lr, str):
        raise ValueError(f"fine_tune.base_lr is {base_lr!r}: the job needs its architecture's lr_find result "
                         "(rule lr_find) to train at a rate")
