"""Run every benchmark side by side on this machine; write benchmarks/results/*.csv and BENCHMARKS.md.

    python benchmarks/run.py            # all of them (about 25 minutes on 2 CPU cores)
    python benchmarks/run.py loop       # or some: loop, throughput, startup, scaling, adaptive

Every figure is a ratio of two things measured here, in one run, one after the other.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
WORK = HERE / "runs"  # ignored by git
RESULTS = HERE / "results"
sys.path.insert(0, str(ROOT))

from epochbench.io import write_csv, write_text  # noqa: E402
from epochbench.tables import cell_times, epochs_computed  # noqa: E402


def snakemake(workdir, configfile, targets=("all",), options=(), env=None) -> float:
    """Run the real pipeline in `workdir`; return its wall time in seconds."""
    command = ["snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(configfile), "--cores", str(os.cpu_count()), *targets, *options, "--quiet", "all"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def fresh(name) -> Path:
    path = WORK / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def machine() -> str:
    from epochbench.report import hardware

    info = hardware()
    return f"{info['cpu']}, {info['cpu cores']} cores, GPUs: {info['gpus']}"


def bench_loop() -> dict:
    """The pipeline against one process looping fine_tune(n) over n and seeds, on the same prepared data and weights."""
    config_path = HERE / "loop.yaml"
    config = yaml.safe_load(config_path.read_text())
    work = fresh("loop")
    results = work / "results" / config["experiment"]
    # Data preparation and pretraining are shared inputs of both, made once beforehand and not timed.
    shared = [f"results/{config['experiment']}/pretrained/{arch}.pt" for arch in config["architectures"]]
    snakemake(work, config_path, shared)
    pipeline_seconds = snakemake(work, config_path)
    start = time.perf_counter()
    looped = naive_loop(work, config_path)
    loop_seconds = time.perf_counter() - start
    drift = pipeline_metrics(results).merge(looped, on=CELL_KEYS, suffixes=("", "_loop"))
    # The loop trains every epoch of every cell; the pipeline runs each (architecture, seed)'s frozen fit once.
    finals = pd.read_csv(results / "tables" / "finals.csv")
    computed, naive = epochs_computed(finals)
    # What the ratio can reach here at best: the pipeline's jobs' epochs alone, spread over every core
    # with no start-up, no waiting and no report (the one-thread jobs' seconds as measured side by side).
    epoch_core_seconds = pipeline_epoch_seconds(finals)
    bound = epoch_core_seconds / os.cpu_count()
    return dict(cells=len(drift), pipeline_seconds=pipeline_seconds, loop_seconds=loop_seconds,
                pipeline_epochs=computed, loop_epochs=naive, epochs_ratio=computed / naive,
                loop_threads=int(looped.attrs["threads"]), ratio=pipeline_seconds / loop_seconds,
                pipeline_epoch_core_seconds=epoch_core_seconds, loop_epoch_seconds=looped.attrs["epoch_seconds"],
                cores=os.cpu_count(), bound_seconds=bound, bound_ratio=bound / loop_seconds,
                # Seconds per epoch of the loop (all cores in one process) over those of the pipeline's
                # one-thread jobs run side by side, per core: above 1, the jobs use the cores better.
                parallel_gain=(looped.attrs["epoch_seconds"] / naive) / (bound / computed),
                mean_abs_test_accuracy_difference=float((drift["test_accuracy"] - drift["test_accuracy_loop"]).abs().mean()))


def pipeline_epoch_seconds(finals: pd.DataFrame) -> float:
    """Seconds the pipeline's jobs spent in epochs: every cell's own, and each shared frozen fit's once.

    Counted as `epochs_computed` counts epochs: a cell's shared seconds (its frozen fit's, the same
    in every cell of that architecture and seed) are its train_seconds less its job_epoch_seconds.
    """
    shared = finals["train_seconds"] - finals["job_epoch_seconds"]
    frozen_fits = shared.groupby([finals["architecture"], finals["seed"]]).max().sum()
    return float(finals["job_epoch_seconds"].sum() + frozen_fits)


CELL_KEYS = ["architecture", "n", "seed"]
METRICS = ["valid_loss", "valid_accuracy", "test_loss", "test_accuracy"]
IDENTITY_CELLS = 4


def pipeline_metrics(results) -> pd.DataFrame:
    """Every fine_tune cell's metrics.json, at full precision (the tables round to 8 digits)."""
    return pd.DataFrame([json.loads(p.read_text()) for p in (results / "cells" / "fine_tune").rglob("metrics.json")])


