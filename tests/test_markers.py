"""The quick tier (`make test-fast`, pytest -m "not slow") leaves out every test that runs the pipeline,
the SLURM cluster or a browser, without their having to say so: tests/conftest.py marks them."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ["tests/test_pipeline.py", "tests/test_outputs.py", "tests/test_browser.py", "tests/test_slurm.py",
         "tests/test_trust.py", "tests/test_config.py"]


def collected(*args) -> set:
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             *args, *FILES], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return {re.sub(r"\[.*", "", line) for line in result.stdout.splitlines() if "::" in line}


def test_pipeline_cluster_and_browser_tests_are_left_out_of_the_quick_tier():
    fast = collected("-m", "not slow")
    # finished_run users, the cluster's users, the snakemake() helper's callers and every browser test.
    for slow in ("tests/test_pipeline.py::test_second_run_has_nothing_to_do",
                 "tests/test_outputs.py::test_histories_is_every_cells_history_in_order",
                 "tests/test_slurm.py::test_a_job_slurm_kills_is_reported_and_a_rerun_completes_it",
                 "tests/test_slurm.py::test_locally_only_device_cuda_asks_for_gpus",
                 "tests/test_trust.py::test_kill_mid_sweep_then_resume_retrains_only_the_unfinished",
                 "tests/test_config.py::test_snakemake_stops_on_bad_config_before_any_job",
                 "tests/test_browser.py::test_browser_checks_catch_a_broken_page"):
        assert slow not in fast
    # What stays: tests of pieces, among them the cluster script's own checks.
    assert "tests/test_config.py::test_schema_errors_name_the_key_on_one_line" in fast
    assert "tests/test_slurm.py::test_cluster_script_leaves_a_slurm_host_alone_and_writes_nothing" in fast


def test_slurm_and_browser_select_their_modules():
    assert {name.split("::")[0] for name in collected("-m", "slurm")} == {"tests/test_slurm.py"}
    assert {name.split("::")[0] for name in collected("-m", "browser")} == {"tests/test_browser.py"}


def test_a_test_that_reaches_snakemake_through_a_helper_is_stopped_unless_marked_slow(tmp_path):
    tests = tmp_path / "tests"
    tests.mkdir()
    shutil.copy(ROOT / "tests" / "conftest.py", tests / "conftest.py")
    (tests / "test_sneaky.py").write_text(
        "from conftest import snakemake\n\n"
        "def run_the_pipeline(workdir):\n"
        "    return snakemake(workdir)\n\n"
        "def test_sneaky(tmp_path):\n"
        "    run_the_pipeline(tmp_path)\n")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                            cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "test_sneaky runs snakemake but is not marked slow" in result.stdout, result.stdout
