rule collect_tables:
    """Gather every cell's history and final metrics into tidy tables."""
    input:
        histories=cell_files("history.csv"),
        epoch_seconds=cell_files("epoch_seconds.csv"),
        metrics=cell_files("metrics.json"),
    output:
        histories=report(
            f"{TABLES}/histories.csv",
            caption="../report/histories.rst",
            category="Tables",
        ),
        finals=report(
            f"{TABLES}/finals.csv", caption="../report/finals.rst", category="Tables"
        ),
    log:
        f"{LOGS}/collect_tables.log",
    benchmark:
        f"{BENCH}/collect_tables/all.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/collect_tables.py"


rule summarize:
    """Mean, spread and 95% interval over seeds; the overfitting point; the within-run curve."""
    input:
        histories=f"{TABLES}/histories.csv",
        finals=f"{TABLES}/finals.csv",
    output:
        summary=report(
            f"{TABLES}/summary.csv", caption="../report/summary.rst", category="Tables"
        ),
        overfitting=report(
            f"{TABLES}/overfitting.csv",
            caption="../report/overfitting.rst",
            category="Tables",
        ),
        within_run=report(
            f"{TABLES}/within_run.csv",
            caption="../report/within_run.rst",
            category="Tables",
        ),
        comparison=report(
            f"{TABLES}/comparison.csv",
            caption="../report/comparison.rst",
            category="Tables",
        ),
        strategies=report(
            f"{TABLES}/strategies.csv",
            caption="../report/strategies.rst",
            category="Tables",
        ),
        early_stopping=report(
            f"{TABLES}/early_stopping.csv",
            caption="../report/early_stopping.rst",
            category="Tables",
        ),
        early_stopping_seeds=f"{TABLES}/early_stopping_seeds.csv",
        cost=report(
            f"{TABLES}/cost.csv", caption="../report/cost.rst", category="Tables"
        ),
        looks=report(
            f"{TABLES}/looks.csv", caption="../report/looks.rst", category="Tables"
        ),
    log:
        f"{LOGS}/summarize.log",
    benchmark:
        f"{BENCH}/summarize/all.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        max_n=config["max_epochs"],
        early_stopping=config["early_stopping"],
        equivalence_margin=config["equivalence_margin"],
        replicates=config.get("replicates"),
        seeds=config["seeds"],
    script:
        "../../scripts/summarize.py"


rule plot_figures:
    """Seaborn figures of the tables, as SVG, PNG and PDF with stable names for write-ups to cite."""
    input:
        finals=f"{TABLES}/finals.csv",
        summary=f"{TABLES}/summary.csv",
        overfitting=f"{TABLES}/overfitting.csv",
        within_run=f"{TABLES}/within_run.csv",
        strategies=f"{TABLES}/strategies.csv",
        cost=f"{TABLES}/cost.csv",
        # Where fine_tune.base_lr names an lr_find suggestion (else empty): the lr_find figure.
        lr_find_results=lr_find_files("json"),
        lr_find_curves=lr_find_files("csv"),
    output:
        **{
            f"{name}_{fmt}": (
                report(
                    f"{REPORTS}/figures/{name}.{fmt}",
                    caption=f"../report/{name}.rst",
                    category="Figures",
                )
                if fmt == "png"
                else f"{REPORTS}/figures/{name}.{fmt}"
            )
            for name in FIGURES
            for fmt in FIGURE_FORMATS
        },
    log:
        f"{LOGS}/plot_figures.log",
    benchmark:
        f"{BENCH}/plot_figures/all.tsv"
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../../scripts/plot_figures.py"


rule latex_tables:
    """The report's tables as LaTeX (pandas to_latex), for write-ups that cite them."""
    input:
        expand(f"{TABLES}/{{name}}.csv", name=LATEX_TABLES),
    output:
        expand(f"{REPORTS}/tables/{{name}}.tex", name=LATEX_TABLES),
    log:
        f"{LOGS}/latex_tables.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        experiment=EXPERIMENT,
        config_hash=CONFIG_HASH,
    script:
        "../../scripts/latex_tables.py"
