"""Tests of the CIFAR-10 record reader, generated data and sources.

Record files are built with write_records or, where the byte layout itself
is the point, by hand. Downloads run against a real HTTP server on
127.0.0.1 serving small tarballs built in the test, including malicious
ones; after every failure the data directory must hold nothing: no partial
``cifar-10-batches-bin``, no scratch directory, no ``.part`` file.
"""

import gzip
import io
import lzma
import os
import re
import shutil
import socket
import tarfile

import numpy as np
import pytest

from tests.local_http import sha256
from tfmech.data import archive
from tfmech.data import cifar10
from tfmech.data.cifar10 import (ALL_FILES, BATCHES_DIR, RECORD_BYTES,
                                 CifarFormatError, check_record_file,
                                 check_split, maybe_download_and_extract,
                                 prepare, read_records, split_files,
                                 write_generated_batches, write_records)
from tfmech.data.download import DownloadError

ARCHIVE_NAME = "cifar-10-binary.tar.gz"


def random_images(count, seed=0):
    return np.random.default_rng(seed).integers(
        0, 256, size=(count, 32, 32, 3), dtype=np.uint8)


def random_labels(count, seed=0):
    return np.random.default_rng(seed).integers(0, 10, size=count,
                                                dtype=np.uint8)


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def records_bytes(labels, fill=0):
    """Hand-built records: the given labels, every pixel byte ``fill``."""
    return b"".join(bytes([label]) + bytes([fill]) * 3072
                    for label in labels)


def fullmatch(message):
    """A pytest.raises ``match`` for exactly ``message``."""
    return "^" + re.escape(message) + "$"


# ---------------------------------------------------------------------------
# Reading and writing record files


def test_round_trip(tmp_path):
    images, labels = random_images(7), random_labels(7)
    path = tmp_path / "batch.bin"
    write_records(path, images, labels)
    assert os.path.getsize(path) == 7 * RECORD_BYTES
    assert os.listdir(tmp_path) == ["batch.bin"]    # no temp file left
    assert check_record_file(path) == 7
    got_images, got_labels = read_records([str(path)])
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.uint8
    assert got_images.shape == (7, 32, 32, 3)
    assert got_images.flags.c_contiguous
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_channel_major_layout_by_hand(tmp_path):
    """Bytes are label, then the R, G and B planes, each row-major."""
    record = bytearray(RECORD_BYTES)
    record[0] = 7
    record[1 + 2 * 32 + 5] = 200               # R at row 2, column 5
    record[1 + 1024 + 31 * 32 + 0] = 17        # G at row 31, column 0
    record[1 + 2048 + 0 * 32 + 31] = 99        # B at row 0, column 31
    second = bytes([3]) + bytes(range(256)) * 12
    path = write_bytes(tmp_path / "hand.bin", bytes(record) + second)

    images, labels = read_records(path)        # a single path works too
    assert labels.tolist() == [7, 3]
    expected = np.zeros((32, 32, 3), np.uint8)
    expected[2, 5, 0] = 200
    expected[31, 0, 1] = 17
    expected[0, 31, 2] = 99
    np.testing.assert_array_equal(images[0], expected)
    planes = np.frombuffer(second[1:], np.uint8).reshape(3, 32, 32)
    np.testing.assert_array_equal(images[1], planes.transpose(1, 2, 0))

    # write_records produces exactly these bytes from the HWC arrays.
    rewritten = tmp_path / "rewritten.bin"
    write_records(rewritten, images, labels)
    assert rewritten.read_bytes() == bytes(record) + second


def test_read_records_concatenates_in_order(tmp_path):
    paths = []
    for i, count in enumerate((3, 1, 2)):
        path = str(tmp_path / f"f{i}.bin")
        write_records(path, random_images(count, seed=i),
                      random_labels(count, seed=i))
        paths.append(path)
    images, labels = read_records(paths)
    assert len(labels) == 6
    np.testing.assert_array_equal(images[3], random_images(1, seed=1)[0])
    np.testing.assert_array_equal(labels[4:], random_labels(2, seed=2))


