"""`python -m epochbench COMMAND`: analyze, status, report --partial, track.

Each command's module is imported only when it runs, so that `status` (which
must answer in well under two seconds beside a running sweep) never pays for
pandas, scipy, matplotlib or mlflow.
"""

import argparse
import sys
from pathlib import Path

DEFAULT_CONFIG = "config/config.yaml"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m epochbench",
                                  description="Does fine-tuning longer really help? Commands beside the pipeline.")
    commands = top.add_subparsers(dest="command", required=True)

    analyze = commands.add_parser("analyze", help="decisions for a finals table or an MLflow experiment's runs")
    analyze.add_argument("finals", type=Path, nargs="?",
                         help="CSV: architecture, n, seed, valid_accuracy, test_accuracy "
                              "[, strategy, valid_loss, test_loss]")
    analyze.add_argument("--mlflow", metavar="EXPERIMENT",
                         help="read the runs of this MLflow experiment instead of a CSV (params architecture, n, "
                              "seed [, strategy]; metrics valid_accuracy, test_accuracy, their last values)")
    analyze.add_argument("--tracking-uri", metavar="URI",
                         help="with --mlflow: the tracking server or store (default: MLflow's, MLFLOW_TRACKING_URI)")
    analyze.add_argument("--out", type=Path, required=True, help="folder for comparison.csv, overfitting.csv "
                                                                 "(and strategies.csv with a strategy column)")
    analyze.add_argument("--equivalence-margin", type=float,
                         help="equivalence margin as a fraction of accuracy (default 0.01, one point)")
    analyze.add_argument("--looks", type=looks_list, metavar="K1,K2,...",
                         help="replay a sequential design whose looks had these replicates (seeds in increasing "
                              "order); also writes looks.csv")
    analyze.add_argument("--spending", choices=("obrien_fleming", "pocock"), default="obrien_fleming",
                         help="with --looks: the Lan-DeMets spending function (default obrien_fleming)")

    for name, text in (("status", "how far a sweep has got: runs, epochs, failures, time left"),
                       ("report", "the report of the runs finished so far (--partial)"),
                       ("track", "upload to MLflow what a sweep's jobs could not (tracking: in the config)")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--configfile", type=Path, default=Path(DEFAULT_CONFIG),
                             help=f"the experiment's config (default {DEFAULT_CONFIG})")
        command.add_argument("--directory", type=Path, default=Path("."),
                             help="the folder the sweep runs in, with results/ and logs/ (default: here)")
        if name == "status":
            command.add_argument("--json", action="store_true", help="print the status as JSON, for scripts")
        if name == "report":
            command.add_argument("--partial", action="store_true", required=True,
                                 help="render from the finished runs alone, with a banner saying so")
            command.add_argument("--out", type=Path,
                                 help="folder for index.html and figures/ (default reports/<experiment>/partial)")
        if name == "track":
            command.add_argument("--tracking-uri", metavar="URI",
                                 help="upload there rather than to the config's tracking.mlflow")
    return top


def looks_list(text: str) -> tuple:
    """--looks: increasing replicate counts, each at least 2 ("8,12")."""
    try:
        looks = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of replicate counts") from None
    if min(looks) < 2 or any(later <= earlier for earlier, later in zip(looks, looks[1:])):
        raise argparse.ArgumentTypeError(f"{text!r}: the looks' replicates must increase, each at least 2")
    return looks


def analyze(args) -> int:
    import pandas as pd

    from .decisions import EQUIVALENCE_MARGIN
    from .decisions import analyze as decide
    from .io import write_csv

    if (args.finals is None) == (args.mlflow is None):
        print("epochbench analyze: give a finals CSV or --mlflow EXPERIMENT (one of them)", file=sys.stderr)
        return 2
    source = args.finals if args.finals is not None else f"MLflow experiment {args.mlflow!r}"
    try:
        if args.mlflow is not None:
            from .tracking import TrackingError, finals_from_mlflow

            try:
                finals = finals_from_mlflow(args.mlflow, args.tracking_uri)
            except TrackingError as err:
                print(f"epochbench analyze: {err}", file=sys.stderr)
                return 2
        else:
            finals = pd.read_csv(args.finals)
        margin = EQUIVALENCE_MARGIN if args.equivalence_margin is None else args.equivalence_margin
        if args.looks is None:
            tables = decide(finals, margin)
        else:
            from .sequential import Design, race

            seeds = tuple(sorted(finals["seed"].unique())) if "seed" in finals.columns else ()
            if len(seeds) < args.looks[-1]:
                raise ValueError(f"--looks {','.join(map(str, args.looks))}: the last look needs {args.looks[-1]} "
                                 f"seeds, the table has {len(seeds)}")
            tables = race(finals, Design(looks=args.looks, seeds=seeds, spending=args.spending), margin)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        print(f"epochbench analyze: {source}: {err}", file=sys.stderr)
        return 2
    names = ["comparison", "overfitting"] + (["strategies"] if "strategy" in finals.columns else [])
    names += ["looks"] * (args.looks is not None)
    if args.mlflow is not None:
        names.insert(0, "finals")  # what was read from MLflow, as a CSV the command also takes
        tables = dict(tables, finals=finals)
    for name in names:
        write_csv(args.out / f"{name}.csv", tables[name])
        print(args.out / f"{name}.csv")
    return 0


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.command == "analyze":
        return analyze(args)
    # status, report and track read the sweep of one config, checked and with its defaults, as the Snakefile runs it.
    from .config import ConfigError, load_config

    try:
        config = load_config(args.configfile)
    except (OSError, ConfigError) as err:
        print(f"epochbench {args.command}: {err}", file=sys.stderr)
        return 2
    if args.command == "status":
        from .status import main as status

        return status(args, config)
    if args.command == "report":
        from .partial import main as report

        return report(args, config)
    from .tracking import main as track

    return track(args, config)


if __name__ == "__main__":
    sys.exit(main())
