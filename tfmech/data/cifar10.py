"""CIFAR-10 as the classic tutorial saw it: the binary record files.

The original ``cifar10.py`` reads ``DATA_DIR/cifar-10-batches-bin/``, which
``cifar-10-binary.tar.gz`` unpacks to: five training files
``data_batch_1.bin`` .. ``data_batch_5.bin`` and one ``test_batch.bin``. A
file is nothing but records of 3073 bytes, back to back, with no header: one
label byte (0..9) followed by the 32x32 colour image, channel-major (1024
red bytes, then 1024 green, then 1024 blue, each plane row-major). The real
files hold 10000 records each; any positive whole number is accepted here.

Because there is no header, a wrong file is not detected by the format
itself: a truncated download or an unrelated file would be read as
plausible-looking records with garbage labels, and TensorFlow's
``FixedLengthRecordReader`` would drop the ragged tail or fail far from the
cause. So every file is checked before any TensorFlow work starts: it must
exist, be a regular file, hold a whole, non-zero number of records and have
every label in 0..9. All of these problems raise one ``CifarFormatError``
whose message starts with the file's path (or, for a downloaded archive,
the archive's path and the member), exactly like ``MnistFormatError``.

Sources: the training code only ever reads the binary layout, so every
source ends up as record files on disk. ``prepare`` is the entry point:

* "files": ``data_dir/cifar-10-batches-bin``, downloaded from ``DATA_URL``
  and unpacked when missing (``maybe_download_and_extract``). The tarball
  is verified by sha256 and unpacked by ``tfmech.data.archive``, which
  refuses links, devices and paths that leave the directory; the layout
  appears under its final name in one ``os.replace`` once every file has
  passed the checks, so a failed or interrupted run leaves nothing that
  looks complete.
* "tfds": tensorflow-datasets' ``cifar10`` written out in the same layout
  (``batches_from_tfds``).

``write_generated_batches`` writes a small, deterministic, learnable stand-in
in the full layout, for tests and ``--fake_data``.

Errors: ``CifarFormatError`` for anything wrong with CIFAR-10 bytes (a
record file, the arrays tfds returns, or the downloaded archive, including
unsafe members); ``tfmech.data.download.DownloadError`` for network and
sha256 failures; ``ValueError`` for bad arguments. TensorFlow is imported
only by the tfds source.
"""

import contextlib
import os
import shutil
import sys
import tempfile
import urllib.parse

import numpy as np

from tfmech.data import tfds_source
from tfmech.data.archive import ArchiveError, safe_extract_tar
# Imported under another name: ``download`` is also prepare's flag.
from tfmech.data.download import download as download_url

BATCHES_DIR = "cifar-10-batches-bin"
TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST_FILES = ("test_batch.bin",)
ALL_FILES = TRAIN_FILES + TEST_FILES
META_FILE = "batches.meta.txt"
# Written by write_generated_batches, so a later call knows it may replace
# the directory and can never overwrite real data.
GENERATED_MARKER = "generated.txt"

IMAGE_SIZE = 32
NUM_CHANNELS = 3
LABEL_BYTES = 1
IMAGE_BYTES = IMAGE_SIZE * IMAGE_SIZE * NUM_CHANNELS      # 3072
RECORD_BYTES = LABEL_BYTES + IMAGE_BYTES                   # 3073
NUM_CLASSES = 10
NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN = 50000
NUM_EXAMPLES_PER_EPOCH_FOR_EVAL = 10000
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog",
               "frog", "horse", "ship", "truck")

DATA_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
# sha256 and size of the tarball at DATA_URL, as listed in the installed
# tensorflow_datasets package, file tensorflow_datasets/url_checksums/
# cifar10.txt: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
# 170052171 c4a38c50...bca1dd cifar-10-binary.tar.gz". The hash is of the
# raw .tar.gz (there is one canonical tarball, unlike MNIST's mirrors).
ARCHIVE_SHA256 = (
    "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd")
ARCHIVE_SIZE = 170052171

SOURCES = ("files", "tfds")
SPLITS = ("train", "test")

_GENERATED_NOISE = 50.0        # pixel noise sd of the generated data set
_GENERATED_CELL = 8            # prototypes are 4x4 grids of 8x8 cells


