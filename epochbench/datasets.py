"""The named datasets and their split conventions, which the config check (config.py) and the loaders (data.py) share.

Imports no other module of epochbench, so that config, data and downloads can all import it.
"""

from pathlib import Path

# fastai's datasets by the names a config gives them, and their names in fastai's URLs.
FASTAI_DATASETS = {"pets": "PETS", "imagenette_160": "IMAGENETTE_160", "mnist_tiny": "MNIST_TINY"}

# fastai's GrandparentSplitter layout: <root>/<split>/<class>/<image>.
TRAIN_FOLDER, VALID_FOLDERS, TEST_FOLDER = "train", ("valid", "val"), "test"
# How the named fastai datasets split: Imagenette ships train/ and val/, MNIST_TINY train/, valid/ and an
# unlabelled test/; Pets is one flat images/ folder, which fastai's own recipe (fastbook ch. 5) splits at random.
# Digits and Fashion-MNIST (only its training files are read) are not folders.
HAS_SPLIT_FOLDERS = {"digits": False, "fashion_mnist": False, "pets": False, "imagenette_160": True,
                     "mnist_tiny": True}


class DataError(ValueError):
    """A dataset that cannot be used; the message names the path or key at fault."""


def split_folders(root) -> "dict | None":
    """The split subfolders of `root` ({'train': 'train', 'valid': 'val', 'test': 'test' or None}), or None.

    A folder has split subfolders when it has `train/` and `valid/` or `val/`
    (fastai's GrandparentSplitter layout). `test/` counts only if it holds
    labelled images, in `test/<class>/` folders: fastai's MNIST_TINY ships an
    unlabelled `test/`, which cannot be scored.
    """
    root = Path(root)
    valid = [d for d in VALID_FOLDERS if (root / d).is_dir()]
    if not (root / TRAIN_FOLDER).is_dir() or not valid:
        return None
    if len(valid) > 1:
        raise DataError(f"{root}: has both valid/ and val/, so its validation split is ambiguous; keep one, "
                        "or set dataset.split: random to pool them")
    test = root / TEST_FOLDER
    labelled_test = test.is_dir() and any(d.is_dir() for d in test.iterdir())
    return {"train": TRAIN_FOLDER, "valid": valid[0], "test": TEST_FOLDER if labelled_test else None}
