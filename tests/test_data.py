"""Dataset loaders on small fixtures the tests build: the download paths run against local file:// URLs."""

import gzip
import json
import tarfile

import numpy as np
import pytest
from PIL import Image

from epochbench import data
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


def test_fashion_mnist_downloads_from_its_url_when_no_local_copy(tmp_path, fashion_files):
    folder, images, labels = fashion_files
    cache = tmp_path / "cache"
    loaded = data.load_fashion_mnist(url=folder.as_uri(), cache_dir=cache)
    assert np.array_equal(loaded.images, images) and np.array_equal(loaded.labels, labels)
    assert sorted(p.name for p in cache.iterdir()) == sorted(data.FASHION_MNIST_FILES)  # no .part left behind


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
    """fastai's MNIST_TINY/Imagenette layout (train|valid/<class>/, unlabelled test/) through untar_data."""
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