def test_missing_file(tmp_path):
    path = str(tmp_path / "data_batch_1.bin")
    with pytest.raises(CifarFormatError,
                       match=fullmatch(f"{path}: file not found")) as info:
        check_record_file(path)
    assert info.value.source == path
    assert info.value.problem == "file not found"


def test_directory_instead_of_file(tmp_path):
    path = tmp_path / "data_batch_1.bin"
    path.mkdir()
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{path}: is a directory, expected a CIFAR-10 record file")):
        check_record_file(path)


def test_empty_file(tmp_path):
    path = write_bytes(tmp_path / "empty.bin", b"")
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{path}: empty file, expected records of 3073 bytes")):
        check_record_file(path)


@pytest.mark.parametrize("size, whole, left", [
    (2 * RECORD_BYTES - 100, "1 record", 2973),
    (3 * RECORD_BYTES + 1, "3 records", 1),
    (100, "0 records", 100),
])
def test_truncated_file(tmp_path, size, whole, left):
    path = write_bytes(tmp_path / "batch.bin", bytes(size))
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{path}: size {size} bytes is not a whole number of 3073-byte "
            f"records: {whole} and {left} bytes left over (truncated, or not "
            f"a CIFAR-10 binary file)")):
        check_record_file(path)


def test_label_out_of_range(tmp_path):
    path = write_bytes(tmp_path / "batch.bin",
                       records_bytes([0, 9, 5, 10, 1]))
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{path}: label 10 at record 3 (byte offset 9219) is outside "
            f"0..9 (1 bad label in all)")):
        check_record_file(path)


def test_label_errors_count_all_bad_labels(tmp_path):
    path = write_bytes(tmp_path / "batch.bin",
                       records_bytes([255, 1, 200, 10]))
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{path}: label 255 at record 0 (byte offset 0) is outside 0..9 "
            f"(3 bad labels in all)")):
        read_records([path])


def test_read_records_names_the_bad_file(tmp_path):
    good = str(tmp_path / "good.bin")
    write_records(good, random_images(2), random_labels(2))
    bad = write_bytes(tmp_path / "bad.bin", records_bytes([1, 12]))
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{bad}: label 12 at record 1 (byte offset 3073) is outside "
            f"0..9 (1 bad label in all)")):
        read_records([good, bad])


def test_read_records_needs_a_file():
    with pytest.raises(ValueError, match="at least one record file"):
        read_records([])


@pytest.mark.parametrize("images, labels, problem", [
    (np.zeros((2, 32, 32, 3), np.float32), np.zeros(2, np.uint8),
     "images must be uint8 [N, 32, 32, 3], got float32 [2, 32, 32, 3]"),
    (np.zeros((2, 3, 32, 32), np.uint8), np.zeros(2, np.uint8),
     "images must be uint8 [N, 32, 32, 3], got uint8 [2, 3, 32, 32]"),
    (np.zeros((2, 32, 32, 3), np.uint8), np.zeros(2, np.float32),
     "labels must be integers [N], got float32 [2]"),
    (np.zeros((2, 32, 32, 3), np.uint8), np.zeros(3, np.uint8),
     "2 images but 3 labels"),
    (np.zeros((0, 32, 32, 3), np.uint8), np.zeros(0, np.uint8),
     "no records (a CIFAR-10 file holds at least one)"),
    (np.zeros((3, 32, 32, 3), np.uint8), np.array([0, 10, 1]),
     "label 10 at index 1 is outside 0..9"),
    (np.zeros((2, 32, 32, 3), np.uint8), np.array([-1, 1]),
     "label -1 at index 0 is outside 0..9"),
])
def test_write_records_rejects_bad_arrays(tmp_path, images, labels,
                                          problem):
    path = str(tmp_path / "out.bin")
    with pytest.raises(ValueError,
                       match=fullmatch(f"cannot write {path}: {problem}")):
        write_records(path, images, labels)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------
# Splits


