"""The benchmarks that need hardware this machine may lack refuse cleanly rather than write numbers."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_benchmark_without_a_gpu_exits_2_with_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "gpu.csv"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), str(out)],
                            env=dict(os.environ, CUDA_VISIBLE_DEVICES=""), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "no CUDA device" in result.stderr
    assert result.stdout == ""
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_calibration_tables_in_the_docs_are_the_results_file():
    """docs/verdicts.md's tables and the README's summary are made from benchmarks/results/calibration.csv by the benchmark's own function."""
    import pandas as pd

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import calibration
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    tables = calibration.markdown_tables(pd.read_csv(ROOT / "benchmarks" / "results" / "calibration.csv"))
    assert tables in (ROOT / "docs" / "verdicts.md").read_text()
    summary = calibration.readme_table(pd.read_csv(ROOT / "benchmarks" / "results" / "calibration.csv"))
    assert summary in (ROOT / "README.md").read_text()
    # The sequential design's: docs/verdicts.md has the whole table, the README its summary.
    table = pd.read_csv(ROOT / "benchmarks" / "results" / "calibration.csv")
    assert calibration.sequential_table(table) in (ROOT / "docs" / "verdicts.md").read_text()
    assert calibration.readme_sequential_table(table) in (ROOT / "README.md").read_text()


def test_the_replicates_the_report_names_for_power_are_the_results_file():
    """decisions.REPLICATES_FOR_POWER, which a report of too few replicates quotes, is calibration.csv's."""
    import pandas as pd

    from epochbench import decisions

    table = pd.read_csv(ROOT / "benchmarks" / "results" / "calibration.csv")
    power = table[(table["rule"] == "this report's rules") & (table["shape"] == "normal")]
    for (size, max_n), needed in decisions.REPLICATES_FOR_POWER.items():
        rows = power[(power["setting"] == decisions.POWER_SETTING.format(size=size)) & (power["max_n"] == max_n)]
        enough = rows.loc[rows["rate"] >= 0.8, "replicates"]
        assert len(rows) == 4 and needed == (int(enough.min()) if len(enough) else None), (size, max_n)
