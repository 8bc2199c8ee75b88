"""Tests of the MNIST reader, DataSet batching and read_data_sets.

Small IDX files are built on the fly with write_idx_*; broken files are
built by hand with struct so each check of the reader is hit exactly.
"""

import gzip
import os
import re
import struct

import numpy as np
import pytest

from tfmech.data import DATA_ROOT_ENV
from tfmech.data import mnist
from tfmech.data.mnist import (DataSet, MnistFormatError, read_data_sets,
                               read_idx_images, read_idx_labels,
                               write_idx_images, write_idx_labels)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def random_images(count, seed=0, rows=28, cols=28):
    return np.random.default_rng(seed).integers(
        0, 256, size=(count, rows, cols), dtype=np.uint8)


def random_labels(count, seed=0):
    return np.random.default_rng(seed).integers(0, 10, size=count,
                                                dtype=np.uint8)


def write_bytes(path, data, compress=False):
    with open(path, "wb") as f:
        f.write(gzip.compress(data) if compress else data)
    return str(path)


def images_header(count, rows=28, cols=28, magic=mnist.IMAGES_MAGIC):
    return struct.pack(">IIII", magic, count, rows, cols)


def labels_header(count, magic=mnist.LABELS_MAGIC):
    return struct.pack(">II", magic, count)


def write_small_mnist(directory, num_train=12, num_test=5, gz=True):
    """Write four small IDX files under the canonical names; return arrays."""
    arrays = {
        mnist.TRAIN_IMAGES: random_images(num_train, seed=1),
        mnist.TRAIN_LABELS: random_labels(num_train, seed=2),
        mnist.TEST_IMAGES: random_images(num_test, seed=3),
        mnist.TEST_LABELS: random_labels(num_test, seed=4),
    }
    for name, array in arrays.items():
        path = os.path.join(directory, name if gz else name[:-3])
        writer = write_idx_images if array.ndim == 3 else write_idx_labels
        writer(path, array)
    return arrays


# ---------------------------------------------------------------------------
# Reading good files


@pytest.mark.parametrize("filename", ["imgs.gz", "imgs"])
def test_images_round_trip_gzip_and_raw(tmp_path, filename):
    images = random_images(7)
    path = tmp_path / filename
    write_idx_images(path, images)
    with open(path, "rb") as f:
        assert (f.read(2) == b"\x1f\x8b") == filename.endswith(".gz")
    result = read_idx_images(str(path))
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, images)


@pytest.mark.parametrize("filename", ["labels.gz", "labels"])
def test_labels_round_trip_gzip_and_raw(tmp_path, filename):
    labels = random_labels(9)
    path = tmp_path / filename
    write_idx_labels(path, labels)
    result = read_idx_labels(str(path))
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, labels)


def test_gzip_detected_by_content_not_name(tmp_path):
    labels = random_labels(4)
    raw_named_gz = tmp_path / "raw.gz"
    write_idx_labels(tmp_path / "raw", labels)
    os.rename(tmp_path / "raw", raw_named_gz)
    gz_named_raw = tmp_path / "packed"
    write_idx_labels(tmp_path / "packed.gz", labels)
    os.rename(tmp_path / "packed.gz", gz_named_raw)
    np.testing.assert_array_equal(read_idx_labels(str(raw_named_gz)), labels)
    np.testing.assert_array_equal(read_idx_labels(str(gz_named_raw)), labels)


def test_multi_member_gzip(tmp_path):
    labels = random_labels(40)
    data = labels_header(40) + labels.tobytes()
    path = write_bytes(tmp_path / "labels.gz",
                       gzip.compress(data[:13]) + gzip.compress(data[13:]))
    np.testing.assert_array_equal(read_idx_labels(path), labels)


def test_two_gzip_members_of_equal_size(tmp_path):
    """Both members are read even when the last trailer's length happens to
    match the first member's (the reader used to take that as a sign of a
    single member and return only the first half)."""
    labels = random_labels(12)
    data = labels_header(12) + labels.tobytes()     # 20 bytes: 10 + 10
    path = write_bytes(tmp_path / "labels.gz",
                       gzip.compress(data[:10]) + gzip.compress(data[10:]))
    np.testing.assert_array_equal(read_idx_labels(path), labels)


