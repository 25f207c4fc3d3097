"""The HTML report: tables in, one self-contained page out (figures inlined, nothing fetched).

All numbers and sentences are made here from the tables; the jinja2 template
only lays them out.
"""

import base64
import importlib.metadata
import os
import platform
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
import yaml

from . import __version__, decisions, sequential, units
from .provenance import git_commit
from .redact import redact_credentials
from .tables import cell_times, epochs_computed, rule_times
from .warm import cuda_device_present

PACKAGES = [
    "torch", "torchvision", "fastai", "timm", "snakemake", "pandas", "numpy", "scipy", "scikit-learn",
    "seaborn", "matplotlib", "jinja2",
]


# What each figure of epochbench.plots shows, for the report (kept here: importing the plots
# module means importing matplotlib and seaborn, seconds that rendering the page does not need).
FIGURE_CAPTIONS = {
    "accuracy_vs_n": (
        "Accuracy after fine_tune(n) against n, per architecture. Each small point is one seed's final "
        "accuracy; the line is the mean over seeds and the band its 95% t-interval. Blue: validation "
        "(used to choose n), red: held-out test. The dashed line marks the n chosen by the "
        "one-standard-error rule on validation accuracy (the standard error of the paired difference to the best n)."
    ),
    "loss_vs_n": (
        "Cross-entropy loss after fine_tune(n) against n, per architecture, with each seed's point, "
        "the mean over seeds and its 95% t-interval. Validation loss usually turns up before accuracy "
        "falls: the network grows confident on what it gets wrong."
    ),
    "within_run_curve": (
        "Two different views of the same question. Line with band: validation accuracy epoch by epoch "
        "within the longest runs, fine_tune(N), mean over seeds and 95% t-interval. Dots: validation "
        "accuracy at the end of fine_tune(n), n = 1..N. Epoch e of fine_tune(N) sits at another point "
        "of the one-cycle schedule than the end of fine_tune(e), so the two curves need not agree."
    ),
    "accuracy_vs_cost": (
        "Held-out test accuracy against compute, per architecture (colour) and strategy (marker): epochs "
        "trained, fine_tune's frozen epochs included (left), and measured training seconds (right); means "
        "over seeds with 95% t-intervals, one point per n. The step between neighbouring points is what one "
        "more epoch costs and buys."
    ),
    "strategy_comparison": (
        "Does fine-tuning help at all? Held-out test accuracy against n for fine_tune (fastai's fine_tune(n)), "
        "head_only (the same schedule, body frozen throughout) and from_scratch (random weights, "
        "fit_one_cycle over the same freeze_epochs + n epochs), on the same replicates: mean over replicates and "
        "95% t-interval."
    ),
    # fine_tune.base_lr by lr_find (epochbench.lrfind): only where the config names a suggestion.
    "lr_find": (
        "fastai's learning-rate finder (lr_find), per architecture: smoothed training loss against the learning rate "
        "(log scale) over one mock training run of exponentially rising rates, body frozen as in fine_tune's first fit, "
        "on one replicate's training split; the last five batches are left out, as fastai's own plot does. The red "
        "mark is the rate of the suggestion fine_tune.base_lr names, which every fine_tune and head_only cell of the "
        "architecture uses as base_lr (the unfrozen fit at half of it)."
    ),
}


def caption(name: str, experiment: str, config_hash: str) -> str:
    return f"{FIGURE_CAPTIONS[name]} Experiment {experiment}, config {config_hash}."


def pct(x) -> str:
    """A share (or an accuracy) in percent, one decimal: the report's one unit (epochbench.units)."""
    return units.percent(x)


def num(x, digits=4) -> str:
    return "–" if pd.isna(x) else f"{x:.{digits}f}"


def what_varied(config, data_meta=None) -> str:
    """What the intervals are over: the replicates' training seeds, and their splits unless the split is fixed.

    With the dataset's own folders (dataset.split folders, from `data_meta`,
    the target's meta.json), valid/ and test/ are the same in every replicate,
    so only what the folders leave open can vary, and the label says which.
    """
    per_seed = config.get("split", "per_seed") == "per_seed"
    if (data_meta or {}).get("dataset_split") != "folders":
        if per_seed:
            return "over replicates: each drew its own training seed, split and label noise"
        return "over training seeds, on one split"
    folders, carved = data_meta["folders"], data_meta.get("test_from") == "train"
    given = f"{folders['valid']}/" + (f" and {folders['test']}/" if folders["test"] else "")
    if not per_seed:
        return (f"over training seeds, on one split (the dataset's {given} folder{'s' * (not carved)}"
                + (", with a test split carved once from train/)" if carved else ")"))
    drawn = ["training seed"]
    if carved:
        drawn.append("test split carved from train/")
    if data_meta.get("images", 0) > sum(data_meta["counts"].values()):
        drawn.append("subset of train/")
    if config["dataset"].get("label_noise") or data_meta.get("flipped_train_labels"):
        drawn.append("label noise")
    listed = drawn[0] if len(drawn) == 1 else ", ".join(drawn[:-1]) + " and " + drawn[-1]
    return f"over replicates: each drew its own {listed}, on the dataset's fixed {given} folder{'s' * (not carved)}"


