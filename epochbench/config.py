"""Checks of an experiment config that a JSON schema cannot express.

The schema (workflow/schemas/config.schema.yaml) checks types and ranges and
fills defaults; `check_config` then checks what needs the file system or the
model zoos, so that a bad config stops the run before any training with one
line naming the key at fault.
"""

import contextlib
import hashlib
import json
from pathlib import Path

from .datasets import FASTAI_DATASETS, HAS_SPLIT_FOLDERS, DataError, split_folders


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


def canonical(value):
    """The same settings with every dict's keys sorted, recursively.

    Snakemake reruns a job when its params change, and compares them as
    written: without this, reordering the keys of a config file would rerun
    every job.
    """
    if isinstance(value, dict):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [canonical(item) for item in value]
    return value


# Keys that say where a sweep is watched from, not what it computes: left out of the config's hash, so that
# turning tracking on or off changes no hash, caption or report of a finished experiment.
NOT_HASHED = ("tracking",)


def config_hash(config: dict) -> str:
    """Short, stable hash of a config: the same settings give the same hash (`NOT_HASHED` keys apart)."""
    settings = {key: value for key, value in config.items() if key not in NOT_HASHED}
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def model_names(cache_path=None) -> dict:
    """{'torchvision': [...], 'timm': [...]}: every model name of both zoos, cached per installed version.

    Listing them means importing torchvision and timm, several seconds that
    every `snakemake` call (a no-op rerun included) would pay; the cache is
    valid while the installed versions stay the same.
    """
    from importlib.metadata import version

    versions = {package: version(package) for package in ("torch", "torchvision", "timm")}
    if cache_path is not None and Path(cache_path).is_file():
        with contextlib.suppress(ValueError, KeyError):
            cached = json.loads(Path(cache_path).read_text())
            if cached["versions"] == versions:
                return cached
    import timm
    import torchvision.models

    names = dict(versions=versions, torchvision=sorted(torchvision.models.list_models(module=torchvision.models)),
                 timm=sorted(timm.list_models()))
    if cache_path is not None:
        from .io import write_json

        write_json(cache_path, names)
    return names


def architecture_source(name: str, names: dict = None) -> str:
    """'torchvision' if torchvision has a model of this name, else 'timm' if timm has one."""
    names = names or model_names()
    if name in names["torchvision"]:
        return "torchvision"
    if name in names["timm"]:
        return "timm"
    raise ConfigError(
        f"config key 'architectures': unknown architecture {name!r}; "
        "use a torchvision name (e.g. resnet18) or a timm name (e.g. resnet10t)"
    )


def _check_dataset(dataset: dict, key: str) -> None:
    if dataset["valid_fraction"] + dataset["test_fraction"] >= 1:
        raise ConfigError(
            f"config keys '{key}.valid_fraction' + '{key}.test_fraction' must be < 1 "
            f"(got {dataset['valid_fraction']} + {dataset['test_fraction']}), so that images are left to train on"
        )
    if dataset["name"] == "folder":
        if not dataset.get("path"):
            raise ConfigError(f"config key '{key}.path': name 'folder' needs the path of an image folder")
        if not Path(dataset["path"]).is_dir():
            raise ConfigError(f"config key '{key}.path': folder {dataset['path']!r} does not exist")
    _check_dataset_split(dataset, key)
    if dataset.get("sha256") is not None and dataset["name"] not in FASTAI_DATASETS:
        raise ConfigError(f"config key '{key}.sha256': is the digest of an archive, and {dataset['name']} is none "
                          f"(only {', '.join(FASTAI_DATASETS)} are)")
    if dataset.get("label_regex") is not None:
        import re

        try:
            if re.compile(dataset["label_regex"]).groups < 1:
                raise ConfigError(f"config key '{key}.label_regex': needs one (group) that captures the label")
        except re.error as err:
            raise ConfigError(f"config key '{key}.label_regex': not a regular expression ({err})") from None


def _check_dataset_split(dataset: dict, key: str) -> None:
    """dataset.split folders needs a dataset with split subfolders; unset (auto) must not be ambiguous."""
    name, split = dataset["name"], dataset.get("split", "auto")
    if name != "folder":
        if split == "folders" and not HAS_SPLIT_FOLDERS[name]:
            raise ConfigError(f"config key '{key}.split': folders, but {name} has no train/ and valid/ split "
                              "folders; use random (or leave it unset)")
        return
    if dataset.get("label_regex") is not None:
        if split == "folders":
            raise ConfigError(f"config key '{key}.split': folders needs train/ and valid/ (or val/) subfolders of "
                              "<class>/ folders, but label_regex labels a flat folder; use random (or leave it unset)")
        return
    if split == "random":
        return
    try:
        layout = split_folders(dataset["path"])
    except DataError as err:
        raise ConfigError(f"config key '{key}.split': {err}") from None
    if split == "folders" and layout is None:
        raise ConfigError(f"config key '{key}.split': folders, but {dataset['path']!r} has no train/ and valid/ "
                          "(or val/) subfolders; use random (or leave it unset)")


