"""`python -m epochbench report --partial`: the report of the runs a sweep has finished so far.

The same tables, decision rules, figures and template as the final report
(`epochbench.outputs`), from the cells whose three files are there, into
`reports/<experiment>/partial/` (the final report's folder is Snakemake's alone).
Its banner says how many runs of how many it rests on and that its verdicts may
change. It reads results/ and never takes Snakemake's lock.

The verdicts compare every n on the same replicates (`decisions.paired_matrix`
keeps the replicates that have every n): an architecture is in the report once
one replicate has finished every n = 1..N of fine_tune, and the answer says on
how many replicates it rests; means and intervals per n (the summary table and
figures) use every finished run, so an n with fewer replicates shows as such.

A sequential design's partial report is the race so far (`epochbench.sequential.race`):
its claims are those of the last look whose replicates have all finished, at that look's
levels, the very ones its `look` checkpoint makes. Deciding on every finished replicate at
the fixed design's levels instead would be one more look that the design does not pay for:
the naive peeking the spending function is there to prevent.
"""

import sys
from pathlib import Path

from .config import ConfigError, config_hash
from .status import CELL_FILES, cell_path, planned_cells

ROOT = Path(__file__).resolve().parents[1]


class NothingToReport(ValueError):
    """Too few finished runs for any verdict."""


def complete_architectures(finals, max_n: int) -> list:
    """Architectures with at least one replicate that has finished fine_tune(n) for every n = 1..max_n."""
    sweep = finals[finals["strategy"] == "fine_tune"]
    per_seed = sweep.groupby(["architecture", "seed"])["n"].nunique()
    return sorted({arch for (arch, _), count in per_seed.items() if count == max_n})


def first_look_finished(finals, design, architectures) -> list:
    """Of `architectures`, those that have finished every cell of a sequential design's first look."""
    from .sequential import complete, data_at

    return [arch for arch in architectures if complete(data_at(finals, design, 0, [arch]), design, 0)]


def as_written(frame):
    """`frame` as the pipeline's next rule reads it back: through a CSV with io.write_csv's float format.

    The final report's numbers pass through tables/*.csv between its rules; so do the partial
    report's, so that the same runs give the very same verdicts, to the last digit.
    """
    import io

    import pandas as pd

    if frame.columns.empty:  # nothing to read back (a CSV of no columns is no CSV)
        return frame
    return pd.read_csv(io.StringIO(frame.to_csv(index=False, float_format="%.8g")))


def render_partial(config: dict, workdir, out=None) -> tuple:
    """Write the partial report of `config`'s sweep in `workdir`; return (its path, the banner's numbers)."""
    from .io import write_text
    from .outputs import draw_figures, report_html, summary_tables
    from .sequential import design_from_config
    from .tables import collect

    workdir = Path(workdir)
    experiment, max_n = config["experiment"], config["max_epochs"]
    results = workdir / "results" / experiment
    out = Path(out) if out is not None else workdir / "reports" / experiment / "partial"
    planned = planned_cells(config, results)
    finished = [results / "cells" / cell_path(*cell) for cell in planned
                if all((results / "cells" / cell_path(*cell) / name).is_file() for name in CELL_FILES)]
    if not finished:
        raise NothingToReport(f"{results}: no run has finished yet (0 of {len(planned)})")
    histories, finals = map(as_written, collect(*([cell / name for cell in finished] for name in CELL_FILES)))
    shown = complete_architectures(finals, max_n)
    design = design_from_config(config)
    if design is not None and shown:  # nothing may be decided before a look's replicates have all finished
        shown = first_look_finished(finals, design, shown)
        if not shown:
            raise NothingToReport(
                f"{results}: {len(finished)} of {len(planned)} runs finished, but no architecture has finished "
                f"every cell of the first look ({design.looks[0]} replicates) yet: a sequential design decides "
                "only at its looks")
    if not shown:
        raise NothingToReport(
            f"{results}: {len(finished)} of {len(planned)} runs finished, but no replicate of any architecture has "
            f"finished fine_tune(n) for every n = 1..{max_n} yet: the verdicts compare every n on the same replicates")
    waiting = [arch for arch in config["architectures"] if arch not in shown]
    finals = finals[finals["architecture"].isin(shown)].reset_index(drop=True)
    histories = histories[histories["architecture"].isin(shown)].reset_index(drop=True)
    tables = {name: as_written(table) for name, table in
              summary_tables(finals, histories, max_n, config["early_stopping"], config["equivalence_margin"],
                             design=design).items()}
    figures_dir = out / "figures"
    lr_find = isinstance(config["fine_tune"]["base_lr"], str)
    lr_find_results = sorted(str(p) for p in (results / "lr_find").glob("*.json")) if lr_find else []
    lr_find_curves = [p.removesuffix(".json") + ".csv" for p in lr_find_results]
    strategy_comparison = len(config["strategies"]) > 1 and finals["strategy"].nunique() > 1
    draw_figures(tables, finals, figures_dir, strategy_comparison, lr_find_results, lr_find_curves)
    names = ["accuracy_vs_n", "loss_vs_n", "within_run_curve", "accuracy_vs_cost"]
    names += ["strategy_comparison"] * strategy_comparison + ["lr_find"] * bool(lr_find_results)
    points = tables["overfitting"].set_index("architecture")
    if design is None:
        detail = ("The verdicts of " + ", ".join(f"{arch} rest on {int(k)} replicate{'s' * (int(k) != 1)} that "
                                                  "finished every n" for arch, k in points["replicates"].items()) + ".")
        missing = f"no replicate has finished every n = 1..{max_n}"
    else:
        detail = ("A sequential design: the verdicts are those of the last look whose replicates have all finished, "
                  "at its levels (" + ", ".join(f"{arch}: look {int(p.look)}, {int(p.replicates)} replicates"
                                                for arch, p in points.iterrows()) + ").")
        missing = f"the first look's {design.looks[0]} replicates have not all finished"
    if waiting:
        detail += f" Not yet here: {', '.join(waiting)} ({missing}; its finished runs are counted above)."
    partial = dict(runs=len(finished), planned=len(planned), detail=detail, architectures_waiting=waiting)
    settings = {key: value for key, value in config.items() if key != "tracking"}
    html = report_html(
        config=settings, config_hash=config_hash(config), tables=tables, finals=finals,
        figures=[figures_dir / f"{name}.png" for name in names],
        benchmark_files=sorted((results / "benchmarks").rglob("*.tsv")),
        data_meta_path=results / "data" / "target" / "meta.json", citation_path=ROOT / "CITATION.cff",
        template_path=ROOT / "reports" / "templates" / "report.html.j2", workdir=ROOT,
        lr_find_results=lr_find_results, lr_find_curves=lr_find_curves, partial=partial)
    page = out / "index.html"
    write_text(page, html)
    return page, partial


def main(args, config: dict) -> int:
    try:
        page, partial = render_partial(config, args.directory, args.out)
    except (OSError, ConfigError, NothingToReport) as err:
        print(f"epochbench report: {err}", file=sys.stderr)
        return 2
    print(f"{page}: rests on {partial['runs']} of {partial['planned']} runs; verdicts may change")
    return 0