def split_sentences(config, data_meta) -> str:
    """The Data section's account of the split: which one, where it came from, and what each replicate draws."""
    per_seed = config.get("split", "per_seed") == "per_seed"
    reason = data_meta.get("dataset_split_reason")
    if data_meta.get("dataset_split") != "folders":
        origin = ("The split is drawn at random, stratified by class (dataset.split: random"
                  + (f"; {reason}). " if reason else "). "))
        return origin + ("Each replicate draws its own stratified split of these images and its own label noise "
                         "(seed split_seed + replicate seed); every n and strategy of a replicate shares it."
                         if per_seed else
                         "Every replicate uses the same split (split_seed); the intervals in this report are over "
                         "training seeds only, on one split.")
    folders, found = data_meta["folders"], data_meta["folder_images"]
    text = (f"The split is the dataset's own folders (dataset.split: folders; {reason}): training images come from "
            f"{folders['train']}/ ({found['train']} images), the validation images are {folders['valid']}/ "
            f"({found['valid']}) as given")
    if folders["test"]:
        text += f", and the test images are {folders['test']}/ ({found['test']}) as given, the same in every replicate."
    else:
        fraction = data_meta["test_fraction_of_train"]
        text += (f", the same in every replicate. There is no labelled test/ folder, so the test split is carved "
                 f"from {folders['train']}/, stratified by class (test_fraction {fraction:g} of its images), "
                 + ("by each replicate for itself (seed split_seed + replicate seed)." if per_seed else
                    "once (split_seed), for every replicate."))
    if per_seed:
        text += (" Every n and strategy of a replicate shares its draws (seed split_seed + replicate seed); "
                 f"the intervals in this report are {what_varied(config, data_meta)}.")
    else:
        text += (" Every replicate uses the same split and label noise (split_seed); the intervals in this report are "
                 "over training seeds only, on one split.")
    return text


def power_guide(k: int) -> str:
    """How many replicates simulated reports needed to find a real decline 80% of the time, where k is fewer."""
    found = {key: needed for key, needed in decisions.REPLICATES_FOR_POWER.items() if (needed or 13) > k}
    if not found:
        return ""
    parts = [f"{size} per epoch after n = 4 with N = {max_n}, " + (f"{needed}" if needed else "more than 12")
             for (size, max_n), needed in found.items()]
    return ("To find a real decline in 80% of simulated reports (one point of noise; "
            "benchmarks/results/calibration.csv), the replicates needed were, for a decline of " + "; ".join(parts) + ".")


def limits(point: pd.Series, budget: dict) -> str:
    """What k replicates cannot tell: the fewest replicates each kind of claim needs, and, where no decline was
    resolved, how many simulated reports needed to find one."""
    k = int(point["replicates"])
    sentences = []
    if k < 2:
        sentences.append("One replicate gives no interval and no verdict: nothing here can say whether one n is "
                         "better than another, only which had the higher accuracy this once.")
    else:
        needed = decisions.replicates_needed(budget)
        short = {kind: kinds for kind, kinds in needed.items() if kinds is not None and kinds > k
                 and not kind.startswith("strategy")}
        if short:
            names = {"overfits": "a decline by N", "worse": "'worse'", "equivalent": "'equivalent'"}
            listed = ", ".join(f"{names[kind]} at least {kinds}" for kind, kinds in short.items())
            sentences.append(f"With {k} replicates some claims are out of reach whatever the data: an exact sign-flip "
                             f"test over {k} replicates cannot give p below 1/2^{k} = {2.0**-k:.3g}, under this "
                             f"report's budget for each kind of claim. To be possible at all, {listed} replicates "
                             f"are needed.")
    if not point["overfits"]:
        sentences.append(power_guide(k))
    return " ".join(sentence for sentence in sentences if sentence)


