"""Tests of download/maybe_download against a real HTTP server on loopback.

The server runs in a thread of the test process and serves whatever a test
puts in its route table, including deliberately broken responses (a
Content-Length larger than the body, corrupted bytes, 404s).
"""

import gzip
import os
import re
import socket

import numpy as np
import pytest

from tests.local_http import sha256
from tfmech.data import mnist
from tfmech.data.download import DownloadError, download, maybe_download


def small_labels_idx(count=300):
    """Raw IDX label bytes and their gzip container."""
    labels = np.arange(count, dtype=np.uint8) % 10
    raw = b"\x00\x00\x08\x01" + count.to_bytes(4, "big") + labels.tobytes()
    return raw, gzip.compress(raw, compresslevel=9, mtime=12345)


def assert_nothing_left(directory, name):
    leftovers = os.listdir(directory) if os.path.isdir(directory) else []
    assert name not in leftovers
    assert not [f for f in leftovers if f.endswith(".part")], leftovers


# ---------------------------------------------------------------------------
# Success


def test_download_verifies_decompressed_hash(server, tmp_path):
    raw, packed = small_labels_idx()
    url = server.serve("/data/labels.gz", packed)
    dest = str(tmp_path / "new" / "dir" / "labels.gz")
    result = download(url, dest, sha256=sha256(raw), progress=False)
    assert result == dest
    with open(dest, "rb") as f:
        assert f.read() == packed       # the container is kept as served
    assert os.listdir(tmp_path / "new" / "dir") == ["labels.gz"]


def test_download_raw_hash_when_asked(server, tmp_path):
    _, packed = small_labels_idx()
    url = server.serve("/labels.gz", packed)
    dest = str(tmp_path / "labels.gz")
    download(url, dest, sha256=sha256(packed), decompress_for_hash=None,
             progress=False)
    assert os.path.isfile(dest)


def test_download_without_hash(server, tmp_path):
    url = server.serve("/notes.txt", b"hello")
    dest = str(tmp_path / "notes.txt")
    download(url, dest, progress=False)
    with open(dest, "rb") as f:
        assert f.read() == b"hello"


def test_progress_output(server, tmp_path, capsys):
    body = os.urandom(100_000)
    url = server.serve("/blob.bin", body)
    download(url, str(tmp_path / "blob.bin"), sha256=sha256(body),
             chunk_size=1000)
    lines = capsys.readouterr().err.splitlines()
    progress = [line for line in lines if line.startswith("Downloading")]
    assert 5 <= len(progress) <= 11
    assert re.fullmatch(re.escape(f"Downloading {url}: ") +
                        r"\d+% \(0\.\d of 0\.1 MB\)", progress[0])
    assert progress[-1] == f"Downloading {url}: 100% (0.1 of 0.1 MB)"
    assert lines[-1] == (f"Downloaded {url} (100000 bytes, "
                         "verified sha256)")


def test_progress_false_is_silent(server, tmp_path, capsys):
    url = server.serve("/blob.bin", b"x" * 5000)
    download(url, str(tmp_path / "blob.bin"), progress=False,
             chunk_size=100)
    assert capsys.readouterr().err == ""


def test_maybe_download_uses_existing_file(server, tmp_path):
    existing = tmp_path / "labels.gz"
    existing.write_bytes(b"already here")
    path = maybe_download("labels.gz", str(tmp_path), server.url + "/")
    assert path == str(existing)
    assert server.requests == []


def test_maybe_download_fetches_missing_file(server, tmp_path):
    raw, packed = small_labels_idx()
    server.serve("/mirror/labels.gz", packed)
    path = maybe_download("labels.gz", str(tmp_path),
                          server.url + "/mirror", sha256=sha256(raw),
                          progress=False)
    assert path == str(tmp_path / "labels.gz")
    assert server.requests == ["/mirror/labels.gz"]


def test_read_data_sets_downloads_all_four_files(server, tmp_path):
    rng = np.random.default_rng(0)
    expected = {
        mnist.TRAIN_IMAGES: rng.integers(0, 256, (30, 28, 28), np.uint8),
        mnist.TRAIN_LABELS: rng.integers(0, 10, 30, np.uint8),
        mnist.TEST_IMAGES: rng.integers(0, 256, (6, 28, 28), np.uint8),
        mnist.TEST_LABELS: rng.integers(0, 10, 6, np.uint8),
    }
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    hashes = {}
    for name, array in expected.items():
        path = str(build_dir / name)
        if array.ndim == 3:
            mnist.write_idx_images(path, array)
        else:
            mnist.write_idx_labels(path, array)
        with open(path, "rb") as f:
            packed = f.read()
        server.serve("/mnist/" + name, packed)
        hashes[name] = sha256(gzip.decompress(packed))

    data_dir = tmp_path / "empty" / "mnist"
    splits = mnist.read_data_sets(str(data_dir), validation_size=10,
                                  source_url=server.url + "/mnist/",
                                  sha256s=hashes, progress=False)
    assert sorted(os.listdir(data_dir)) == sorted(expected)
    assert [s.num_examples for s in splits] == [20, 10, 6]
    np.testing.assert_array_equal(splits.test.labels,
                                  expected[mnist.TEST_LABELS])
    np.testing.assert_array_equal(
        splits.train.images,
        expected[mnist.TRAIN_IMAGES][10:].reshape(20, 784)
        * np.float32(1 / 255))


