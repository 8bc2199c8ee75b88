"""Seeded fuzzing of the MNIST and CIFAR-10 readers with real damaged files.

The readers make one promise about bad input: it ends in the format's named
error (``MnistFormatError``, ``CifarFormatError``) whose message names the
file, and never in another exception, a hang or arrays that are not what the
file holds. The hand-written tests in test_mnist_data.py and
test_cifar10_data.py pin each check's message; this module tests the promise
itself against thousands of damaged files nobody wrote by hand.

A case is a pure function of (format, index): a ``numpy.random.Generator``
seeded with (SEED, format, index) builds a small valid data set on disk,
damages one thing in it (byte flips in a header or in the data, truncation,
appended bytes, wrong magic numbers, counts or sizes, a broken gzip / xz /
bz2 stream, records of the wrong length, labels out of range, tar members
that are links, devices, absolute or ``..`` paths, duplicated, missing or of
the wrong size, ...), writes the damaged bytes to a real file and calls the
entry point a binary calls. Nothing in the code under test is mocked.

What each case must end in:

* MNIST (``read_data_sets``, download off): the test decodes the bytes on
  disk itself (gzip by magic bytes, every member, zero padding allowed; IDX
  header, sizes, label range) and so knows exactly whether the four files
  are a valid data set. If they are, the reader must return exactly those
  pixels and labels; if not, ``MnistFormatError`` naming the damaged file.
* CIFAR-10 record files (``prepare``, download off, then ``read_records``
  of every file): the same, with the test's own decoding of the records.
* CIFAR-10 tarball (``prepare`` with the tarball already in ``data_dir``, so
  it is unpacked without any network access): ``CifarFormatError`` naming
  the archive. ``tfmech.data.archive`` raises its own ``ArchiveError``, but
  ``cifar10`` documents that anything wrong with CIFAR-10 bytes, record file
  or tarball, is a ``CifarFormatError``, and re-raises it as one with the
  archive's path as source: someone running cifar10_train has one error to
  expect, whatever is broken. An ``ArchiveError`` escaping ``prepare`` is
  therefore a failure here like any other exception. The test knows what
  each damage means: some must be refused (unsafe or missing members,
  truncation, a broken checksum), some leave a valid archive whose records
  must come back exactly (a flipped pixel byte inside a tar member, bytes in
  tar padding), and some may be refused or read (a byte flipped inside a
  tar header or a compressed stream); whenever the reader returns, the
  records must be exactly the intended ones. After a refusal the data
  directory holds only the tarball, and nothing is ever written outside it.

Every case runs under a time budget (CASE_BUDGET_SECONDS, measured) and a
watchdog thread that ends the process, naming the case and dumping every
thread's stack, if one case runs for HANG_SECONDS; no signals, which could
interrupt the reader in a way real use never does.

To replay a failing case outside pytest::

    python -c "from tests.test_data_fuzz import run_case; \\
               print(run_case('cifar_archive', 1234, '/tmp/replay'))"
"""

import bz2
import collections
import dataclasses
import faulthandler
import gzip
import io
import lzma
import os
import shutil
import struct
import sys
import tarfile
import threading
import time
import zlib

import numpy as np
import pytest

from tfmech.data import cifar10, mnist

SEED = 20250611
FORMATS = ("mnist", "cifar_records", "cifar_archive")
# Cases per format: indices [0, DEFAULT) run by default, the next SLOW run
# with -m slow, so the slow suite adds new cases instead of repeating.
DEFAULT_CASES_PER_FORMAT = 200
SLOW_CASES_PER_FORMAT = 3000
CASE_BUDGET_SECONDS = 5.0
HANG_SECONDS = 60.0

MUST_FAIL = "must fail"
MUST_SUCCEED = "must succeed"
FAIL_OR_INTENDED = "fail or intended"

IDX_IMAGES_MAGIC = 0x00000803
IDX_LABELS_MAGIC = 0x00000801
RECORD = 3073
ARCHIVE_NAME = "cifar-10-binary.tar.gz"
# A URL with the tarball's name that no network can serve: the tarball is
# always already in data_dir, so a download attempt would be a bug.
NO_NETWORK_URL = "file:///nonexistent-tfmech-fuzz/" + ARCHIVE_NAME


@dataclasses.dataclass
class Case:
    """One built case: what was done, what must happen, how to run it."""
    description: str
    outcome: str            # MUST_FAIL, MUST_SUCCEED or FAIL_OR_INTENDED
    expected: object        # the answer run() must return when it succeeds
    names: str              # the path a refusal's message must contain
    error_type: type
    run: callable
    after: callable = None  # extra checks on the disk: None or a problem


# ---------------------------------------------------------------------------
# Damage on bytes


