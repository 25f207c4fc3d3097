"""Datasets: load, split, add label noise, and decode once into arrays that training jobs memory-map.

Every training job of a sweep reads the same images. Decoding and resizing them
once, in the data rule, into a uint8 array at the training size means no job
ever touches a JPEG (issue: decode once), and every job sees bit-identical inputs.
"""

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .datasets import FASTAI_DATASETS, HAS_SPLIT_FOLDERS, TRAIN_FOLDER, VALID_FOLDERS, DataError, split_folders
from .io import atomic_path, write_json

SPLITS = ("train", "valid", "test")
TRAIN, VALID, TEST = range(3)

FASHION_MNIST_DEBIAN = Path("/usr/share/datasets/fashion-mnist")
# The dataset's own repository, at a fixed commit, over https (its S3 website answers plain http only).
FASHION_MNIST_URL = ("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/"
                     "b2617bb6d3ffa2e429640350f613e3291e10b141/data/fashion/")
FASHION_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
# SHA-256 of each file's decompressed IDX data, so that a recompressed copy of the same data (Debian's
# package is one) checks too: the labels' agrees between upstream's file (md5 25c81989... as published)
# and Debian's; the images' is Debian's dataset-fashion-mnist 0.0~git20200523.55506a9-1.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
}
MAX_IDX_BYTES = 2**27  # the training images are 47 MB decompressed: anything far larger is no Fashion-MNIST
FASHION_MNIST_CLASSES = [
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot",
]
PETS_LABEL_REGEX = r"^(.+)_\d+\.jpg$"


@dataclass
class ImageSet:
    """Images before decoding: either an array (N, H, W[, C]) of pixels or a list of image files."""

    images: "np.ndarray | list[Path]"
    labels: np.ndarray
    classes: list
    # With the dataset's own split (dataset.split: folders): the folder each image came from, as
    # TRAIN / VALID / TEST, and how it was chosen (see `folder_split_meta`). None when split at random.
    origin: "np.ndarray | None" = None
    split_info: "dict | None" = None

    def subset(self, index):
        index = np.asarray(index)
        images = self.images[index] if isinstance(self.images, np.ndarray) else [self.images[i] for i in index]
        origin = None if self.origin is None else self.origin[index]
        return ImageSet(images, self.labels[index], self.classes, origin, self.split_info)


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


def idx_digest(path) -> str:
    """SHA-256 of a gzipped file's decompressed bytes (read at most MAX_IDX_BYTES of them: a gzip bomb stops there)."""
    digest, size = hashlib.sha256(), 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(2**20):
                size += len(chunk)
                if size > MAX_IDX_BYTES:
                    return f"(more than {MAX_IDX_BYTES} bytes decompressed)"
                digest.update(chunk)
    except (OSError, EOFError) as err:
        return f"(not a gzip file: {err})"
    return digest.hexdigest()


def check_fashion_mnist_file(path, name: str, source: str, hint: str = "") -> None:
    actual = idx_digest(path)
    if actual != FASHION_MNIST_SHA256[name]:
        raise DataError(f"{source}: not Fashion-MNIST's {name} (its data has SHA-256 {actual}, expected "
                        f"{FASHION_MNIST_SHA256[name]}){hint}")


def fashion_mnist_folder(path=None, url=None, cache_dir=None) -> Path:
    """A folder holding the Fashion-MNIST training files: `path`, else Debian's, else a checked download."""
    if path is not None:
        folder = Path(path)
    elif url is None and all((FASHION_MNIST_DEBIAN / f).is_file() for f in FASHION_MNIST_FILES):
        folder = FASHION_MNIST_DEBIAN
    else:
        from .downloads import download, locked
        from .redact import redact_credentials

        base = (url or FASHION_MNIST_URL).rstrip("/") + "/"
        folder = Path(cache_dir or Path.home() / ".cache" / "epochbench" / "fashion-mnist")
        folder.mkdir(parents=True, exist_ok=True)
        # One download at a time (jobs of two runs may start together); the next finds the files done.
        with locked(folder / ".download.lock"):
            for name in FASHION_MNIST_FILES:
                if (folder / name).is_file():  # also what an older epochbench downloaded unchecked
                    check_fashion_mnist_file(folder / name, name, folder / name, "; delete it to download again")
                else:
                    shown = redact_credentials(base + name)  # messages end up in logs
                    download(base + name, folder / name,
                             check=lambda tmp, name=name, shown=shown: check_fashion_mnist_file(tmp, name, shown))
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