class CifarFormatError(ValueError):
    """Anything wrong with CIFAR-10 data: missing, corrupt, or not CIFAR-10.

    The message starts with the file's path (or the archive's path, or
    another description of the data's origin) and then says what is wrong.
    """

    def __init__(self, source, problem):
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


# ---------------------------------------------------------------------------
# Reading and checking record files


def split_files(batches_dir, split):
    """The record files of ``split`` ("train" or "test") in ``batches_dir``."""
    if split == "train":
        names = TRAIN_FILES
    elif split == "test":
        names = TEST_FILES
    else:
        raise ValueError(
            f"unknown CIFAR-10 split {split!r}; allowed: "
            f"{', '.join(repr(s) for s in SPLITS)}")
    return [os.path.join(os.fspath(batches_dir), name) for name in names]


def check_record_file(path):
    """Check one record file and return its number of records.

    Only the sizes and the label bytes are read (through a strided view of a
    memory map, no Python loop), so checking all six real files costs a
    fraction of a second: cheap enough to do before every run.
    """
    path = os.fspath(path)
    _check_regular_file(path)
    size = os.path.getsize(path)
    if size == 0:
        raise CifarFormatError(
            path, f"empty file, expected records of {RECORD_BYTES} bytes")
    count, left_over = divmod(size, RECORD_BYTES)
    if left_over:
        raise CifarFormatError(
            path, f"size {size} bytes is not a whole number of "
                  f"{RECORD_BYTES}-byte records: {_plural(count, 'record')} "
                  f"and {left_over} bytes left over (truncated, or not a "
                  f"CIFAR-10 binary file)")
    _check_label_range(path, _read_labels(path, count))
    return count


def check_split(batches_dir, split):
    """Check every file of ``split``; return (paths, total record count).

    A missing directory is reported as such rather than as its first
    missing file, since that is almost always a wrong ``--data_dir``.
    """
    batches_dir = os.fspath(batches_dir)
    if not os.path.isdir(batches_dir):
        raise CifarFormatError(
            batches_dir, f"directory not found, expected the CIFAR-10 "
                         f"binary layout ({', '.join(ALL_FILES)})")
    paths = split_files(batches_dir, split)
    return paths, sum(check_record_file(path) for path in paths)


def read_records(paths):
    """Read record files into (images uint8 [N, 32, 32, 3], labels uint8 [N]).

    Images come back height-width-channel, the layout TensorFlow's image
    ops and the models use. Files are checked first and concatenated in the
    order given. All files are read into one preallocated buffer, so the
    50000 training records cost one copy of the bytes plus the transposed
    images, not a list of per-file arrays and a concatenation.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(path) for path in paths]
    if not paths:
        raise ValueError("read_records needs at least one record file")
    counts = [check_record_file(path) for path in paths]
    records = np.empty((sum(counts), RECORD_BYTES), np.uint8)
    start = 0
    for path, count in zip(paths, counts):
        block = records[start:start + count]
        _read_into(path, block)
        # The file may have changed since it was checked; the labels we
        # return are the ones we read.
        _check_label_range(path, block[:, 0])
        start += count
    labels = records[:, 0].copy()
    planes = records[:, LABEL_BYTES:].reshape(
        -1, NUM_CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), labels


def _check_regular_file(path):
    if os.path.isfile(path):
        return
    if os.path.isdir(path):
        problem = "is a directory, expected a CIFAR-10 record file"
    elif os.path.exists(path):
        problem = "not a regular file"
    else:
        problem = "file not found"
    raise CifarFormatError(path, problem)


def _read_labels(path, count):
    """The label byte of each record, read through a strided memmap view."""
    try:
        records = np.memmap(path, dtype=np.uint8, mode="r",
                            shape=(count, RECORD_BYTES))
    except OSError as error:
        raise CifarFormatError(
            path, f"cannot read: {error.strerror or error}") from error
    try:
        return np.array(records[:, 0])
    finally:
        del records       # unmap now, not whenever the GC gets to it


def _read_into(path, block):
    """Fill the contiguous uint8 array ``block`` with the file's bytes."""
    buffer = block.reshape(-1)
    try:
        with open(path, "rb") as f:
            got = f.readinto(buffer)
            extra = f.read(1)
    except OSError as error:
        raise CifarFormatError(
            path, f"cannot read: {error.strerror or error}") from error
    if got != buffer.size or extra:
        raise CifarFormatError(
            path, f"file changed while being read (expected "
                  f"{buffer.size} bytes)")