def flip_bytes(rng, data, lo, hi, count=None):
    """XOR 1-3 distinct bytes in data[lo:hi] with non-zero masks."""
    data = bytearray(data)
    hi = min(hi, len(data))
    if hi <= lo:
        return bytes(data), []
    count = count or int(rng.integers(1, 4))
    positions = lo + rng.choice(hi - lo, size=min(count, hi - lo),
                           replace=False)
    flips = []
    for pos in sorted(int(p) for p in positions):
        mask = int(rng.integers(1, 256))
        data[pos] ^= mask
        flips.append((pos, mask))
    return bytes(data), flips


def random_bytes(rng, size):
    return rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()


def random_pixels(rng, shape):
    """Pixels of a random kind: noise, few levels or constant.

    Noise makes deflate store blocks almost verbatim; few levels or a
    constant make it use Huffman codes and back references, where one
    flipped bit throws the decoder off. Both kinds of stream get damaged.
    """
    kind = rng.integers(3)
    if kind == 0:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    if kind == 1:
        return rng.integers(0, 4, size=shape, dtype=np.uint8) * 60
    return np.full(shape, rng.integers(256), np.uint8)


def gzip_bytes(rng, content):
    """gzip a byte string: random level, with or without a file name."""
    level = int(rng.choice([1, 6, 9]))
    if rng.random() < 0.2:      # FNAME set, like the gzip command line
        buffer = io.BytesIO()
        with gzip.GzipFile("x", "wb", level, buffer, mtime=0) as f:
            f.write(content)
        return buffer.getvalue()
    return gzip.compress(content, compresslevel=level, mtime=0)


def strict_gunzip(data):
    """gzip bytes -> content, or None: every member, zero padding allowed.

    The rules of RFC 1952 and the gzip tool: members back to back, each
    with a valid header, deflate stream, CRC-32 and length; trailing zero
    bytes are padding; anything else after a member is an error.
    """
    members = []
    rest = data
    while True:
        decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            members.append(decompressor.decompress(rest))
        except zlib.error:
            return None
        if not decompressor.eof:
            return None
        rest = decompressor.unused_data.lstrip(b"\0")
        if not rest:
            return b"".join(members)


# ---------------------------------------------------------------------------
# MNIST


MNIST_SPLITS = {"train": (mnist.TRAIN_IMAGES, mnist.TRAIN_LABELS),
                "test": (mnist.TEST_IMAGES, mnist.TEST_LABELS)}


def idx_images(images):
    count, rows, cols = images.shape
    return struct.pack(">IIII", IDX_IMAGES_MAGIC, count, rows, cols) + \
        images.tobytes()


def idx_labels(labels):
    return struct.pack(">II", IDX_LABELS_MAGIC, len(labels)) + \
        labels.tobytes()