def load_image_folder(root, label_regex=None, split="random") -> ImageSet:
    """Image files labelled by their folder (ImageNet layout) or by a regex on the file name.

    ImageNet layout is `root/<class>/<image>`, or `root/{train,valid,val}/<class>/<image>`.
    With `split` random the split folders are pooled (we make our own
    stratified split) and anything else beside them (an unlabelled `test/`)
    is ignored. With `split` folders, `root` must have split subfolders
    (`split_folders`): each image keeps the split of its folder (`origin`),
    `test/<class>/` included.
    """
    from fastai.data.transforms import get_image_files

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder does not exist")
    origin, split_info = None, None
    if label_regex is not None and split == "folders":
        raise DataError(f"{root}: dataset.split folders needs train/ and valid/ <class>/ folders, not a flat folder "
                        "labelled by label_regex")
    if label_regex is not None:
        pattern = re.compile(label_regex)
        files, labels = [], []
        for file in sorted(get_image_files(root, recurse=False)):
            match = pattern.match(file.name)
            if match:
                files.append(file)
                labels.append(match.group(1))
    else:
        if split == "folders":
            split_info = split_folders(root)
            if split_info is None:
                raise DataError(f"{root}: dataset.split folders needs train/ and valid/ (or val/) subfolders")
            codes = {split_info[name]: code for code, name in enumerate(SPLITS) if split_info[name]}
        else:
            codes = {d: TRAIN for d in (TRAIN_FOLDER, *VALID_FOLDERS) if (root / d).is_dir()}
        class_parents = [root / d for d in codes] or [root]
        found = get_image_files(root, folders=list(codes) or None)
        files = sorted(f for f in found if f.parent.parent in class_parents)
        class_dirs = {d.name for parent in class_parents for d in parent.iterdir() if d.is_dir()}
        empty = sorted(class_dirs - {f.parent.name for f in files})
        if empty:
            raise DataError(f"{root}: class folders without images: {', '.join(empty)}; add images or remove them")
        labels = [f.parent.name for f in files]
        if split == "folders":
            origin = np.array([codes[f.parent.parent.name] for f in files], dtype=np.int8)
    if not files:
        how = f"matching label_regex {label_regex!r}" if label_regex else "in <class>/ folders"
        raise DataError(f"{root}: no images {how}")
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    return ImageSet(list(files), np.array([index[label] for label in labels], dtype=np.int64), classes, origin,
                    split_info)


def load_fastai_dataset(name: str, url=None, base=None, split=None, sha256=None) -> ImageSet:
    """One of fastai's datasets, fetched and unpacked where fastai's `untar_data` puts it, split by its convention.

    `split` is dataset.split (None: the dataset's own convention, `HAS_SPLIT_FOLDERS`); `sha256` is
    dataset.sha256, the archive's digest, checked before it is unpacked.
    """
    from fastai.data.external import URLs

    from .downloads import fetch_archive

    path = fetch_archive(url or getattr(URLs, FASTAI_DATASETS[name]), sha256=sha256, base=base)
    if name == "pets":
        if split == "folders":
            raise DataError("config key 'dataset.split': pets has no split folders (one flat images/ folder); "
                            "use random, as fastai's Pets recipe does")
        return load_image_folder(path / "images", PETS_LABEL_REGEX)
    return load_image_folder(path, split=split or dataset_split({"name": name}, path)[0])


