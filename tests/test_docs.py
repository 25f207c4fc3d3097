"""The README fits on two screens, and what it and docs/ point to exists: links, anchors, file paths, its config."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Paths a page names in backticks that are the repository's own (not a user's, not a run's output).
REPO_PATH = re.compile(r"`((?:epochbench|workflow|config|benchmarks|tests|scripts|docs|reports/templates|\.ci|\.github)"
                       r"/[\w./-]*|Makefile|Snakefile|pyproject\.toml|environment\.yml|CITATION\.cff)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(page: Path) -> set:
    """GitHub's anchors of a markdown page's headings."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_exists(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # https://, mailto:
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        assert resolved.exists(), f"{page.name}: link to {target}: no such file"
        if anchor:
            assert anchor in anchors(resolved), f"{page.name}: link to {target}: no such heading"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_path_a_page_names_exists(page):
    named = [path.rstrip(".") for path in REPO_PATH.findall(page.read_text())]
    assert named or page.name in ("verdicts.md", "report.md")
    for path in named:
        if any(mark in path for mark in "<>*{}"):
            continue
        assert (ROOT / path).exists(), f"{page.name} names {path}, which does not exist"


def test_readme_fits_on_two_screens_with_its_pictures():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 130
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", readme)
    assert pictures == ["docs/answer.png", "docs/accuracy_vs_n.png", "docs/status.png", "docs/mlflow_runs.png"]
    for picture in pictures:
        assert (ROOT / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_readme_config_for_your_own_data_is_valid(tmp_path):
    """The README's 'Your own data' config passes the schema and the start-up checks, pointed at a real folder."""
    from snakemake.utils import validate

    from epochbench.config import check_config, schema_error

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n# my.yaml\n(.*?)```", readme, re.DOTALL).group(1)
    config = yaml.safe_load(block)
    for label in ("cats", "dogs"):
        (tmp_path / "images" / label).mkdir(parents=True)
    config["dataset"]["path"] = str(tmp_path / "images")
    schema = ROOT / "workflow" / "schemas" / "config.schema.yaml"
    assert schema_error(config, schema) is None
    validate(config, str(schema))  # fills the defaults, as the Snakefile does
    check_config(config, model_cache=tmp_path / "model_names.json")