def test_gzip_file_twice_in_a_row(tmp_path):
    """What a download that restarted from byte 0 leaves: two copies. gzip
    reads that as the IDX bytes twice; it used to be read as one copy."""
    packed = gzip.compress(labels_header(4) + bytes([1, 2, 3, 4]))
    path = write_bytes(tmp_path / "labels.gz", packed + packed)
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{path}: 12 trailing bytes after the 4 labels (4 bytes) the "
            f"header promises")):
        read_idx_labels(path)


def test_junk_after_gzip_member(tmp_path):
    """Junk ending in the same 4 length bytes as the real trailer used to
    pass the trailer check unnoticed."""
    packed = gzip.compress(labels_header(4) + bytes([1, 2, 3, 4]))
    path = write_bytes(tmp_path / "labels.gz", packed + packed[-8:])
    with pytest.raises(MnistFormatError,
                       match=re.escape(path) + ": corrupt gzip stream"):
        read_idx_labels(path)


def test_unpacked_file_is_found_under_gz_name(tmp_path):
    labels = random_labels(4)
    write_idx_labels(tmp_path / "labels-idx1-ubyte", labels)
    result = read_idx_labels(str(tmp_path / "labels-idx1-ubyte.gz"))
    np.testing.assert_array_equal(result, labels)


# ---------------------------------------------------------------------------
# Rejecting bad files: one error type, path first, then the problem


def test_missing_file(tmp_path):
    path = str(tmp_path / "nothing-idx3-ubyte.gz")
    with pytest.raises(MnistFormatError,
                       match=re.escape(path) + ": file not found"):
        read_idx_images(path)


def test_wrong_magic(tmp_path):
    path = write_bytes(tmp_path / "labels",
                       labels_header(3, magic=1234) + bytes(3))
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{path}: bad magic number 1234, expected 2049 "
            "(IDX labels file)")):
        read_idx_labels(path)


def test_labels_file_given_as_images(tmp_path):
    path = str(tmp_path / "labels.gz")
    write_idx_labels(path, random_labels(3))
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{path}: bad magic number 2049, expected 2051 (IDX images "
            "file): this is an IDX labels file, expected images")):
        read_idx_images(path)


def test_images_file_given_as_labels(tmp_path):
    path = str(tmp_path / "images.gz")
    write_idx_images(path, random_images(2))
    with pytest.raises(MnistFormatError,
                       match="this is an IDX images file, expected labels"):
        read_idx_labels(path)


def test_wrong_image_dimensions(tmp_path):
    path = str(tmp_path / "images.gz")
    write_idx_images(path, random_images(2, rows=32, cols=30))
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{path}: bad image size 32x30, expected 28x28")):
        read_idx_images(path)


def test_zero_count(tmp_path):
    path = write_bytes(tmp_path / "images", images_header(0))
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{path}: header says the file holds 0 images")):
        read_idx_images(path)


def test_short_header(tmp_path):
    path = write_bytes(tmp_path / "images",
                       struct.pack(">II", mnist.IMAGES_MAGIC, 5))
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{path}: header too short: 8 bytes, need 16")):
        read_idx_images(path)


def test_file_shorter_than_magic(tmp_path):
    path = write_bytes(tmp_path / "labels", b"\x00\x00")
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{path}: file too short for an IDX header: 2 bytes")):
        read_idx_labels(path)


def test_truncated_image_payload(tmp_path):
    data = images_header(3) + bytes(2 * 784 + 10)
    path = write_bytes(tmp_path / "images.gz", data, compress=True)
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{path}: truncated: header promises 3 images (2352 bytes) "
            "but file has 1578 bytes of pixel data")):
        read_idx_images(path)


def test_truncated_label_payload(tmp_path):
    path = write_bytes(tmp_path / "labels", labels_header(5) + bytes(4))
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{path}: truncated: header promises 5 labels (5 bytes) but "
            "file has 4 bytes of label data")):
        read_idx_labels(path)


def test_trailing_bytes(tmp_path):
    path = write_bytes(tmp_path / "images",
                       images_header(1) + bytes(784 + 3))
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{path}: 3 trailing bytes after the 1 images (784 bytes)")):
        read_idx_images(path)


