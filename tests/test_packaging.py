"""environment.yml and pyproject.toml name the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def names(requirements) -> set:
    return {re.split(r"[<>=!~ ]", r, maxsplit=1)[0].lower() for r in requirements}


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = names(project["dependencies"]) | names(project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    conda = [d for d in env if isinstance(d, str)]
    pip = next(d["pip"] for d in env if isinstance(d, dict))
    listed = names(conda + [p for p in pip if not p.startswith("-")]) - {"python", "pip"}
    assert listed == wanted


def torch_requirements() -> dict:
    """Every place that states which torch the project needs, with what it says."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
    pip = next(d["pip"] for d in env if isinstance(d, dict))
    makefile = re.search(r"torch==[\d.]+", (ROOT / "Makefile").read_text()).group(0)
    found = {"pyproject.toml": [r for r in project["dependencies"] if names([r]) == {"torch"}],
             "environment.yml": [p.split("#")[0].strip() for p in pip if names([p]) == {"torch"}],
             "Makefile": [makefile]}
    return {where: requirement for where, (requirement,) in found.items()}


def test_torch_is_required_where_weights_only_loading_is_safe():
    """torch.load(weights_only=True) could run code up to torch 2.5.1 (CVE-2025-32434)."""
    for where, requirement in torch_requirements().items():
        version = re.fullmatch(r"torch(?:>=|==)([\d.]+)", requirement).group(1)
        assert tuple(int(part) for part in version.split(".")[:2]) >= (2, 6), f"{where}: {requirement}"