def answer(point: pd.Series, comparison: pd.DataFrame, config, data_meta=None, budget: dict = None) -> dict:
    """One architecture's answer box, from its rows of overfitting.csv and comparison.csv.

    `data_meta` (the target's meta.json) says what the intervals are over (`what_varied`);
    `budget` is the report's split of its false-claim budget (decisions.error_budget).
    """
    budget = budget or decisions.error_budget()
    chosen, best_n, max_n, k = int(point["chosen_n"]), int(point["best_n"]), int(point["max_n"]), int(point["replicates"])
    rows = comparison[comparison["architecture"] == point["architecture"]].sort_values("n")
    within = ""
    if pd.notna(point.get("within_run_best_epoch")):
        within = (f"A single long run, fine_tune({max_n}), read epoch by epoch, has its highest mean validation "
                  f"accuracy at epoch {int(point['within_run_best_epoch'])}; the n-sweep's highest mean is at n = {best_n}.")
    margin = config.get("equivalence_margin", decisions.EQUIVALENCE_MARGIN)
    if pd.isna(point["selection_optimism"]):
        optimism = ("Selection optimism is not measured with fewer than 4 replicates (it needs two halves of at least "
                    "two).")
    else:
        optimism = (f"Selection optimism, cross-fitted: picked on half of the replicates, the best n's validation "
                    f"accuracy there was {units.points(point['selection_optimism'])} against the same n on the "
                    f"other half (mean over {int(point['selection_optimism_splits'])} splits into halves); reading a "
                    f"best n's validation accuracy as its result overstates it by about that much, a little less for "
                    f"a pick on all {k}. The test accuracy above is free of it.")
    shown = rows["p_best"].notna().all()
    return dict(
        architecture=point["architecture"], chosen_n=chosen, best_n=best_n,
        test=pct(point["chosen_test_accuracy"]),
        test_ci=(units.percent_range(point["chosen_test_ci_low"], point["chosen_test_ci_high"]) if k > 1 else
                 "no interval from one replicate"),
        varied=(f"95% t-interval {what_varied(config, data_meta)}, {k} replicates" if k > 1 else
                "one replicate, no interval"),
        decline=decisions.decline_clause(point) + ".", within=within, exact=limits(point, budget),
        sequential=sequential_note(point),
        per_n="; ".join(decisions.per_n_clauses(point, comparison, margin, budget)) + ".",
        rule=(f"n = {chosen} is the smallest n whose mean validation accuracy is within one standard error (of the "
              f"paired difference) of the highest mean, at n = {best_n}." if k > 1 else
              f"n = {chosen} had the highest validation accuracy in the one replicate."),
        optimism=optimism,
        # Bar heights in rem (2.5rem for a share of 1): the template only lays them out.
        p_best=[dict(n=int(r.n), p=f"{r.p_best:.2f}", height=f"{2.5 * r.p_best:.2f}") for r in rows.itertuples()]
        if shown else [],
        p_best_note=("" if shown else
                     f"Shares of resamples with the highest mean are shown from {decisions.P_BEST_MIN_REPLICATES} "
                     f"replicates: {k} give{'s' * (k == 1)} too few distinct resamples."),
    )


def hardware() -> dict:
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    info = {"platform": platform.platform(), "cpu": model, "cpu cores": str(os.cpu_count())}
    if not cuda_device_present():  # no driver, no GPU: and no need to import torch (seconds) to say so
        return dict(info, gpus="none")
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


STATE_WORDS = {"overfits": "decline resolved", "holds": "n = N within the margin of the best",
               "futile": "stopped for futility (n = N had the highest mean)", "open": "still open",
               "unresolved": "not resolved at the last look"}
SPENDING_WORDS = {"obrien_fleming": "O'Brien-Fleming-type", "pocock": "Pocock-type"}