def dataset_split(spec: dict, root=None) -> tuple:
    """(dataset.split in effect, why): the config's value, else folders where the data has split folders.

    `root` is the folder of a named fastai dataset once unpacked (for `folder`, spec's path).
    """
    name, chosen = spec["name"], spec.get("split")
    if chosen and chosen != "auto":
        return chosen, "set in the config (dataset.split)"
    if name == "folder":
        if spec.get("label_regex") is not None:
            return "random", "the default for a flat folder labelled by label_regex"
        layout = split_folders(spec["path"])
        if layout is None:
            return "random", f"the default: {spec['path']} has no train/ and valid/ (or val/) subfolders"
        return "folders", f"the default: {spec['path']} has {layout['train']}/ and {layout['valid']}/ subfolders"
    if HAS_SPLIT_FOLDERS.get(name):
        layout = split_folders(root) if root is not None else None
        if root is None or layout is not None:
            return "folders", f"the default for {name}, which ships its own split folders"
        return "random", f"the default: {root} has no train/ and valid/ (or val/) subfolders"
    return "random", f"the default for {name}, which has no split folders"


def load_dataset(spec: dict) -> ImageSet:
    """The dataset that a config's `dataset` (or `source.dataset`) block names, with its classes selected.

    Split as dataset.split says (`dataset_split`): with folders, the ImageSet's
    `origin` holds each image's folder and `split_info` where the split came from.
    """
    name = spec["name"]
    split = spec.get("split") if spec.get("split") != "auto" else None
    if name in ("digits", "fashion_mnist") and split == "folders":
        raise DataError(f"config key 'dataset.split': {name} has no split folders; use random")
    if name == "digits":
        imageset = load_digits()
    elif name == "fashion_mnist":
        imageset = load_fashion_mnist(spec.get("path"), spec.get("url"))
    elif name == "folder":
        imageset = load_image_folder(spec["path"], spec.get("label_regex"), split or dataset_split(spec)[0])
    else:
        imageset = load_fastai_dataset(name, spec.get("url"), split=split, sha256=spec.get("sha256"))
    if imageset.split_info is not None:
        imageset.split_info = dict(imageset.split_info, reason=dataset_split(spec)[1])
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
    return ImageSet(subset.images, np.array([remap[y] for y in subset.labels], dtype=np.int64), list(classes),
                    subset.origin, subset.split_info)


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


def folder_splits(origin, labels, test_fraction, train_size=None, seed=0) -> np.ndarray:
    """The split of the dataset's own folders (`origin`: TRAIN / VALID / TEST per image).

    valid/ and test/ are taken as given. Without a test/ folder, a stratified
    `test_fraction` of train/ is held out as the test split. Then, as with a
    random split, training images beyond `train_size` get -1 (unused).
    """
    from sklearn.model_selection import train_test_split

    labels, splits = np.asarray(labels), np.array(origin, dtype=np.int8, copy=True)
    train = np.flatnonzero(splits == TRAIN)
    if not (splits == TEST).any():
        try:
            train, test = train_test_split(train, test_size=test_fraction, stratify=labels[train], random_state=seed)
        except ValueError as err:  # too few images of a class, or fewer test images than classes
            raise DataError(f"train/: cannot carve a stratified test split of test_fraction {test_fraction} from "
                            f"it ({err}); add a test/ folder or more training images") from None
        splits[test] = TEST
    if train_size is not None and train_size < len(train):
        _, unused = train_test_split(train, train_size=train_size, stratify=labels[train], random_state=seed)
        splits[unused] = -1
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
        except (OSError, SyntaxError, Image.DecompressionBombError) as err:
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


def replicate(clean_labels, spec: dict, split_seed: int, n_classes: int, origin=None) -> tuple:
    """(splits, training labels) of one replicate: its stratified split and its draw of label noise.

    With `origin` (dataset.split folders) valid/ and test/ are the folders' and
    only what the folders leave open is drawn: a test split carved from train/
    when there is no test/, and the train_size subset.
    """
    if origin is None:
        splits = assign_splits(clean_labels, spec["valid_fraction"], spec["test_fraction"], spec.get("train_size"),
                               split_seed)
    else:
        splits = folder_splits(origin, clean_labels, spec["test_fraction"], spec.get("train_size"), split_seed)
    return splits, add_label_noise(clean_labels, splits, spec.get("label_noise", 0.0), n_classes, split_seed)


