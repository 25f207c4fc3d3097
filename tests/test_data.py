"""Dataset loaders on small fixtures the tests build: the download paths run against local file:// URLs."""

import collections
import concurrent.futures
import functools
import gzip
import hashlib
import http.server
import io
import json
import shutil
import tarfile
import tempfile
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from epochbench import data, downloads
from epochbench.data import TEST, TRAIN, VALID, DataError


def write_idx(path, array: np.ndarray):
    """An IDX file of unsigned bytes, as MNIST and Fashion-MNIST ship them."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fashion_files(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    labels = np.arange(30) % 10
    folder = tmp_path / "mirror"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", images)
    write_idx(folder / "train-labels-idx1-ubyte.gz", labels)
    return folder, images, labels


def write_image(path, value=128, size=(20, 12)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, value // 2, 255 - value)).save(path)


def test_digits_are_bundled_and_8bit():
    digits = data.load_digits()
    assert digits.images.shape == (1797, 8, 8)
    assert digits.images.dtype == np.uint8 and digits.images.max() == 255
    assert digits.classes == [str(i) for i in range(10)]


def test_read_idx_round_trip_and_truncation(tmp_path, fashion_files):
    folder, images, _ = fashion_files
    assert np.array_equal(data.read_idx(folder / "train-images-idx3-ubyte.gz"), images)
    broken = tmp_path / "broken.gz"
    with gzip.open(folder / "train-images-idx3-ubyte.gz") as f:
        content = f.read()
    with gzip.open(broken, "wb") as f:
        f.write(content[:-100])
    with pytest.raises(DataError, match="truncated"):
        data.read_idx(broken)


@pytest.fixture
def fashion_checksums(monkeypatch, fashion_files):
    """The checksums of the fixture's files in place of Fashion-MNIST's, as a mirror of them would have."""
    folder = fashion_files[0]
    monkeypatch.setattr(data, "FASHION_MNIST_SHA256", {name: data.idx_digest(folder / name)
                                                       for name in data.FASHION_MNIST_FILES})


def test_fashion_mnist_downloads_from_its_url_when_no_local_copy(tmp_path, fashion_files, fashion_checksums):
    folder, images, labels = fashion_files
    cache = tmp_path / "cache"
    loaded = data.load_fashion_mnist(url=folder.as_uri(), cache_dir=cache)
    assert np.array_equal(loaded.images, images) and np.array_equal(loaded.labels, labels)
    # No temporary file left behind; the lock that lets one download at a time stays.
    assert sorted(p.name for p in cache.iterdir()) == sorted([*data.FASHION_MNIST_FILES, ".download.lock"])


def test_fashion_mnist_is_fetched_over_https_and_checked():
    assert data.FASHION_MNIST_URL.startswith("https://")
    assert set(data.FASHION_MNIST_SHA256) == set(data.FASHION_MNIST_FILES)


def test_a_download_that_is_not_fashion_mnist_stops_with_one_line(tmp_path, fashion_files):
    """What a tampered mirror or a broken download delivers: refused, and nothing is kept."""
    folder = fashion_files[0]  # valid IDX files, but not Fashion-MNIST's data
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as err:
        data.load_fashion_mnist(url=folder.as_uri(), cache_dir=cache)
    name = data.FASHION_MNIST_FILES[0]
    assert str(err.value) == (f"{folder.as_uri()}/{name}: not Fashion-MNIST's {name} (its data has SHA-256 "
                              f"{data.idx_digest(folder / name)}, expected {data.FASHION_MNIST_SHA256[name]})")
    assert [p.name for p in cache.iterdir()] == [".download.lock"]
    # A file already in the cache (as an unchecked older download left it) is checked too.
    shutil.copy(folder / name, cache / name)
    with pytest.raises(DataError, match=f"^{cache / name}: not Fashion-MNIST's .*; delete it to download again$"):
        data.load_fashion_mnist(url=folder.as_uri(), cache_dir=cache)


class CountingMirror(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, slowly, and counts the requests for each file."""

    requests = None  # a Counter, set by the test

    def do_GET(self):
        type(self).requests[self.path.lstrip("/")] += 1
        time.sleep(0.5)  # a download in flight while the other job starts its own
        super().do_GET()

    def log_message(self, *args):
        pass