def race_context(points: pd.DataFrame, looks: pd.DataFrame) -> dict:
    """A sequential design's race: per architecture the look that settled it and the runs it used; {} if fixed."""
    if "look" not in points.columns or points.empty:
        return {}
    rows = [dict(architecture=p.architecture, look=f"{int(p.look)} of {int(p.looks)}", state=STATE_WORDS[p.state],
                 replicates=int(p.replicates), runs=f"{int(p.runs)} of {int(p.runs_fixed)}",
                 epochs=(f"{int(p.epochs)} of {int(p.epochs_fixed)}" if pd.notna(p.epochs) else "")) for p in points.itertuples()]
    runs, fixed = int(points["runs"].sum()), int(points["runs_fixed"].sum())
    saved = (f"The sequential design trained {runs} of the {fixed} runs a fixed design with the last look's "
             f"replicates would ({runs / fixed:.2f} of it)")
    if points["epochs"].notna().all():
        epochs, epochs_fixed = points["epochs"].sum(), points["epochs_fixed"].sum()
        saved += f"; epochs computed: {epochs:.0f} of {epochs_fixed:.0f}"
    look_rows = [dict(architecture=r.architecture, look=int(r.look), replicates=int(r.replicates), state=r.state,
                      p=p_text(r.p_decline), alpha=f"{r.alpha_overfits:.3g}", worse=f"{r.alpha_worse:.3g}",
                      equivalent=f"{r.alpha_equivalent:.3g}") for r in looks.itertuples()] if len(looks) else []
    return dict(rows=rows, looks=look_rows, saved=saved + ".", spending=SPENDING_WORDS[points["spending"].iloc[0]],
                replicates=", ".join(str(r) for r in sorted(looks["replicates"].unique())) if len(looks) else "",
                blind=blind_looks(looks))


def blind_looks(looks: pd.DataFrame) -> str:
    """A sentence for the looks at which no decline could be resolved whatever the data ("" where every look could)."""
    if not len(looks):
        return ""
    blind = sequential.looks_without_decline(looks)
    if blind.empty:
        return ""
    parts = [f"look {int(r.look)} ({int(r.replicates)} replicates: p cannot go below {r.floor:.2g}, its level is "
             f"{r.alpha_overfits:.2g})" for r in blind.itertuples()]
    return ("No decline could be resolved at " + "; ".join(parts) + ", whatever the data: the decline test's p "
            "is a share of its sign-flip patterns, 2^k of them with k replicates. Such a look stops an "
            "architecture only for equivalence or futility. More replicates at that look, or a spending function "
            "that spends more of the budget early, raise its level or lower its floor "
            "(docs/verdicts.md#sequential-designs-replicates-added-in-looks).")


def sequential_note(point: pd.Series) -> str:
    """What a sequential design means for one architecture's numbers."""
    if "look" not in point or pd.isna(point.get("look")):
        return ""
    return (f"Sequential design: this architecture stopped at look {int(point['look'])} of {int(point['looks'])} "
            f"({STATE_WORDS[point['state']]}) with {int(point['replicates'])} replicates; its verdicts are those of "
            f"that look, tested at the look's nominal levels. Means and intervals are the usual ones of the "
            f"replicates it has, not adjusted for the looks: an architecture stopped early for a decline tends to "
            f"show a decline a little larger than the true one.")


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
    computed, naive = epochs_computed(finals)
    if computed < naive:
        summary += (
            f" Epochs computed: {computed}, against {naive} for a naive grid that calls fine_tune(n) for every cell "
            f"({computed / naive:.2f} of it): fine_tune's frozen fit is the same for every n and for head_only, so it "
            "ran once per architecture and replicate, and the cells resumed from it with the same numbers (tested)."
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
        dict(strategy=r.strategy, architecture=r.architecture, n=int(r.n), replicates=int(r.replicates),
             mean=units.percent(r["mean"]), fine_tune=units.percent(r.fine_tune_mean),
             diff=units.points(r.difference),
             diff_ci=units.points_range(r.diff_ci_low, r.diff_ci_high), p=p_text(r.p_value),
             p_equivalence=p_text(r.p_equivalence), verdict=STRATEGY_WORDS[r.verdict])
        for _, r in strategies.iterrows()
    ]


def p_text(p) -> str:
    return "–" if pd.isna(p) else f"{p:.3g}"


STRATEGY_WORDS = {"better": "better than fine_tune", "worse": "worse than fine_tune",
                  "equivalent": "equivalent to fine_tune", "unresolved": "not resolved"}
STRATEGY_QUESTIONS = {"from_scratch": "pretrained body vs random init, same epochs",
                      "head_only": "does unfreezing the body help?"}


