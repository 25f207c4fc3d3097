"""The HTML report: tables in, one self-contained page out (figures inlined, nothing fetched).

All numbers and sentences are made here from the tables; the jinja2 template
only lays them out.
"""

import base64
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import yaml

from . import __version__
from .plots import caption
from .tables import cell_times, rule_times

PACKAGES = [
    "torch", "torchvision", "fastai", "timm", "snakemake", "pandas", "numpy", "scipy", "scikit-learn",
    "seaborn", "matplotlib", "jinja2",
]


def pct(x) -> str:
    return "–" if pd.isna(x) else f"{100 * x:.1f}%"


def num(x, digits=4) -> str:
    return "–" if pd.isna(x) else f"{x:.{digits}f}"


def verdict(point: pd.Series) -> str:
    """The plain-language answer for one architecture, from its row of overfitting.csv."""
    n_max = int(point["max_n"])
    chosen = int(point["chosen_n"])
    test = (
        f"Held-out test accuracy at n = {chosen} is {pct(point['chosen_test_accuracy'])} "
        f"(95% CI {pct(point['chosen_test_ci_low'])} to {pct(point['chosen_test_ci_high'])}, {int(point['seeds'])} seeds)."
    )
    if point["overfits_within_max_n"]:
        head = (
            f"Validation accuracy peaks at n = {int(point['best_n'])} ({pct(point['best_valid_accuracy'])} mean over seeds) "
            f"and is {pct(point['valid_accuracy_at_max_n'])} at n = {n_max}."
        )
    else:
        head = f"No overfitting within N = {n_max}: mean validation accuracy is highest at n = {n_max} ({pct(point['best_valid_accuracy'])})."
    if chosen == int(point["best_n"]):
        rule = f"The one-standard-error rule also picks n = {chosen}."
    else:
        rule = (
            f"n = {chosen} is the smallest n within one standard error of the best, so the one-standard-error rule picks it: "
            f"longer fine-tuning does not help measurably beyond it."
        )
    within = ""
    if pd.notna(point.get("within_run_best_epoch")):
        epoch = int(point["within_run_best_epoch"])
        agree = "the same n" if point["within_run_agrees"] else f"not the n-sweep's best n = {int(point['best_n'])}"
        within = f" A single long run, fine_tune({n_max}), read epoch by epoch, peaks at epoch {epoch}: {agree}."
    return f"{head} {rule} {test}{within}"


def git_commit(workdir) -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(workdir), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(workdir), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + (" (with uncommitted changes)" if dirty else "")


def hardware() -> dict:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    info = {"platform": platform.platform(), "cpu": model, "cpu cores": str(os.cpu_count())}
    try:
        import torch

        info["gpus"] = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) or "none"
    except ImportError:
        info["gpus"] = "unknown"
    return info


def package_versions() -> dict:
    versions = {"epochbench": __version__}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def time_table(benchmark_files) -> list:
    times = rule_times(benchmark_files)
    if times.empty:
        return []
    per_rule = times.groupby("rule", sort=False)["seconds"].agg(["count", "sum", "mean", "max"]).reset_index()
    total = per_rule["sum"].sum()
    return [
        dict(rule=r.rule, jobs=int(r["count"]), total=num(r["sum"], 1), mean=num(r["mean"], 1), max=num(r["max"], 1),
             share=pct(r["sum"] / total if total else np.nan))
        for _, r in per_rule.iterrows()
    ]