def test_split_files(tmp_path):
    assert split_files(str(tmp_path), "train") == [
        str(tmp_path / f"data_batch_{i}.bin") for i in range(1, 6)]
    assert split_files(str(tmp_path), "test") == [
        str(tmp_path / "test_batch.bin")]
    with pytest.raises(ValueError, match=fullmatch(
            "unknown CIFAR-10 split 'validation'; allowed: 'train', "
            "'test'")):
        split_files(str(tmp_path), "validation")


@pytest.fixture
def layout_copy(small_cifar10_dir, tmp_path):
    """A private copy of the generated layout that a test may break."""
    return shutil.copytree(small_cifar10_dir, tmp_path / BATCHES_DIR)


def test_check_split_counts(small_cifar10_dir):
    paths, count = check_split(small_cifar10_dir, "train")
    assert count == 1000
    assert paths == split_files(small_cifar10_dir, "train")
    assert check_split(small_cifar10_dir, "test")[1] == 200


def test_check_split_names_the_bad_file(layout_copy):
    bad = os.path.join(layout_copy, "data_batch_3.bin")
    with open(bad, "r+b") as f:
        f.truncate(5 * RECORD_BYTES + 10)
    with pytest.raises(CifarFormatError, match="^" + re.escape(
            f"{bad}: size {5 * RECORD_BYTES + 10} bytes is not a whole "
            f"number of 3073-byte records: 5 records and 10 bytes left "
            f"over")):
        check_split(layout_copy, "train")
    assert check_split(layout_copy, "test")[1] == 200


def test_check_split_missing_file(layout_copy):
    missing = os.path.join(layout_copy, "test_batch.bin")
    os.remove(missing)
    with pytest.raises(CifarFormatError,
                       match=fullmatch(f"{missing}: file not found")):
        check_split(layout_copy, "test")


def test_check_split_missing_directory(tmp_path):
    missing = str(tmp_path / BATCHES_DIR)
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{missing}: directory not found, expected the CIFAR-10 binary "
            f"layout (data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, "
            f"data_batch_4.bin, data_batch_5.bin, test_batch.bin)")):
        check_split(missing, "train")


# ---------------------------------------------------------------------------
# Generated data


def test_generated_batches_layout(small_cifar10_dir):
    assert sorted(os.listdir(small_cifar10_dir)) == sorted(
        ALL_FILES + (cifar10.META_FILE, cifar10.GENERATED_MARKER))
    with open(os.path.join(small_cifar10_dir, cifar10.META_FILE)) as f:
        assert f.read().split() == list(cifar10.CLASS_NAMES)
    for split, per_class in (("train", 100), ("test", 20)):
        _, labels = read_records(split_files(small_cifar10_dir, split))
        assert np.bincount(labels, minlength=10).tolist() == [per_class] * 10


def test_generated_batches_are_deterministic(tmp_path):
    first = write_generated_batches(tmp_path / "a", num_train_per_file=20,
                                    num_test=30, seed=3)
    second = write_generated_batches(tmp_path / "b", num_train_per_file=20,
                                     num_test=30, seed=3)
    other = write_generated_batches(tmp_path / "c", num_train_per_file=20,
                                    num_test=30, seed=4)
    for name in ALL_FILES:
        data = (tmp_path / "a" / BATCHES_DIR / name).read_bytes()
        assert data == (tmp_path / "b" / BATCHES_DIR / name).read_bytes()
        assert data != (tmp_path / "c" / BATCHES_DIR / name).read_bytes()
    assert first == str(tmp_path / "a" / BATCHES_DIR)
    assert check_split(second, "train")[1] == 100
    assert check_split(other, "test")[1] == 30


def test_generated_batches_are_learnable_by_nearest_mean(small_cifar10_dir):
    """Class means from train classify the test split (a cheap proxy)."""
    images, labels = read_records(split_files(small_cifar10_dir, "train"))
    test_images, test_labels = read_records(
        split_files(small_cifar10_dir, "test"))
    means = np.stack([images[labels == k].mean(axis=0) for k in range(10)])
    flat = test_images.reshape(len(test_images), 1, -1).astype(np.float32)
    distances = ((flat - means.reshape(1, 10, -1)) ** 2).sum(axis=-1)
    accuracy = (distances.argmin(axis=1) == test_labels).mean()
    assert accuracy > 0.95


