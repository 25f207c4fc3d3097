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