def training_time(benchmark_files, finals) -> dict:
    """How the training jobs spent their wall time: in epochs, or in start-up (imports, loading, writing)."""
    cells = cell_times(benchmark_files, finals)
    if cells.empty:
        return dict(cells=[], summary="")
    wall, epochs = cells["wall_seconds"].sum(), cells["epoch_seconds"].sum()
    summary = (
        f"{len(cells)} training jobs took {wall:.0f} s of job time in all, {epochs:.0f} s of it in epochs "
        f"(training, validation and test passes): {pct(epochs / wall)}. The rest, {cells['overhead_seconds'].mean():.1f} s "
        f"per job on average ({pct(cells['overhead_share'].mean())} of a job), is start-up and writing results. "
        f"Throughput: {cells['images_per_second'].median():.0f} training images per second of epoch time (median)."
    )
    rows = [
        dict(strategy=r.strategy, architecture=r.architecture, n=int(r.n), seed=int(r.seed), wall=num(r.wall_seconds, 1),
             epochs=num(r.epoch_seconds, 1), overhead=num(r.overhead_seconds, 1), share=pct(r.overhead_share),
             ips=num(r.images_per_second, 0))
        for _, r in cells.iterrows()
    ]
    return dict(cells=rows, summary=summary)


def inline_png(path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def reproducibility(config) -> str:
    on_gpu = (
        "On a GPU, this run required deterministic algorithms (torch.use_deterministic_algorithms), "
        "so it repeats bit for bit on the same hardware and software."
        if config.get("deterministic")
        else "On a GPU, cuDNN is set to deterministic with autotuning off (fastai's set_seed(reproducible=True)), "
        "but other kernels may still vary in the last bits; set deterministic: true in the config to require bit-identical runs."
    )
    return (
        "On the CPU, the same config and seed give byte-identical histories and metrics "
        "(data split, label noise, pretraining and fine-tuning are all seeded; tested). " + on_gpu
    )


def citation_block(citation: dict, experiment: str, config_hash: str, commit: str) -> dict:
    """How to cite a figure of this report: a sentence naming experiment and config, and BibTeX from CITATION.cff."""
    authors = " and ".join(a.get("name") or f"{a.get('family-names', '')}, {a.get('given-names', '')}"
                           for a in citation.get("authors", []))
    version = citation.get("version", __version__)
    text = (f"Figure from epochbench {version}, experiment {experiment}, config {config_hash}, commit "
            f"{commit.split()[0][:12]}: rerun with the config shown under Provenance to reproduce it.")
    bibtex = "\n".join([
        f"@software{{epochbench_{config_hash},",
        f"  title = {{{citation.get('title', 'epochbench')}}},",
        f"  author = {{{authors}}},",
        f"  version = {{{version}}},",
        f"  note = {{Experiment {experiment}, config {config_hash}}},",
        "}",
    ])
    return dict(text=text, bibtex=bibtex)


def strategy_rows(strategies: pd.DataFrame) -> list:
    return [
        dict(strategy=r.strategy, architecture=r.architecture, n=int(r.n), seeds=int(r.seeds), mean=pct(r["mean"]),
             fine_tune=pct(r.fine_tune_mean), diff=f"{100 * r.difference:+.1f}",
             diff_ci=f"{100 * r.diff_ci_low:+.1f} to {100 * r.diff_ci_high:+.1f}", p=f"{r.p_beats_fine_tune:.2f}",
             verdict=r.verdict)
        for _, r in strategies.iterrows()
    ]


def strategy_answers(strategies: pd.DataFrame) -> list:
    """One sentence per (strategy, architecture): at how many n it is better, worse or indistinguishable."""
    sentences = []
    for (strategy, arch), rows in strategies.groupby(["strategy", "architecture"], sort=False):
        counts = rows["verdict"].value_counts()
        parts = [f"{verdict} at {counts[verdict]} of {len(rows)} n" for verdict in
                 ("better than fine_tune", "indistinguishable", "worse than fine_tune") if verdict in counts]
        sentences.append(f"{arch}, {strategy}: " + ", ".join(parts) + " (test accuracy, paired bootstrap 95%).")
    return sentences


def early_stopping_rows(table: pd.DataFrame) -> list:
    return [
        dict(architecture=r.architecture, rule=r.rule, seeds=int(r.seeds), stopped=pct(r.stopped_early),
             stop=num(r.stop_epoch, 1), kept=num(r.kept_epoch, 1), epochs=num(r.epochs_trained, 1),
             test=pct(r.test_accuracy), test_ci=f"{pct(r.test_ci_low)} to {pct(r.test_ci_high)}")
        for _, r in table.iterrows()
    ]


def build_context(
    config, config_hash, summary, points, finals, figures, benchmark_files, workdir, data_meta, comparison,
    strategies, early_stopping, citation,
) -> dict:
    """Everything the template shows, as strings and lists of rows."""
    summary_rows = [
        dict(strategy=r.strategy, architecture=r.architecture, n=int(r.n), metric=r.metric, seeds=int(r.seeds),
             mean=num(r["mean"]), std=num(r["std"]), ci_low=num(r.ci_low), ci_high=num(r.ci_high))
        for _, r in summary.iterrows()
    ]
    commit = git_commit(workdir)
    answers = [
        dict(
            architecture=p.architecture, verdict=verdict(p), chosen_n=int(p.chosen_n), best_n=int(p.best_n),
            statistical_verdict=p.verdict,
            selection_gap=f"best validation accuracy {pct(p.best_valid_accuracy)} at n = {int(p.best_n)}, "
            f"test accuracy there {pct(p.test_accuracy_at_best_n)}: selecting n on validation flatters it by "
            f"{100 * p.selection_gap:+.1f} points",
            test=pct(p.chosen_test_accuracy), test_ci=f"{pct(p.chosen_test_ci_low)} to {pct(p.chosen_test_ci_high)}",
            best_valid=pct(p.best_valid_accuracy), within_run_epoch=(
                "–" if pd.isna(p.within_run_best_epoch) else str(int(p.within_run_best_epoch))
            ),
        )
        for _, p in points.iterrows()
    ]
    figure_rows = [
        dict(name=Path(f).stem, src=inline_png(f), caption=caption(Path(f).stem, config["experiment"], config_hash))
        for f in figures
    ]
    return dict(
        experiment=config["experiment"],
        config_hash=config_hash,
        answers=answers,
        figures=figure_rows,
        summary=summary_rows,
        comparison=[
            dict(architecture=r.architecture, n=int(r.n), seeds=int(r.seeds), mean=num(r["mean"]),
                 boot=f"{num(r.boot_ci_low)} to {num(r.boot_ci_high)}",
                 p_beats_best="best" if pd.isna(r.p_beats_best) else f"{r.p_beats_best:.2f}",
                 diff=f"{num(r.diff_ci_low)} to {num(r.diff_ci_high)}",
                 same="yes" if r.indistinguishable else "no")
            for _, r in comparison.iterrows()
        ],
        strategies=strategy_rows(strategies),
        strategy_answers=strategy_answers(strategies),
        strategy_names=list(config["strategies"]),
        early_stopping=early_stopping_rows(early_stopping),
        cite=citation_block(citation, config["experiment"], config_hash, commit),
        cells=len(finals),
        seeds=sorted(finals["seed"].unique().tolist()),
        max_n=int(config["max_epochs"]),
        architectures=list(config["architectures"]),
        dataset=config["dataset"]["name"],
        pretrained=config["pretrained"],
        config_yaml=yaml.safe_dump(config, sort_keys=False),
        commit=commit,
        versions=package_versions(),
        hardware=hardware(),
        times=time_table(benchmark_files),
        training_time=training_time(benchmark_files, finals),
        data=dict(
            classes=data_meta["classes"],
            counts=data_meta["counts"],
            flipped=data_meta["flipped_train_labels"],
            image_size=data_meta["image_size"],
        ),
        reproducibility=reproducibility(config),
    )


def render(template_path, context) -> str:
    template_path = Path(template_path)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_path.parent),
        autoescape=True,  # experiment, class and file names come from users
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template(template_path.name).render(**context)
