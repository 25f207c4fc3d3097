"""Datasets: load, split, add label noise, and decode once into arrays that training jobs memory-map.

Every training job of a sweep reads the same images. Decoding and resizing them
once, in the data rule, into a uint8 array at the training size means no job
ever touches a JPEG (issue: decode once), and every job sees bit-identical inputs.
"""

import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import atomic_path, write_json

SPLITS = ("train", "valid", "test")
TRAIN, VALID, TEST = range(3)

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
FASHION_MNIST_CLASSES = [
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot",
]
PETS_LABEL_REGEX = r"^(.+)_\d+\.jpg$"


class DataError(ValueError):
    """A dataset that cannot be used; the message names the path or key at fault."""


@dataclass
class ImageSet:
    """Images before decoding: either an array (N, H, W[, C]) of pixels or a list of image files."""

    images: "np.ndarray | list[Path]"
    labels: np.ndarray
    classes: list

    def subset(self, index):
        index = np.asarray(index)
        images = self.images[index] if isinstance(self.images, np.ndarray) else [self.images[i] for i in index]
        return ImageSet(images, self.labels[index], self.classes)


@dataclass
class PreparedData:
    """A decoded dataset as the training jobs see it: one replicate's split and training labels."""

    images: np.ndarray  # (N, 3, S, S) uint8, memory-mapped
    labels: np.ndarray  # labels used for training (noisy on train, clean on valid/test)
    splits: np.ndarray  # TRAIN / VALID / TEST per image, -1 for an image this replicate leaves out
    classes: list

    def split(self, which: int):
        index = np.flatnonzero(self.splits == which)
        return self.images[index], self.labels[index]


# --- loaders -------------------------------------------------------------------------------------


def load_digits() -> ImageSet:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes; no network needed)."""
    from sklearn.datasets import load_digits as sk_load_digits

    digits = sk_load_digits()
    # Pixel values are 0..16; stretch to 0..255 like any 8-bit image.
    images = np.round(digits.images * (255 / 16)).astype(np.uint8)
    return ImageSet(images, digits.target.astype(np.int64), [str(c) for c in digits.target_names])


def read_idx(path) -> np.ndarray:
    """Read a (gzipped) IDX file, the format of MNIST and Fashion-MNIST."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise DataError(f"{path}: truncated IDX file ({array.size} values for shape {shape})")
    return array.reshape(shape)


def fashion_mnist_folder(path=None, url=None, cache_dir=None) -> Path:
    """A folder holding the Fashion-MNIST training files: `path`, else Debian's, else a download."""
    if path is not None:
        folder = Path(path)
    elif url is None and all((FASHION_MNIST_DEBIAN / f).is_file() for f in FASHION_MNIST_FILES):
        folder = FASHION_MNIST_DEBIAN
    else:
        from fastdownload import download_url

        base = (url or FASHION_MNIST_URL).rstrip("/") + "/"
        folder = Path(cache_dir or Path.home() / ".cache" / "epochbench" / "fashion-mnist")
        folder.mkdir(parents=True, exist_ok=True)
        for name in FASHION_MNIST_FILES:
            if not (folder / name).is_file():
                # download_url writes to NAME.part and renames it: a broken download is never taken as done.
                download_url(base + name, folder / name, show_progress=False)
    for name in FASHION_MNIST_FILES:
        if not (folder / name).is_file():
            raise DataError(f"{folder / name}: Fashion-MNIST file missing")
    return folder


def load_fashion_mnist(path=None, url=None, cache_dir=None) -> ImageSet:
    """Fashion-MNIST's 60,000 training images (28x28, 10 classes)."""
    folder = fashion_mnist_folder(path, url, cache_dir)
    images = read_idx(folder / FASHION_MNIST_FILES[0])
    labels = read_idx(folder / FASHION_MNIST_FILES[1]).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return ImageSet(images, labels, list(FASHION_MNIST_CLASSES))


def load_image_folder(root, label_regex=None) -> ImageSet:
    """Image files labelled by their folder (ImageNet layout) or by a regex on the file name.

    ImageNet layout is `root/<class>/<image>`, or `root/{train,valid,val}/<class>/<image>`
    where the split folders are pooled (we make our own stratified split) and
    anything else beside them (an unlabelled `test/`) is ignored.
    """
    from fastai.data.transforms import get_image_files

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder does not exist")
    if label_regex is not None:
        pattern = re.compile(label_regex)
        files, labels = [], []
        for file in sorted(get_image_files(root, recurse=False)):
            match = pattern.match(file.name)
            if match:
                files.append(file)
                labels.append(match.group(1))
    else:
        split_dirs = [root / d for d in ("train", "valid", "val") if (root / d).is_dir()]
        class_parents = split_dirs or [root]
        found = get_image_files(root, folders=[d.name for d in split_dirs] or None)
        files = sorted(f for f in found if f.parent.parent in class_parents)
        class_dirs = {d.name for parent in class_parents for d in parent.iterdir() if d.is_dir()}
        empty = sorted(class_dirs - {f.parent.name for f in files})
        if empty:
            raise DataError(f"{root}: class folders without images: {', '.join(empty)}; add images or remove them")
        labels = [f.parent.name for f in files]
    if not files:
        how = f"matching label_regex {label_regex!r}" if label_regex else "in <class>/ folders"
        raise DataError(f"{root}: no images {how}")
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    return ImageSet(list(files), np.array([index[label] for label in labels], dtype=np.int64), classes)