def decode_idx(content, kind):
    """The test's own IDX decoding: an array, or None if the file is bad."""
    if kind == "images":
        header, magic, item = 16, IDX_IMAGES_MAGIC, 784
    else:
        header, magic, item = 8, IDX_LABELS_MAGIC, 1
    if len(content) < header:
        return None
    fields = struct.unpack(">" + "I" * (header // 4), content[:header])
    count = fields[1]
    if fields[0] != magic or count == 0 or len(content) != header + \
            count * item or (kind == "images" and fields[2:] != (28, 28)):
        return None
    values = np.frombuffer(content, np.uint8, offset=header)
    if kind == "images":
        return values.reshape(count, 28, 28)
    return None if (values >= 10).any() else values


def decode_idx_file(path, kind):
    """Decode a file on disk as the reader should: gzip by its magic."""
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = strict_gunzip(data)
        if data is None:
            return None
    return decode_idx(data, kind)


def damage_idx(rng, content, kind):
    """Damage decompressed IDX bytes; return (new bytes, description)."""
    header = 16 if kind == "images" else 8
    count = struct.unpack_from(">I", content, 4)[0]
    item = 784 if kind == "images" else 1
    kinds = ["flip header", "flip body", "flip anywhere", "truncate",
             "append", "magic", "count", "resize consistently",
             "other kind", "empty"]
    what = rng.choice(kinds + ["dims"] if kind == "images" else kinds)
    if what == "flip header":
        damaged, flips = flip_bytes(rng, content, 0, header)
        return damaged, f"{what} {flips}"
    if what == "flip body":
        damaged, flips = flip_bytes(rng, content, header, len(content))
        return damaged, f"{what} {flips}"
    if what == "flip anywhere":
        damaged, flips = flip_bytes(rng, content, 0, len(content))
        return damaged, f"{what} {flips}"
    if what == "truncate":
        cut = int(rng.integers(0, len(content)))
        return content[:cut], f"truncate at {cut}"
    if what == "append":
        size = int(rng.choice([1, 3, item, 2 * item, rng.integers(1, 2000)]))
        return content + random_bytes(rng, size), f"append {size} bytes"
    if what == "magic":
        magic = int(rng.choice([IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
                                0x03080000, 0x01080000, 0x0803, 0,
                                rng.integers(0, 2**32)]))
        return struct.pack(">I", magic) + content[4:], f"magic {magic:#x}"
    if what == "count":
        new = int(rng.choice([0, count - 1, count + 1, 2**32 - 1,
                              rng.integers(0, 2**32)]))
        return content[:4] + struct.pack(">I", new) + content[8:], \
            f"count {count} -> {new}"
    if what == "dims":
        rows, cols = (int(rng.choice([0, 1, 27, 28, 29, 32, 2**32 - 1]))
                      for _ in range(2))
        return content[:8] + struct.pack(">II", rows, cols) + content[16:], \
            f"dims {rows}x{cols}"
    if what == "resize consistently":
        # A valid file with another count: the count no longer matches
        # the other file of the split.
        new = max(1, count + int(rng.choice([-2, -1, 1, 3])))
        body = content[header:]
        body = (body * (new // count + 1))[:new * item]
        if kind == "labels":
            body = bytes(b % 10 for b in body)
        return content[:4] + struct.pack(">I", new) + content[8:header] + \
            body, f"{what} {count} -> {new}"
    if what == "other kind":
        other = rng.integers(0, 10, size=count, dtype=np.uint8)
        if kind == "labels":
            return idx_images(random_pixels(rng, (count, 28, 28))), what
        return idx_labels(other), what
    return b"", "empty file"


def damage_gzip(rng, packed):
    """Damage a gzip container's bytes.

    Returns (new bytes, the kind of damage, a description).
    """
    what = str(rng.choice(list(GZIP_DAMAGE_IN_ARCHIVE)))
    if what == "flip id/method":
        damaged, flips = flip_bytes(rng, packed, 0, 3)
    elif what == "flip flags":
        damaged, flips = flip_bytes(rng, packed, 3, 4)
    elif what == "flip mtime/os":
        damaged, flips = flip_bytes(rng, packed, 4, 10)
    elif what == "flip deflate":
        damaged, flips = flip_bytes(rng, packed, 10, len(packed) - 8)
    elif what == "flip trailer":
        damaged, flips = flip_bytes(rng, packed, len(packed) - 8,
                                    len(packed))
    elif what == "truncate":
        cut = int(rng.integers(0, len(packed)))
        return packed[:cut], what, \
            f"gzip truncated at {cut} of {len(packed)}"
    elif what == "append zeros":
        size = int(rng.integers(1, 20))
        return packed + bytes(size), what, f"gzip + {size} zero bytes"
    elif what == "append garbage":
        garbage = bytes([int(rng.integers(1, 256))]) + random_bytes(
            rng, int(rng.integers(0, 40)))
        return packed + garbage, what, \
            f"gzip + {len(garbage)} garbage bytes"
    elif what == "doubled":
        # What a resumed download that restarted from byte 0 leaves.
        return packed + packed, what, "gzip file twice in a row"
    elif what == "repeat trailer":
        return packed + packed[-8:], what, \
            "gzip + a second copy of its trailer"
    else:
        flags = int(rng.choice([0x20, 0x40, 0x80]))
        damaged = bytearray(packed)
        damaged[3] |= flags
        return bytes(damaged), what, f"gzip reserved flag {flags:#x} set"
    return damaged, what, f"gzip {what} {flips}"


def resplit_gzip(rng, content):
    """A valid two-member gzip of ``content`` (sometimes equal halves)."""
    cut = len(content) // 2 if rng.random() < 0.5 else int(
        rng.integers(1, len(content)))
    return gzip_bytes(rng, content[:cut]) + gzip_bytes(rng, content[cut:]), \
        f"two gzip members split at {cut} of {len(content)}"


def replace_with_special(rng, path):
    """Put something that is not a readable file where ``path`` was."""
    kind = rng.choice(["missing", "directory", "fifo", "dangling symlink"])
    os.remove(path)
    if kind == "directory":
        os.mkdir(path)
    elif kind == "fifo":
        os.mkfifo(path)     # opening it would block: the reader must not
    elif kind == "dangling symlink":
        os.symlink(path + ".nowhere", path)
    return f"replaced by {kind}"


def build_mnist(rng, case_dir):
    data_dir = os.path.join(case_dir, "mnist")
    os.makedirs(data_dir)
    counts = {"train": int(rng.integers(1, 7)),
              "test": int(rng.integers(1, 5))}
    paths, contents, packed_as = {}, {}, {}
    for split, (images_name, labels_name) in MNIST_SPLITS.items():
        images = random_pixels(rng, (counts[split], 28, 28))
        labels = rng.integers(0, 10, size=counts[split], dtype=np.uint8)
        for name, content in ((images_name, idx_images(images)),
                              (labels_name, idx_labels(labels))):
            gz = rng.random() < 0.7
            # Unpacked files keep the name without .gz, as users leave them.
            path = os.path.join(data_dir, name if gz else name[:-3])
            paths[name], contents[name], packed_as[name] = path, content, gz
            write_file(path, gzip_bytes(rng, content) if gz else content)

    target = str(rng.choice(sorted(paths)))
    path = paths[target]
    kind = "images" if "images" in target else "labels"
    layer = rng.random()
    if layer < 0.06:
        description = replace_with_special(rng, path)
    elif packed_as[target] and layer < 0.45:
        if rng.random() < 0.12:
            damaged, description = resplit_gzip(rng, contents[target])
        else:
            damaged, _, description = damage_gzip(
                rng, gzip_bytes(rng, contents[target]))
        write_file(path, damaged)
    else:
        damaged, description = damage_idx(rng, contents[target], kind)
        if packed_as[target]:
            damaged = gzip_bytes(rng, damaged)
        write_file(path, damaged)
    description = f"{os.path.basename(path)}: {description}"

    expected = {}
    for split, (images_name, labels_name) in MNIST_SPLITS.items():
        images = decode_idx_file(paths[images_name], "images")
        labels = decode_idx_file(paths[labels_name], "labels")
        if images is None or labels is None or len(images) != len(labels):
            expected = None
            break
        expected[split] = (images, labels)

    def run():
        datasets = mnist.read_data_sets(data_dir, validation_size=0,
                                        download=False, progress=False)
        return {split: (np.rint(getattr(datasets, split).images * 255)
                        .astype(np.uint8).reshape(-1, 28, 28),
                        getattr(datasets, split).labels)
                for split in MNIST_SPLITS}

    return Case(description, MUST_FAIL if expected is None else MUST_SUCCEED,
                expected, path, mnist.MnistFormatError, run)


# ---------------------------------------------------------------------------
# CIFAR-10 record files


def records(rng, count):
    """The bytes of ``count`` valid records, pixels of a random kind."""
    rows = np.empty((count, RECORD), np.uint8)
    rows[:, 0] = rng.integers(0, 10, size=count)
    rows[:, 1:] = random_pixels(rng, (count, RECORD - 1))
    return rows.tobytes()


def decode_records(data):
    """The test's own record decoding: (images HWC, labels) or None."""
    if not data or len(data) % RECORD:
        return None
    rows = np.frombuffer(data, np.uint8).reshape(-1, RECORD)
    if (rows[:, 0] >= 10).any():
        return None
    images = rows[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, rows[:, 0]


def decode_records_file(path):
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        return decode_records(f.read())


def damage_records(rng, data):
    """Damage a record file's bytes; return (new bytes, description)."""
    count = len(data) // RECORD
    what = rng.choice(["flip label", "flip pixels", "flip anywhere",
                       "truncate", "append", "append records",
                       "record length", "label out of range", "junk"])
    if what == "flip label":
        positions = RECORD * rng.choice(count, size=min(count, 2),
                                        replace=False)
        damaged = bytearray(data)
        for pos in positions:
            # Small masks keep some labels in 0..9: valid files that must
            # be read with the new labels.
            damaged[pos] ^= int(rng.integers(1, 16))
        return bytes(damaged), f"{what} at {sorted(positions.tolist())}"
    if what in ("flip pixels", "flip anywhere"):
        damaged, flips = flip_bytes(rng, data, 1 if what == "flip pixels"
                                    else 0, len(data))
        if what == "flip pixels":
            # Keep label bytes out of it: a valid file that must be read
            # exactly, flipped pixels included.
            damaged = bytearray(damaged)
            damaged[::RECORD] = data[::RECORD]
            damaged = bytes(damaged)
        return damaged, f"{what} {flips}"
    if what == "truncate":
        cut = int(rng.integers(0, len(data)))
        return data[:cut], f"truncate at {cut} of {len(data)}"
    if what == "append":
        size = int(rng.integers(1, 2 * RECORD))
        return data + random_bytes(rng, size), f"append {size} bytes"
    if what == "append records":
        # Whole records with labels 0..11: valid if they are all 0..9.
        extra = bytearray(records(rng, int(rng.integers(1, 3))))
        extra[::RECORD] = rng.integers(0, 12, size=len(extra) // RECORD,
                                       dtype=np.uint8).tobytes()
        return data + bytes(extra), "append records"
    if what == "record length":
        delta = int(rng.choice([-1, 1]))
        rows = [data[i:i + RECORD] for i in range(0, len(data), RECORD)]
        rows = [r[:-1] if delta < 0 else r + b"\x00" for r in rows]
        return b"".join(rows), f"records of {RECORD + delta} bytes"
    if what == "label out of range":
        index = int(rng.integers(count))
        label = int(rng.integers(10, 256))
        damaged = bytearray(data)
        damaged[index * RECORD] = label
        return bytes(damaged), f"label {label} at record {index}"
    size = int(rng.choice([1, RECORD - 1, RECORD + 1, rng.integers(1, 9000)]))
    return random_bytes(rng, size), f"{size} random bytes"


def write_layout(rng, batches_dir, max_records=3):
    """Six valid record files of 1..max_records records, and the meta file;
    returns {name: bytes}."""
    os.makedirs(batches_dir)
    files = {name: records(rng, int(rng.integers(1, max_records + 1)))
             for name in cifar10.ALL_FILES}
    for name, data in files.items():
        write_file(os.path.join(batches_dir, name), data)
    write_file(os.path.join(batches_dir, cifar10.META_FILE),
               "\n".join(cifar10.CLASS_NAMES).encode())
    return files


def read_all_records(batches_dir):
    """The entry point's answer: counts per split and every file's arrays."""
    answer = {}
    for split in cifar10.SPLITS:
        paths, total = cifar10.check_split(batches_dir, split)
        answer[split] = total
        for path in paths:
            answer[os.path.basename(path)] = cifar10.read_records([path])
    return answer


def expected_records(files):
    """What read_all_records must return for {name: bytes}, or None."""
    answer = {}
    for name, data in files.items():
        decoded = data if isinstance(data, tuple) else decode_records(data)
        if decoded is None:
            return None
        answer[name] = decoded
    for split in cifar10.SPLITS:
        answer[split] = sum(len(answer[os.path.basename(p)][1])
                            for p in cifar10.split_files("", split))
    return answer


def build_cifar_records(rng, case_dir):
    data_dir = os.path.join(case_dir, "data")
    batches_dir = os.path.join(data_dir, cifar10.BATCHES_DIR)
    files = write_layout(rng, batches_dir)
    target = str(rng.choice(cifar10.ALL_FILES))
    path = os.path.join(batches_dir, target)
    names = path
    choice = rng.random()
    if choice < 0.03:
        shutil.rmtree(batches_dir)
        description, names = "no cifar-10-batches-bin at all", batches_dir
    elif choice < 0.10:
        description = replace_with_special(rng, path)
    elif choice < 0.13:
        other = str(rng.choice([n for n in cifar10.ALL_FILES if n != target]))
        os.remove(path)
        os.symlink(other, path)         # a valid file behind a symlink
        description = f"symlink to {other}"
    else:
        damaged, description = damage_records(rng, files[target])
        write_file(path, damaged)
    description = f"{target}: {description}"
    if os.path.isdir(batches_dir):
        decoded = {name: decode_records_file(os.path.join(batches_dir, name))
                   for name in cifar10.ALL_FILES}
        expected = None if None in decoded.values() else \
            expected_records(decoded)
    else:
        expected = None

    def run():
        return read_all_records(cifar10.prepare(data_dir, download=False,
                                                progress=False))

    return Case(description, MUST_FAIL if expected is None else MUST_SUCCEED,
                expected, names, cifar10.CifarFormatError, run)


# ---------------------------------------------------------------------------
# CIFAR-10 tarball


@dataclasses.dataclass
class Member:
    """A tar member to write. ``declared`` overrides the size in its header
    (the data written is still ``data``), for members of the wrong size."""
    info: tarfile.TarInfo
    data: bytes = b""
    declared: int = None


def file_member(name, data):
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return Member(info, data)


def special_member(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    return Member(info)


def write_tar(members, tar_format):
    """Raw tar bytes, and where each member's data lies in them.

    Written by hand from TarInfo headers so a header can claim a size
    other than the data that follows; returns (bytes, [(header start,
    data start, data length)] per member).
    """
    out = bytearray()
    layout = []
    for member in members:
        member.info.size = len(member.data) if member.declared is None \
            else member.declared
        header = member.info.tobuf(tar_format, "utf-8", "surrogateescape")
        start = len(out)
        out += header
        layout.append((start, len(out), len(member.data)))
        out += member.data
        out += bytes(-len(out) % tarfile.BLOCKSIZE)
    out += bytes(2 * tarfile.BLOCKSIZE)
    out += bytes(-len(out) % tarfile.RECORDSIZE)
    return bytes(out), layout


def compress(kind, raw, rng):
    if kind == "gz":
        return gzip_bytes(rng, raw)
    if kind == "xz":
        return lzma.compress(raw)
    return bz2.compress(raw)


def archive_members(rng, files):
    """The members of a valid tarball of ``files``, in a random variant."""
    prefix = "./" if rng.random() < 0.2 else ""
    members = []
    if rng.random() < 0.8:
        members.append(special_member(prefix + cifar10.BATCHES_DIR,
                                      tarfile.DIRTYPE))
    names = list(files) + [cifar10.META_FILE]
    if rng.random() < 0.3:
        rng.shuffle(names)
    for name in names:
        data = files.get(name, b"airplane\nautomobile\n")
        members.append(file_member(
            f"{prefix}{cifar10.BATCHES_DIR}/{name}", data))
    return members


def damage_members(rng, members, files, case_dir):
    """Damage the list of members (a valid archive otherwise).

    Returns (description, outcome, intended files).
    """
    bdir = cifar10.BATCHES_DIR
    escape = os.path.join(case_dir, "escaped.txt")
    record_indices = [i for i, m in enumerate(members)
                      if m.info.name.endswith(".bin")]
    where = int(rng.integers(0, len(members) + 1))
    what = rng.choice(["absolute", "dotdot", "long dotdot", "symlink",
                       "symlink then file", "hardlink", "device", "fifo",
                       "duplicate", "missing", "wrong length",
                       "whole extra records", "bad label", "wrong size",
                       "dir as file", "file as dir", "benign extras"])
    if what == "absolute":
        members.insert(where, file_member(escape, b"pwned"))
    elif what == "dotdot":
        members.insert(where, file_member(
            f"{bdir}/../../../../escaped.txt", b"pwned"))
    elif what == "long dotdot":     # a name only a pax or GNU header holds
        members.insert(where, file_member(
            f"{bdir}/{'d' * 120}/../../../../../escaped.txt", b"pwned"))
    elif what == "symlink":
        members.insert(where, special_member(f"{bdir}/link",
                                             tarfile.SYMTYPE, escape))
    elif what == "symlink then file":
        # The classic: a link, then a file of the same name written
        # through it by a naive extractor.
        members[where:where] = [
            special_member(f"{bdir}/evil", tarfile.SYMTYPE, escape),
            file_member(f"{bdir}/evil", b"pwned")]
    elif what == "hardlink":
        target = members[int(rng.choice(record_indices))].info.name
        members.insert(where, special_member(f"{bdir}/hard",
                                             tarfile.LNKTYPE, target))
    elif what == "device":
        members.insert(where, special_member(
            f"{bdir}/dev", rng.choice([tarfile.CHRTYPE, tarfile.BLKTYPE])))
    elif what == "fifo":
        members.insert(where, special_member(f"{bdir}/pipe",
                                             tarfile.FIFOTYPE))
    elif what == "duplicate":
        original = members[int(rng.choice(record_indices))]
        data = original.data if rng.random() < 0.5 else records(rng, 1)
        members.insert(where, file_member(original.info.name, data))
    elif what == "missing":
        del members[int(rng.choice(record_indices))]
    elif what in ("wrong length", "whole extra records", "bad label"):
        member = members[int(rng.choice(record_indices))]
        data = member.data
        if what == "wrong length":
            change = int(rng.choice([-1, 1])) * int(rng.integers(1, RECORD))
            data = data[:change] if change < 0 else data + random_bytes(
                rng, change)
        elif what == "whole extra records":
            data = data + records(rng, int(rng.integers(1, 3)))
            files = dict(files, **{os.path.basename(member.info.name): data})
            member.data = data
            return f"{member.info.name}: {what}", MUST_SUCCEED, files
        else:
            data = bytearray(data)
            data[RECORD * int(rng.integers(len(data) // RECORD))] = int(
                rng.integers(10, 256))
            data = bytes(data)
        member.data = data
        return f"{member.info.name}: {what}", MUST_FAIL, files
    elif what == "wrong size":
        # The header claims a size the data does not have, by a number of
        # bytes that is not a whole number of records.
        member = members[int(rng.choice(record_indices))]
        actual = len(member.data)
        declared = actual
        while declared % RECORD == 0:
            declared = int(rng.integers(0, actual + 3 * RECORD))
        member.declared = declared
        return (f"{member.info.name}: header says {declared} bytes, data is "
                f"{actual}", MUST_FAIL, files)
    elif what == "dir as file":
        members.insert(where, file_member(bdir, b"not a directory"))
    elif what == "file as dir":
        index = int(rng.choice(record_indices))
        name = members[index].info.name
        members[index] = special_member(name, tarfile.DIRTYPE)
    else:
        members[where:where] = [
            file_member(f"{bdir}/readme.html", b"<p>hello</p>"),
            file_member("other/dir/notes.txt", b"x" * 300),
            file_member(f"{bdir}/{'n' * 150}.txt", b"a long name")]
        return what, MUST_SUCCEED, files
    return f"{what} member at {where}", MUST_FAIL, files


def classify_tar_flips(flips, members, layout, files):
    """What flipping bytes of a raw tar means: (outcome, intended files).

    A flip inside a member's data changes that member: a record file must
    then be read with the flip (or refused if a label left 0..9). A flip
    in the zero padding after a member's data changes nothing tar reads. A
    flip in a header almost always breaks its checksum (not one after the
    checksum's terminator), and tarfile takes a broken header for the end
    of the archive, so the archive may be refused, or read without the
    members from there on; either way, nothing but the intended records
    may come back.
    """
    intended = {name: bytearray(data) for name, data in files.items()}
    outcome = MUST_SUCCEED
    for pos, mask in flips:
        for member, (header_start, data_start, length) in zip(members,
                                                              layout):
            padded_end = data_start + length + (-length % tarfile.BLOCKSIZE)
            if header_start <= pos < data_start:
                if outcome == MUST_SUCCEED:
                    outcome = FAIL_OR_INTENDED
            elif data_start <= pos < data_start + length:
                name = os.path.basename(member.info.name)
                if name in intended:
                    offset = pos - data_start
                    intended[name][offset] ^= mask
                    if offset % RECORD == 0 and \
                            intended[name][offset] >= 10:
                        outcome = MUST_FAIL
            elif pos < padded_end:
                pass
            else:
                continue
            break
        else:   # the end-of-archive blocks
            if outcome == MUST_SUCCEED:
                outcome = FAIL_OR_INTENDED
    return outcome, {name: bytes(data) for name, data in intended.items()}


# What each kind of gzip damage must do to a tarball. Python's gzip reader
# (which tarfile uses) ignores the reserved flag bits and the header CRC,
# and header flags change how the header is parsed, so those may pass if
# the data still checks out; the CRC-32 and length in the trailer cover
# every byte of the data, so whatever comes back must be the intended one.
GZIP_DAMAGE_IN_ARCHIVE = {
    "flip id/method": MUST_FAIL, "flip flags": FAIL_OR_INTENDED,
    "flip mtime/os": MUST_SUCCEED, "flip deflate": FAIL_OR_INTENDED,
    "flip trailer": MUST_FAIL, "truncate": MUST_FAIL,
    "append zeros": MUST_SUCCEED, "append garbage": MUST_FAIL,
    "doubled": FAIL_OR_INTENDED, "repeat trailer": MUST_FAIL,
    "reserved flags": FAIL_OR_INTENDED}


def damage_container(rng, kind, packed):
    """Damage compressed bytes; return (bytes, description, outcome)."""
    if kind == "gz" and rng.random() < 0.5:
        damaged, what, description = damage_gzip(rng, packed)
        return damaged, description, GZIP_DAMAGE_IN_ARCHIVE[what]
    if rng.random() < 0.4:
        cut = int(rng.integers(0, len(packed)))
        return packed[:cut], f"{kind} truncated at {cut}", MUST_FAIL
    damaged, flips = flip_bytes(rng, packed, 0, len(packed))
    return damaged, f"{kind} flip {flips}", FAIL_OR_INTENDED


def build_cifar_archive(rng, case_dir):
    data_dir = os.path.join(case_dir, "data")
    os.makedirs(data_dir)
    files = {name: records(rng, int(rng.integers(1, 4)))
             for name in cifar10.ALL_FILES}
    members = archive_members(rng, files)
    tar_format = rng.choice([tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT,
                             tarfile.PAX_FORMAT])
    kind = str(rng.choice(["gz"] * 6 + ["xz", "bz2"]))
    layer = rng.random()
    if layer < 0.45:
        description, outcome, intended = damage_members(rng, members, files,
                                                        case_dir)
        if tar_format == tarfile.USTAR_FORMAT and any(
                len(m.info.name) > 100 for m in members):
            tar_format = tarfile.PAX_FORMAT    # ustar cannot hold the name
        packed = compress(kind, write_tar(members, tar_format)[0], rng)
    elif layer < 0.7:
        raw, layout = write_tar(members, tar_format)
        lo = int(rng.choice([0, layout[-1][1]]))  # anywhere, or near the end
        damaged, flips = flip_bytes(rng, raw, lo, len(raw))
        outcome, intended = classify_tar_flips(flips, members, layout, files)
        description = f"tar byte flips {flips}"
        packed = compress(kind, damaged, rng)
    else:
        packed = compress(kind, write_tar(members, tar_format)[0], rng)
        packed, description, outcome = damage_container(rng, kind, packed)
        intended = files
    archive_path = os.path.join(data_dir, ARCHIVE_NAME)
    write_file(archive_path, packed)
    description = f"{kind} {tarfile_format_name(tar_format)}: {description}"
    expected = expected_records(intended)
    if expected is None:
        outcome = MUST_FAIL     # the intended records are not valid

    def run():
        return read_all_records(cifar10.prepare(
            data_dir, url=NO_NETWORK_URL, sha256=None, progress=False))

    def after(failed):
        """Nothing outside data_dir; after a refusal only the tarball."""
        problems = []
        if sorted(os.listdir(case_dir)) != ["data"]:
            problems.append(f"{case_dir} holds {sorted(os.listdir(case_dir))}")
        left = sorted(os.listdir(data_dir))
        wanted = [ARCHIVE_NAME] if failed else sorted(
            [ARCHIVE_NAME, cifar10.BATCHES_DIR])
        if left != wanted:
            problems.append(f"{data_dir} holds {left}, expected {wanted}")
        return "; ".join(problems) or None

    return Case(description, outcome, expected, archive_path,
                cifar10.CifarFormatError, run, after)


def tarfile_format_name(tar_format):
    return {tarfile.USTAR_FORMAT: "ustar", tarfile.GNU_FORMAT: "gnu",
            tarfile.PAX_FORMAT: "pax"}[tar_format]


# ---------------------------------------------------------------------------
# Running and judging cases


BUILDERS = {"mnist": build_mnist, "cifar_records": build_cifar_records,
            "cifar_archive": build_cifar_archive}


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def same_answer(got, expected):
    """Compare nested dicts/tuples of arrays and ints exactly."""
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and \
            all(same_answer(got[k], expected[k]) for k in expected)
    if isinstance(expected, tuple):
        return isinstance(got, tuple) and len(got) == len(expected) and \
            all(same_answer(g, e) for g, e in zip(got, expected))
    if isinstance(expected, np.ndarray):
        return isinstance(got, np.ndarray) and got.shape == expected.shape \
            and np.array_equal(got, expected)
    return got == expected


def run_case(fmt, index, workdir):
    """Build case ``index`` of ``fmt`` in ``workdir``, run and judge it.

    Returns (result, problem): result is "refused" or "read"; problem is
    None or a sentence starting with the case's name and what was done.
    The case's files are removed afterwards.
    """
    rng = np.random.default_rng([SEED, FORMATS.index(fmt), index])
    case_dir = os.path.join(os.fspath(workdir), f"{fmt}-{index}")
    os.makedirs(case_dir)
    try:
        case = BUILDERS[fmt](rng, case_dir)
        start = time.monotonic()
        try:
            answer, error = case.run(), None
        except Exception as raised:    # judged below, whatever it is
            answer, error = None, raised
        elapsed = time.monotonic() - start
        problem = judge(case, answer, error, elapsed)
        if problem is None and case.after is not None:
            problem = case.after(error is not None)
    finally:
        shutil.rmtree(case_dir, ignore_errors=True)
    result = "refused" if error is not None else "read"
    if problem is not None:
        problem = f"{fmt} case {index} ({case.description}): {problem}"
    return result, problem


def judge(case, answer, error, elapsed):
    if elapsed > CASE_BUDGET_SECONDS:
        return f"took {elapsed:.1f} s (budget {CASE_BUDGET_SECONDS} s)"
    if error is not None:
        if type(error) is not case.error_type:
            return (f"raised {type(error).__module__}."
                    f"{type(error).__qualname__}: {error}, expected "
                    f"{case.error_type.__name__}")
        if case.outcome == MUST_SUCCEED:
            return f"refused a valid data set: {error}"
        if case.names not in str(error):
            return f"message does not name {case.names}: {error}"
        return None
    if case.outcome == MUST_FAIL:
        return "read a damaged data set without an error"
    if not same_answer(answer, case.expected):
        return "returned arrays that differ from what the bytes hold"
    return None


class Watchdog:
    """Ends the process if one case runs for HANG_SECONDS.

    A hung reader never returns, so measuring its time after the fact is
    not enough; this thread notices instead, prints the case and every
    thread's stack to the real stderr (suspending pytest's capture first,
    through ``before_report``) and exits, since a thread cannot be stopped
    from outside. No signal is involved.
    """

    def __init__(self, before_report=None):
        self._before_report = before_report
        self._label = None
        self._since = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def arm(self, label):
        self._since = time.monotonic()
        self._label = label

    def disarm(self):
        self._label = None

    def _watch(self):
        while not self._stop.wait(0.5):
            label = self._label
            if label is not None and \
                    time.monotonic() - self._since > HANG_SECONDS:
                if self._before_report is not None:
                    self._before_report()
                sys.stderr.write(f"\n{label} still running after "
                                 f"{HANG_SECONDS:.0f} s: a hang\n")
                sys.stderr.flush()
                faulthandler.dump_traceback(all_threads=True)
                os._exit(1)


def fuzz(fmt, indices, workdir, before_report=None):
    """Run the cases; return (results tally, problems, seconds)."""
    tally = collections.Counter()
    problems = []
    start = time.monotonic()
    with Watchdog(before_report) as watchdog:
        for index in indices:
            watchdog.arm(f"{fmt} case {index}")
            result, problem = run_case(fmt, index, workdir)
            watchdog.disarm()
            tally[result] += 1
            if problem is not None:
                problems.append(problem)
    return tally, problems, time.monotonic() - start


def check_fuzz_run(fmt, indices, tmp_path, request):
    capture = request.config.pluginmanager.getplugin("capturemanager")

    def before_report():
        if capture is not None:
            capture.suspend_global_capture(in_=True)

    tally, problems, seconds = fuzz(fmt, indices, tmp_path, before_report)
    print(f"{fmt}: {sum(tally.values())} cases (seed {SEED}, indices "
          f"{indices.start}..{indices.stop - 1}) in {seconds:.1f} s: "
          f"{tally['refused']} refused with the named error, "
          f"{tally['read']} read exactly")
    assert not problems, (f"{len(problems)} of {len(indices)} cases failed "
                          f"(replay one with tests.test_data_fuzz.run_case):"
                          f"\n" + "\n".join(problems[:25]))
    assert sum(tally.values()) == len(indices)
    # A fuzzer whose damage is always refused, or never, tests little.
    assert tally["refused"] > len(indices) // 10
    assert tally["read"] > len(indices) // 20


@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzz(fmt, tmp_path, request):
    check_fuzz_run(fmt, range(DEFAULT_CASES_PER_FORMAT), tmp_path, request)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FORMATS)
def test_fuzz_thousands(fmt, tmp_path, request):
    check_fuzz_run(fmt, range(DEFAULT_CASES_PER_FORMAT,
                              DEFAULT_CASES_PER_FORMAT +
                              SLOW_CASES_PER_FORMAT), tmp_path, request)

