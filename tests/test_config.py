"""A bad config stops before any training, with one line that names the key."""

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from conftest import snakemake
from epochbench.config import ConfigError, canonical, check_config, config_hash, schema_error

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def base_config() -> dict:
    return yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())


def with_defaults(config: dict) -> dict:
    config = copy.deepcopy(config)
    validate(config, str(SCHEMA))
    return config


@pytest.mark.parametrize("config_file", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(config_file):
    config = yaml.safe_load(config_file.read_text())
    assert schema_error(config, SCHEMA) is None


SCHEMA_CASES = [
    ("unknown key", lambda c: c.update(epochs=3), "'epochs': unknown key"),
    ("wrong type", lambda c: c.update(max_epochs="ten"), "'max_epochs'"),
    ("N < 1", lambda c: c.update(max_epochs=0), "'max_epochs'"),
    ("empty seeds", lambda c: c.update(seeds=[]), "'seeds'"),
    ("duplicate seeds", lambda c: c.update(seeds=[1, 1]), "'seeds'"),
    ("unknown dataset", lambda c: c["dataset"].update(name="cifar"), "'dataset.name'"),
    ("path in experiment name", lambda c: c.update(experiment="../x"), "'experiment'"),
    ("missing key", lambda c: c.pop("architectures"), "'architectures': required"),
    ("bad fraction", lambda c: c["dataset"].update(valid_fraction=1.5), "'dataset.valid_fraction'"),
    ("no GPU slots", lambda c: c.update(jobs_per_gpu=0), "'jobs_per_gpu'"),
    ("fractional GPU slots", lambda c: c.update(jobs_per_gpu=1.5), "'jobs_per_gpu'"),
    ("GPU slots as text", lambda c: c.update(jobs_per_gpu="2"), "'jobs_per_gpu'"),
    ("unknown dataset split", lambda c: c["dataset"].update(split="official"), "'dataset.split'"),
    ("misspelt augmentation", lambda c: c.update(augment=dict(max_rotat=10)), "'augment.max_rotat': unknown key"),
    ("unknown lr_find suggestion", lambda c: c.update(fine_tune=dict(base_lr="vally")), "'fine_tune.base_lr'"),
    ("archive digest not SHA-256", lambda c: c.update(dataset=dict(name="pets", sha256="abc123")), "'dataset.sha256'"),
    ("tracking URI without a scheme", lambda c: c.update(tracking=dict(mlflow="mlflow.example:5000")),
     "'tracking.mlflow'"),
    ("tracking timeout of 0", lambda c: c.update(tracking=dict(mlflow=True, timeout=0)), "'tracking.timeout'"),
    ("misspelt tracking key", lambda c: c.update(tracking=dict(mlfow=True)), "'tracking.mlfow': unknown key"),
]


@pytest.mark.parametrize("name,mutate,expected", SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_schema_errors_name_the_key_on_one_line(name, mutate, expected):
    config = base_config()
    mutate(config)
    message = schema_error(config, SCHEMA)
    assert message is not None and expected in message
    assert "\n" not in message


CHECK_CASES = [
    ("fractions sum to 1", lambda c: c["dataset"].update(valid_fraction=0.5, test_fraction=0.5),
     "'dataset.valid_fraction' + 'dataset.test_fraction'"),
    ("unknown architecture", lambda c: c.update(architectures=["resnet18", "resnet9000"]), "'architectures'"),
    ("missing dataset folder", lambda c: c.update(dataset=dict(name="folder", path="/no/such/folder")),
     "'dataset.path'"),
    ("missing weights file", lambda c: c.update(pretrained="/no/such/weights.pt"), "'pretrained'"),
    ("source without task", lambda c: c.pop("source"), "'source'"),
    ("batch larger than training split", lambda c: c.update(batch_size=500), "'batch_size'"),
    ("GPU slots a float", lambda c: c.update(jobs_per_gpu=2.0), "'jobs_per_gpu'"),
    ("augmented size other than image_size", lambda c: c.update(augment=dict(size=224)), "'augment.size'"),
    ("regex without group", lambda c: c.update(dataset=dict(name="folder", path="/", label_regex=r"\d+")),
     "'dataset.label_regex'"),
    ("split folders on digits", lambda c: c["dataset"].update(split="folders"), "'dataset.split': folders, but digits"),
    ("split folders on source digits", lambda c: c["source"]["dataset"].update(split="folders"),
     "'source.dataset.split'"),
    # config/ holds files and no train/ or valid/ subfolders.
    ("split folders without split subfolders",
     lambda c: c.update(dataset=dict(name="folder", path=str(ROOT / "config"), split="folders")),
     "'dataset.split': folders, but"),
    ("archive digest for a dataset without archive", lambda c: c["dataset"].update(sha256="0" * 64),
     "'dataset.sha256': is the digest of an archive, and digits is none"),
    ("split folders on a flat folder", lambda c: c.update(dataset=dict(name="folder", path=str(ROOT / "config"),
                                                                      label_regex=r"(\w+)\.yaml", split="folders")),
     "'dataset.split'"),
    ("looks that do not increase", lambda c: c.update(replicates=dict(looks=[2, 2])),
     "'replicates.looks': [2, 2] must increase"),
    ("a last look beyond the seeds", lambda c: c.update(replicates=dict(looks=[2, 3])),
     "'replicates.looks': the last look needs 3 replicates but 'seeds' lists 2"),
]


@pytest.mark.parametrize("name,mutate,expected", CHECK_CASES, ids=[c[0] for c in CHECK_CASES])
def test_semantic_errors_name_the_key_on_one_line(name, mutate, expected):
    config = base_config()
    mutate(config)
    assert schema_error(config, SCHEMA) is None
    with pytest.raises(ConfigError) as err:
        check_config(with_defaults(config))
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_tracking_without_mlflow_installed_stops_before_any_job(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else find_spec(name, *a))
    config = dict(base_config(), tracking=dict(mlflow="http://127.0.0.1:5000"))
    with pytest.raises(ConfigError) as err:
        check_config(with_defaults(config))
    assert str(err.value) == ("config key 'tracking.mlflow': mlflow is not installed; pip install 'epochbench[mlflow]' "
                              "(or set it to false)")
    check_config(with_defaults(dict(config, tracking=dict(mlflow=False))))  # off: nothing to install


@pytest.mark.parametrize("config_file", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_load_config_fills_the_defaults_snakemake_fills(config_file):
    """The commands beside the pipeline (status, report --partial, track) read the config the Snakefile runs with."""
    from epochbench.config import load_config

    assert load_config(config_file) == with_defaults(yaml.safe_load(config_file.read_text()))


def test_dataset_split_checks_the_folders(tmp_path):
    from test_data import write_tree

    config = base_config()
    config.update(dataset=dict(name="folder", path=str(tmp_path), split="folders"))
    write_tree(tmp_path, {"train": {"a": 3, "b": 3}, "val": {"a": 1, "b": 1}})
    check_config(with_defaults(config))  # train/ and val/: folders can be used
    config["dataset"]["split"] = "auto"
    check_config(with_defaults(config))
    write_tree(tmp_path, {"valid": {"a": 1, "b": 1}})  # now valid/ beside val/: which one?
    for split in ("auto", "folders"):
        config["dataset"]["split"] = split
        with pytest.raises(ConfigError, match=r"^config key 'dataset.split': .*both valid/ and val/") as err:
            check_config(with_defaults(config))
        assert "\n" not in str(err.value)
    config["dataset"]["split"] = "random"  # pooled, as before: nothing to choose between
    check_config(with_defaults(config))
    imagenette = base_config()
    imagenette["dataset"].update(name="imagenette_160", split="folders")
    check_config(with_defaults(imagenette))
    imagenette["dataset"]["name"] = "pets"
    with pytest.raises(ConfigError, match="'dataset.split': folders, but pets has no"):
        check_config(with_defaults(imagenette))


def test_good_config_passes_and_hash_tracks_content():
    config = with_defaults(base_config())
    check_config(config)
    changed = copy.deepcopy(config)
    changed["seeds"] = [0, 1, 2]
    assert config_hash(config) == config_hash(copy.deepcopy(config))
    assert config_hash(config) != config_hash(changed)


ALL_CASES = SCHEMA_CASES + CHECK_CASES


@pytest.mark.parametrize("name,mutate,expected", ALL_CASES, ids=[c[0] for c in ALL_CASES])
def test_snakemake_stops_on_bad_config_before_any_job(name, mutate, expected, tmp_path):
    config = base_config()
    mutate(config)
    config_file = tmp_path / "bad.yaml"
    config_file.write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, check=False, configfile=config_file)
    assert result.returncode != 0
    messages = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("epochbench: ")]
    assert len(messages) == 1 and expected in messages[0], result.stdout + result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()


def reversed_keys(value):
    """The same config with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reversed_keys(value[key]) for key in reversed(list(value))}
    return value


def test_key_order_does_not_change_the_canonical_config():
    config = with_defaults(base_config())
    reordered = with_defaults(reversed_keys(base_config()))
    assert list(config) != list(reordered) and list(config["dataset"]) != list(reordered["dataset"])
    # Compared as YAML text: dict equality would ignore the very order in question.
    assert yaml.safe_dump(canonical(config), sort_keys=False) == yaml.safe_dump(canonical(reordered), sort_keys=False)


def test_a_reordered_config_file_plans_no_job_after_a_finished_run(finished_run, tmp_path):
    workdir, _ = finished_run
    reordered = tmp_path / "ci_reordered.yaml"
    reordered.write_text(yaml.safe_dump(reversed_keys(base_config()), sort_keys=False))
    assert reordered.read_text() != yaml.safe_dump(base_config(), sort_keys=False)
    result = snakemake(workdir, "--dry-run", configfile=reordered)
    assert "Nothing to be done" in result.stdout + result.stderr, (result.stdout + result.stderr)[-3000:]


def test_model_names_are_cached_per_installed_version(tmp_path):
    """A rerun's config check must not import the model zoos (seconds per `snakemake` call)."""
    import json
    import subprocess
    import sys

    from epochbench.config import architecture_source, model_names

    cache = tmp_path / "model_names.json"
    names = model_names(cache)
    assert architecture_source("resnet18", names) == "torchvision"
    assert architecture_source("resnet10t", names) == "timm"
    probe = (f"import sys; from epochbench.config import model_names; n = model_names({str(cache)!r}); "
             "print('resnet18' in n['torchvision'], 'timm' in sys.modules, 'torchvision' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.stdout.split() == ["True", "False", "False"], result.stderr[-2000:]
    # Another installed version (here: a doctored cache) lists the zoos afresh.
    stale = json.loads(cache.read_text())
    stale["versions"]["timm"] = "0.0.1"
    stale["timm"] = []
    cache.write_text(json.dumps(stale))
    assert "resnet10t" in model_names(cache)["timm"]
    assert json.loads(cache.read_text())["versions"] == names["versions"]