def test_generated_batches_reuse_and_replace(tmp_path):
    batches_dir = write_generated_batches(tmp_path, num_train_per_file=2,
                                          num_test=3)
    stamp = os.stat(os.path.join(batches_dir, "test_batch.bin")).st_mtime_ns
    os.utime(os.path.join(batches_dir, "test_batch.bin"), ns=(1, 1))
    write_generated_batches(tmp_path, num_train_per_file=2, num_test=3)
    assert os.stat(os.path.join(batches_dir,
                                "test_batch.bin")).st_mtime_ns == 1
    assert stamp != 1
    write_generated_batches(tmp_path, num_train_per_file=2, num_test=5)
    assert check_split(batches_dir, "test")[1] == 5
    assert sorted(os.listdir(tmp_path)) == [BATCHES_DIR]


def test_generated_batches_never_overwrite_real_data(tmp_path):
    batches_dir = tmp_path / BATCHES_DIR
    batches_dir.mkdir()
    (batches_dir / "data_batch_1.bin").write_bytes(records_bytes([1]))
    with pytest.raises(FileExistsError, match=fullmatch(
            f"{batches_dir}: exists and was not made by "
            f"write_generated_batches (no generated.txt); refusing to "
            f"replace it")):
        write_generated_batches(tmp_path)
    assert os.listdir(batches_dir) == ["data_batch_1.bin"]


# ---------------------------------------------------------------------------
# Download and extraction against a local HTTP server


@pytest.fixture(scope="module")
def tiny_layout(tmp_path_factory):
    """A generated layout with 2 records per train file and 3 test records."""
    return write_generated_batches(tmp_path_factory.mktemp("tiny"),
                                   num_train_per_file=2, num_test=3)