def strategy_answers(strategies: pd.DataFrame, margin: float, budget: dict) -> list:
    """One sentence per (strategy, architecture): at how many n each verdict holds, and by which test."""
    sentences = []
    for (strategy, arch), rows in strategies.groupby(["strategy", "architecture"], sort=False):
        counts = rows["verdict"].value_counts()
        parts = [f"{STRATEGY_WORDS[v]} at {counts[v]} of {len(rows)} n" for v in decisions.STRATEGY_VERDICTS
                 if v in counts]
        sentences.append(f"{arch}, {strategy} ({STRATEGY_QUESTIONS.get(strategy, strategy)}): " + ", ".join(parts)
                         + f" (test accuracy; {decisions.METHOD} over the whole table, adjusted p < "
                         f"{budget['strategy_difference']:.3g}; equivalent means within {units.margin(margin)} by two "
                         f"one-sided tests, adjusted p < {budget['strategy_equivalent']:.3g}).")
    return sentences


def early_stopping_rows(table: pd.DataFrame) -> list:
    return [
        dict(architecture=r.architecture, rule=r.rule, seeds=int(r.seeds), stopped=pct(r.stopped_early),
             stop=num(r.stop_epoch, 1), kept=num(r.kept_epoch, 1), epochs=num(r.epochs_trained, 1),
             test=units.percent(r.test_accuracy), test_ci=units.percent_range(r.test_ci_low, r.test_ci_high))
        for _, r in table.iterrows()
    ]


VERDICT_WORDS = {"best": "highest mean", "worse": "worse", "equivalent": "equivalent",
                 "unresolved": "not resolved"}


def verdict_words(r) -> str:
    """'worse than n = 6 (decline test)', 'equivalent', ...: a comparison row's verdict as the sentences put it."""
    if r.verdict != "worse":
        return VERDICT_WORDS[r.verdict]
    test = "decline test" if r.decided_by == "decline" else "all pairs"
    return f"worse than n = {int(r.worse_than_n)} ({test})"


def comparison_row(r) -> dict:
    """One row of comparison.csv as the report's table shows it."""
    return dict(architecture=r.architecture, n=int(r.n), replicates=int(r.replicates), mean=units.percent(r["mean"]),
                ci=units.percent_range(r.ci_low, r.ci_high),
                diff="–" if r.verdict == "best" else units.points(r.difference), p=p_text(r.p_worse),
                p_decline=p_text(r.p_above_max_n), p_flip=p_text(r.p_sign_flip),
                p_equivalence=p_text(r.p_equivalence), p_best="–" if pd.isna(r.p_best) else f"{r.p_best:.2f}",
                verdict=verdict_words(r))


BUDGET_WORDS = {"overfits": "accuracy falls by N (overfits)", "worse": "n is worse than the best n",
                "equivalent": "n is equivalent to the best n", "strategy_difference": "a strategy is better or worse",
                "strategy_equivalent": "a strategy is equivalent"}


def budget_context(budget: dict, replicates: int) -> dict:
    """The report's split of its one 5% false-claim budget, with the fewest replicates each claim needs at all."""
    needed = decisions.replicates_needed(budget)
    return dict(alpha=f"{sum(budget.values()):.3g}",
                rows=[dict(claim=BUDGET_WORDS[kind], alpha=f"{alpha:.3g}", needed=needed[kind],
                           possible="yes" if replicates >= needed[kind] else "no")
                      for kind, alpha in budget.items()])


def data_notes(config) -> list:
    """What a reader must know about the data to judge the numbers: overlaps that make them optimistic."""
    notes, name = [], config["dataset"]["name"]
    if name == "digits":
        notes.append("scikit-learn's digits are the test part of the UCI optical digits set, written by 13 people "
                     "(scikit-learn's description): images are split at random, so the same writers appear in "
                     "train, valid and test. Test accuracy measures new images of known writers, not new writers.")
    if name == "pets" and config["pretrained"] == "imagenet":
        notes.append("ImageNet-1k, on which the pretrained weights were trained, has classes for most of the "
                     "Oxford-IIIT Pets breeds: the body has already learnt to tell most of these breeds apart.")
    source = (config.get("source") or {}).get("dataset") or {}
    if config["pretrained"] == "source" and source.get("name") == name:
        notes.append(f"The body was pretrained on other classes of the same {name} data "
                     f"({', '.join(source.get('classes') or ['all'])}) before fine-tuning on these: source and "
                     "target share their writers and style.")
    return notes


def summary_row(r: pd.Series) -> dict:
    """One row of summary.csv as the report shows it: accuracy in percent (its spread in points), loss as it is."""
    accuracy = r.metric.endswith("accuracy")
    level = units.percent if accuracy else num
    spread = (lambda x: units.points(x, signed=False)) if accuracy else num
    return dict(strategy=r.strategy, architecture=r.architecture, n=int(r.n), metric=r.metric, seeds=int(r.seeds),
                mean=level(r["mean"]), std=spread(r["std"]), ci_low=level(r.ci_low), ci_high=level(r.ci_high))