def test_concurrent_downloads_fetch_each_file_once(tmp_path, fashion_files, fashion_checksums):
    """Two jobs that need Fashion-MNIST at once: one downloads, the other waits and uses its files."""
    folder, images, _ = fashion_files
    CountingMirror.requests = collections.Counter()
    handler = functools.partial(CountingMirror, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as mirror:
        threading.Thread(target=mirror.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{mirror.server_address[1]}/"
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            loads = list(pool.map(lambda _: data.load_fashion_mnist(url=url, cache_dir=tmp_path / "cache"), range(2)))
        mirror.shutdown()
    assert all(np.array_equal(loaded.images, images) for loaded in loads)
    assert CountingMirror.requests == {name: 1 for name in data.FASHION_MNIST_FILES}
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted([*data.FASHION_MNIST_FILES,
                                                                            ".download.lock"])


def test_fashion_mnist_prefers_debian_package_folder(monkeypatch, fashion_files):
    folder, images, _ = fashion_files
    monkeypatch.setattr(data, "FASHION_MNIST_DEBIAN", folder)
    assert data.fashion_mnist_folder() == folder
    assert np.array_equal(data.load_fashion_mnist().images, images)


def test_imagenet_layout_pools_split_folders_and_ignores_unlabelled(tmp_path):
    root = tmp_path / "imgs"
    for split, cls, count in [("train", "cat", 3), ("train", "dog", 2), ("valid", "cat", 1), ("valid", "dog", 1)]:
        for i in range(count):
            write_image(root / split / cls / f"{i}.png")
    write_image(root / "test" / "unlabelled.png")
    imageset = data.load_image_folder(root)
    assert imageset.classes == ["cat", "dog"]
    assert len(imageset.images) == 7
    assert np.bincount(imageset.labels).tolist() == [4, 3]


def test_flat_folder_labelled_by_regex(tmp_path):
    for name in ["Bengal_1.jpg", "Bengal_2.jpg", "beagle_10.jpg", "notes.txt"]:
        if name.endswith(".jpg"):
            write_image(tmp_path / name)
        else:
            (tmp_path / name).write_text("not an image")
    imageset = data.load_image_folder(tmp_path, data.PETS_LABEL_REGEX)
    assert imageset.classes == ["Bengal", "beagle"]
    assert sorted(imageset.labels.tolist()) == [0, 0, 1]


def test_pets_through_fastai_untar_data(tmp_path):
    """The real Pets code path (fastai's untar_data, breed from file name), on a tiny local archive."""
    staging = tmp_path / "staging" / "oxford-iiit-pet" / "images"
    for i, breed in enumerate(["Abyssinian", "Abyssinian", "great_pyrenees"]):
        write_image(staging / f"{breed}_{i + 1}.jpg", value=40 * i)
    archive = tmp_path / "oxford-iiit-pet.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging.parent, arcname="oxford-iiit-pet")
    imageset = data.load_fastai_dataset("pets", url=archive.as_uri(), base=tmp_path / "fastai")
    assert imageset.classes == ["Abyssinian", "great_pyrenees"]
    assert len(imageset.images) == 3


def test_splits_are_stratified_disjoint_and_fixed_by_seed():
    labels = np.repeat(np.arange(4), 50)
    splits = data.assign_splits(labels, 0.2, 0.2, seed=3)
    assert np.array_equal(splits, data.assign_splits(labels, 0.2, 0.2, seed=3))
    assert not np.array_equal(splits, data.assign_splits(labels, 0.2, 0.2, seed=4))
    for code, share in [(TRAIN, 0.6), (VALID, 0.2), (TEST, 0.2)]:
        per_class = np.bincount(labels[splits == code], minlength=4)
        assert (per_class == share * 50).all()


def test_train_size_caps_only_the_training_split():
    labels = np.repeat(np.arange(2), 100)
    splits = data.assign_splits(labels, 0.25, 0.25, train_size=20, seed=0)
    assert (splits == TRAIN).sum() == 20 and (splits == VALID).sum() == 50 and (splits == TEST).sum() == 50
    assert (splits == -1).sum() == 80


def test_label_noise_flips_exactly_the_fraction_of_train_labels_only():
    labels = np.repeat(np.arange(5), 40)
    splits = data.assign_splits(labels, 0.2, 0.2, seed=0)
    noisy = data.add_label_noise(labels, splits, 0.25, 5, seed=0)
    changed = noisy != labels
    assert changed.sum() == round(0.25 * (splits == TRAIN).sum())
    assert (splits[changed] == TRAIN).all()
    assert noisy.min() >= 0 and noisy.max() < 5


def test_select_classes_renumbers_labels(tmp_path):
    digits = data.select_classes(data.load_digits(), ["3", "7"])
    assert digits.classes == ["3", "7"]
    assert set(digits.labels.tolist()) == {0, 1}


def test_prepare_dataset_decodes_once_into_arrays(tmp_path):
    root = tmp_path / "imgs"
    for cls in ("a", "b"):
        for i in range(10):
            write_image(root / cls / f"{i}.png", value=20 * i)
    spec = dict(name="folder", path=str(root), label_regex=None, classes=None, train_size=None,
                label_noise=0.5, valid_fraction=0.2, test_fraction=0.2, split_seed=0)
    meta = data.prepare_dataset(spec, 8, tmp_path / "out")
    prepared = data.load_prepared(tmp_path / "out")
    assert prepared.images.shape == (20, 3, 8, 8) and prepared.images.dtype == np.uint8
    assert meta["counts"] == {"train": 12, "valid": 4, "test": 4}
    assert meta["flipped_train_labels"] == 6
    assert json.loads((tmp_path / "out" / "meta.json").read_text())["classes"] == ["a", "b"]
    assert not list((tmp_path / "out").glob("*.tmp*"))


def test_each_replicate_draws_its_own_split_and_noise_with_per_seed(tmp_path):
    spec = dict(name="digits", classes=None, train_size=300, label_noise=0.4, valid_fraction=0.2,
                test_fraction=0.2, split_seed=5)
    meta = data.prepare_dataset(spec, 8, tmp_path / "per_seed", split="per_seed")
    assert meta["images"] == 1797 and meta["split"] == "per_seed"  # every image: replicates draw from all
    clean = np.load(tmp_path / "per_seed" / "labels.npy")
    first, again, other = (data.load_prepared(tmp_path / "per_seed", spec, seed) for seed in (0, 0, 1))
    assert np.array_equal(first.splits, again.splits) and np.array_equal(first.labels, again.labels)
    assert not np.array_equal(first.splits, other.splits)
    for replicate in (first, other):
        counts = [int((replicate.splits == code).sum()) for code in (TRAIN, VALID, TEST)]
        assert counts == [300, 360, 360]
        flipped = replicate.labels != clean
        assert flipped.sum() == 120 and (replicate.splits[flipped] == TRAIN).all()
    # Replicate s uses split_seed + s: the same split assign_splits gives for that seed.
    assert np.array_equal(other.splits, data.assign_splits(clean, 0.2, 0.2, 300, seed=6))

    data.prepare_dataset(spec, 8, tmp_path / "fixed", split="fixed")
    fixed = [data.load_prepared(tmp_path / "fixed", spec, seed) for seed in (0, 1)]
    assert len(fixed[0].splits) == 1020 and (fixed[0].splits >= 0).all()  # only the split's images are decoded
    assert np.array_equal(fixed[0].splits, fixed[1].splits) and np.array_equal(fixed[0].labels, fixed[1].labels)


def test_unreadable_image_names_its_path(tmp_path):
    root = tmp_path / "imgs"
    for cls in ("a", "b"):
        for i in range(5):
            write_image(root / cls / f"{i}.png")
    (root / "a" / "3.png").write_bytes(b"\x89PNG not really")
    spec = dict(name="folder", path=str(root), label_regex=None, classes=None, train_size=None,
                label_noise=0.0, valid_fraction=0.2, test_fraction=0.2, split_seed=0)
    with pytest.raises(DataError, match="3.png"):
        data.prepare_dataset(spec, 8, tmp_path / "out")


def test_a_decompression_bomb_is_a_one_line_data_error(tmp_path, monkeypatch):
    """PIL refuses an image of more than twice MAX_IMAGE_PIXELS with DecompressionBombError, which is no OSError."""
    from PIL import Image as PILImage

    root = tmp_path / "imgs"
    for cls in ("a", "b"):
        for i in range(5):
            write_image(root / cls / f"{i}.png", size=(8, 8))
    write_image(root / "a" / "huge.png", size=(40, 40))
    monkeypatch.setattr(PILImage, "MAX_IMAGE_PIXELS", 500)  # 1,600 pixels is over twice this
    with pytest.raises(DataError) as err:
        data.prepare_dataset(folder_spec(root), 8, tmp_path / "out")
    assert str(err.value).startswith(f"{root / 'a' / 'huge.png'}: cannot decode image (")
    assert "\n" not in str(err.value)


def folder_spec(root, **overrides):
    spec = dict(name="folder", path=str(root), label_regex=None, classes=None, train_size=None,
                label_noise=0.0, valid_fraction=0.2, test_fraction=0.2, split_seed=0)
    spec.update(overrides)
    return spec


def test_truncated_jpeg_names_its_path(tmp_path):
    root = tmp_path / "imgs"
    for cls in ("a", "b"):
        for i in range(5):
            write_image(root / cls / f"{i}.jpg", size=(64, 64))
    broken = root / "b" / "2.jpg"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(DataError, match=r"b/2\.jpg"):
        data.prepare_dataset(folder_spec(root), 8, tmp_path / "out")
    assert not (tmp_path / "out" / "images.npy").exists()


def test_empty_class_folder_is_named(tmp_path):
    root = tmp_path / "imgs"
    for i in range(5):
        write_image(root / "a" / f"{i}.png")
        write_image(root / "b" / f"{i}.png")
    (root / "c").mkdir()
    with pytest.raises(DataError, match="without images: c"):
        data.load_image_folder(root)


def test_single_class_is_refused(tmp_path):
    root = tmp_path / "imgs"
    for i in range(6):
        write_image(root / "only" / f"{i}.png")
    with pytest.raises(DataError, match="only one class"):
        data.prepare_dataset(folder_spec(root), 8, tmp_path / "out")


def test_class_too_small_for_the_held_out_splits_is_named(tmp_path):
    """A class with images for train but none left for valid/test gets an error naming it, not a silent skip."""
    root = tmp_path / "imgs"
    for i in range(10):
        write_image(root / "a" / f"{i}.png")
        write_image(root / "b" / f"{i}.png")
    for i in range(2):
        write_image(root / "rare" / f"{i}.png")
    with pytest.raises(DataError, match=r"rare \(2\)"):
        data.prepare_dataset(folder_spec(root), 8, tmp_path / "out")


def test_batch_larger_than_training_split_names_the_key(tmp_path):
    spec = dict(name="digits", classes=["0", "1"], train_size=None, label_noise=0.0,
                valid_fraction=0.4, test_fraction=0.4, split_seed=0)
    with pytest.raises(DataError, match="config key 'batch_size'"):
        data.prepare_dataset(spec, 8, tmp_path / "out", min_train=512)


def test_mnist_tiny_layout_through_fastai_untar_data(tmp_path):
    """fastai's MNIST_TINY layout (train|valid/<class>/, unlabelled test/) through untar_data: its own folders."""
    staging = tmp_path / "staging" / "mnist_tiny"
    for split, count in (("train", 3), ("valid", 2)):
        for cls in ("3", "7"):
            for i in range(count):
                write_image(staging / split / cls / f"{i}.png")
    write_image(staging / "test" / "0.png")
    (staging / "labels.csv").write_text("name,label\n")
    archive = tmp_path / "mnist_tiny.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname="mnist_tiny")
    imageset = data.load_fastai_dataset("mnist_tiny", url=archive.as_uri(), base=tmp_path / "fastai")
    assert imageset.classes == ["3", "7"]
    assert np.bincount(imageset.labels).tolist() == [5, 5]
    # By default the dataset's own folders: train/ is TRAIN, valid/ VALID; the unlabelled test/ cannot be scored.
    assert imageset.split_info == {"train": "train", "valid": "valid", "test": None}
    assert [str(f.relative_to(f.parents[2])).split("/")[0] for f in imageset.images] == \
        [("train", "valid")[code] for code in imageset.origin]
    assert np.bincount(imageset.origin).tolist() == [6, 4]
    pooled = data.load_fastai_dataset("mnist_tiny", url=archive.as_uri(), base=tmp_path / "fastai", split="random")
    assert pooled.origin is None and len(pooled.images) == 10


# --- the dataset's own splits (dataset.split) ------------------------------------------------------


def write_tree(root, layout: dict) -> dict:
    """Image folders `root/<split>/<class>/<i>.png` from {split: {class: count}}: {pixel value: split folder}.

    Every image is one flat colour whose red value is unique, so a decoded
    image tells which folder it came from.
    """
    where, value = {}, 0
    for split, classes in layout.items():
        for cls, count in classes.items():
            for i in range(count):
                value += 1
                write_image(root / split / cls / f"{i}.png", value=value)
                where[value] = split
    assert value < 256
    return where


def folders_of(prepared, where) -> list:
    """The folder of each image of a PreparedData, read back from its red value."""
    return [where[int(v)] for v in prepared.images[:, 0, 0, 0]]


def test_split_folders_train_valid_test_are_used_as_given(tmp_path):
    root = tmp_path / "imgs"
    where = write_tree(root, {"train": {"cat": 8, "dog": 6}, "valid": {"cat": 3, "dog": 2},
                              "test": {"cat": 2, "dog": 4}})
    spec = folder_spec(root, split="folders", label_noise=0.25)
    meta = data.prepare_dataset(spec, 8, tmp_path / "out", split="per_seed")
    assert meta["counts"] == {"train": 14, "valid": 5, "test": 6}
    assert meta["dataset_split"] == "folders" and meta["test_from"] == "test"
    assert meta["folders"] == {"train": "train", "valid": "valid", "test": "test"}
    assert meta["folder_images"] == {"train": 14, "valid": 5, "test": 6}
    assert meta["dataset_split_reason"] == "set in the config (dataset.split)"
    replicates = [data.load_prepared(tmp_path / "out", spec, seed) for seed in (0, 1)]
    for prepared in replicates:
        assert [("train", "valid", "test")[code] for code in prepared.splits] == folders_of(prepared, where)
    # Per seed, only the label noise is redrawn: valid/ and test/ are the folders' in every replicate.
    assert np.array_equal(replicates[0].splits, replicates[1].splits)
    assert not np.array_equal(replicates[0].labels, replicates[1].labels)
    clean = np.load(tmp_path / "out" / "labels.npy")
    for prepared in replicates:
        flipped = prepared.labels != clean
        assert flipped.sum() == round(0.25 * 14) and (prepared.splits[flipped] == TRAIN).all()


def test_split_folders_without_test_carve_a_stratified_test_from_train(tmp_path):
    root = tmp_path / "imgs"
    where = write_tree(root, {"train": {"a": 30, "b": 15, "c": 10}, "val": {"a": 2, "b": 2, "c": 2}})
    spec = folder_spec(root, split="folders", test_fraction=0.2)
    meta = data.prepare_dataset(spec, 8, tmp_path / "per_seed", split="per_seed")
    assert meta["folders"] == {"train": "train", "valid": "val", "test": None}
    assert meta["test_from"] == "train" and meta["test_fraction_of_train"] == 0.2
    assert meta["counts"] == {"train": 44, "valid": 6, "test": 11}
    replicates = [data.load_prepared(tmp_path / "per_seed", spec, seed) for seed in (0, 1)]
    for prepared in replicates:
        folder = np.array(folders_of(prepared, where))
        assert (folder[prepared.splits == VALID] == "val").all() and (prepared.splits[folder == "val"] == VALID).all()
        assert (folder[prepared.splits == TEST] == "train").all()
        # Stratified: the test split keeps train/'s class proportions (30:15:10 -> 6:3:2).
        assert np.bincount(prepared.labels[prepared.splits == TEST], minlength=3).tolist() == [6, 3, 2]
        assert np.bincount(prepared.labels[prepared.splits == TRAIN], minlength=3).tolist() == [24, 12, 8]
    # Per seed, each replicate carves its own test split; valid/ stays the folder's.
    assert not np.array_equal(replicates[0].splits == TEST, replicates[1].splits == TEST)
    assert np.array_equal(replicates[0].splits == VALID, replicates[1].splits == VALID)

    data.prepare_dataset(spec, 8, tmp_path / "fixed", split="fixed")
    fixed = [data.load_prepared(tmp_path / "fixed", spec, seed) for seed in (0, 1)]
    assert np.array_equal(fixed[0].splits, fixed[1].splits)
    assert np.bincount(fixed[0].labels[fixed[0].splits == TEST], minlength=3).tolist() == [6, 3, 2]


def test_split_folders_with_train_size_draw_the_training_subset_from_train(tmp_path):
    root = tmp_path / "imgs"
    where = write_tree(root, {"train": {"a": 20, "b": 20}, "valid": {"a": 3, "b": 3}, "test": {"a": 3, "b": 3}})
    spec = folder_spec(root, split="folders", train_size=10)
    meta = data.prepare_dataset(spec, 8, tmp_path / "out", split="per_seed")
    assert meta["counts"] == {"train": 10, "valid": 6, "test": 6} and meta["images"] == 52
    first, other = (data.load_prepared(tmp_path / "out", spec, seed) for seed in (0, 1))
    for prepared in (first, other):
        folder = np.array(folders_of(prepared, where))
        assert (folder[prepared.splits == TRAIN] == "train").all() and (folder[prepared.splits == -1] == "train").all()
        assert np.bincount(prepared.labels[prepared.splits == TRAIN]).tolist() == [5, 5]
    assert not np.array_equal(first.splits, other.splits)
    assert np.array_equal(first.splits == TEST, other.splits == TEST)


def test_split_random_pools_the_folders_and_splits_at_random(tmp_path):
    root = tmp_path / "imgs"
    where = write_tree(root, {"train": {"a": 20, "b": 20}, "val": {"a": 5, "b": 5}})
    write_image(root / "test" / "unlabelled.png", value=255)
    spec = folder_spec(root, split="random", valid_fraction=0.2, test_fraction=0.2)
    meta = data.prepare_dataset(spec, 8, tmp_path / "out", split="fixed")
    assert meta["dataset_split"] == "random" and "folders" not in meta
    assert meta["dataset_split_reason"] == "set in the config (dataset.split)"
    assert meta["counts"] == {"train": 30, "valid": 10, "test": 10}
    prepared = data.load_prepared(tmp_path / "out", spec, 0)
    folder = np.array(folders_of(prepared, where))
    # Pooled: val/ images land in every split, and train/ images in valid and test.
    assert {folder[i] for i in np.flatnonzero(prepared.splits == VALID)} == {"train", "val"}
    assert (folder == "val").sum() == 10 and set(prepared.splits[folder == "val"]) != {VALID}
    assert np.array_equal(prepared.splits, data.assign_splits(prepared.labels, 0.2, 0.2, seed=0))


def test_default_split_is_folders_when_there_are_split_folders_else_random(tmp_path):
    with_folders, flat = tmp_path / "with_folders", tmp_path / "flat"
    write_tree(with_folders, {"train": {"a": 5, "b": 5}, "val": {"a": 2, "b": 2}})
    write_tree(flat, {"a": {"x": 5}, "b": {"x": 5}})  # flat/a/x/*.png: <class>/ folders only, no split folders
    assert data.dataset_split(folder_spec(with_folders)) == (
        "folders", f"the default: {with_folders} has train/ and val/ subfolders")
    assert data.dataset_split(folder_spec(with_folders, split="auto"))[0] == "folders"
    assert data.dataset_split(folder_spec(flat))[0] == "random"
    assert data.dataset_split(folder_spec(flat, label_regex=r"(.)"))[0] == "random"
    assert data.dataset_split({"name": "digits"}) == ("random", "the default for digits, which has no split folders")
    meta = data.prepare_dataset(folder_spec(with_folders), 8, tmp_path / "out")
    assert meta["dataset_split"] == "folders" and meta["counts"]["valid"] == 4
    assert meta["dataset_split_reason"] == f"the default: {with_folders} has train/ and val/ subfolders"
    meta = data.prepare_dataset(folder_spec(with_folders, split="random"), 8, tmp_path / "random")
    assert meta["dataset_split"] == "random" and meta["counts"]["valid"] == 3  # 0.2 of 14 pooled images


def test_split_folders_errors_name_the_folder_or_key(tmp_path):
    flat = tmp_path / "flat"
    write_tree(flat, {"a": {"x": 5}})
    with pytest.raises(DataError, match="needs train/ and valid/"):
        data.load_image_folder(flat, split="folders")
    with pytest.raises(DataError, match="config key 'dataset.split'"):
        data.prepare_dataset(dict(name="digits", split="folders", valid_fraction=0.2, test_fraction=0.2,
                                  split_seed=0), 8, tmp_path / "out")
    both = tmp_path / "both"
    write_tree(both, {"train": {"a": 3, "b": 3}, "valid": {"a": 1, "b": 1}, "val": {"a": 1, "b": 1}})
    with pytest.raises(DataError, match="both valid/ and val/"):
        data.split_folders(both)
    only_valid = tmp_path / "only_valid"
    write_tree(only_valid, {"train": {"a": 3, "b": 3}, "valid": {"a": 1, "b": 1, "c": 1}})
    with pytest.raises(DataError, match="no images in train/: c"):
        data.prepare_dataset(folder_spec(only_valid), 8, tmp_path / "out2")
    too_few = tmp_path / "too_few"
    write_tree(too_few, {"train": {"a": 4, "b": 1}, "valid": {"a": 1, "b": 1}})
    with pytest.raises(DataError, match="cannot carve a stratified test split"):
        data.prepare_dataset(folder_spec(too_few), 8, tmp_path / "out3")


def untar_fixture(tmp_path, name: str, layout: dict) -> tuple:
    """A local archive of `layout` (see `write_tree`), as fastai's untar_data would download it."""
    staging = tmp_path / "staging" / name
    where = write_tree(staging, layout)
    archive = tmp_path / f"{name}.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname=name)
    return archive, where


def test_imagenette_uses_its_val_folder_through_load_dataset(tmp_path, monkeypatch):
    """Imagenette ships train/ and val/: the named dataset's default is its own folders, test carved from train/."""
    monkeypatch.setenv("FASTAI_HOME", str(tmp_path / "fastai"))  # untar_data's base: nothing leaves tmp_path
    archive, where = untar_fixture(tmp_path, "imagenette2-160", {"train": {"n01": 10, "n02": 10},
                                                                 "val": {"n01": 3, "n02": 3}})
    spec = dict(name="imagenette_160", url=archive.as_uri(), classes=None, train_size=None, label_noise=0.0,
                valid_fraction=0.2, test_fraction=0.2, split_seed=0)
    meta = data.prepare_dataset(spec, 8, tmp_path / "out", split="fixed")
    assert meta["dataset_split"] == "folders" and meta["folders"] == {"train": "train", "valid": "val", "test": None}
    assert meta["dataset_split_reason"] == "the default for imagenette_160, which ships its own split folders"
    assert meta["counts"] == {"train": 16, "valid": 6, "test": 4}
    prepared = data.load_prepared(tmp_path / "out", spec, 0)
    folder = np.array(folders_of(prepared, where))
    assert (folder[prepared.splits == VALID] == "val").all() and (folder[prepared.splits == TEST] == "train").all()
    meta = data.prepare_dataset(dict(spec, split="random"), 8, tmp_path / "random", split="fixed")
    assert meta["dataset_split"] == "random" and meta["counts"] == {"train": 15, "valid": 5, "test": 6}


def test_pets_splits_at_random_and_refuses_folders(tmp_path, monkeypatch):
    """fastai's Pets is one flat images/ folder (fastbook splits it at random)."""
    monkeypatch.setenv("FASTAI_HOME", str(tmp_path / "fastai"))
    staging = tmp_path / "staging" / "oxford-iiit-pet" / "images"
    for i in range(12):
        write_image(staging / f"{('Abyssinian', 'beagle')[i % 2]}_{i}.jpg", value=10 * i)
    archive = tmp_path / "oxford-iiit-pet.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging.parent, arcname="oxford-iiit-pet")
    spec = dict(name="pets", url=archive.as_uri(), classes=None, train_size=None, label_noise=0.0,
                valid_fraction=0.25, test_fraction=0.25, split_seed=0)
    meta = data.prepare_dataset(spec, 8, tmp_path / "out")
    assert meta["dataset_split"] == "random" and meta["counts"] == {"train": 6, "valid": 3, "test": 3}
    assert meta["dataset_split_reason"] == "the default for pets, which has no split folders"
    with pytest.raises(DataError, match="config key 'dataset.split': pets has no split folders"):
        data.prepare_dataset(dict(spec, split="folders"), 8, tmp_path / "out2")


@pytest.fixture
def fastai_home(tmp_path, monkeypatch):
    """fastai's data and archive folders in tmp_path (its config is cached per process: cleared around the test)."""
    from fastai.data.external import fastai_cfg

    monkeypatch.setenv("FASTAI_HOME", str(tmp_path / "fastai"))
    fastai_cfg.cache_clear()
    yield tmp_path / "fastai"
    fastai_cfg.cache_clear()


def pets_archive(tmp_path, *extra) -> Path:
    """A tiny Pets archive (two breeds, flat images/), with `extra` (TarInfo, bytes or None) members added."""
    staging = tmp_path / "staging" / "oxford-iiit-pet" / "images"
    for i in range(12):
        write_image(staging / f"{('Abyssinian', 'beagle')[i % 2]}_{i}.jpg", value=10 * i)
    archive = tmp_path / "oxford-iiit-pet.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging.parent, arcname="oxford-iiit-pet")
        for member, content in extra:
            tar.addfile(member, io.BytesIO(content) if content is not None else None)
    return archive


def tar_member(name, content=b"escaped", **fields) -> tuple:
    member = tarfile.TarInfo(name)
    member.size = len(content) if fields.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
    for key, value in fields.items():
        setattr(member, key, value)
    return member, content if member.size else None


@pytest.mark.parametrize("kind", ["relative", "absolute", "symlink out", "device"])
def test_an_archive_member_outside_its_folder_stops_the_run_and_nothing_escapes(tmp_path, monkeypatch, fastai_home,
                                                                                kind):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where fastai's untar_data unpacked
    (tmp_path / "tmp").mkdir()
    member, why = {
        "relative": (tar_member("oxford-iiit-pet/../../../../escaped.txt"), "would be unpacked outside its folder"),
        "absolute": (tar_member(str(tmp_path / "escaped.txt")), "has an absolute path"),
        "symlink out": (tar_member("oxford-iiit-pet/escaped", type=tarfile.SYMTYPE, linkname=str(tmp_path)),
                        "is a link out of its folder"),
        "device": (tar_member("oxford-iiit-pet/escaped-null", type=tarfile.CHRTYPE, devmajor=1, devminor=3),
                   "is a device or other special file"),
    }[kind]
    archive = pets_archive(tmp_path, member)
    spec = dict(name="pets", url=archive.as_uri(), classes=None, train_size=None, label_noise=0.0,
                valid_fraction=0.25, test_fraction=0.25, split_seed=0)
    with pytest.raises(DataError) as err:
        data.prepare_dataset(spec, 8, tmp_path / "out")
    copy = tmp_path / "fastai" / "archive" / archive.name
    assert str(err.value) == f"{copy} (from {archive.as_uri()}): member {member[0].name!r} {why}; not unpacked"
    assert not [p for p in tmp_path.rglob("escaped*")], "a member was written outside the archive's folder"
    assert not (tmp_path / "fastai" / "data" / "oxford-iiit-pet").exists()


def test_a_zip_member_outside_its_folder_stops_the_unpacking(tmp_path):
    archive = tmp_path / "flowers.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("flowers/rose/1.txt", "fine")
        zipped.writestr("flowers/../../escaped.txt", "not fine")
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError) as err:
        downloads.extract_archive(archive, tmp_path / "data" / "flowers")
    assert str(err.value) == f"{archive}: member 'flowers/../../escaped.txt' would be unpacked outside its folder; " \
                             f"not unpacked"
    assert not (tmp_path / "data" / "flowers").exists() and not list(tmp_path.rglob("escaped*"))
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("flowers/rose/1.txt", "fine")
    downloads.extract_archive(archive, tmp_path / "data" / "flowers")
    assert (tmp_path / "data" / "flowers" / "rose" / "1.txt").read_text() == "fine"


def test_dataset_sha256_is_checked_before_the_archive_is_unpacked(tmp_path, fastai_home):
    archive = pets_archive(tmp_path)
    spec = dict(name="pets", url=archive.as_uri(), classes=None, train_size=None, label_noise=0.0,
                valid_fraction=0.25, test_fraction=0.25, split_seed=0)
    wrong = "0" * 64
    with pytest.raises(DataError) as err:
        data.prepare_dataset(dict(spec, sha256=wrong), 8, tmp_path / "out")
    copy = tmp_path / "fastai" / "archive" / archive.name
    actual = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert str(err.value) == (f"dataset.url {archive.as_uri()}: {copy} has SHA-256 {actual}, not dataset.sha256 "
                              f"{wrong}; not unpacked (delete it to download again)")
    assert not (tmp_path / "fastai" / "data" / "oxford-iiit-pet").exists()
    meta = data.prepare_dataset(dict(spec, sha256=actual.upper()), 8, tmp_path / "out")
    assert meta["images"] == 12
    # Once unpacked, the archive is still checked against the digest the config names.
    with pytest.raises(DataError, match="not dataset.sha256"):
        data.prepare_dataset(dict(spec, sha256=wrong), 8, tmp_path / "out")


def test_a_failed_download_names_its_url_without_credentials(tmp_path):
    with pytest.raises(DataError) as err:
        data.load_fashion_mnist(url="http://reader:s3cret@127.0.0.1:1/", cache_dir=tmp_path / "cache")
    assert str(err.value).startswith(f"http://***@127.0.0.1:1/{data.FASHION_MNIST_FILES[0]}: download failed (")
    assert "s3cret" not in str(err.value) and "\n" not in str(err.value)