def tar_gz(entries):
    """Build a .tar.gz in memory from (TarInfo, bytes or None) entries."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return buffer.getvalue()


def file_entry(name, data):
    return tarfile.TarInfo(name), data


def special_entry(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def layout_entries(batches_dir, names=ALL_FILES + ("batches.meta.txt",),
                   replace=None):
    """Entries of a CIFAR-10 tarball: the directory, then its files."""
    directory = tarfile.TarInfo(BATCHES_DIR)
    directory.type = tarfile.DIRTYPE
    directory.mode = 0o755
    entries = [(directory, None)]
    for name in names:
        with open(os.path.join(batches_dir, name), "rb") as f:
            data = f.read()
        if replace and name in replace:
            data = replace[name]
        entries.append(file_entry(f"{BATCHES_DIR}/{name}", data))
    return entries


def serve_tarball(server, body):
    return server.serve("/~kriz/" + ARCHIVE_NAME, body)


def assert_nothing_left(data_dir):
    """After a failure: no layout, no scratch dirs, no .part files."""
    leftovers = os.listdir(data_dir) if os.path.isdir(data_dir) else []
    assert leftovers == []


def test_download_and_extract(server, tmp_path, tiny_layout, capsys):
    body = tar_gz(layout_entries(tiny_layout))
    url = serve_tarball(server, body)
    data_dir = str(tmp_path / "data")
    batches_dir = maybe_download_and_extract(data_dir, url=url,
                                             sha256=sha256(body))
    assert batches_dir == os.path.join(data_dir, BATCHES_DIR)
    assert sorted(os.listdir(data_dir)) == sorted([ARCHIVE_NAME, BATCHES_DIR])
    assert sorted(os.listdir(batches_dir)) == sorted(
        ALL_FILES + ("batches.meta.txt",))
    for name in ALL_FILES:
        with open(os.path.join(batches_dir, name), "rb") as f, \
                open(os.path.join(tiny_layout, name), "rb") as g:
            assert f.read() == g.read()
    err = capsys.readouterr().err
    assert f"Downloaded {url} ({len(body)} bytes, verified sha256)" in err
    assert (f"Extracted {os.path.join(data_dir, ARCHIVE_NAME)} to "
            f"{batches_dir}") in err
    assert server.requests == ["/~kriz/" + ARCHIVE_NAME]

    # Second call: the layout is there, so no network at all.
    assert maybe_download_and_extract(data_dir, url=url) == batches_dir
    assert server.requests == ["/~kriz/" + ARCHIVE_NAME]


def test_prepare_downloads_and_checks(server, tmp_path, tiny_layout):
    body = tar_gz(layout_entries(tiny_layout))
    url = serve_tarball(server, body)
    batches_dir = prepare(str(tmp_path), url=url, sha256=sha256(body),
                          progress=False)
    assert check_split(batches_dir, "train")[1] == 10
    assert check_split(batches_dir, "test")[1] == 3


def test_sha256_mismatch_leaves_nothing(server, tmp_path, tiny_layout):
    body = tar_gz(layout_entries(tiny_layout))
    url = serve_tarball(server, body)
    data_dir = str(tmp_path / "data")
    with pytest.raises(DownloadError, match=fullmatch(
            f"{url}: sha256 mismatch of the file: expected "
            f"{cifar10.ARCHIVE_SHA256}, got {sha256(body)}")):
        maybe_download_and_extract(data_dir, url=url, progress=False)
    assert_nothing_left(data_dir)


def escape_target(tmp_path):
    return str(tmp_path / "escaped.txt")


@pytest.mark.parametrize("make_entry, problem", [
    (lambda outside: file_entry(outside, b"pwned"),
     "unsafe member {outside!r}: absolute path"),
    (lambda outside: file_entry(f"{BATCHES_DIR}/../../../escaped.txt",
                                b"pwned"),
     "unsafe member 'cifar-10-batches-bin/../../../escaped.txt': '..' in "
     "its path"),
    (lambda outside: special_entry(f"{BATCHES_DIR}/link", tarfile.SYMTYPE,
                                   outside),
     "unsafe member 'cifar-10-batches-bin/link': symbolic link to "
     "{outside!r}; only regular files and directories are allowed"),
    (lambda outside: special_entry(f"{BATCHES_DIR}/hard", tarfile.LNKTYPE,
                                   f"{BATCHES_DIR}/data_batch_1.bin"),
     "unsafe member 'cifar-10-batches-bin/hard': hard link to "
     "'cifar-10-batches-bin/data_batch_1.bin'; only regular files and "
     "directories are allowed"),
    (lambda outside: special_entry(f"{BATCHES_DIR}/dev", tarfile.CHRTYPE),
     "unsafe member 'cifar-10-batches-bin/dev': character device; only "
     "regular files and directories are allowed"),
    (lambda outside: special_entry(f"{BATCHES_DIR}/pipe", tarfile.FIFOTYPE),
     "unsafe member 'cifar-10-batches-bin/pipe': fifo; only regular files "
     "and directories are allowed"),
], ids=["absolute", "dotdot", "symlink", "hardlink", "device", "fifo"])
def test_malicious_tarball_rejected(server, tmp_path, tiny_layout,
                                    make_entry, problem):
    outside = escape_target(tmp_path)
    # The bad member comes after the good files, so they were already
    # written to the scratch directory when the extraction stops.
    entries = layout_entries(tiny_layout) + [make_entry(outside)]
    body = tar_gz(entries)
    url = serve_tarball(server, body)
    data_dir = str(tmp_path / "data")
    archive_path = os.path.join(data_dir, ARCHIVE_NAME)
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{archive_path}: " + problem.format(outside=outside))):
        maybe_download_and_extract(data_dir, url=url, sha256=sha256(body),
                                   progress=False)
    assert_nothing_left(data_dir)
    assert not os.path.exists(outside)


def test_tarball_missing_a_file(server, tmp_path, tiny_layout):
    body = tar_gz(layout_entries(tiny_layout, names=ALL_FILES[:-1]))
    url = serve_tarball(server, body)
    data_dir = str(tmp_path / "data")
    archive_path = os.path.join(data_dir, ARCHIVE_NAME)
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{archive_path}: archive lacks cifar-10-batches-bin/"
            f"test_batch.bin (expected cifar-10-batches-bin/ with "
            f"data_batch_1.bin, data_batch_2.bin, data_batch_3.bin, "
            f"data_batch_4.bin, data_batch_5.bin, test_batch.bin)")):
        maybe_download_and_extract(data_dir, url=url, sha256=sha256(body),
                                   progress=False)
    assert_nothing_left(data_dir)


def test_tarball_with_a_bad_record_file(server, tmp_path, tiny_layout):
    body = tar_gz(layout_entries(
        tiny_layout, replace={"data_batch_4.bin": records_bytes([3, 11])}))
    url = serve_tarball(server, body)
    data_dir = str(tmp_path / "data")
    archive_path = os.path.join(data_dir, ARCHIVE_NAME)
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{archive_path}: member cifar-10-batches-bin/data_batch_4.bin: "
            f"label 11 at record 1 (byte offset 3073) is outside 0..9 "
            f"(1 bad label in all)")):
        maybe_download_and_extract(data_dir, url=url, sha256=sha256(body),
                                   progress=False)
    assert_nothing_left(data_dir)


def test_not_a_tarball(server, tmp_path):
    body = b"<html>Service unavailable</html>"
    url = serve_tarball(server, body)
    data_dir = str(tmp_path / "data")
    archive_path = os.path.join(data_dir, ARCHIVE_NAME)
    with pytest.raises(CifarFormatError, match="^" + re.escape(
            f"{archive_path}: not a readable tar archive (")):
        maybe_download_and_extract(data_dir, url=url, sha256=None,
                                   progress=False)
    assert_nothing_left(data_dir)


def test_truncated_tarball(server, tmp_path, tiny_layout):
    body = tar_gz(layout_entries(tiny_layout))
    url = serve_tarball(server, body[:len(body) // 2])
    data_dir = str(tmp_path / "data")
    with pytest.raises(CifarFormatError, match="^" + re.escape(
            os.path.join(data_dir, ARCHIVE_NAME) + ": ")):
        maybe_download_and_extract(data_dir, url=url, sha256=None,
                                   progress=False)
    assert_nothing_left(data_dir)


def closed_port_url():
    """A loopback URL nobody listens on: any network access fails."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/{ARCHIVE_NAME}"