def load_fastai_dataset(name: str, url=None, base=None) -> ImageSet:
    """One of fastai's datasets, fetched and unpacked by fastai's own `untar_data`."""
    from fastai.data.external import URLs, untar_data

    from .config import FASTAI_DATASETS

    path = untar_data(url or getattr(URLs, FASTAI_DATASETS[name]), base=base)
    if name == "pets":
        return load_image_folder(path / "images", PETS_LABEL_REGEX)
    return load_image_folder(path)


def load_dataset(spec: dict) -> ImageSet:
    """The dataset that a config's `dataset` (or `source.dataset`) block names, with its classes selected."""
    name = spec["name"]
    if name == "digits":
        imageset = load_digits()
    elif name == "fashion_mnist":
        imageset = load_fashion_mnist(spec.get("path"), spec.get("url"))
    elif name == "folder":
        imageset = load_image_folder(spec["path"], spec.get("label_regex"))
    else:
        imageset = load_fastai_dataset(name, spec.get("url"))
    if spec.get("classes"):
        imageset = select_classes(imageset, spec["classes"])
    return imageset


def select_classes(imageset: ImageSet, classes) -> ImageSet:
    unknown = [c for c in classes if c not in imageset.classes]
    if unknown:
        raise DataError(f"dataset.classes: {unknown} not among the dataset's classes {imageset.classes}")
    old_index = [imageset.classes.index(c) for c in classes]
    keep = np.flatnonzero(np.isin(imageset.labels, old_index))
    subset = imageset.subset(keep)
    remap = {old: new for new, old in enumerate(old_index)}
    return ImageSet(subset.images, np.array([remap[y] for y in subset.labels], dtype=np.int64), list(classes))


# --- split and noise -----------------------------------------------------------------------------


def assign_splits(labels, valid_fraction, test_fraction, train_size=None, seed=0) -> np.ndarray:
    """Stratified train/valid/test assignment; training images beyond `train_size` get -1 (unused)."""
    from sklearn.model_selection import train_test_split

    labels = np.asarray(labels)
    index = np.arange(len(labels))
    rest, test = train_test_split(index, test_size=test_fraction, stratify=labels, random_state=seed)
    train, valid = train_test_split(
        rest, test_size=valid_fraction / (1 - test_fraction), stratify=labels[rest], random_state=seed
    )
    if train_size is not None and train_size < len(train):
        train, _ = train_test_split(train, train_size=train_size, stratify=labels[train], random_state=seed)
    splits = np.full(len(labels), -1, dtype=np.int8)
    splits[train], splits[valid], splits[test] = TRAIN, VALID, TEST
    return splits


def add_label_noise(labels, splits, fraction, n_classes, seed=0) -> np.ndarray:
    """Replace `fraction` of the training labels by a different class, chosen uniformly.

    Noisy labels are what a network memorises when it trains too long: with
    them, longer fine-tuning can really overfit, and the sweep can show it.
    """
    noisy = np.array(labels, copy=True)
    train = np.flatnonzero(splits == TRAIN)
    n_flip = int(round(fraction * len(train)))
    if n_flip == 0:
        return noisy
    rng = np.random.default_rng(seed)
    flip = rng.choice(train, size=n_flip, replace=False)
    # Adding 1..n_classes-1 modulo n_classes always lands on a different class.
    noisy[flip] = (noisy[flip] + rng.integers(1, n_classes, size=n_flip)) % n_classes
    return noisy


# --- decode once ---------------------------------------------------------------------------------


def to_rgb_square(image, size: int) -> np.ndarray:
    """One image (a file path or a pixel array) as a (3, size, size) uint8 array.

    Files are centre-cropped to a square and resized (fastai's Resize default);
    small arrays (digits, Fashion-MNIST) are already square and only resized.
    """
    from PIL import Image, ImageOps

    if isinstance(image, np.ndarray):
        picture = Image.fromarray(image)
    else:
        try:
            with Image.open(image) as opened:
                picture = opened.convert("RGB")
        except (OSError, SyntaxError) as err:
            raise DataError(f"{image}: cannot decode image ({err})") from None
    picture = ImageOps.fit(picture.convert("RGB"), (size, size), method=Image.Resampling.BILINEAR)
    return np.asarray(picture, dtype=np.uint8).transpose(2, 0, 1)


MIN_IMAGES_PER_CLASS = 3  # one each for train, valid and test