def _check_label_range(path, labels):
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        index = int(bad[0])
        raise CifarFormatError(
            path, f"label {int(labels[index])} at record {index} (byte "
                  f"offset {index * RECORD_BYTES}) is outside "
                  f"0..{NUM_CLASSES - 1} ({_plural(bad.size, 'bad label')} "
                  f"in all)")


def _plural(count, noun):
    return f"{count} {noun}{'' if count == 1 else 's'}"


# ---------------------------------------------------------------------------
# Writing record files (tests, the tfds source, generated data)


def write_records(path, images, labels):
    """Write images [N, 32, 32, 3] uint8 (HWC) and labels [N] as records.

    The file appears under ``path`` only when complete (temp file, then
    ``os.replace``), so a reader never sees half of it. Bad arrays are a
    ValueError: they are the caller's mistake, not a bad file.
    """
    path = os.fspath(path)
    images = np.asarray(images)
    labels = np.asarray(labels)
    problem = _arrays_problem(images, labels)
    if problem is not None:
        raise ValueError(f"cannot write {path}: {problem}")
    records = np.empty((len(labels), RECORD_BYTES), np.uint8)
    records[:, 0] = labels
    records[:, LABEL_BYTES:] = images.transpose(0, 3, 1, 2).reshape(
        len(labels), IMAGE_BYTES)
    _write_atomically(path, records)


def _arrays_problem(images, labels):
    """What is wrong with (images, labels) as CIFAR-10 records, or None."""
    expected = (IMAGE_SIZE, IMAGE_SIZE, NUM_CHANNELS)
    if images.dtype != np.uint8 or images.ndim != 4 \
            or images.shape[1:] != expected:
        return (f"images must be uint8 [N, {IMAGE_SIZE}, {IMAGE_SIZE}, "
                f"{NUM_CHANNELS}], got {images.dtype} {list(images.shape)}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        return (f"labels must be integers [N], got {labels.dtype} "
                f"{list(labels.shape)}")
    if len(images) != len(labels):
        return f"{len(images)} images but {len(labels)} labels"
    if not len(labels):
        return "no records (a CIFAR-10 file holds at least one)"
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if bad.size:
        index = int(bad[0])
        return (f"label {int(labels[index])} at index {index} is outside "
                f"0..{NUM_CLASSES - 1}")
    return None