def test_complete_directory_needs_no_network(small_cifar10_dir):
    data_dir = os.path.dirname(small_cifar10_dir)
    assert maybe_download_and_extract(
        data_dir, url=closed_port_url()) == small_cifar10_dir
    assert prepare(data_dir, url=closed_port_url()) == small_cifar10_dir


def test_existing_tarball_is_used_without_download(tmp_path, tiny_layout):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / ARCHIVE_NAME).write_bytes(tar_gz(layout_entries(tiny_layout)))
    batches_dir = maybe_download_and_extract(
        str(data_dir), url=closed_port_url(), progress=False)
    assert check_split(batches_dir, "train")[1] == 10


def test_bad_existing_tarball_is_kept(tmp_path, tiny_layout):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    body = tar_gz(layout_entries(tiny_layout, names=ALL_FILES[1:]))
    (data_dir / ARCHIVE_NAME).write_bytes(body)
    with pytest.raises(CifarFormatError, match=re.escape(
            "archive lacks cifar-10-batches-bin/data_batch_1.bin") +
            ".*; delete the archive to download a fresh copy$"):
        maybe_download_and_extract(str(data_dir), url=closed_port_url(),
                                   progress=False)
    assert os.listdir(data_dir) == [ARCHIVE_NAME]


def tar_raw(entries):
    """Like tar_gz, uncompressed: the bytes a compressed tarball holds."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, None if data is None else io.BytesIO(data))
    return buffer.getvalue()


def refused_existing_tarball(tmp_path, body, problem):
    """Put ``body`` in data_dir as the tarball; unpacking it must fail with
    ``problem`` (a regex) and leave nothing but the tarball."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / ARCHIVE_NAME).write_bytes(body)
    with pytest.raises(CifarFormatError, match="^" + re.escape(
            f"{data_dir / ARCHIVE_NAME}: ") + problem):
        maybe_download_and_extract(str(data_dir), url=closed_port_url(),
                                   progress=False)
    assert os.listdir(data_dir) == [ARCHIVE_NAME]