def test_real_hashes_reject_fake_files(server, tmp_path):
    """Without an override, downloads are checked against real MNIST."""
    _, packed = small_labels_idx()
    for name in (mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS, mnist.TEST_IMAGES,
                 mnist.TEST_LABELS):
        server.serve("/mnist/" + name, packed)
    url = server.url + "/mnist/" + mnist.TRAIN_IMAGES
    with pytest.raises(DownloadError, match=re.escape(url) +
                       ": sha256 mismatch of the decompressed content"):
        mnist.read_data_sets(str(tmp_path), source_url=server.url + "/mnist/",
                             progress=False)
    assert_nothing_left(str(tmp_path), mnist.TRAIN_IMAGES)


# ---------------------------------------------------------------------------
# Failures: DownloadError naming the URL, nothing left on disk


def test_truncated_response(server, tmp_path):
    raw, packed = small_labels_idx()
    url = server.serve("/labels.gz", packed, extra_length=500)
    with pytest.raises(DownloadError, match=re.escape(
            f"{url}: download truncated: got {len(packed)} of "
            f"{len(packed) + 500} bytes")):
        download(url, str(tmp_path / "labels.gz"), sha256=sha256(raw),
                 progress=False)
    assert_nothing_left(str(tmp_path), "labels.gz")


def test_corrupted_gzip_response(server, tmp_path):
    raw, packed = small_labels_idx(3000)
    corrupted = bytearray(packed)
    middle = len(corrupted) // 2
    corrupted[middle:middle + 4] = bytes(b ^ 0xFF for b in
                                         corrupted[middle:middle + 4])
    url = server.serve("/labels.gz", bytes(corrupted))
    with pytest.raises(DownloadError, match=re.escape(url) +
                       ": (gzip stream is corrupt|sha256 mismatch)"):
        download(url, str(tmp_path / "labels.gz"), sha256=sha256(raw),
                 progress=False)
    assert_nothing_left(str(tmp_path), "labels.gz")


def test_gzip_crc_error_is_a_download_error(server, tmp_path):
    raw, packed = small_labels_idx()
    bad_crc = packed[:-8] + bytes(b ^ 0xFF for b in packed[-8:-4]) + \
        packed[-4:]
    url = server.serve("/labels.gz", bad_crc)
    with pytest.raises(DownloadError,
                       match=re.escape(url) + ": gzip stream is corrupt"):
        download(url, str(tmp_path / "labels.gz"), sha256=sha256(raw),
                 progress=False)
    assert_nothing_left(str(tmp_path), "labels.gz")


def test_served_truncated_gzip_is_a_download_error(server, tmp_path):
    raw, packed = small_labels_idx()
    url = server.serve("/labels.gz", packed[:len(packed) // 2])
    with pytest.raises(DownloadError,
                       match=re.escape(url) + ": gzip stream is truncated"):
        download(url, str(tmp_path / "labels.gz"), sha256=sha256(raw),
                 progress=False)
    assert_nothing_left(str(tmp_path), "labels.gz")


def test_hash_mismatch(server, tmp_path):
    url = server.serve("/notes.txt", b"not what you expected")
    with pytest.raises(DownloadError, match=re.escape(
            f"{url}: sha256 mismatch of the file: expected {'0' * 64}, got "
            f"{sha256(b'not what you expected')}")):
        download(url, str(tmp_path / "notes.txt"), sha256="0" * 64,
                 progress=False)
    assert_nothing_left(str(tmp_path), "notes.txt")


def test_http_404(server, tmp_path):
    url = server.url + "/missing.gz"
    with pytest.raises(DownloadError, match=re.escape(
            f"{url}: HTTP error 404 (Not Found)")):
        download(url, str(tmp_path / "missing.gz"), progress=False)
    assert_nothing_left(str(tmp_path), "missing.gz")


def test_connection_refused(tmp_path):
    with socket.socket() as probe:       # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/labels.gz"
    with pytest.raises(DownloadError,
                       match=re.escape(url) + ": could not connect"):
        download(url, str(tmp_path / "labels.gz"), progress=False,
                 timeout=5)
    assert_nothing_left(str(tmp_path), "labels.gz")