def _check_jobs_per_gpu(jobs_per_gpu) -> None:
    # The schema lets 2.0 through (JSON has no separate integers); the device claims need an int.
    from .devices import check_slots

    try:
        check_slots(jobs_per_gpu)
    except ValueError as err:
        raise ConfigError(f"config key 'jobs_per_gpu': {err}") from None


def _check_augment(augment, image_size) -> None:
    # Validation and test batches keep the prepared size; training batches of another size would be another task.
    size = augment.get("size") if isinstance(augment, dict) else None
    if size is not None and list(size if isinstance(size, list) else [size, size]) != [image_size, image_size]:
        raise ConfigError(
            f"config key 'augment.size': {size} differs from image_size {image_size}; the validation and test "
            "batches keep image_size, so leave size out (it defaults to image_size) or set image_size to it"
        )


def _check_tracking(tracking: dict) -> None:
    # A sweep asked to log to MLflow without it installed would find out only after its first cell.
    import importlib.util

    if tracking.get("mlflow") not in (None, False) and importlib.util.find_spec("mlflow") is None:
        raise ConfigError("config key 'tracking.mlflow': mlflow is not installed; pip install 'epochbench[mlflow]' "
                          "(or set it to false)")


def schema_error(config: dict, schema_path) -> "str | None":
    """The most relevant schema violation of `config` as one line naming the key, or None.

    Snakemake's own `validate` (which the Snakefile calls next, to fill the
    defaults) reports a violation as a multi-line dump; users need the key.
    """
    import jsonschema
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is None:
        return None
    key = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = f"{key}." if key else ""
        return f"config key '{where}{unknown[0]}': unknown key; allowed here: {allowed}"
    if error.validator == "required":
        return f"config key '{key + '.' if key else ''}{error.message.split()[0].strip(chr(39))}': required but missing"
    return f"config key '{key}': {error.message}"


SCHEMA = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "config.schema.yaml"


def with_defaults(config: dict, schema: dict, definitions: dict = None) -> dict:
    """`config` with the schema's defaults filled in, as Snakemake's `validate` fills them (without importing it)."""
    definitions = schema.get("definitions", {}) if definitions is None else definitions
    filled = dict(config)
    for key, spec in schema.get("properties", {}).items():
        if "$ref" in spec:
            spec = definitions[spec["$ref"].rsplit("/", 1)[-1]]
        if key not in filled and "default" in spec:
            filled[key] = json.loads(json.dumps(spec["default"]))  # a copy: the schema's own stays as it is
        if isinstance(filled.get(key), dict) and "properties" in spec:
            filled[key] = with_defaults(filled[key], spec, definitions)
    return filled


def load_config(path, schema_path=SCHEMA) -> dict:
    """An experiment config file, checked against the schema (ConfigError: one line naming the key), defaults filled.

    For the commands that read a sweep (status, report --partial, track): the
    config the Snakefile would run with, without importing Snakemake.
    """
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: not a config (a YAML mapping of keys)")
    problem = schema_error(config, schema_path)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    return with_defaults(config, yaml.safe_load(Path(schema_path).read_text()))


def _check_replicates(replicates: dict, seeds: list) -> None:
    looks = replicates.get("looks") or []
    if any(later <= earlier for earlier, later in zip(looks, looks[1:])):
        raise ConfigError(f"config key 'replicates.looks': {looks} must increase from look to look")
    if looks and looks[-1] > len(seeds):
        raise ConfigError(f"config key 'replicates.looks': the last look needs {looks[-1]} replicates but "
                          f"'seeds' lists {len(seeds)}")


def check_config(config: dict, model_cache=None) -> None:
    """Raise ConfigError for the first setting that cannot work (`model_cache`: see `model_names`)."""
    _check_dataset(config["dataset"], "dataset")
    _check_jobs_per_gpu(config.get("jobs_per_gpu", 1))
    _check_augment(config.get("augment", False), config.get("image_size", 224))
    pretrained = config["pretrained"]
    if pretrained == "source":
        if "source" not in config:
            raise ConfigError("config key 'source': pretrained is 'source' but no source task is configured")
        _check_dataset(config["source"]["dataset"], "source.dataset")
    elif pretrained not in ("imagenet", "none") and not Path(pretrained).is_file():
        raise ConfigError(
            f"config key 'pretrained': {pretrained!r} is neither imagenet, none, source nor an existing state_dict file"
        )
    train_size = config["dataset"].get("train_size")
    if train_size is not None and config["batch_size"] > train_size:
        raise ConfigError(
            f"config key 'batch_size': {config['batch_size']} is larger than dataset.train_size {train_size}; "
            "lower batch_size or raise train_size"
        )
    _check_tracking(config.get("tracking") or {})
    _check_replicates(config.get("replicates") or {}, config["seeds"])
    names = model_names(model_cache)
    for name in config["architectures"]:
        architecture_source(name, names)
