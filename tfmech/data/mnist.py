"""MNIST as the classic tutorials saw it: IDX files in, shuffled batches out.

The tutorials feed a model from a small in-memory ``DataSet`` with a
``next_batch`` method. This module rebuilds that contract with stricter
input checking: every problem with an MNIST file, whatever it is, raises a
single ``MnistFormatError`` whose message starts with the file's path, so a
user who points tfmech at the wrong directory learns which file is wrong and
how, instead of getting a reshape error deep inside numpy.

The IDX format is tiny: a big-endian header (magic number, item count and,
for images, rows and columns) followed by one unsigned byte per pixel or
label. Files may be gzip-compressed or not; we decide by the gzip magic
bytes, not by the file name, because people unpack files and keep names.
"""

import collections
import gzip
import os
import struct
import zlib

import numpy as np

from tfmech.data import tfds_source
from tfmech.data.download import maybe_download

DEFAULT_SOURCE_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"

# sha256 of the *decompressed* IDX bytes. Mirrors gzip the same data
# differently, so hashing the container would reject good copies.
SHA256_DECOMPRESSED = {
    TRAIN_IMAGES:
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS:
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES:
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS:
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

IMAGE_ROWS = 28
IMAGE_COLS = 28
IMAGE_PIXELS = IMAGE_ROWS * IMAGE_COLS
NUM_CLASSES = 10

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_IMAGES_HEADER = struct.Struct(">IIII")   # magic, count, rows, cols
_LABELS_HEADER = struct.Struct(">II")     # magic, count
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS      # zlib: expect a gzip header
_KIND_BY_MAGIC = {IMAGES_MAGIC: "images", LABELS_MAGIC: "labels"}

SOURCES = ("files", "tfds")
FAKE_NUM_EXAMPLES = 10000

Datasets = collections.namedtuple("Datasets", ["train", "validation", "test"])


class MnistFormatError(ValueError):
    """Anything wrong with an MNIST file: missing, corrupt, or not MNIST.

    The message starts with the file's path (or another description of the
    data's origin) and then says what is wrong.
    """

    def __init__(self, source, problem):
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


# ---------------------------------------------------------------------------
# Reading IDX files


def read_idx_images(path):
    """Read an IDX image file into a uint8 array of shape [N, 28, 28]."""
    path, data = _read_idx_bytes(path)
    _check_magic(path, data, IMAGES_MAGIC)
    _check_header_length(path, data, _IMAGES_HEADER.size)
    _, count, rows, cols = _IMAGES_HEADER.unpack_from(data)
    if (rows, cols) != (IMAGE_ROWS, IMAGE_COLS):
        raise MnistFormatError(
            path, f"bad image size {rows}x{cols}, expected "
                  f"{IMAGE_ROWS}x{IMAGE_COLS}")
    _check_count(path, count, "images")
    _check_payload_length(path, len(data) - _IMAGES_HEADER.size, count,
                          rows * cols, "images", "pixel data")
    # frombuffer with an offset: slicing the bytes would copy 47 MB.
    pixels = np.frombuffer(data, dtype=np.uint8, offset=_IMAGES_HEADER.size)
    return pixels.reshape(count, rows, cols)


def read_idx_labels(path):
    """Read an IDX label file into a uint8 array of shape [N], values 0..9."""
    path, data = _read_idx_bytes(path)
    _check_magic(path, data, LABELS_MAGIC)
    _check_header_length(path, data, _LABELS_HEADER.size)
    _, count = _LABELS_HEADER.unpack_from(data)
    _check_count(path, count, "labels")
    _check_payload_length(path, len(data) - _LABELS_HEADER.size, count, 1,
                          "labels", "label data")
    labels = np.frombuffer(data, dtype=np.uint8, offset=_LABELS_HEADER.size)
    _check_label_range(path, labels)
    return labels


def resolve_idx_path(path):
    """The file on disk for ``path``, trying it with and without ``.gz``.

    Users often gunzip the downloads and keep the rest of the name, so a
    request for ``x.gz`` is satisfied by ``x`` and vice versa.
    """
    candidates = [path]
    if path.endswith(".gz"):
        candidates.append(path[:-len(".gz")])
    else:
        candidates.append(path + ".gz")
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise MnistFormatError(
        path, f"file not found (also looked for {candidates[1]})")


def _read_idx_bytes(path):
    """Return (resolved path, decompressed bytes) of an IDX file."""
    path = resolve_idx_path(os.fspath(path))
    with open(path, "rb") as f:
        data = f.read()
    if data[:len(_GZIP_MAGIC)] == _GZIP_MAGIC:
        data = _gunzip(path, data)
    return path, data


def _gunzip(path, data):
    """Decompress a gzip file's bytes; broken streams are MnistFormatErrors.

    A ``zlib.decompressobj`` reads the first member and says where it
    ends. Anything after it (more members, zero padding, or junk such as
    a second copy of the file left by a download that restarted) sends the
    whole file to ``gzip.decompress``, which reads every member and refuses
    junk. ``zlib.decompress`` cannot be used for the first step, fast as it
    is: it ignores whatever follows the first member, so a doubled file
    read as the first copy alone, and a file of two equal members as its
    first half.
    """
    decompressor = zlib.decompressobj(_GZIP_WBITS)
    try:
        content = decompressor.decompress(data)
        if not decompressor.eof:
            raise MnistFormatError(
                path, "truncated gzip stream (it ends before the end of its "
                      "compressed data)")
        if decompressor.unused_data:
            content = gzip.decompress(data)
    except EOFError as error:
        raise MnistFormatError(
            path, f"truncated gzip stream ({error})") from error
    except zlib.error as error:
        raise MnistFormatError(
            path, f"corrupt gzip stream ({error})") from error
    except OSError as error:        # gzip.BadGzipFile and friends
        raise MnistFormatError(
            path, f"corrupt gzip stream ({error})") from error
    return content


def _check_magic(path, data, expected):
    kind = _KIND_BY_MAGIC[expected]
    if len(data) < 4:
        raise MnistFormatError(
            path, f"file too short for an IDX header: {len(data)} bytes")
    (magic,) = struct.unpack_from(">I", data)
    if magic == expected:
        return
    problem = (f"bad magic number {magic}, expected {expected} "
               f"(IDX {kind} file)")
    other_kind = _KIND_BY_MAGIC.get(magic)
    if other_kind is not None:
        problem += f": this is an IDX {other_kind} file, expected {kind}"
    raise MnistFormatError(path, problem)


def _check_header_length(path, data, header_size):
    if len(data) < header_size:
        raise MnistFormatError(
            path, f"header too short: {len(data)} bytes, need {header_size}")


def _check_count(path, count, noun):
    if count <= 0:
        raise MnistFormatError(
            path, f"header says the file holds {count} {noun}, "
                  f"expected at least one")


def _check_payload_length(path, payload_size, count, item_size, noun, what):
    expected = count * item_size
    if payload_size < expected:
        raise MnistFormatError(
            path, f"truncated: header promises {count} {noun} "
                  f"({expected} bytes) but file has {payload_size} bytes "
                  f"of {what}")
    if payload_size > expected:
        raise MnistFormatError(
            path, f"{payload_size - expected} trailing bytes after the "
                  f"{count} {noun} ({expected} bytes) the header promises")


def _check_label_range(path, labels):
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        index = int(bad[0])
        raise MnistFormatError(
            path, f"label {int(labels[index])} at index {index} is outside "
                  f"0..{NUM_CLASSES - 1} ({bad.size} bad labels in all)")


# ---------------------------------------------------------------------------
# Writing IDX files (for tests and for users who build their own MNIST-like
# data)


def write_idx_images(path, images):
    """Write uint8 images [N, rows, cols] as an IDX file (gzip if ``.gz``).

    Any rows/cols are written as given, so tests can also produce files the
    reader must reject.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3:
        raise ValueError(
            f"images must be uint8 [N, rows, cols], got {images.dtype} "
            f"{list(images.shape)}")
    count, rows, cols = images.shape
    header = _IMAGES_HEADER.pack(IMAGES_MAGIC, count, rows, cols)
    _write_maybe_gzipped(path, header + images.tobytes())


def write_idx_labels(path, labels):
    """Write integer labels [N] (0..255) as an IDX file (gzip if ``.gz``)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"labels must be integers [N], got {labels.dtype} "
            f"{list(labels.shape)}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError("labels must fit in one unsigned byte (0..255)")
    header = _LABELS_HEADER.pack(LABELS_MAGIC, labels.size)
    _write_maybe_gzipped(path, header + labels.astype(np.uint8).tobytes())


def _write_maybe_gzipped(path, data):
    path = os.fspath(path)
    if path.endswith(".gz"):
        # mtime=0 keeps the bytes reproducible for the same content.
        data = gzip.compress(data, mtime=0)
    with open(path, "wb") as f:
        f.write(data)


# ---------------------------------------------------------------------------
# DataSet


class DataSet:
    """One split of MNIST in memory, served in shuffled mini-batches.

    Images are served as float32 [N, 784] in [0, 1]; labels are int32 [N].
    The pixels are kept as given (uint8, usually) and each batch is scaled
    as it is served: a float copy of the training set is four times the
    size of the bytes, and allocating it dominated the loading time. The
    ``images`` property builds (and caches) the full float array only when
    someone asks for it.

    Shuffling uses a ``numpy.random.Generator`` created from ``seed`` and
    owned by this object, so the batch sequence depends on the seed alone
    and never on global random state or on other splits.
    """

    def __init__(self, images, labels, *, seed=0, images_source=None,
                 labels_source=None):
        """Build a split from uint8 or float images and integer labels.

        Args:
          images: [N, 28, 28], [N, 28, 28, 1] or [N, 784]. uint8 pixels are
            scaled to [0, 1]; float pixels are taken as already scaled.
          labels: integer class ids [N].
          seed: seed of this split's shuffling generator.
          images_source, labels_source: where the arrays came from (file
            paths, usually), used to name them in error messages.
        """
        images = np.asarray(images)
        labels = np.asarray(labels)
        _check_counts_match(images, labels, images_source, labels_source)
        self._pixels = _flatten(images)
        self._float_images = None
        self._labels = labels.astype(np.int32)
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(self.num_examples)
        self._index_in_epoch = 0
        self._epochs_completed = 0

    @classmethod
    def fake(cls, num_examples=FAKE_NUM_EXAMPLES, seed=0):
        """A stand-in split like the tutorials' ``--fake_data``.

        Every image is all 1.0 and every label is 0, so a model can be run
        end to end without any files. The images are a broadcast view of a
        single row, so even a large fake split costs no memory.
        """
        images = np.broadcast_to(np.ones(IMAGE_PIXELS, np.float32),
                                 (num_examples, IMAGE_PIXELS))
        labels = np.zeros(num_examples, np.int32)
        return cls(images, labels, seed=seed, images_source="fake images",
                   labels_source="fake labels")

    @property
    def images(self):
        """All images as float32 [N, 784] in [0, 1] (built on first use)."""
        if self._float_images is None:
            self._float_images = _scale(self._pixels)
        return self._float_images

    @property
    def pixels(self):
        """The images as stored, [N, 784]: uint8, served as uint8 times
        ``PIXEL_SCALE`` in float32, or floats already in [0, 1]."""
        return self._pixels

    @property
    def labels(self):
        return self._labels

    @property
    def num_examples(self):
        return self._labels.shape[0]

    @property
    def epochs_completed(self):
        return self._epochs_completed

    def next_batch(self, batch_size, shuffle=True):
        """Return the next (images, labels) batch of exactly ``batch_size``.

        The first epoch is shuffled before its first batch. A batch that
        runs past the end of an epoch takes what is left of it, then the
        head of the next epoch, reshuffled, so no example is repeated or
        skipped within an epoch and every batch has the same size.
        """
        return self._gather(self.next_batch_indices(batch_size, shuffle))

    def next_batch_indices(self, batch_size, shuffle=True):
        """The row indices of the batch ``next_batch`` would return, and
        advances past it exactly as ``next_batch`` does.

        For a training loop that keeps the split on the device (see
        ``tfmech.data.resident``) and gathers its batches there: it draws
        the same batches in the same order while only the indices, not the
        pixels, cross from Python to TensorFlow.
        """
        self._check_batch_size(batch_size)
        if shuffle and self._epochs_completed == 0 \
                and self._index_in_epoch == 0:
            self._reshuffle()
        start = self._index_in_epoch
        end = start + batch_size
        if end <= self.num_examples:
            self._index_in_epoch = end
            return self._order[start:end]
        tail = self._order[start:]
        self._epochs_completed += 1
        if shuffle:
            self._reshuffle()
        else:
            self._order = np.arange(self.num_examples)
        self._index_in_epoch = batch_size - tail.size
        head = self._order[:self._index_in_epoch]
        return np.concatenate([tail, head])

    def iterate_batches(self, batch_size):
        """Yield (images, labels) over the whole split in stored order.

        The last batch is short when ``batch_size`` does not divide the
        split, so an evaluation that sums over batches counts every example
        exactly once. It does not touch the ``next_batch`` position.
        """
        self._check_batch_size(batch_size, allow_larger_than_split=True)
        for start in range(0, self.num_examples, batch_size):
            end = start + batch_size
            yield self._float_rows(slice(start, end)), \
                self._labels[start:end]

    def _check_batch_size(self, batch_size, allow_larger_than_split=False):
        if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(
                f"batch_size must be a positive integer, got {batch_size!r}")
        if not allow_larger_than_split and batch_size > self.num_examples:
            raise ValueError(
                f"batch_size {batch_size} is larger than the split "
                f"({self.num_examples} examples)")

    def _reshuffle(self):
        self._order = self._rng.permutation(self.num_examples)

    def _gather(self, indices):
        return self._float_rows(indices), self._labels[indices]

    def _float_rows(self, index):
        """Scaled rows, from the cached float array if it already exists."""
        if self._float_images is not None:
            return self._float_images[index]
        return _scale(self._pixels[index])


def _check_counts_match(images, labels, images_source, labels_source):
    if images.shape[0] == labels.shape[0]:
        return
    if images_source is None and labels_source is None:
        raise MnistFormatError(
            "images and labels",
            f"count mismatch: {images.shape[0]} images but "
            f"{labels.shape[0]} labels")
    raise MnistFormatError(
        images_source or "images",
        f"holds {images.shape[0]} images but "
        f"{labels_source or 'the labels'} holds {labels.shape[0]} labels")


def _flatten(images):
    """[N, 28, 28], [N, 28, 28, 1] or [N, 784] -> [N, 784], same dtype."""
    pixels_per_image = int(np.prod(images.shape[1:], dtype=np.int64))
    flat = images.reshape(images.shape[0], pixels_per_image)
    if flat.shape[1] != IMAGE_PIXELS:
        raise ValueError(
            f"images must have {IMAGE_PIXELS} pixels each, got shape "
            f"{list(images.shape)}")
    return flat


# uint8 pixel -> [0, 1]: one float32 multiplication, so that any
# implementation of it (numpy here, TensorFlow in ``tfmech.data.resident``)
# gives the same bits.
PIXEL_SCALE = np.float32(1.0 / 255.0)


def _scale(pixels):
    """uint8 pixels -> float32 in [0, 1]; float pixels pass as float32.

    One pass and one new array: uint8 -> float32, times 1/255 in float32,
    the same values as the original tutorial's conversion.
    """
    if pixels.dtype == np.uint8:
        return np.multiply(pixels, PIXEL_SCALE, dtype=np.float32)
    return pixels.astype(np.float32, copy=False)


# ---------------------------------------------------------------------------
# The three splits


def read_data_sets(data_dir, fake_data=False, validation_size=5000, seed=0,
                   source="files", source_url=DEFAULT_SOURCE_URL,
                   download=True, progress=True, sha256s=None,
                   tfds_data_dir=None):
    """Load MNIST as ``Datasets(train, validation, test)``.

    Args:
      data_dir: directory holding (or to receive) the four IDX files.
      fake_data: return three fake splits of 10000 examples instead.
      validation_size: how many of the first training examples become the
        validation split (0 <= validation_size < training examples).
      seed: shuffling seed of the train split; validation and test use
        seed + 1 and seed + 2 so the splits never shuffle in lockstep.
      source: "files" (IDX files, downloaded if missing) or "tfds"
        (tensorflow_datasets, imported only when asked for).
      source_url: mirror the missing files are downloaded from.
      download: if False, a missing file is an error instead of a download.
      progress: print download progress to stderr.
      sha256s: {file name: sha256 of the decompressed bytes} used to verify
        downloads; defaults to the real MNIST hashes. Tests that serve
        their own small files pass theirs here.
      tfds_data_dir: ``data_dir`` for ``tfds.load`` with source="tfds"
        (default ``<data_dir>/tfds``).
    """
    if fake_data:
        return Datasets(*(DataSet.fake(FAKE_NUM_EXAMPLES, seed=seed + i)
                          for i in range(3)))
    if source == "files":
        train, test = _load_from_files(
            data_dir, source_url, download, progress,
            SHA256_DECOMPRESSED if sha256s is None else sha256s)
    elif source == "tfds":
        train, test = _load_from_tfds(
            tfds_source.data_dir_for(data_dir, tfds_data_dir))
    else:
        raise ValueError(
            f"unknown MNIST source {source!r}; allowed: "
            f"{', '.join(repr(s) for s in SOURCES)}")
    return _split(train, test, validation_size, seed)


def _load_from_files(data_dir, source_url, download, progress, sha256s):
    """Return ((images, labels, sources), same for test) from IDX files."""
    def path_of(filename):
        return _local_or_downloaded(data_dir, filename, source_url,
                                    download, progress, sha256s)

    splits = []
    for images_name, labels_name in ((TRAIN_IMAGES, TRAIN_LABELS),
                                     (TEST_IMAGES, TEST_LABELS)):
        images_path = path_of(images_name)
        labels_path = path_of(labels_name)
        splits.append((read_idx_images(images_path),
                       read_idx_labels(labels_path),
                       (images_path, labels_path)))
    return splits


def _local_or_downloaded(data_dir, filename, source_url, download, progress,
                         sha256s):
    """The file in ``data_dir`` (gzipped or unpacked), else download it.

    Without ``download`` the canonical path is returned even if missing,
    so the reader raises its usual "file not found" MnistFormatError.
    """
    for name in (filename, filename[:-len(".gz")]):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            return path
    if not download:
        return os.path.join(data_dir, filename)
    return maybe_download(filename, data_dir, source_url,
                          sha256=sha256s.get(filename), progress=progress)


def _load_from_tfds(tfds_data_dir):
    """Return the train and test splits from tensorflow_datasets (a failure
    inside tfds is a MnistFormatError naming it)."""
    train, test = tfds_source.load_splits("mnist", ("train", "test"),
                                          tfds_data_dir, MnistFormatError)
    return [(_squeeze_channel(images), labels,
             (f"tfds mnist {name} images", f"tfds mnist {name} labels"))
            for name, (images, labels) in (("train", train), ("test", test))]


def _squeeze_channel(images):
    """[N, 28, 28, 1] -> [N, 28, 28], leaving other shapes alone."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        return images[..., 0]
    return images


def _split(train, test, validation_size, seed):
    train_images, train_labels, (train_images_src, train_labels_src) = train
    test_images, test_labels, (test_images_src, test_labels_src) = test
    # Check the counts on the whole files first, so a mismatch names them.
    _check_counts_match(train_images, train_labels, train_images_src,
                        train_labels_src)
    _check_validation_size(validation_size, len(train_images),
                           train_images_src)
    sources = dict(images_source=train_images_src,
                   labels_source=train_labels_src)
    validation = DataSet(train_images[:validation_size],
                         train_labels[:validation_size], seed=seed + 1,
                         **sources)
    train_split = DataSet(train_images[validation_size:],
                          train_labels[validation_size:], seed=seed,
                          **sources)
    test_split = DataSet(test_images, test_labels, seed=seed + 2,
                         images_source=test_images_src,
                         labels_source=test_labels_src)
    return Datasets(train_split, validation, test_split)


def _check_validation_size(validation_size, num_train, images_source):
    """At least one training example must be left after the split; a file
    too small for the split is a data error naming it (one line in the
    binaries), a bad argument a ValueError."""
    is_integer = (isinstance(validation_size, (int, np.integer))
                  and not isinstance(validation_size, bool))
    if is_integer and 0 <= validation_size and validation_size >= num_train:
        raise MnistFormatError(
            images_source,
            f"holds {num_train} training images, not more than the "
            f"{validation_size} set aside for validation; a training set "
            f"needs at least {validation_size + 1}")
    if not (is_integer and 0 <= validation_size < num_train):
        raise ValueError(
            f"validation_size must be an integer in [0, {num_train}) (the "
            f"training data holds {num_train} examples), got "
            f"{validation_size!r}")