def bench_identity() -> dict:
    """Same seed, same numbers, pipeline or loop: the loop's first cells with the pipeline's one thread per job.

    (A loop with another thread count sums in another order, and its runs drift apart like
    two seeds would: `loop` reports by how much.) Needs the folder `loop` left behind.
    """
    config_path = HERE / "loop.yaml"
    results = WORK / "loop" / "results" / yaml.safe_load(config_path.read_text())["experiment"]
    one_thread = naive_loop(WORK / "loop", config_path, threads=1, max_cells=IDENTITY_CELLS)
    same = pipeline_metrics(results).merge(one_thread, on=CELL_KEYS, suffixes=("", "_loop"))
    return dict(cells=len(same), identical=bool(all((same[m] == same[f"{m}_loop"]).all() for m in METRICS)))


def naive_loop(work, config_path, threads=None, max_cells=None) -> pd.DataFrame:
    command = [sys.executable, str(HERE / "naive_loop.py"), str(work), str(config_path)]
    command += [str(threads or ""), str(max_cells or "")]
    loop = subprocess.run(command, capture_output=True, text=True)
    if loop.returncode != 0:
        raise RuntimeError(f"naive_loop.py failed:\n{loop.stderr[-3000:]}")
    result = json.loads(loop.stdout.strip().splitlines()[-1])
    cells = pd.DataFrame(result["cells"])
    cells.attrs["threads"] = result["threads"]
    cells.attrs["epoch_seconds"] = result["epoch_seconds"]
    return cells