def _write_atomically(path, data):
    """Write bytes (or a uint8 array) to ``path`` via a temp file."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    part = tempfile.NamedTemporaryFile(
        dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp",
        delete=False)
    finished = False
    try:
        with part:
            part.write(memoryview(data).cast("B") if isinstance(
                data, np.ndarray) else data)
        os.chmod(part.name, 0o644)   # NamedTemporaryFile makes 0600 files
        os.replace(part.name, path)
        finished = True
    finally:
        if not finished:
            _remove_quietly(part.name)


def _write_meta(batches_dir):
    """batches.meta.txt: the class names, one a line, as in the tarball."""
    _write_atomically(os.path.join(batches_dir, META_FILE),
                      ("\n".join(CLASS_NAMES) + "\n").encode())


def _write_layout(batches_dir, train, test):
    """Write the six record files (train split as evenly as possible)."""
    os.makedirs(batches_dir, exist_ok=True)
    train_images, train_labels = train
    chunks = np.array_split(np.arange(len(train_labels)), len(TRAIN_FILES))
    for name, rows in zip(TRAIN_FILES, chunks):
        write_records(os.path.join(batches_dir, name), train_images[rows],
                      train_labels[rows])
    write_records(os.path.join(batches_dir, TEST_FILES[0]), *test)
    _write_meta(batches_dir)


# ---------------------------------------------------------------------------
# Generated data


def write_generated_batches(directory, num_train_per_file=200, num_test=200,
                            seed=0):
    """Write a small learnable data set in the full layout; return its dir.

    Each class is a fixed random prototype, a 4x4 grid of 8x8 colour cells;
    examples are noisy copies, and every split holds the classes in equal
    numbers (as far as its size allows). The coarse cells survive the
    tutorial's random 24x24 crops, flips and per-image standardization, so a
    CNN learns the set in a few hundred steps and a run's losses and
    accuracy carry real information. The bytes depend on the arguments
    only.

    ``directory/cifar-10-batches-bin`` is written atomically. If it exists
    it is replaced only when an earlier call made it (it holds
    ``generated.txt``), so real data is never overwritten; an identical
    earlier set is returned as it is.
    """
    for name, value in (("num_train_per_file", num_train_per_file),
                        ("num_test", num_test)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got "
                             f"{value!r}")
    directory = os.fspath(directory)
    batches_dir = os.path.join(directory, BATCHES_DIR)
    marker = (f"generated by tfmech.data.cifar10.write_generated_batches("
              f"num_train_per_file={num_train_per_file}, "
              f"num_test={num_test}, seed={seed})\n")
    if _is_complete(batches_dir) and \
            _read_text(os.path.join(batches_dir, GENERATED_MARKER)) == marker:
        return batches_dir
    _check_replaceable(batches_dir)
    train, test = _generate(num_train_per_file * len(TRAIN_FILES), num_test,
                            seed)
    with _scratch_dir(directory) as scratch:
        built = os.path.join(scratch, BATCHES_DIR)
        _write_layout(built, train, test)
        _write_atomically(os.path.join(built, GENERATED_MARKER),
                          marker.encode())
        _install_dir(built, batches_dir, scratch)
    return batches_dir


def _generate(num_train, num_test, seed):
    """((train images, labels), (test images, labels)) of the generated set."""
    rng = np.random.default_rng(seed)
    cells = IMAGE_SIZE // _GENERATED_CELL
    grid = rng.uniform(0, 255, size=(NUM_CLASSES, cells, cells, NUM_CHANNELS))
    prototypes = grid.repeat(_GENERATED_CELL, axis=1).repeat(
        _GENERATED_CELL, axis=2)

    def make(count):
        labels = rng.permutation(np.arange(count) % NUM_CLASSES)
        labels = labels.astype(np.uint8)
        noise = rng.normal(0, _GENERATED_NOISE,
                           size=(count, IMAGE_SIZE, IMAGE_SIZE, NUM_CHANNELS))
        images = np.clip(prototypes[labels] + noise, 0, 255)
        return images.astype(np.uint8), labels

    return make(num_train), make(num_test)


def _check_replaceable(batches_dir):
    """Refuse to replace anything but an empty dir or a generated set."""
    if not os.path.lexists(batches_dir):
        return
    if os.path.isdir(batches_dir) and not os.path.islink(batches_dir) and (
            not os.listdir(batches_dir)
            or os.path.isfile(os.path.join(batches_dir, GENERATED_MARKER))):
        return
    raise FileExistsError(
        f"{batches_dir}: exists and was not made by write_generated_batches "
        f"(no {GENERATED_MARKER}); refusing to replace it")


def _read_text(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


# ---------------------------------------------------------------------------
# Sources: download + extract, tfds, and the entry point


def maybe_download_and_extract(data_dir, url=DATA_URL, sha256=ARCHIVE_SHA256,
                               progress=True):
    """Return ``data_dir/cifar-10-batches-bin``, downloading it if needed.

    A directory holding all six record files is returned at once, without
    any network access (and without checking the files: ``prepare`` does
    that). Otherwise the tarball is downloaded into ``data_dir`` (verified
    against ``sha256`` of the raw .tar.gz; None skips the check) unless it
    is already there, as in the original tutorial, which lets a user behind
    a firewall drop it in by hand. Then it is unpacked by
    ``extract_batches``. The tarball is kept after a successful unpack, as
    the original did, so the layout can be rebuilt offline.

    Raises:
      DownloadError: the download failed or the sha256 did not match;
        nothing is left behind.
      CifarFormatError: the archive is corrupt, unsafe or incomplete (the
        message names the archive and the member). A tarball downloaded by
        this call is deleted so that the next call fetches a fresh one; one
        that was already there is left alone and the message says to
        delete it.
    """
    data_dir = os.fspath(data_dir)
    batches_dir = os.path.join(data_dir, BATCHES_DIR)
    if _is_complete(batches_dir):
        return batches_dir
    archive_path = os.path.join(data_dir, _archive_name(url))
    downloaded = not os.path.isfile(archive_path)
    if downloaded:
        download_url(url, archive_path, sha256=sha256,
                     decompress_for_hash=None, progress=progress)
    try:
        return extract_batches(archive_path, data_dir, progress=progress)
    except CifarFormatError as error:
        if downloaded:
            _remove_quietly(archive_path)
            raise
        raise CifarFormatError(
            error.source, f"{error.problem}; delete the archive to download "
                          f"a fresh copy") from error


def extract_batches(archive_path, data_dir, progress=True):
    """Safely unpack a CIFAR-10 binary tarball into ``data_dir``.

    The archive is unpacked into a scratch directory inside ``data_dir`` by
    ``tfmech.data.archive.safe_extract_tar`` (only regular files and
    directories, no absolute paths or ``..``); it must contain
    ``cifar-10-batches-bin/`` with the six record files, each of which must
    pass ``check_record_file``. Only then is the directory moved to
    ``data_dir/cifar-10-batches-bin`` with one ``os.replace`` (replacing an
    incomplete one). The scratch directory is removed whatever happens.

    Raises:
      CifarFormatError: with the archive's path as source and the member
        named in the problem.
    """
    archive_path = os.fspath(archive_path)
    data_dir = os.fspath(data_dir)
    batches_dir = os.path.join(data_dir, BATCHES_DIR)
    with _scratch_dir(data_dir) as scratch:
        unpacked = os.path.join(scratch, "unpacked")
        os.mkdir(unpacked)
        try:
            safe_extract_tar(archive_path, unpacked)
        except ArchiveError as error:
            raise CifarFormatError(error.source, error.problem) from error
        built = os.path.join(unpacked, BATCHES_DIR)
        _check_extracted(archive_path, built)
        # Another process may have finished the same job meanwhile.
        if not _is_complete(batches_dir):
            _install_dir(built, batches_dir, scratch)
    if progress:
        print(f"Extracted {archive_path} to {batches_dir}", file=sys.stderr)
    return batches_dir


def _check_extracted(archive_path, built):
    """The unpacked archive must hold the six files, each a valid one."""
    missing = [f"{BATCHES_DIR}/{name}" for name in ALL_FILES
               if not os.path.isfile(os.path.join(built, name))]
    if missing:
        raise CifarFormatError(
            archive_path, f"archive lacks {', '.join(missing)} (expected "
                          f"{BATCHES_DIR}/ with {', '.join(ALL_FILES)})")
    for name in ALL_FILES:
        try:
            check_record_file(os.path.join(built, name))
        except CifarFormatError as error:
            raise CifarFormatError(
                archive_path, f"member {BATCHES_DIR}/{name}: "
                              f"{error.problem}") from error


def _archive_name(url):
    """The tarball's file name: the last part of the URL's path."""
    name = os.path.basename(urllib.parse.urlparse(url).path)
    return name or os.path.basename(DATA_URL)


def batches_from_tfds(target_dir, tfds_data_dir=None):
    """Write tfds' cifar10 as ``target_dir/cifar-10-batches-bin``; return it.

    The training code reads only record files, so tfds data is converted
    once: the train split into the five training files (as evenly as
    possible), the test split into test_batch.bin, written in a scratch
    directory and moved into place with ``os.replace``. A complete copy
    already there is returned without loading tfds. tensorflow_datasets
    (and so TensorFlow) is imported only here.

    Raises:
      CifarFormatError: tfds failed (source "tfds cifar10 (data_dir
        ...)"), or returned arrays that are not CIFAR-10 records (source
        "tfds cifar10 <split>").
    """
    target_dir = os.fspath(target_dir)
    batches_dir = os.path.join(target_dir, BATCHES_DIR)
    if _is_complete(batches_dir):
        return batches_dir
    train, test = _load_tfds(tfds_data_dir)
    with _scratch_dir(target_dir) as scratch:
        built = os.path.join(scratch, BATCHES_DIR)
        _write_layout(built, train, test)
        _install_dir(built, batches_dir, scratch)
    return batches_dir


def _load_tfds(tfds_data_dir):
    """[(images, labels) of train, same of test] from tfds, checked (a
    failure inside tfds is a CifarFormatError naming it)."""
    splits = tfds_source.load_splits("cifar10", SPLITS, tfds_data_dir,
                                     CifarFormatError)
    checked = []
    for name, (images, labels) in zip(SPLITS, splits):
        images, labels = np.asarray(images), np.asarray(labels)
        problem = _arrays_problem(images, labels)
        if problem is None and name == "train" and \
                len(labels) < len(TRAIN_FILES):
            problem = (f"{len(labels)} examples cannot fill the "
                       f"{len(TRAIN_FILES)} training files")
        if problem is not None:
            raise CifarFormatError(f"tfds cifar10 {name}", problem)
        checked.append((images, labels))
    return checked


def prepare(data_dir, source="files", download=True, tfds_data_dir=None,
            url=DATA_URL, sha256=ARCHIVE_SHA256, progress=True):
    """Make the binary layout available and checked; return its directory.

    The one entry point binaries call. Both splits are checked
    (``check_split``) before returning, so a bad file stops a run before
    any TensorFlow work, with a message naming it.

    Args:
      data_dir: the tutorial's ``--data_dir``; the layout is
        ``data_dir/cifar-10-batches-bin``. A ``data_dir`` that is itself a
        complete ``cifar-10-batches-bin`` is used as it is.
      source: "files" (the local layout, downloaded when missing) or
        "tfds" (tensorflow-datasets' cifar10, written out as
        ``data_dir/tfds/cifar-10-batches-bin``).
      download: with source="files", if False a missing layout is a
        CifarFormatError instead of a download.
      tfds_data_dir: ``data_dir`` for ``tfds.load`` with source="tfds"
        (default ``<data_dir>/tfds``, beside the records written there).
      url, sha256: where the tarball comes from and its raw sha256 (tests
        serve their own small tarballs).
      progress: print download progress to stderr.

    Raises:
      CifarFormatError, DownloadError, ValueError (unknown source).
    """
    data_dir = os.fspath(data_dir)
    if source == "files":
        batches_dir = _local_batches_dir(data_dir, download, url, sha256,
                                         progress)
    elif source == "tfds":
        batches_dir = batches_from_tfds(
            tfds_source.data_dir_for(data_dir),
            tfds_source.data_dir_for(data_dir, tfds_data_dir))
    else:
        raise ValueError(
            f"unknown CIFAR-10 source {source!r}; allowed: "
            f"{', '.join(repr(s) for s in SOURCES)}")
    for split in SPLITS:
        check_split(batches_dir, split)
    return batches_dir


def _local_batches_dir(data_dir, download, url, sha256, progress):
    """The layout under ``data_dir`` (or ``data_dir`` itself), else fetch."""
    if os.path.basename(os.path.normpath(data_dir)) == BATCHES_DIR and \
            _is_complete(data_dir):
        return data_dir
    if download:
        return maybe_download_and_extract(data_dir, url, sha256, progress)
    batches_dir = os.path.join(data_dir, BATCHES_DIR)
    if not os.path.isdir(batches_dir):
        raise CifarFormatError(
            batches_dir, f"directory not found and downloading is off "
                         f"(unpack {_archive_name(url)} from {url} into "
                         f"{data_dir})")
    return batches_dir


# ---------------------------------------------------------------------------
# Directory plumbing shared by the sources


def _is_complete(batches_dir):
    """True if all six record files are present (not yet checked)."""
    return all(os.path.isfile(os.path.join(batches_dir, name))
               for name in ALL_FILES)


@contextlib.contextmanager
def _scratch_dir(parent):
    """A hidden scratch directory inside ``parent``, removed on any exit.

    Inside ``parent`` so that the final ``os.replace`` is a rename on one
    file system; removed in ``finally`` so that errors and Ctrl-C leave no
    temp directories behind.
    """
    os.makedirs(parent, exist_ok=True)
    path = tempfile.mkdtemp(dir=parent, prefix=f".{BATCHES_DIR}.",
                            suffix=".tmp")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _install_dir(built, final, scratch):
    """Move the complete directory ``built`` to ``final``.

    ``os.replace`` cannot replace a non-empty directory, so an existing
    ``final`` (an incomplete layout, or an older generated set) is first
    moved into ``scratch``, which the caller deletes; if the second rename
    fails, it is moved back.
    """
    if not os.path.lexists(final):
        os.replace(built, final)
        return
    previous = os.path.join(scratch, "previous")
    os.rename(final, previous)
    try:
        os.replace(built, final)
    except BaseException:
        os.rename(previous, final)
        raise


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