def test_damaged_compressed_data_is_refused(tmp_path, tiny_layout):
    """A changed byte inside the gzip stream is caught by gzip's CRC.

    tarfile stops reading at the end-of-archive blocks, before the CRC at
    the end of the stream, so this used to come out as a changed pixel in
    test_batch.bin with no error at all.
    """
    raw = tar_raw(layout_entries(tiny_layout))
    # Level 0 stores the tar bytes verbatim, so the pixels can be found.
    packed = bytearray(gzip.compress(raw, compresslevel=0))
    with open(os.path.join(tiny_layout, "test_batch.bin"), "rb") as f:
        pixels = f.read()[100:132]
    at = packed.find(pixels)
    assert at > 0 and packed.count(pixels) == 1
    packed[at] ^= 0x01
    refused_existing_tarball(tmp_path, bytes(packed), re.escape(
        "could not read the archive (CRC check failed"))


def test_tarball_cut_in_its_gzip_trailer_is_refused(tmp_path, tiny_layout):
    """A download cut off in its last bytes: every member is whole, the
    stream is not. This used to be unpacked as if nothing were wrong."""
    body = tar_gz(layout_entries(tiny_layout))[:-4]
    refused_existing_tarball(tmp_path, body, re.escape(
        "not a readable tar archive (Compressed file ended before the "
        "end-of-stream marker was reached)"))