def bench_throughput() -> dict:
    data_dir = WORK / "loop" / "results" / "bench-loop" / "data" / "target"
    if not data_dir.exists():
        snakemake(fresh("loop"), HERE / "loop.yaml", ["results/bench-loop/data/target/meta.json"])
    result = subprocess.run([sys.executable, str(HERE / "throughput.py"), str(data_dir), "resnet18", "1"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"throughput.py failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def bench_startup() -> dict:
    """Overhead share of the training jobs of the default experiment, run afresh."""
    work = fresh("default")
    wall = snakemake(work, ROOT / "config" / "config.yaml")
    results = work / "results" / yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["experiment"]
    finals = pd.read_csv(results / "tables" / "finals.csv")
    cells = cell_times(sorted((results / "benchmarks" / "train").rglob("*.tsv")), finals)
    write_csv(RESULTS / "startup_cells.csv", cells)
    rerun = snakemake(work, ROOT / "config" / "config.yaml")  # nothing to do
    # Snakemake imports every installed executor plugin to build its command line, and the SLURM
    # plugin (2.x) works out its `status_command` default at import: `which sacct`, `which squeue`
    # and `scontrol show config` (10 s timeout). Where SLURM's tools are installed and a slurm.conf
    # names a controller that does not answer, that alone takes up to 10 s; no Snakemake option
    # skips it. Measured both ways.
    rerun_bare = snakemake(work, ROOT / "config" / "config.yaml", env=dict(os.environ, PATH=path_without_slurm()))
    # The fixed part of a run: tables, statistics, figures, LaTeX and the report, from finished cells.
    fixed = snakemake(work, ROOT / "config" / "config.yaml", options=["--forcerun", "collect_tables"])
    return dict(cells=len(cells), pipeline_seconds=wall, noop_rerun_seconds=rerun, fixed_cost_seconds=fixed,
                noop_rerun_seconds_without_slurm_tools=rerun_bare, mean_wall_seconds=cells["wall_seconds"].mean(),
                mean_overhead_seconds=cells["overhead_seconds"].mean(),
                mean_overhead_share=cells["overhead_share"].mean(),
                overall_overhead_share=cells["overhead_seconds"].sum() / cells["wall_seconds"].sum())


# The sequential design's experiment: the default one with two architectures, in looks (issue 18 makes it the default
# once it resolves both within 15 minutes on 2 cores).
ADAPTIVE_CONFIG = ROOT / "config" / "sequential.yaml"


def bench_adaptive() -> list:
    """ADAPTIVE_CONFIG's sequential design against a fixed design of its last look's replicates, same seeds.

    Both run afresh, one after the other, in folders of their own; rows per architecture: the runs, epochs and
    verdict each design got, the run's wall time, and whether the race replayed on the fixed run's cells (the same
    cells, bit for bit) makes the decisions the sequential run made.
    """
    from epochbench.sequential import design_from_config, race

    config = yaml.safe_load(ADAPTIVE_CONFIG.read_text())
    design = design_from_config(config)
    fixed_config = {key: value for key, value in config.items() if key != "replicates"}
    fixed_config["seeds"] = list(design.seeds[: design.looks[-1]])
    fixed_path = WORK / "adaptive_fixed.yaml"
    WORK.mkdir(parents=True, exist_ok=True)
    write_text(fixed_path, yaml.safe_dump(fixed_config))
    rows, tables = [], {}
    for name, config_path in (("sequential", ADAPTIVE_CONFIG), ("fixed", fixed_path)):
        work = fresh(f"adaptive_{name}")
        wall = snakemake(work, config_path)
        rerun = subprocess.run(["snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work),
                                "--configfile", str(config_path), "--cores", "1", "--dry-run"],
                               capture_output=True, text=True, check=True)
        results = work / "results" / config["experiment"] / "tables"
        finals = pd.read_csv(results / "finals.csv")
        points = pd.read_csv(results / "overfitting.csv").set_index("architecture")
        first_look = {}
        if name == "sequential":  # the answers the sequential run's report gives, and every look's tests
            looks = pd.read_csv(results / "looks.csv")
            write_csv(RESULTS / "adaptive_overfitting.csv", points.reset_index())
            write_csv(RESULTS / "adaptive_looks.csv", looks)
            first_look = looks[looks["look"] == 1].set_index("architecture")["p_decline"]
        tables[name] = finals
        for arch, point in points.iterrows():
            cells = finals[finals["architecture"] == arch]
            rows.append(dict(design=name, architecture=arch, wall_seconds=wall, runs=len(cells),
                             epochs=epochs_computed(cells)[0], replicates=int(point["replicates"]),
                             state=point.get("state", ""), overfits=bool(point["overfits"]),
                             decline_from_n=int(point["decline_from_n"]), p_decline=point["p_decline"],
                             p_decline_first_look=first_look.get(arch, np.nan),
                             rerun_does_nothing="Nothing to be done" in rerun.stdout + rerun.stderr))
    replayed = race(tables["fixed"], design, config.get("equivalence_margin", 0.01))["overfitting"]
    frame = pd.DataFrame(rows)
    sequential_rows = frame["design"] == "sequential"
    same = replayed.set_index("architecture").loc[frame.loc[sequential_rows, "architecture"]]
    frame.loc[sequential_rows, "replay_agrees"] = ((same["state"].to_numpy() == frame.loc[sequential_rows, "state"])
                                                   & (same["replicates"].to_numpy()
                                                      == frame.loc[sequential_rows, "replicates"])).to_numpy()
    return frame.to_dict("records")


SLURM_TOOLS = {"sacct", "sacctmgr", "salloc", "sattach", "sbatch", "sbcast", "scancel", "scontrol", "scrontab",
               "sdiag", "sinfo", "sprio", "squeue", "sreport", "srun", "sshare", "sstat", "strigger"}


def path_without_slurm() -> str:
    """A PATH with every program of this one but SLURM's client tools (links in one folder)."""
    folder = fresh("path-without-slurm")
    for directory in os.environ["PATH"].split(os.pathsep):
        for program in Path(directory).glob("*") if Path(directory).is_dir() else []:
            link = folder / program.name
            if program.name not in SLURM_TOOLS and not link.exists():
                link.symlink_to(program)
    return str(folder)


def bench_scaling() -> list:
    config_path = HERE / "scaling.yaml"
    work = fresh("scaling")
    snakemake(work, config_path, ["results/bench-scaling/data/target/meta.json"])
    rows = []
    for n_max in (4, 6, 8, 10):
        shutil.rmtree(work / "results" / "bench-scaling" / "cells", ignore_errors=True)
        seconds = snakemake(work, config_path, options=["--config", f"max_epochs={n_max}"])
        rows.append(dict(max_epochs=n_max, pipeline_seconds=seconds))
    exponent = np.polyfit(np.log([r["max_epochs"] for r in rows]), np.log([r["pipeline_seconds"] for r in rows]), 1)[0]
    for row in rows:
        row["fitted_exponent"] = exponent
    return rows


def markdown(results: dict, rerun=None) -> str:
    """BENCHMARKS.md; `rerun` names the benchmarks this run measured, where it measured only some."""
    partly = ("" if not rerun or set(rerun) >= set(BENCHMARKS) else
              f" (this run: {', '.join(rerun)}; the other rows are from their results files, measured before)")
    lines = ["# Benchmarks", "", f"Measured with `python benchmarks/run.py` on {machine()}, "
             f"{time.strftime('%Y-%m-%d')}{partly}. Each ratio compares two runs made one after the other in that one "
             "command on that machine; raw numbers are in `benchmarks/results/`.", "",
             "| benchmark | measured | ratio | target |", "|---|---|---|---|"]
    if "loop" in results:
        r = results["loop"]
        lines.append(f"| pipeline vs naive loop ({r['cells']} cells, `benchmarks/loop.yaml`) | pipeline "
                     f"{r['pipeline_seconds']:.0f} s, loop ({r['loop_threads']} threads) {r['loop_seconds']:.0f} s | "
                     f"{r['ratio']:.2f} | ≤ 0.5 |")
        if "bound_ratio" in r:
            lines.append(f"| best the pipeline can do here: its jobs' epochs alone ({r['pipeline_epoch_core_seconds']:.0f} "
                         f"core-seconds, one thread each) spread over {r['cores']} cores, against the loop | "
                         f"{r['bound_seconds']:.0f} s vs {r['loop_seconds']:.0f} s; per epoch the side-by-side jobs "
                         f"use the cores {r['parallel_gain']:.2f}× as well as the loop's threads | "
                         f"{r['bound_ratio']:.2f} | – |")
        if "epochs_ratio" in r:
            lines.append(f"| epochs computed: pipeline vs naive grid (same run) | {r['pipeline_epochs']} vs "
                         f"{r['loop_epochs']} epochs | {r['epochs_ratio']:.2f} | ≈ 0.8 at N = 6 |")
    if "identity" in results:
        r = results["identity"]
        lines.append(f"| same metrics in the pipeline and in a loop with its one thread per cell | "
                     f"{r['cells']} cells, all four metrics bit-identical: {r['identical']} | – | identical |")
    if "throughput" in results:
        r = results["throughput"]
        lines.append(f"| fastai vs bare PyTorch, {r['architecture']}, {r['threads']} thread, batch {r['batch_size']}, "
                     f"both with PyTorch's fused AdamW ({r.get('epochs', 3)} alternating epochs: median images/s, and the "
                     f"median of the epochs' ratios) "
                     f"| {r['fastai_images_per_second']:.0f} vs {r['pytorch_images_per_second']:.0f} images/s | "
                     f"{r['ratio']:.2f} | ≥ 0.9 |")
        if "fastai_adam_images_per_second" in r:
            lines.append(f"| epochbench's FusedAdam vs fastai's own Adam, same learner and epochs | "
                         f"{r['fastai_images_per_second']:.0f} vs {r['fastai_adam_images_per_second']:.0f} images/s | "
                         f"{r['fastai_images_per_second'] / r['fastai_adam_images_per_second']:.2f}× | – |")
    if "startup" in results:
        r = results["startup"]
        lines.append(f"| start-up share of a training job, default config ({r['cells']} cells, run in "
                     f"{r['pipeline_seconds']:.0f} s) | {r['mean_overhead_seconds']:.1f} s of "
                     f"{r['mean_wall_seconds']:.1f} s per job | {r['mean_overhead_share']:.2f} | ≤ 0.15 |")
        lines.append(f"| `snakemake --cores all` with nothing to do, default config | "
                     f"{r['noop_rerun_seconds_without_slurm_tools']:.1f} s (with SLURM's client tools on PATH but "
                     f"no accounting daemon, as the SLURM tests leave this machine: {r['noop_rerun_seconds']:.1f} s) | "
                     f"– | < 5 s |")
        if "fixed_cost_seconds" in r:
            lines.append(f"| fixed cost: tables, statistics, figures and report from finished cells "
                         f"(`--forcerun collect_tables`, Snakemake's start included) | "
                         f"{r['fixed_cost_seconds']:.1f} s | – | ≤ 15 s |")
    if "adaptive" in results:
        rows = pd.DataFrame(results["adaptive"])
        by_design = rows.groupby("design").agg(runs=("runs", "sum"), epochs=("epochs", "sum"),
                                               wall=("wall_seconds", "first"))
        seq, fixed = by_design.loc["sequential"], by_design.loc["fixed"]
        verdicts = rows.pivot(index="architecture", columns="design", values="overfits")
        agree = bool((verdicts["sequential"] == verdicts["fixed"]).all())
        lines.append(f"| sequential design (`config/sequential.yaml`) vs a fixed design of its last look, "
                     f"same seeds | runs {seq['runs']:.0f} vs {fixed['runs']:.0f}, epochs {seq['epochs']:.0f} "
                     f"vs {fixed['epochs']:.0f}, wall {seq['wall']:.0f} s vs {fixed['wall']:.0f} s; overfitting "
                     f"verdicts agree: {agree} | runs {seq['runs'] / fixed['runs']:.2f}, epochs "
                     f"{seq['epochs'] / fixed['epochs']:.2f}, wall {seq['wall'] / fixed['wall']:.2f} | ≤ 0.7 |")
    if "scaling" in results:
        rows = results["scaling"]
        measured = ", ".join(f"N={r['max_epochs']}: {r['pipeline_seconds']:.0f} s" for r in rows)
        lines.append(f"| scaling of the grid's wall time in N (`benchmarks/scaling.yaml`) | {measured} | "
                     f"exponent {rows[0]['fitted_exponent']:.2f} | ≈ 2 expected |")
    return "\n".join(lines) + "\n"


BENCHMARKS = {"loop": bench_loop, "identity": bench_identity, "throughput": bench_throughput,
              "startup": bench_startup, "scaling": bench_scaling, "adaptive": bench_adaptive}


def main(names):
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in names or list(BENCHMARKS):
        print(f"benchmark {name} ...", flush=True)
        results[name] = BENCHMARKS[name]()
        rows = results[name] if isinstance(results[name], list) else [results[name]]
        write_csv(RESULTS / f"{name}.csv", pd.DataFrame(rows))
        print(json.dumps(results[name], default=str), flush=True)
    # Keep the rows of benchmarks not rerun this time.
    for name in BENCHMARKS:
        if name not in results and (RESULTS / f"{name}.csv").exists():
            rows = pd.read_csv(RESULTS / f"{name}.csv").to_dict("records")
            results[name] = rows if name in ("scaling", "adaptive") else rows[0]
    write_text(HERE / "BENCHMARKS.md", markdown(results, names))


if __name__ == "__main__":
    main(sys.argv[1:])