def check_classes(imageset: ImageSet, where: str) -> None:
    """Refuse data whose classes cannot be split into train, valid and test: name the classes at fault."""
    if len(imageset.classes) < 2:
        raise DataError(f"{where}: only one class ({imageset.classes}); a classifier needs at least two")
    counts = np.bincount(imageset.labels, minlength=len(imageset.classes))
    scarce = [f"{c} ({n})" for c, n in zip(imageset.classes, counts) if n < MIN_IMAGES_PER_CLASS]
    if scarce:
        raise DataError(
            f"{where}: classes with fewer than {MIN_IMAGES_PER_CLASS} images cannot appear in train, valid and "
            f"test: {', '.join(scarce)}; add images or leave them out with dataset.classes"
        )


def replicate_split_seed(spec: dict, seed: int, split: str) -> int:
    """The seed of replicate `seed`'s split and label noise.

    `per_seed`: each replicate draws its own split and noise (split_seed +
    seed), so that the intervals over replicates include which images landed
    in train, valid and test (Bouthillier et al., MLSys 2021: data sampling
    varies results as much as initialisation and order). `fixed`: every
    replicate uses split_seed's split, and only training varies.
    """
    return spec["split_seed"] + (seed if split == "per_seed" else 0)


def replicate(clean_labels, spec: dict, split_seed: int, n_classes: int) -> tuple:
    """(splits, training labels) of one replicate: its stratified split and its draw of label noise."""
    splits = assign_splits(clean_labels, spec["valid_fraction"], spec["test_fraction"], spec.get("train_size"),
                           split_seed)
    return splits, add_label_noise(clean_labels, splits, spec.get("label_noise", 0.0), n_classes, split_seed)


def prepare_dataset(spec: dict, image_size: int, out_dir, min_train: int = 1, split: str = "fixed") -> dict:
    """Load, check, decode and write `images.npy`, `labels.npy` (clean), `splits.npy` and `meta.json`.

    With split `fixed` only the images of split_seed's split are kept; with
    `per_seed` every image is, since each replicate draws its own split from
    them (`load_prepared`). splits.npy holds split_seed's split either way.
    Returns the metadata written to meta.json (class names, split sizes, flipped labels).
    `min_train` is the batch size: fewer training images than that cannot fill one batch.
    """
    out_dir = Path(out_dir)
    imageset = load_dataset(spec)
    where = spec.get("path") or spec["name"]
    check_classes(imageset, where)
    splits, labels = replicate(imageset.labels, spec, spec["split_seed"], len(imageset.classes))
    if (splits == TRAIN).sum() < min_train:
        raise DataError(
            f"config key 'batch_size': {min_train} is larger than the {(splits == TRAIN).sum()} training images "
            f"of {where}; lower batch_size or raise train_size"
        )
    if split == "fixed":
        used = np.flatnonzero(splits >= 0)
        imageset, splits, labels = imageset.subset(used), splits[used], labels[used]

    with atomic_path(out_dir / "images.npy") as tmp:
        images = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                           shape=(len(imageset.labels), 3, image_size, image_size))
        for i, image in enumerate(imageset.images):
            images[i] = to_rgb_square(image, image_size)
        images.flush()
        del images
    with atomic_path(out_dir / "labels.npy") as tmp:
        np.save(tmp, imageset.labels)
    with atomic_path(out_dir / "splits.npy") as tmp:
        np.save(tmp, splits)
    meta = {
        "dataset": spec["name"],
        "classes": imageset.classes,
        "image_size": image_size,
        "split": split,
        "images": len(imageset.labels),
        "counts": {name: int((splits == code).sum()) for code, name in enumerate(SPLITS)},
        "flipped_train_labels": int((labels != imageset.labels).sum()),
    }
    write_json(out_dir / "meta.json", meta)
    return meta


def load_prepared(data_dir, spec: dict = None, seed: int = 0) -> PreparedData:
    """Replicate `seed` of the prepared data: split_seed's split (`fixed`), or a split of its own (`per_seed`).

    Within a replicate every n and every strategy sees the same split and the
    same noisy labels, so their comparisons stay paired. Without `spec`, the
    split stored by `prepare_dataset` with clean labels.
    """
    data_dir = Path(data_dir)
    meta = json.loads((data_dir / "meta.json").read_text())
    clean = np.load(data_dir / "labels.npy")
    images = np.load(data_dir / "images.npy", mmap_mode="r")
    if spec is None:
        return PreparedData(images, clean, np.load(data_dir / "splits.npy"), meta["classes"])
    split_seed = replicate_split_seed(spec, seed, meta["split"])
    if meta["split"] == "fixed":
        splits = np.load(data_dir / "splits.npy")
        labels = add_label_noise(clean, splits, spec.get("label_noise", 0.0), len(meta["classes"]), split_seed)
    else:
        splits, labels = replicate(clean, spec, split_seed, len(meta["classes"]))
    return PreparedData(images, labels, splits, meta["classes"])