def build_context(
    config, config_hash, summary, points, finals, figures, benchmark_files, workdir, data_meta, comparison,
    strategies, early_stopping, citation, partial: dict = None, looks: pd.DataFrame = None,
) -> dict:
    """Everything the template shows, as strings and lists of rows.

    `partial` (from `epochbench.partial`) marks a report of the runs finished so far: the template
    then opens with a banner saying how many runs of how many it rests on. The final report has none.
    """
    summary_rows = [summary_row(r) for _, r in summary.iterrows()]
    commit = git_commit(workdir)
    margin = config.get("equivalence_margin", decisions.EQUIVALENCE_MARGIN)
    # The same split of the one false-claim budget as analyze() made: the strategies take a share where present.
    budget = decisions.error_budget(with_strategies=not strategies.empty)
    answers = [answer(p, comparison, config, data_meta, budget) for _, p in points.iterrows()]
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
        comparison=[comparison_row(r) for _, r in comparison.iterrows()],
        margin=units.margin(margin),
        budget=budget_context(budget, int(points["replicates"].min()) if len(points) else 0),
        varied=what_varied(config, data_meta),
        strategies=strategy_rows(strategies),
        strategy_answers=strategy_answers(strategies, margin, budget),
        strategy_names=list(config["strategies"]),
        early_stopping=early_stopping_rows(early_stopping),
        cite=citation_block(citation, config["experiment"], config_hash, commit),
        cells=len(finals),
        seeds=sorted(finals["seed"].unique().tolist()),
        max_n=int(config["max_epochs"]),
        architectures=list(config["architectures"]),
        dataset=config["dataset"]["name"],
        pretrained=config["pretrained"],
        config_yaml=yaml.safe_dump(redact_credentials(config), sort_keys=False),
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
            images=data_meta.get("images", sum(data_meta["counts"].values())),
            split=split_sentences(config, data_meta),
            notes=data_notes(config),
        ),
        reproducibility=reproducibility(config),
        partial=partial,
        race=race_context(points, looks if looks is not None else pd.DataFrame()),
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


def lr_find_context(results: pd.DataFrame, config) -> dict:
    """The report's lr_find section (fine_tune.base_lr naming a suggestion): the rate each architecture used, stated.

    `results` is `lrfind.read_results`' first frame; empty where base_lr is a number,
    and the template then leaves the section out.
    """
    if results is None or results.empty:
        return dict(lr_find=[], lr_find_note="")
    fine_tune = config.get("fine_tune", {})
    lr_mult = fine_tune.get("lr_mult", 100)
    rows = []
    for _, r in results.iterrows():
        others = ", ".join(f"{name} {rate:.2g}" for name, rate in r["suggestions"].items() if name != r["suggestion"])
        rows.append(dict(
            architecture=r["architecture"], suggestion=r["suggestion"], lr=f"{r['lr']:.3g}",
            unfrozen=f"{r['lr'] / 2:.3g} (first layers {r['lr'] / 2 / lr_mult:.3g})", others=others,
            sentence=(f"{r['architecture']}: base_lr = {r['lr']:.3g}, fastai's {r['suggestion']} suggestion from "
                      f"lr_find on replicate {int(r['seed'])}'s {int(r['train_images'])} training images "
                      f"({int(r['iterations'])} batches)."),
        ))
    seeds = sorted(int(s) for s in results["seed"].unique())
    overlap = (f" The rate was found on replicate {', '.join(map(str, seeds))}'s training split; with split per_seed "
               "some of those images are validation or test images of the other replicates."
               if config.get("split", "per_seed") == "per_seed" and len(config.get("seeds", [])) > 1 else "")
    note = ("fine_tune.base_lr names an lr_find suggestion: fastai's lr_find ran once per architecture, with the "
            "learner built as the cells build theirs (the body they start from, frozen as in fine_tune's first fit, "
            "the same batches and augmentation), on training batches at exponentially rising rates; the named "
            "suggestion is the base_lr of every fine_tune and head_only cell of that architecture: the frozen fit at "
            "base_lr, the unfrozen fit at base_lr / 2 for the head and base_lr / 2 / lr_mult "
            f"({lr_mult:g}) for the first layers. from_scratch keeps its own rate. The files: "
            f"results/{config.get('experiment', '<experiment>')}/lr_find/<architecture>.json and .csv." + overlap)
    return dict(lr_find=rows, lr_find_note=note)