def test_corrupt_xz_tarball(tmp_path, tiny_layout):
    """lzma's error is not an OSError; it used to escape as an LZMAError
    instead of the one CIFAR-10 error."""
    packed = bytearray(lzma.compress(tar_raw(layout_entries(tiny_layout))))
    packed[len(packed) // 2] ^= 0xFF
    refused_existing_tarball(tmp_path, bytes(packed), re.escape(
        "not a readable tar archive (Corrupt input data)"))


def test_incomplete_directory_is_replaced(server, tmp_path, tiny_layout):
    data_dir = tmp_path / "data"
    partial = data_dir / BATCHES_DIR
    partial.mkdir(parents=True)
    (partial / "data_batch_1.bin").write_bytes(b"half a file")
    body = tar_gz(layout_entries(tiny_layout))
    batches_dir = maybe_download_and_extract(
        str(data_dir), url=serve_tarball(server, body), sha256=sha256(body),
        progress=False)
    assert check_split(batches_dir, "train")[1] == 10
    assert sorted(os.listdir(data_dir)) == sorted([ARCHIVE_NAME, BATCHES_DIR])


def test_duplicate_member_rejected(tmp_path, tiny_layout):
    entries = layout_entries(tiny_layout) + [
        file_entry(f"./{BATCHES_DIR}//test_batch.bin", records_bytes([1]))]
    path = tmp_path / "dup.tar.gz"
    path.write_bytes(tar_gz(entries))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(archive.ArchiveError, match=fullmatch(
            f"{path}: member './cifar-10-batches-bin//test_batch.bin' "
            f"appears more than once")):
        archive.safe_extract_tar(path, out)


def test_safe_extract_normalizes_names(tmp_path):
    entries = [file_entry("./a/./b.bin", b"x"), file_entry("c", b"yz")]
    path = tmp_path / "ok.tar.gz"
    path.write_bytes(tar_gz(entries))
    out = tmp_path / "out"
    out.mkdir()
    assert archive.safe_extract_tar(path, out) == ["a/b.bin", "c"]
    assert (out / "a" / "b.bin").read_bytes() == b"x"
    assert oct((out / "c").stat().st_mode & 0o777) == oct(
        0o666 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------------------
# prepare: sources and options


def test_prepare_without_download_names_the_missing_dir(tmp_path):
    missing = str(tmp_path / BATCHES_DIR)
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{missing}: directory not found and downloading is off (unpack "
            f"{ARCHIVE_NAME} from {cifar10.DATA_URL} into {tmp_path})")):
        prepare(str(tmp_path), download=False)
    assert os.listdir(tmp_path) == []


def test_prepare_stops_on_a_bad_file(layout_copy):
    bad = os.path.join(layout_copy, "test_batch.bin")
    write_bytes(bad, b"")
    with pytest.raises(CifarFormatError, match=fullmatch(
            f"{bad}: empty file, expected records of 3073 bytes")):
        prepare(os.path.dirname(layout_copy), download=False)


def test_prepare_accepts_the_batches_dir_itself(small_cifar10_dir):
    assert prepare(small_cifar10_dir, download=False) == small_cifar10_dir


def test_prepare_unknown_source(tmp_path):
    with pytest.raises(ValueError, match=fullmatch(
            "unknown CIFAR-10 source 'kaggle'; allowed: 'files', 'tfds'")):
        prepare(str(tmp_path), source="kaggle")


def write_tfds_cifar10_metadata(tfds, data_dir, num_examples):
    """Write cifar10's dataset_info.json with small split sizes.

    tfds.load(batch_size=-1) batches by the split sizes recorded in the
    metadata; without them the mock falls back to unknown sizes (see the
    same helper for MNIST in test_mnist_data.py).
    """
    builder = tfds.builder("cifar10", data_dir=str(data_dir))
    builder.info.set_splits(tfds.core.SplitDict([
        tfds.core.SplitInfo(name=name, shard_lengths=[num_examples],
                            num_bytes=0)
        for name in ("train", "test")]))
    os.makedirs(builder.data_dir, exist_ok=True)
    builder.info.write_to_directory(builder.data_dir)


def test_prepare_from_tfds(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    tfds_dir = tmp_path / "tfds_data"
    write_tfds_cifar10_metadata(tfds, tfds_dir, num_examples=12)
    data_dir = tmp_path / "data"
    with tfds.testing.mock_data(num_examples=12, data_dir=str(tfds_dir)):
        batches_dir = prepare(str(data_dir), source="tfds")
    assert batches_dir == str(data_dir / "tfds" / BATCHES_DIR)
    assert os.listdir(data_dir / "tfds") == [BATCHES_DIR]
    assert [check_record_file(p) for p in
            split_files(batches_dir, "train")] == [3, 3, 2, 2, 2]
    images, labels = read_records(split_files(batches_dir, "test"))
    assert images.shape == (12, 32, 32, 3) and labels.shape == (12,)
    assert labels.max() <= 9

    # A complete copy is reused without touching tfds.
    def fail(*args):
        raise AssertionError("tfds should not be loaded again")
    monkeypatch.setattr(cifar10, "_load_tfds", fail)
    assert prepare(str(data_dir), source="tfds") == batches_dir


# ---------------------------------------------------------------------------
# The real data


@pytest.mark.real_data
def test_real_cifar10(real_cifar10_dir):
    data_dir = os.path.dirname(real_cifar10_dir)
    assert prepare(data_dir, download=False) == real_cifar10_dir
    for split, total, per_class in (("train", 50000, 5000),
                                    ("test", 10000, 1000)):
        paths, count = check_split(real_cifar10_dir, split)
        assert count == total
        images, labels = read_records(paths)
        assert images.shape == (total, 32, 32, 3)
        assert np.bincount(labels, minlength=10).tolist() == \
            [per_class] * 10
        mean = images.mean(dtype=np.float64)
        assert 110 < mean < 130, mean
    assert count == cifar10.NUM_EXAMPLES_PER_EPOCH_FOR_EVAL
