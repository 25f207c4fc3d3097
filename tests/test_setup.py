"""The Makefile's choice of Python, read from `make -n` plans in a copy of it (the checkout's own .venv
and .setup.done play no part): the project's .venv unless an environment is active, and pip never
run by a bare system `python3`, which PEP 668 makes refuse ("externally-managed-environment")."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PINS = "torch==2.14.1 torchvision==0.29.1"


@pytest.fixture
def project(tmp_path):
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    return tmp_path


def make(project, *args, **env_overrides):
    """`make ARGS` in `project` with no environment active (as under `make test`, which activates .venv)."""
    # MAKELEVEL too: under `make test` it is set, and a make that thinks it is a sub-make prints
    # "Entering directory" around its plan.
    env = {k: v for k, v in os.environ.items()
           if k not in ("VIRTUAL_ENV", "CONDA_PREFIX", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env.update(env_overrides)
    result = subprocess.run(["make", *args], cwd=project, env=env, capture_output=True, text=True)
    return result


def plan(project, target, **env) -> list:
    result = make(project, "-n", target, **env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.splitlines()


def test_with_no_environment_active_the_project_venv_is_made_and_used(project):
    lines = plan(project, "test")
    venv_python = f"{project}/.venv/bin/python"
    assert lines[0].startswith("python3 -m venv .venv"), lines
    assert f"{venv_python} -m pip install --quiet {PINS}" in lines
    assert f"{venv_python} -m pip install --quiet -e '.[test]'" in lines
    assert lines[-1] == f"{venv_python} -m pytest"
    assert not [line for line in lines if line.startswith(("python3 -m pip", "pip "))], lines


def test_an_active_virtual_environment_is_used_as_it_is(project):
    lines = plan(project, "test", VIRTUAL_ENV="/opt/their-venv")
    assert not [line for line in lines if "-m venv" in line], lines
    assert f"/opt/their-venv/bin/python -m pip install --quiet {PINS}" in lines
    assert lines[-1] == "/opt/their-venv/bin/python -m pytest"


def test_an_active_conda_environment_is_used_as_it_is(project):
    lines = plan(project, "setup", CONDA_PREFIX="/opt/conda/envs/epochbench")
    assert not [line for line in lines if "-m venv" in line], lines
    assert f"/opt/conda/envs/epochbench/bin/python -m pip install --quiet {PINS}" in lines


def test_report_runs_snakemake_from_the_venv_and_test_fast_leaves_out_slow_tests(project):
    assert plan(project, "report")[-1] == f"{project}/.venv/bin/python -m snakemake --cores all"
    assert plan(project, "test-fast")[-1] == f'{project}/.venv/bin/python -m pytest -m "not slow"'


def test_set_up_once_then_only_the_command_and_a_new_venv_is_set_up_again(project):
    (project / ".venv").mkdir()
    (project / ".venv" / "pyvenv.cfg").write_text("")
    (project / ".setup.done").write_text("")
    assert plan(project, "test") == [f"{project}/.venv/bin/python -m pytest"]
    os.utime(project / ".setup.done", (0, 0))  # older than the venv, as after `rm -r .venv; python3 -m venv .venv`
    assert f"{project}/.venv/bin/python -m pip install --quiet {PINS}" in plan(project, "test")


def test_a_venv_that_fails_half_way_is_removed_and_explained(project):
    """Debian's python3 without python3-venv writes .venv/pyvenv.cfg, then fails for want of ensurepip."""
    bin_dir = project / "fakebin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text('#!/bin/sh\nmkdir -p "$3" && touch "$3/pyvenv.cfg"\n'
                    'echo "The virtual environment was not created successfully because ensurepip is not available." >&2\n'
                    'exit 1\n')
    fake.chmod(0o755)
    result = make(project, ".venv/pyvenv.cfg", PATH=f"{bin_dir}:{os.environ['PATH']}")
    assert result.returncode != 0
    assert "python3-venv" in result.stdout + result.stderr
    assert not (project / ".venv").exists()
