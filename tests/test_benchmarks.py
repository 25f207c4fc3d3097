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


def test_the_readme_calibration_tables_are_the_results_file():
    """README's tables are made from benchmarks/results/calibration.csv by the benchmark's own function."""
    import pandas as pd

    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import calibration
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    tables = calibration.markdown_tables(pd.read_csv(ROOT / "benchmarks" / "results" / "calibration.csv"))
    readme = (ROOT / "README.md").read_text()
    assert tables in readme