def test_truncated_gzip(tmp_path):
    packed = gzip.compress(images_header(2) + random_images(2).tobytes())
    path = write_bytes(tmp_path / "images.gz", packed[:len(packed) // 2])
    with pytest.raises(MnistFormatError,
                       match=re.escape(path) + ": truncated gzip stream"):
        read_idx_images(path)


def test_corrupt_gzip(tmp_path):
    packed = bytearray(gzip.compress(labels_header(50) + bytes(50)))
    packed[12:20] = b"\xff" * 8     # inside the deflate data
    path = write_bytes(tmp_path / "labels.gz", bytes(packed))
    with pytest.raises(MnistFormatError,
                       match=re.escape(path) + ": corrupt gzip stream"):
        read_idx_labels(path)


def test_gzip_crc_mismatch(tmp_path):
    packed = gzip.compress(labels_header(5) + bytes(5))
    bad_crc = packed[:-8] + bytes(b ^ 0xFF for b in packed[-8:-4]) + \
        packed[-4:]
    path = write_bytes(tmp_path / "labels.gz", bad_crc)
    with pytest.raises(MnistFormatError,
                       match=re.escape(path) + ": corrupt gzip stream"):
        read_idx_labels(path)


def test_label_out_of_range(tmp_path):
    path = str(tmp_path / "labels.gz")
    write_idx_labels(path, [1, 2, 3, 12, 4, 200])
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{path}: label 12 at index 3 is outside 0..9")):
        read_idx_labels(path)


def test_count_mismatch_names_both_files(tmp_path):
    write_small_mnist(tmp_path)
    labels_path = str(tmp_path / mnist.TRAIN_LABELS)
    write_idx_labels(labels_path, random_labels(11))
    images_path = str(tmp_path / mnist.TRAIN_IMAGES)
    with pytest.raises(MnistFormatError, match=re.escape(
            f"{images_path}: holds 12 images but {labels_path} holds "
            "11 labels")):
        read_data_sets(str(tmp_path), validation_size=2, download=False)


def test_count_mismatch_without_sources():
    with pytest.raises(MnistFormatError, match="3 images but 2 labels"):
        DataSet(random_images(3), random_labels(2))


def test_missing_file_without_download(tmp_path):
    with pytest.raises(MnistFormatError, match=re.escape(
            str(tmp_path / mnist.TRAIN_IMAGES)) + ": file not found"):
        read_data_sets(str(tmp_path), download=False)


# ---------------------------------------------------------------------------
# DataSet


def numbered_dataset(count, seed=0):
    """A DataSet whose label i and image i both encode example i."""
    images = np.zeros((count, 28, 28), np.uint8)
    images[:, 0, 0] = np.arange(count)
    return DataSet(images, np.arange(count) % 10, seed=seed)


def example_ids(batch_images):
    return np.rint(batch_images[:, 0] * 255).astype(int).tolist()


def test_dataset_types_and_scaling():
    images = random_images(6)
    data = DataSet(images, random_labels(6))
    assert data.images.shape == (6, 784)
    assert data.images.dtype == np.float32
    assert data.labels.dtype == np.int32
    assert data.num_examples == 6
    assert data.epochs_completed == 0
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0
    expected = images.reshape(6, 784).astype(np.float32) * np.float32(
        1 / 255)
    np.testing.assert_array_equal(data.images, expected)


def test_same_seed_same_batches():
    first = numbered_dataset(23, seed=5)
    second = numbered_dataset(23, seed=5)
    other = numbered_dataset(23, seed=6)
    first_ids = [example_ids(first.next_batch(4)[0]) for _ in range(20)]
    second_ids = [example_ids(second.next_batch(4)[0]) for _ in range(20)]
    other_ids = [example_ids(other.next_batch(4)[0]) for _ in range(20)]
    assert first_ids == second_ids
    assert first_ids != other_ids


def test_first_epoch_is_shuffled():
    data = numbered_dataset(50)
    ids = example_ids(data.next_batch(50)[0])
    assert sorted(ids) == list(range(50))
    assert ids != list(range(50))


def test_batch_crossing_epoch_boundary():
    data = numbered_dataset(10, seed=3)
    first = example_ids(data.next_batch(4)[0])
    second = example_ids(data.next_batch(4)[0])
    assert data.epochs_completed == 0
    crossing_images, crossing_labels = data.next_batch(4)
    crossing = example_ids(crossing_images)
    assert data.epochs_completed == 1
    epoch1_tail = crossing[:2]
    epoch2_head = crossing[2:]
    assert sorted(first + second + epoch1_tail) == list(range(10))
    np.testing.assert_array_equal(crossing_labels,
                                  np.array(crossing) % 10)
    # The rest of epoch 2 follows on from its head, each example once.
    rest = []
    while data.epochs_completed == 1:
        batch = example_ids(data.next_batch(4)[0])
        rest += batch
    epoch2 = epoch2_head + rest[:8]
    assert sorted(epoch2) == list(range(10))
    assert epoch2 != first + second + epoch1_tail   # reshuffled


def test_every_example_once_per_epoch_over_many_epochs():
    data = numbered_dataset(13, seed=1)
    stream = []
    for _ in range(30):
        stream += example_ids(data.next_batch(5)[0])
    for epoch in range(len(stream) // 13):
        assert sorted(stream[epoch * 13:(epoch + 1) * 13]) == list(range(13))
    assert data.epochs_completed == 150 // 13


def test_batches_match_images_property():
    images = random_images(9)
    data = DataSet(images, random_labels(9), seed=2)
    lazy_batch = data.next_batch(5, shuffle=False)[0]
    full = data.images                     # builds the cached float array
    np.testing.assert_array_equal(lazy_batch, full[:5])
    np.testing.assert_array_equal(data.next_batch(4, shuffle=False)[0],
                                  full[5:])
    iterated = np.concatenate([b for b, _ in data.iterate_batches(4)])
    np.testing.assert_array_equal(iterated, full)


def test_next_batch_without_shuffle_is_in_order():
    data = numbered_dataset(5)
    assert example_ids(data.next_batch(3, shuffle=False)[0]) == [0, 1, 2]
    assert example_ids(data.next_batch(3, shuffle=False)[0]) == [3, 4, 0]
    assert data.epochs_completed == 1


def test_next_batch_rejects_bad_sizes():
    data = numbered_dataset(5)
    with pytest.raises(ValueError, match="larger than the split"):
        data.next_batch(6)
    with pytest.raises(ValueError, match="positive integer"):
        data.next_batch(0)


def test_iterate_batches_covers_everything_with_partial_last():
    data = numbered_dataset(10)
    data.next_batch(3)                       # must not affect iteration
    batches = list(data.iterate_batches(4))
    assert [len(labels) for _, labels in batches] == [4, 4, 2]
    ids = [i for images, _ in batches for i in example_ids(images)]
    assert ids == list(range(10))


def test_fake_dataset():
    data = DataSet.fake(num_examples=100, seed=0)
    assert data.num_examples == 100
    images, labels = data.next_batch(30)
    assert images.shape == (30, 784) and images.dtype == np.float32
    assert np.all(images == 1.0)
    assert labels.dtype == np.int32 and np.all(labels == 0)
    sizes = [len(labels) for _, labels in data.iterate_batches(40)]
    assert sizes == [40, 40, 20]


def test_read_data_sets_fake():
    splits = read_data_sets("/nonexistent", fake_data=True)
    assert [s.num_examples for s in splits] == [10000, 10000, 10000]
    images, labels = splits.train.next_batch(2)
    assert np.all(images == 1.0) and np.all(labels == 0)


# ---------------------------------------------------------------------------
# read_data_sets on local files


@pytest.mark.parametrize("gz", [True, False])
def test_read_data_sets_from_local_files(tmp_path, gz):
    arrays = write_small_mnist(tmp_path, gz=gz)
    splits = read_data_sets(str(tmp_path), validation_size=4, seed=7,
                            download=False)
    assert isinstance(splits, mnist.Datasets)
    assert [s.num_examples for s in splits] == [8, 4, 5]
    train_labels = arrays[mnist.TRAIN_LABELS]
    np.testing.assert_array_equal(splits.validation.labels,
                                  train_labels[:4])
    np.testing.assert_array_equal(splits.train.labels, train_labels[4:])
    np.testing.assert_array_equal(splits.test.labels,
                                  arrays[mnist.TEST_LABELS])


def test_splits_shuffle_differently(tmp_path):
    images = np.zeros((40, 28, 28), np.uint8)
    images[:, 0, 0] = np.arange(40)
    write_idx_images(tmp_path / mnist.TRAIN_IMAGES, images)
    write_idx_labels(tmp_path / mnist.TRAIN_LABELS, np.arange(40) % 10)
    write_idx_images(tmp_path / mnist.TEST_IMAGES, images[:20])
    write_idx_labels(tmp_path / mnist.TEST_LABELS, np.arange(20) % 10)
    splits = read_data_sets(str(tmp_path), validation_size=20, seed=0,
                            download=False)
    # Equal-sized splits sharing a seed would draw the same permutation.
    train_order = [i - 20 for i in example_ids(splits.train.next_batch(20)[0])]
    validation_order = example_ids(splits.validation.next_batch(20)[0])
    test_order = example_ids(splits.test.next_batch(20)[0])
    assert sorted(train_order) == sorted(validation_order) == list(range(20))
    assert train_order != validation_order
    assert test_order not in (train_order, validation_order)


@pytest.mark.parametrize("bad", [-1, 2.5])
def test_bad_validation_size(tmp_path, bad):
    write_small_mnist(tmp_path)
    with pytest.raises(ValueError, match=re.escape(
            f"validation_size must be an integer in [0, 12) (the training "
            f"data holds 12 examples), got {bad!r}")):
        read_data_sets(str(tmp_path), validation_size=bad, download=False)


@pytest.mark.parametrize("validation_size", [12, 100])
def test_a_training_file_too_small_for_the_validation_split_is_a_data_error(
        tmp_path, validation_size):
    write_small_mnist(tmp_path)
    with pytest.raises(MnistFormatError) as error:
        read_data_sets(str(tmp_path), validation_size=validation_size,
                       download=False)
    assert str(error.value) == (
        f"{tmp_path / 'train-images-idx3-ubyte.gz'}: holds 12 training "
        f"images, not more than the {validation_size} set aside for "
        f"validation; a training set needs at least {validation_size + 1}")


def test_unknown_source(tmp_path):
    with pytest.raises(ValueError, match=re.escape(
            "unknown MNIST source 'kaggle'; allowed: 'files', 'tfds'")):
        read_data_sets(str(tmp_path), source="kaggle")


# ---------------------------------------------------------------------------
# Real MNIST, when a copy is on this machine


def real_mnist_dir():
    candidates = []
    root = os.environ.get(DATA_ROOT_ENV, "").strip()
    if root:
        candidates.append(os.path.join(root, "mnist"))
    candidates.append(os.path.join(REPO_ROOT, "..", "shared", "data",
                                   "mnist"))
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, mnist.TRAIN_IMAGES)):
            return candidate
    pytest.skip(f"real MNIST not found: set {DATA_ROOT_ENV} to a directory "
                "holding mnist/ with the four IDX files")


@pytest.mark.real_data
def test_real_mnist():
    splits = read_data_sets(real_mnist_dir(), download=False)
    assert [s.num_examples for s in splits] == [55000, 5000, 10000]
    assert splits.test.labels[:8].tolist() == [7, 2, 1, 0, 4, 1, 4, 9]
    # The test split's full float array is small; train is checked by batch.
    test_images = splits.test.images
    assert test_images.shape == (10000, 784)
    assert test_images.dtype == np.float32
    assert test_images.min() == 0.0 and test_images.max() == 1.0
    batch_images, batch_labels = splits.train.next_batch(1000)
    assert batch_images.shape == (1000, 784)
    assert 0.0 <= batch_images.min() and batch_images.max() <= 1.0
    assert set(batch_labels.tolist()) == set(range(10))


# ---------------------------------------------------------------------------
# tensorflow_datasets (the only test here that imports TensorFlow)


def write_tfds_mnist_metadata(tfds, data_dir, num_examples):
    """Write mnist's dataset_info.json with small split sizes.

    tfds.load(batch_size=-1) batches by the split sizes recorded in the
    metadata. The pip package ships no metadata, so without this the mock
    falls back to unknown sizes and TensorFlow tries to batch sys.maxsize.
    """
    builder = tfds.builder("mnist", data_dir=str(data_dir))
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=name, shard_lengths=[num_examples],
                            num_bytes=0)
        for name in ("train", "test")]))
    os.makedirs(builder.data_dir, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)


def test_read_data_sets_from_tfds(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    write_tfds_mnist_metadata(tfds, tmp_path, num_examples=12)
    with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path)):
        splits = read_data_sets(str(tmp_path / "idx"), source="tfds",
                                validation_size=3, seed=1)
    assert [s.num_examples for s in splits] == [9, 3, 12]
    for split in splits:
        assert split.images.shape == (split.num_examples, 784)
        assert split.images.dtype == np.float32
        assert split.labels.dtype == np.int32
        assert 0.0 <= split.images.min() and split.images.max() <= 1.0
        assert set(split.labels.tolist()) <= set(range(10))
    images, labels = splits.train.next_batch(4)
    assert images.shape == (4, 784) and labels.shape == (4,)
