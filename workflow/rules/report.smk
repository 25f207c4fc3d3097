rule render_report:
    """One self-contained HTML file: the answer first, then figures, tables and provenance."""
    input:
        summary=f"{TABLES}/summary.csv",
        overfitting=f"{TABLES}/overfitting.csv",
        comparison=f"{TABLES}/comparison.csv",
        strategies=f"{TABLES}/strategies.csv",
        early_stopping=f"{TABLES}/early_stopping.csv",
        looks=f"{TABLES}/looks.csv",
        finals=f"{TABLES}/finals.csv",
        latex=expand(f"{REPORTS}/tables/{{name}}.tex", name=LATEX_TABLES),
        citation=f"{workflow.basedir}/CITATION.cff",
        data_meta=f"{RESULTS}/data/target/meta.json",
        figures=expand(f"{REPORTS}/figures/{{name}}.png", name=FIGURES),
        template=f"{workflow.basedir}/reports/templates/report.html.j2",
        benchmarks=benchmark_files,
        lr_find_results=lr_find_files("json"),
        lr_find_curves=lr_find_files("csv"),
    output:
        html=REPORT_HTML,
    log:
        f"{LOGS}/render_report.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=REPORT_CONFIG,
        config_hash=CONFIG_HASH,
    script:
        "../../scripts/render_report.py"
