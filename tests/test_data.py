"""Tests of ballot_jax.data: tiny on-disk fixtures (folders and zips), TFDS mocks, and real data."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ballot_jax.data import (
    Dataset,
    DatasetNotFoundError,
    Split,
    load_celeba,
    load_cifar_folder,
    load_dataset,
    load_digits,
    load_utkface,
    make_synthetic_biased,
)
from ballot_jax.data import images as images_module
from ballot_jax.data.base import standardize, stratified_split
from ballot_jax.data.images import crop_resize
from ballot_jax.data.utkface import parse_utkface_name


# ----------------------------------------------------------------------------- fixture helpers


def image_bytes(value: int, size: tuple[int, int] = (8, 6), fmt: str = "JPEG") -> bytes:
    """A solid grey image of (width, height) ``size`` and intensity ``value``, as ``fmt``."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (value, value, value)).save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


def write_files(root: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (relative path -> bytes) below ``root``; returns ``root``."""
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    """Write ``files`` (member path -> bytes) into the zip archive ``path``; returns ``path``."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


def all_splits(ds: Dataset) -> Split:
    """train, val and test concatenated."""
    return Split(*(np.concatenate([getattr(s, f) for s in ds[:3]]) for f in Split._fields))


def brightness_rank(ds: Dataset) -> np.ndarray:
    """For every example of ``all_splits(ds)``, the rank of its brightness among all examples.

    Fixture images have a unique brightness per row and standardisation is monotonic, so this
    recovers the row each example came from.
    """
    brightness = all_splits(ds).x[..., 0].mean(axis=(1, 2))
    return np.argsort(np.argsort(brightness))


# ----------------------------------------------------------------------------- shared helpers


def test_stratified_split_is_a_deterministic_partition():
    keys = np.repeat([0, 1, 2], [10, 20, 30])
    train, val, test = stratified_split(keys, 0.1, 0.2, seed=3)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(60))
    assert np.bincount(keys[test]).tolist() == [2, 4, 6]
    assert np.bincount(keys[val]).tolist() == [1, 2, 3]
    again = stratified_split(keys, 0.1, 0.2, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    other = stratified_split(keys, 0.1, 0.2, seed=4)
    assert not np.array_equal(test, other[2])


def test_standardize_uses_train_statistics_only():
    train = np.array([[0.0, 10.0], [2.0, 30.0]], np.float32)  # feature means 1, 20; stds 1, 10
    other = np.array([[4.0, 20.0]], np.float32)
    train_out, other_out = standardize(train, other)
    np.testing.assert_allclose(train_out.mean(axis=0), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(other_out, [[3.0, 0.0]], atol=1e-6)
    assert train_out.dtype == other_out.dtype == np.float32


def test_crop_resize_takes_the_centre_square():
    image = np.zeros((20, 30, 3), np.uint8)
    image[:, :5] = 255  # left and right stripes lie outside the centre 20x20 square
    image[:, 25:] = 255
    out = crop_resize(Image.fromarray(image), 10)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    assert out.max() == 0
    assert crop_resize(Image.fromarray(image), None).shape == (20, 30, 3)


def test_unknown_dataset_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="digits.*synthetic.*celeba.*cifar10.*cifar100.*utkface"):
        load_dataset("mnist")


# ----------------------------------------------------------------------------- digits


def test_digits_shapes_dtypes_and_train_only_normalisation():
    ds = load_digits()
    assert ds.train.x.shape[1:] == (8, 8, 1) == ds.info.input_shape
    assert sum(s.num_examples for s in ds[:3]) == 1797
    assert ds.test.num_examples == pytest.approx(0.2 * 1797, abs=10)
    assert ds.val.num_examples == pytest.approx(0.1 * 1797, abs=10)
    for split in ds[:3]:
        assert split.x.dtype == np.float32
        assert split.y.dtype == split.group.dtype == np.int32
        assert np.array_equal(split.y, split.group)
    assert (ds.info.num_classes, ds.info.num_groups) == (10, 10)
    assert ds.info.group_names == tuple("0123456789")
    np.testing.assert_allclose(ds.train.x.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.train.x.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
    assert abs(float(ds.test.x.mean())) > 1e-4  # test statistics are not re-centred
    assert np.all(np.bincount(ds.test.y) >= 30)  # stratified: every class in test


def test_digits_split_depends_only_on_the_seed():
    a, b, c = load_digits(seed=0), load_digits(seed=0), load_digits(seed=1)
    assert np.array_equal(a.train.x, b.train.x) and np.array_equal(a.test.y, b.test.y)
    assert not np.array_equal(a.test.x, c.test.x)


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_fast():
    make_synthetic_biased()
    start = time.perf_counter()
    a = make_synthetic_biased(seed=5)
    assert time.perf_counter() - start < 0.1
    b, c = make_synthetic_biased(seed=5), make_synthetic_biased(seed=6)
    assert all(np.array_equal(x, y) for x, y in zip(a.train, b.train))
    assert not np.array_equal(a.train.x, c.train.x)
    assert a.train.x.shape == (2000, 8, 8, 1) and a.train.x.dtype == np.float32
    assert a.info.group_names == ("majority", "minority")


def test_synthetic_minority_fraction_and_balanced_test():
    ds = make_synthetic_biased(num_train=1000, num_val=200, num_test=300, num_groups=3,
                               num_classes=3, minority_fraction=0.2, input_shape=(12,))
    assert ds.train.x.shape == (1000, 12)
    assert np.bincount(ds.train.group).tolist() == [800, 100, 100]
    assert np.bincount(ds.val.group).tolist() == [160, 20, 20]
    assert np.bincount(ds.test.group).tolist() == [100, 100, 100]
    assert set(np.unique(ds.train.y)) == {0, 1, 2}


def test_synthetic_unfair_model_does_worse_on_the_minority():
    from sklearn.linear_model import LogisticRegression

    ds = make_synthetic_biased(seed=0)
    flat = lambda s: s.x.reshape(s.num_examples, -1)  # noqa: E731
    model = LogisticRegression(max_iter=500).fit(flat(ds.train), ds.train.y)
    correct = model.predict(flat(ds.test)) == ds.test.y
    majority, minority = correct[ds.test.group == 0].mean(), correct[ds.test.group == 1].mean()
    assert majority > 0.9
    assert minority < majority - 0.05


# ----------------------------------------------------------------------------- raw CelebA

ATTRS = ("Male", "Smiling", "Young")
NUM_CELEBA = 20


def celeba_table() -> np.ndarray:
    """[20, 3] +1/-1 values of (Male, Smiling, Young): every (Smiling, Male) cell is populated."""
    i = np.arange(NUM_CELEBA)
    return np.where(np.stack([i % 2 == 0, i % 4 < 2, i % 3 == 0], axis=1), 1, -1)


def celeba_files(prefix: str = "", partition: list[int] | None = None) -> dict[str, bytes]:
    """Raw CelebA layout; image i (non-square, 8x10) has the unique brightness 10 + 12 * i."""
    table = celeba_table()
    rows = [f"{i + 1:06d}.jpg " + " ".join(str(v) for v in table[i]) for i in range(NUM_CELEBA)]
    files = {prefix + "list_attr_celeba.txt": "\n".join([str(NUM_CELEBA), " ".join(ATTRS), *rows])
             .encode()}
    for i in range(NUM_CELEBA):
        files[f"{prefix}img_align_celeba/{i + 1:06d}.jpg"] = image_bytes(10 + 12 * i, (8, 10))
    if partition is not None:
        lines = [f"{i + 1:06d}.jpg {p}" for i, p in enumerate(partition)]
        files[prefix + "list_eval_partition.txt"] = "\n".join(lines).encode()
    return files


@pytest.fixture
def celeba_dir(tmp_path) -> Path:
    return write_files(tmp_path / "raw" / "celeba", celeba_files())


@pytest.fixture
def celeba_zip(tmp_path) -> Path:
    return write_zip(tmp_path / "celeba.zip", celeba_files("celeba/"))


@pytest.mark.parametrize("groups", ["attribute", "cell"])
def test_raw_celeba_labels_and_groups(celeba_dir, groups):
    ds = load_celeba(celeba_dir, target="Smiling", sensitive="Male", groups=groups, image_size=4)
    rows = brightness_rank(ds)
    table = celeba_table() > 0
    male, smiling = table[rows, 0].astype(int), table[rows, 1].astype(int)
    merged = all_splits(ds)
    assert np.array_equal(merged.y, smiling)
    expected_group = male if groups == "attribute" else 2 * smiling + male
    assert np.array_equal(merged.group, expected_group)
    assert ds.info.input_shape == (4, 4, 3) == ds.train.x.shape[1:]
    assert ds.info.class_names == ("not Smiling", "Smiling")
    if groups == "attribute":
        assert ds.info.group_names == ("not Male", "Male")
    else:
        assert ds.info.group_names[1] == "Smiling=0,Male=1" and ds.info.num_groups == 4


def test_raw_celeba_split_without_partition_file(celeba_dir):
    ds = load_celeba(celeba_dir, image_size=4, split=(0.25, 0.2), seed=0)
    sizes = [s.num_examples for s in ds[:3]]
    assert sizes[2] == 4 and sum(sizes) == NUM_CELEBA and sizes[1] >= 3
    rows = brightness_rank(ds)
    assert sorted(rows[-4:]) == [16, 17, 18, 19]  # the last 20% of the rows are the test split
    np.testing.assert_allclose(ds.train.x.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    other = load_celeba(celeba_dir, image_size=4, split=(0.25, 0.2), seed=1)
    assert not np.array_equal(ds.val.x, other.val.x)  # val is random in the seed
    assert np.array_equal(ds.test.y, other.test.y)


def test_raw_celeba_zip_and_parent_folder_match_the_folder(celeba_dir, celeba_zip):
    from_folder = load_celeba(celeba_dir, image_size=4, groups="cell")
    for source in (celeba_zip, celeba_dir.parent):
        other = load_celeba(source, image_size=4, groups="cell")
        for a, b in zip(from_folder[:3], other[:3]):
            assert all(np.array_equal(x, y) for x, y in zip(a, b))
    via_dispatch = load_dataset("celeba", data_dir=str(celeba_zip), image_size=4, groups="cell")
    assert np.array_equal(via_dispatch.test.x, from_folder.test.x)


def test_raw_celeba_partition_file(tmp_path):
    partition = [0] * 12 + [1] * 3 + [2] * 5
    partition[0], partition[19] = 2, 0  # row 0 is test, row 19 train
    root = write_files(tmp_path / "celeba", celeba_files(partition=partition))
    ds = load_celeba(root, image_size=4)
    assert [s.num_examples for s in ds[:3]] == [12, 3, 5]
    rows = brightness_rank(ds)
    test_rows = rows[-5:]
    assert 0 in test_rows and 19 not in test_rows
    limited = load_celeba(root, image_size=4, max_examples=10)  # proportional per partition
    assert [s.num_examples for s in limited[:3]] == [6, 2, 2]


def test_raw_celeba_cache_is_reused(celeba_zip, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(images_module, "PROGRESS_EVERY", 5)
    cache = tmp_path / "cache"
    first = load_celeba(celeba_zip, image_size=4, cache_dir=cache)
    assert "decoded 10/20" in capsys.readouterr().err
    assert len(list(cache.glob("celeba-*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(images_module, "decode_image", fail)
    second = load_celeba(celeba_zip, image_size=4, cache_dir=cache)
    assert np.array_equal(first.train.x, second.train.x)
    with pytest.raises(AssertionError, match="decoded again"):  # another key: not cached
        load_celeba(celeba_zip, image_size=4, max_examples=10, cache_dir=cache)


def test_raw_celeba_bad_arguments(celeba_dir, tmp_path):
    with pytest.raises(ValueError, match="Smiling"):
        load_celeba(celeba_dir, target="Smile", image_size=4)
    with pytest.raises(ValueError, match="groups"):
        load_celeba(celeba_dir, groups="pairs", image_size=4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="list_attr_celeba.txt"):
        load_celeba(tmp_path / "empty")


# ----------------------------------------------------------------------------- CIFAR folders

CIFAR_CLASSES = ("cat", "dog", "ship")  # written out of order below: ids follow sorted names


def cifar_files(prefix: str = "") -> dict[str, bytes]:
    """4 train + 2 test PNGs per class; class c has brightness 40 + 80 * c (+ 5 per index)."""
    files = {}
    for c, name in reversed(list(enumerate(CIFAR_CLASSES))):
        for split, count in (("train", 4), ("test", 2)):
            for i in range(count):
                files[f"{prefix}{split}/{name}/{i:04d}.png"] = image_bytes(
                    40 + 80 * c + 5 * i, (8, 8), "PNG")
    files[prefix + "README.txt"] = b"not an image"
    return files


def test_cifar_folder_and_zip(tmp_path):
    folder = write_files(tmp_path / "cifar", cifar_files())
    archive = write_zip(tmp_path / "cifar.zip", cifar_files("cifar10/"))
    ds = load_cifar_folder(folder, val_fraction=0.25)
    assert ds.info.class_names == CIFAR_CLASSES == ds.info.group_names
    assert [s.num_examples for s in ds[:3]] == [9, 3, 6]
    assert ds.train.x.shape[1:] == (8, 8, 3) == ds.info.input_shape
    assert np.array_equal(np.bincount(ds.val.y), [1, 1, 1])
    for split in ds[:3]:
        assert np.array_equal(split.y, split.group)
        brightness = split.x[..., 0].mean(axis=(1, 2))
        for c in range(3):  # every image of class c is darker than every image of class c + 1
            if c < 2 and np.any(split.y == c) and np.any(split.y == c + 1):
                assert brightness[split.y == c].max() < brightness[split.y == c + 1].min()
    from_zip = load_dataset("cifar10", data_dir=str(archive), val_fraction=0.25)
    for a, b in zip(ds[:3], from_zip[:3]):
        assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_cifar_folder_max_per_class_and_resize(tmp_path):
    archive = write_zip(tmp_path / "cifar.zip", cifar_files("cifar10/"))
    ds = load_cifar_folder(archive, max_per_class=2, image_size=4, val_fraction=0.5)
    assert [s.num_examples for s in ds[:3]] == [3, 3, 6]
    assert ds.test.x.shape == (6, 4, 4, 3)


# ----------------------------------------------------------------------------- UTKFace


def test_parse_utkface_name_and_age_buckets():
    assert parse_utkface_name("dir/25_1_3_20170104.jpg.chip.jpg") == {
        "age": 25, "gender": 1, "race": 3, "age_bucket": 1}
    buckets = [parse_utkface_name(f"{age}_0_0_x.jpg")["age_bucket"] for age in (0, 19, 20, 39, 40,
                                                                                  59, 60, 99)]
    assert buckets == [0, 0, 1, 1, 2, 2, 3, 3]
    for bad in ("abc_1_2_x.jpg", "30_5_1_2017.jpg.chip.jpg", "39_1_20170116.jpg.chip.jpg",
                "20_0_7_x.jpg.chip.jpg", "-3_0_1_x.jpg"):
        assert parse_utkface_name(bad) is None


def utkface_files() -> dict[str, bytes]:
    """12 valid faces (2 genders x 3 races x 2 ages) plus 4 malformed names and a text file."""
    files = {}
    for i, (gender, race, age) in enumerate(
            (g, r, a) for g in (0, 1) for r in (0, 1, 2) for a in (15, 65)):
        files[f"UTKFace/{age}_{gender}_{race}_2017{i:04d}.jpg.chip.jpg"] = image_bytes(
            20 + 100 * gender + i, (10, 10))
    for bad in ("abc_1_2_x.jpg", "30_5_1_20170101.jpg.chip.jpg", "39_1_20170116.jpg.chip.jpg",
                "20_0_7_x.jpg.chip.jpg"):
        files[f"UTKFace/{bad}"] = image_bytes(0, (10, 10))
    files["UTKFace/notes.txt"] = b"hello"
    return files


@pytest.mark.parametrize("as_zip", [False, True])
def test_utkface_skips_malformed_names(tmp_path, capsys, as_zip):
    files = utkface_files()
    path = (write_zip(tmp_path / "utk.zip", files) if as_zip
            else write_files(tmp_path / "utk", files) / "UTKFace")
    ds = load_utkface(path, target="gender", sensitive="race", image_size=4, val_fraction=0.0,
                      test_fraction=0.5)
    assert "skipped 4 files with malformed names" in capsys.readouterr().err
    merged = all_splits(ds)
    assert merged.y.shape == (12,) and ds.info.input_shape == (4, 4, 3)
    assert np.bincount(merged.y).tolist() == [6, 6]
    assert np.bincount(merged.group).tolist() == [4, 4, 4]
    brightness = merged.x[..., 0].mean(axis=(1, 2))
    assert brightness[merged.y == 0].max() < brightness[merged.y == 1].min()  # labels match images
    assert ds.info.group_names == ("White", "Black", "Asian", "Indian", "Others")
    assert ds.info.num_groups == 5 and ds.info.class_names == ("male", "female")
    by_age = load_utkface(path, target="age_bucket", sensitive="gender", image_size=4)
    assert by_age.info.class_names == ("<20", "20-39", "40-59", "60+")
    assert np.bincount(all_splits(by_age).y, minlength=4).tolist() == [6, 0, 0, 6]


# ----------------------------------------------------------------------------- TFDS (mocked)


@pytest.fixture
def tfds_mock():
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
        yield


def test_tfds_cifar10_and_cifar100(tfds_mock):
    ds = load_dataset("cifar10", source="tfds", max_per_class=1, val_fraction=0.0)
    assert ds.info.num_classes == ds.info.num_groups == 10
    assert ds.train.x.shape[1:] == (32, 32, 3) and ds.train.x.dtype == np.float32
    assert np.bincount(ds.train.y, minlength=10).max() == 1
    assert np.array_equal(ds.train.y, ds.train.group)
    ds100 = load_dataset("cifar100", source="tfds", image_size=8)
    assert ds100.info.num_classes == 100
    assert ds100.train.num_examples + ds100.val.num_examples == 20
    assert ds100.test.x.shape == (20, 8, 8, 3)


def test_tfds_celeba(tfds_mock):
    ds = load_dataset("celeba", source="tfds", groups="cell", image_size=8, max_examples=30)
    assert [s.num_examples for s in ds[:3]] == [10, 10, 10]
    assert ds.train.x.shape == (10, 8, 8, 3)
    for split in ds[:3]:
        assert np.array_equal(split.group // 2, split.y)
    np.testing.assert_allclose(ds.train.x.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)


# ----------------------------------------------------------------------------- missing data


@pytest.mark.parametrize("name", ["celeba", "cifar10", "utkface"])
def test_missing_path_raises_fast_with_a_fix(tmp_path, name):
    start = time.perf_counter()
    with pytest.raises(DatasetNotFoundError, match="data_dir") as error:
        load_dataset(name, data_dir=str(tmp_path / "nowhere.zip"))
    assert time.perf_counter() - start < 5
    assert isinstance(error.value, FileNotFoundError)
    assert "nowhere.zip" in str(error.value)
    if name != "utkface":
        assert "source='tfds'" in str(error.value) and ".zip" in str(error.value)


@pytest.mark.parametrize("name", ["celeba", "cifar10", "cifar100"])
def test_unprepared_tfds_raises_fast_with_a_fix(tmp_path, name):
    pytest.importorskip("tensorflow_datasets")
    start = time.perf_counter()
    with pytest.raises(DatasetNotFoundError) as error:
        load_dataset(name, data_dir=str(tmp_path))  # auto: an empty folder is a TFDS data_dir
    assert time.perf_counter() - start < 5
    message = str(error.value)
    assert "tfds build" in message and "source='raw'" in message and str(tmp_path) in message


# ----------------------------------------------------------------------------- real data


def test_real_celeba_zip(shared_data):
    path = shared_data / "celeba-10k.zip"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    ds = load_dataset("celeba", data_dir=str(path), max_examples=300, image_size=32)
    assert [s.num_examples for s in ds[:3]] == [216, 24, 60]
    assert ds.train.x.shape[1:] == (32, 32, 3)
    male = all_splits(ds).group.mean()
    assert 0.3 < male < 0.55  # 42% of the 10k rows are Male
    assert 0.35 < all_splits(ds).y.mean() < 0.6  # 48% are Smiling


def test_real_cifar10_zip(shared_data):
    path = shared_data / "cifar10-jpeg.zip"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    ds = load_dataset("cifar10", data_dir=str(path), max_per_class=10)
    assert ds.info.class_names[:3] == ("airplane", "automobile", "bird")
    assert [s.num_examples for s in ds[:3]] == [90, 10, 100]
    assert np.bincount(ds.test.y).tolist() == [10] * 10


def test_a_file_that_is_not_a_zip_raises_dataset_not_found(tmp_path):
    bogus = tmp_path / "celeba.tar"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(DatasetNotFoundError, match="neither a folder nor a zip"):
        load_dataset("celeba", data_dir=str(bogus))


def test_importing_the_package_does_not_import_tfds():
    import subprocess
    import sys

    code = "import sys, ballot_jax.data; assert 'tensorflow_datasets' not in sys.modules"
    repo = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True,
                            env={"PYTHONPATH": str(repo), "JAX_PLATFORMS": "cpu", "PATH": ""})
    assert result.returncode == 0, result.stderr[-2000:]


# ----------------------------------------------------------------------------- CelebA: groups = label


def test_raw_celeba_groups_equal_the_label(celeba_dir, celeba_zip):
    # The Ballot authors' protocol: label = Male, groups = the classes.
    ds = load_celeba(celeba_dir, target="Male", sensitive="label", image_size=4)
    male = (celeba_table() > 0)[brightness_rank(ds), 0].astype(int)
    merged = all_splits(ds)
    assert np.array_equal(merged.y, male) and np.array_equal(merged.group, male)
    for split in ds[:3]:
        assert np.array_equal(split.y, split.group)
    assert ds.info.num_groups == ds.info.num_classes == 2
    assert ds.info.group_names == ds.info.class_names == ("not Male", "Male")
    young = load_dataset("celeba", data_dir=str(celeba_zip), target="Young", sensitive="label",
                         image_size=4)
    young_rows = (celeba_table() > 0)[brightness_rank(young), 2].astype(int)
    assert np.array_equal(all_splits(young).group, young_rows)
    with pytest.raises(ValueError, match="sensitive='label'"):
        load_celeba(celeba_dir, target="Male", sensitive="label", groups="cell", image_size=4)
    with pytest.raises(ValueError, match="Lable.*or sensitive='label'"):
        load_celeba(celeba_dir, sensitive="Lable", image_size=4)
    with pytest.raises(ValueError, match="unknown CelebA attribute 'label'"):
        load_celeba(celeba_dir, target="label", image_size=4)


# ----------------------------------------------------------------------------- long-tailed CIFAR


def test_long_tail_counts_match_the_published_profiles():
    from ballot_jax.data.long_tail import long_tail_counts

    # CIFAR-10-LT of Cao et al. 2019 (LDAM-DRW): 12,406 images at ratio 100, 20,431 at ratio 10
    lt100 = long_tail_counts(5000, 10, 100)
    assert lt100.tolist() == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    lt10 = long_tail_counts(5000, 10, 10.0)
    assert lt10.tolist() == [5000, 3871, 2997, 2320, 1796, 1391, 1077, 834, 645, 500]
    assert lt10.sum() == 20431
    assert long_tail_counts(500, 100, 100).sum() == 10847  # CIFAR-100-LT, ratio 100
    assert long_tail_counts(40, 4, 1.0).tolist() == [40] * 4
    assert long_tail_counts(7, 1, 10).tolist() == [7]
    assert long_tail_counts(3, 3, 1000).tolist() == [3, 1, 1]  # at least one per class
    for bad in (0.5, 0.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="imbalance_ratio"):
            long_tail_counts(10, 3, bad)


def test_long_tail_indices_are_a_seeded_per_class_subset():
    from ballot_jax.data.long_tail import long_tail_indices

    labels = np.repeat(np.arange(5), 40)[np.random.default_rng(3).permutation(200)]
    kept = long_tail_indices(labels, 16.0, seed=0)
    assert np.all(np.diff(kept) > 0)  # sorted, no duplicates
    assert np.bincount(labels[kept], minlength=5).tolist() == [40, 20, 10, 5, 2]
    assert np.array_equal(kept, long_tail_indices(labels, 16.0, seed=0))
    assert not np.array_equal(kept, long_tail_indices(labels, 16.0, seed=1))
    assert np.array_equal(long_tail_indices(labels, 1.0, seed=0), np.arange(200))
    # classes with fewer examples than their target keep all of them
    short = np.array([0] * 10 + [1] * 2 + [2] * 9)
    assert np.bincount(short[long_tail_indices(short, 4.0, seed=0)]).tolist() == [10, 2, 2]


def _raw_cifar_brightness(ds: Dataset) -> dict[str, np.ndarray]:
    """Recover each example's stored brightness (``cifar_files``: 40 + 80 c + 5 i) per split.

    The test split holds every stored test image (known brightness), so the per-channel
    standardisation (an affine map fitted on train) can be inverted from it.
    """
    index = np.concatenate([np.arange(np.sum(ds.test.y == c)) for c in range(3)])
    raw_test = 40 + 80 * ds.test.y + 5 * index
    x_test = ds.test.x[..., 0].mean(axis=(1, 2))
    slope, offset = np.polyfit(raw_test, x_test, 1)
    return {name: np.round((getattr(ds, name).x[..., 0].mean(axis=(1, 2)) - offset) / slope)
            for name in ("train", "val", "test")}


def test_cifar_folder_long_tailed_train_balanced_val_and_test(tmp_path):
    folder = write_files(tmp_path / "cifar", cifar_files())
    balanced = load_cifar_folder(folder, val_fraction=0.25)
    # 3 train + 1 val per class after the val split; ratio 3: floor(3 * 3^(-c/2)) = 3, 1, 1
    lt = load_cifar_folder(folder, val_fraction=0.25, imbalance_ratio=3.0)
    assert np.bincount(lt.train.y, minlength=3).tolist() == [3, 1, 1]
    assert np.array_equal(lt.train.y, lt.train.group)
    assert np.bincount(lt.val.y).tolist() == [1, 1, 1] and np.bincount(lt.test.y).tolist() == [2, 2, 2]
    raw_lt, raw_bal = _raw_cifar_brightness(lt), _raw_cifar_brightness(balanced)
    # val and test hold the same images as without imbalance; train is a per-class subset of
    # the balanced train split, disjoint from val
    assert np.array_equal(raw_lt["val"], raw_bal["val"]) and np.array_equal(raw_lt["test"], raw_bal["test"])
    assert set(raw_lt["train"]) <= set(raw_bal["train"])
    assert not set(raw_lt["train"]) & set(raw_lt["val"])
    assert np.array_equal((raw_lt["train"] - 40) // 80, lt.train.y)
    np.testing.assert_allclose(lt.train.x.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)  # train statistics
    again = load_cifar_folder(folder, val_fraction=0.25, imbalance_ratio=3.0)
    assert all(np.array_equal(a, b) for a, b in zip(lt.train, again.train))
    # the registered long-tailed CIFAR-10 (ratio 10 by default) and the cifar10 option agree
    archive = write_zip(tmp_path / "cifar.zip", cifar_files("cifar10/"))
    lt10 = load_dataset("cifar10_lt", data_dir=str(archive), val_fraction=0.25)
    opt10 = load_dataset("cifar10", data_dir=str(archive), val_fraction=0.25, imbalance_ratio=10)
    assert np.bincount(lt10.train.y).tolist() == [3, 1, 1]
    assert all(np.array_equal(a, b) for a, b in zip(lt10.train, opt10.train))
    flat = load_dataset("cifar10_lt", data_dir=str(archive), val_fraction=0.25, imbalance_ratio=1)
    assert np.bincount(flat.train.y).tolist() == [3, 3, 3]
    with pytest.raises(ValueError, match="imbalance_ratio"):
        load_cifar_folder(folder, imbalance_ratio=0.5)


# ----------------------------------------------------------------------------- Tiny ImageNet

TINY_WNIDS = ("n01", "n02", "n03")  # class ids follow the sorted wnids
TINY_WORDS = {"n01": "alpha, first", "n02": "beta", "n03": "beta, second", "n99": "unused"}


def tiny_imagenet_files(prefix: str = "", bad_wnid: bool = False) -> dict[str, bytes]:
    """tiny-imagenet-200 layout: 4 train + 2 val JPEGs (8x8) per class, class c of brightness
    40 + 80 c + 5 i; one grayscale train image; an unlabelled test image; val listed shuffled."""
    files = {
        prefix + "wnids.txt": "\n".join(["n03", "n01", "n02"]).encode(),
        prefix + "words.txt": "\n".join(f"{w}\t{t}" for w, t in TINY_WORDS.items()).encode(),
        prefix + "test/images/test_0.JPEG": image_bytes(255, (8, 8)),
    }
    for c, wnid in enumerate(TINY_WNIDS):
        files[f"{prefix}train/{wnid}/{wnid}_boxes.txt"] = b"ignored"
        for i in range(4):
            files[f"{prefix}train/{wnid}/images/{wnid}_{i}.JPEG"] = image_bytes(40 + 80 * c + 5 * i, (8, 8))
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 40 + 80 + 15).save(buffer, format="JPEG", quality=95)
    files[f"{prefix}train/n02/images/n02_3.JPEG"] = buffer.getvalue()  # grayscale, class 1
    lines = []
    for k, (c, i) in enumerate([(2, 0), (0, 0), (1, 1), (0, 1), (2, 1), (1, 0)]):
        files[f"{prefix}val/images/val_{k}.JPEG"] = image_bytes(40 + 80 * c + 5 * i, (8, 8))
        wnid = "n77" if (bad_wnid and k == 0) else TINY_WNIDS[c]
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t7\t7")
    files[prefix + "val/val_annotations.txt"] = "\n".join(lines).encode()
    return files


def _assert_classes_by_brightness(ds: Dataset) -> None:
    for split in ds[:3]:
        assert np.array_equal(split.y, split.group)
        brightness = split.x[..., 0].mean(axis=(1, 2))
        for c in range(2):  # every image of class c is darker than every image of class c + 1
            if np.any(split.y == c) and np.any(split.y == c + 1):
                assert brightness[split.y == c].max() < brightness[split.y == c + 1].min()


def test_tinyimagenet_folder_zip_and_parent(tmp_path):
    from ballot_jax.data import load_tinyimagenet

    folder = write_files(tmp_path / "raw" / "tiny-imagenet-200", tiny_imagenet_files())
    ds = load_tinyimagenet(folder, val_fraction=0.25)
    assert [s.num_examples for s in ds[:3]] == [9, 3, 6]  # train 3 + val 1 per class; test = official val
    assert ds.info.name == "tinyimagenet"
    assert ds.info.num_classes == ds.info.num_groups == 3
    assert ds.info.class_names == ds.info.group_names == ("alpha", "beta (n02)", "beta (n03)")
    assert ds.train.x.shape[1:] == (8, 8, 3) == ds.info.input_shape and ds.train.x.dtype == np.float32
    assert np.bincount(ds.val.y).tolist() == [1, 1, 1] and np.bincount(ds.test.y).tolist() == [2, 2, 2]
    _assert_classes_by_brightness(ds)
    np.testing.assert_allclose(ds.train.x.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    archive = write_zip(tmp_path / "tiny-imagenet-200.zip", tiny_imagenet_files("tiny-imagenet-200/"))
    for other in (load_dataset("tinyimagenet", data_dir=str(archive), val_fraction=0.25),
                  load_tinyimagenet(folder.parent, val_fraction=0.25)):
        assert other.info == ds.info
        for a, b in zip(ds[:3], other[:3]):
            assert all(np.array_equal(x, y) for x, y in zip(a, b))
    # without wnids.txt / words.txt: the train folders are the classes, named by wnid
    bare = {k: v for k, v in tiny_imagenet_files().items() if not k.endswith(("wnids.txt", "words.txt"))}
    plain = load_tinyimagenet(write_files(tmp_path / "bare", bare), val_fraction=0.25)
    assert plain.info.class_names == TINY_WNIDS
    assert np.array_equal(plain.test.y, ds.test.y)


def test_tinyimagenet_max_per_class_resize_and_cache(tmp_path, monkeypatch):
    from ballot_jax.data import load_tinyimagenet

    archive = write_zip(tmp_path / "tiny.zip", tiny_imagenet_files("tiny-imagenet-200/"))
    cache = tmp_path / "cache"
    ds = load_tinyimagenet(archive, max_per_class=2, image_size=4, val_fraction=0.5, cache_dir=cache)
    assert [s.num_examples for s in ds[:3]] == [3, 3, 6]
    assert ds.test.x.shape == (6, 4, 4, 3)
    _assert_classes_by_brightness(ds)
    assert len(list(cache.glob("tinyimagenet-*.npz"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("decoded again instead of using the cache")

    monkeypatch.setattr(images_module, "decode_image", fail)
    again = load_tinyimagenet(archive, max_per_class=2, image_size=4, val_fraction=0.5, cache_dir=cache)
    assert all(np.array_equal(a, b) for a, b in zip(ds.train, again.train))


def test_tinyimagenet_missing_or_bad_data_raises(tmp_path):
    from ballot_jax.data import load_tinyimagenet

    with pytest.raises(DatasetNotFoundError, match="tiny-imagenet-200") as error:
        load_dataset("tinyimagenet", data_dir=str(tmp_path / "nowhere.zip"))
    assert "nowhere.zip" in str(error.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="val_annotations.txt"):
        load_tinyimagenet(tmp_path / "empty")
    bad = write_files(tmp_path / "bad", tiny_imagenet_files(bad_wnid=True))
    with pytest.raises(DatasetNotFoundError, match="'n77', which is not a train class"):
        load_tinyimagenet(bad)
    files = tiny_imagenet_files()
    del files["val/images/val_3.JPEG"]
    with pytest.raises(DatasetNotFoundError, match="val_3.JPEG.*missing"):
        load_tinyimagenet(write_files(tmp_path / "holes", files))


def test_real_celeba_male_as_label_and_long_tailed_cifar10(shared_data):
    celeba, cifar = shared_data / "celeba-10k.zip", shared_data / "cifar10-jpeg.zip"
    if not (celeba.exists() and cifar.exists()):
        pytest.skip(f"{celeba} or {cifar} is absent")
    ds = load_dataset("celeba", data_dir=str(celeba), max_examples=300, image_size=32,
                      target="Male", sensitive="label")
    merged = all_splits(ds)
    assert np.array_equal(merged.y, merged.group) and 0.3 < merged.group.mean() < 0.55
    lt = load_dataset("cifar10_lt", data_dir=str(cifar), max_per_class=50)  # 45 train a class
    assert np.bincount(lt.train.y).tolist() == [45, 34, 26, 20, 16, 12, 9, 7, 5, 4]
    assert np.bincount(lt.val.y).tolist() == [5] * 10 and np.bincount(lt.test.y).tolist() == [50] * 10


def test_digits_lt_keeps_a_long_tailed_train_split_and_balanced_evaluation_splits():
    from ballot_jax.data.long_tail import long_tail_counts

    plain, lt = load_dataset("digits"), load_dataset("digits", imbalance_ratio=10)
    counts = np.bincount(lt.train.y, minlength=10)
    available = np.bincount(plain.train.y, minlength=10)
    assert counts.tolist() == np.minimum(long_tail_counts(int(available.max()), 10, 10), available).tolist()
    assert counts[0] / counts[9] >= 10 and np.all(np.diff(counts) <= 0)
    np.testing.assert_array_equal(lt.val.y, plain.val.y)
    np.testing.assert_array_equal(lt.test.y, plain.test.y)
    np.testing.assert_array_equal(lt.train.group, lt.train.y)
    with pytest.raises(ValueError, match="imbalance_ratio"):
        load_dataset("digits", imbalance_ratio=0.5)