def check_folder_classes(imageset: ImageSet, where: str) -> None:
    """Refuse folders whose classes cannot be learnt: every class needs training images in train/."""
    if len(imageset.classes) < 2:
        raise DataError(f"{where}: only one class ({imageset.classes}); a classifier needs at least two")
    in_train = np.bincount(imageset.labels[imageset.origin == TRAIN], minlength=len(imageset.classes))
    missing = [c for c, n in zip(imageset.classes, in_train) if n == 0]
    if missing:
        raise DataError(f"{where}: classes with no images in {imageset.split_info['train']}/: {', '.join(missing)}; "
                        "add training images or leave them out with dataset.classes")
    if not (imageset.origin == VALID).any():
        raise DataError(f"{where}: no images in {imageset.split_info['valid']}/<class>/ folders")


def folder_origin(splits, split_info: dict) -> np.ndarray:
    """Each image's folder, from a split `folder_splits` made of it: carved test and unused images were train/."""
    origin = np.array(splits, dtype=np.int8, copy=True)
    origin[origin == -1] = TRAIN
    if split_info["test"] is None:
        origin[origin == TEST] = TRAIN
    return origin


def split_description(imageset: ImageSet, spec: dict) -> dict:
    """meta.json's record of the split: dataset.split in effect, where it came from, and the folders used."""
    if imageset.origin is None:
        return {"dataset_split": "random", "dataset_split_reason": dataset_split(spec)[1]}
    info = imageset.split_info
    return {
        "dataset_split": "folders",
        "dataset_split_reason": info["reason"],
        "folders": {name: info[name] for name in SPLITS},
        "folder_images": {name: int((imageset.origin == code).sum()) for code, name in enumerate(SPLITS)},
        "test_from": "test" if info["test"] else "train",
        "test_fraction_of_train": None if info["test"] else spec["test_fraction"],
    }


def prepare_dataset(spec: dict, image_size: int, out_dir, min_train: int = 1, split: str = "fixed") -> dict:
    """Load, check, decode and write `images.npy`, `labels.npy` (clean), `splits.npy` and `meta.json`.

    With split `fixed` only the images of split_seed's split are kept; with
    `per_seed` every image is, since each replicate draws its own split from
    them (`load_prepared`). splits.npy holds split_seed's split either way.
    With dataset.split folders, valid/ and test/ are the folders' for every
    replicate; a replicate draws only a test split carved from train/ (when
    there is no test/), its train_size subset and its label noise.
    Returns the metadata written to meta.json (class names, split sizes, flipped labels, and which split
    was used and why: `split_description`).
    `min_train` is the batch size: fewer training images than that cannot fill one batch.
    """
    out_dir = Path(out_dir)
    imageset = load_dataset(spec)
    where = spec.get("path") or spec["name"]
    if imageset.origin is None:
        check_classes(imageset, where)
    else:
        check_folder_classes(imageset, where)
    splits, labels = replicate(imageset.labels, spec, spec["split_seed"], len(imageset.classes), imageset.origin)
    if (splits == TRAIN).sum() < min_train:
        raise DataError(
            f"config key 'batch_size': {min_train} is larger than the {(splits == TRAIN).sum()} training images "
            f"of {where}; lower batch_size or raise train_size"
        )
    described = split_description(imageset, spec)
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
        **described,
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
        origin = None
        if meta.get("dataset_split") == "folders":
            origin = folder_origin(np.load(data_dir / "splits.npy"), meta["folders"])
        splits, labels = replicate(clean, spec, split_seed, len(meta["classes"]), origin)
    return PreparedData(images, labels, splits, meta["classes"])
