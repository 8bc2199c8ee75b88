"""Download a data file safely: stream, check length, verify hash, then rename.

Every data set tfmech uses (MNIST now, CIFAR-10 later) arrives as a handful
of files from a public mirror. A download that half-finishes, or a mirror
that serves something else, must never leave a file that looks complete
under its final name, because the readers trust whatever is on disk. So the
bytes go to a ``*.part`` file beside the destination and are renamed onto
it with ``os.replace`` only after every check has passed.

Hashes are taken of the *decompressed* content of gzip files: the same data
can be gzipped differently by different mirrors, and what the readers care
about is the data, not the container.
"""

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zlib

GZIP_MAGIC = b"\x1f\x8b"
DEFAULT_CHUNK_SIZE = 64 * 1024
_HASH_MODES = ("auto", "gzip", None)
_PROGRESS_STEP_PERCENT = 10
_UNSIZED_PROGRESS_STEP_BYTES = 10 * 1000 * 1000


class DownloadError(RuntimeError):
    """A download failed; the message always names the URL and the reason."""

    def __init__(self, url, reason):
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


def download(url, dest_path, *, sha256=None, decompress_for_hash="auto",
             progress=True, timeout=60, chunk_size=DEFAULT_CHUNK_SIZE):
    """Fetch ``url`` into ``dest_path`` atomically and return ``dest_path``.

    Args:
      url: anything ``urllib`` can open (http, https, file).
      dest_path: final file name; its directory is created if missing.
      sha256: expected hex digest, or None to skip verification.
      decompress_for_hash: "auto" hashes the gunzipped content when the
        file starts with the gzip magic bytes and the raw bytes otherwise;
        "gzip" insists on gzip content; None always hashes the raw bytes.
      progress: print progress lines to stderr.
      timeout: socket timeout in seconds for connecting and each read.
      chunk_size: bytes read per call while streaming.

    Raises:
      DownloadError: on any HTTP or network error, a short read, a corrupt
        gzip stream or a hash mismatch. No file is left under ``dest_path``
        (unless one was already there) and no ``.part`` file is left behind.
    """
    if decompress_for_hash not in _HASH_MODES:
        raise ValueError(
            f"decompress_for_hash must be one of {_HASH_MODES}, "
            f"got {decompress_for_hash!r}")
    dest_dir = os.path.dirname(os.path.abspath(dest_path))
    try:
        os.makedirs(dest_dir, exist_ok=True)
        part = tempfile.NamedTemporaryFile(
            dir=dest_dir, prefix=os.path.basename(dest_path) + ".",
            suffix=".part", delete=False)
    except OSError as error:
        raise DownloadError(url, f"cannot write into {dest_dir}: "
                                 f"{error.strerror or error}") from error
    finished = False
    try:
        with part:
            size = _stream_to_file(url, part, progress, timeout, chunk_size)
        if sha256 is not None:
            _verify_sha256(url, part.name, sha256, decompress_for_hash,
                           chunk_size)
        # NamedTemporaryFile creates 0600 files; data files are not secret.
        os.chmod(part.name, 0o644)
        os.replace(part.name, dest_path)
        finished = True
    finally:
        if not finished:
            _remove_quietly(part.name)
    if progress:
        verified = ", verified sha256" if sha256 is not None else ""
        print(f"Downloaded {url} ({size} bytes{verified})", file=sys.stderr)
    return dest_path


def maybe_download(filename, directory, source_url, sha256=None,
                   progress=True):
    """Return ``directory/filename``, downloading it first if it is missing.

    An existing file is returned as it is, without rehashing: the readers
    validate what they read, and rehashing large files on every run would
    make every training start slower. The URL is ``source_url`` followed by
    ``filename`` (a "/" is inserted if ``source_url`` lacks one).
    """
    path = os.path.join(directory, filename)
    if os.path.exists(path):
        return path
    if not source_url.endswith("/"):
        source_url += "/"
    return download(source_url + filename, path, sha256=sha256,
                    progress=progress)


def _stream_to_file(url, out, progress, timeout, chunk_size):
    """Copy the response body into ``out``; return the number of bytes."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            expected = _content_length(response)
            reporter = _ProgressReporter(url, expected, progress)
            received = 0
            while True:
                chunk = response.read(chunk_size)
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                reporter.update(received)
    except urllib.error.HTTPError as error:
        raise DownloadError(
            url, f"HTTP error {error.code} ({error.reason})") from error
    except urllib.error.URLError as error:
        raise DownloadError(
            url, f"could not connect: {error.reason}") from error
    except http.client.IncompleteRead as error:
        raise DownloadError(
            url, f"download truncated: {error}") from error
    except (http.client.HTTPException, OSError) as error:
        raise DownloadError(url, f"download failed: {error!r}") from error
    if expected is not None and received != expected:
        raise DownloadError(
            url, f"download truncated: got {received} of {expected} bytes")
    return received


def _content_length(response):
    """The Content-Length header as an int, or None if absent or garbled."""
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class _ProgressReporter:
    """Prints a progress line each time another ~10% has arrived.

    Without a Content-Length there is no percentage to give, so it reports
    every 10 MB instead; either way a large download prints a handful of
    lines, not thousands.
    """

    def __init__(self, url, total, enabled):
        self._url = url
        self._total = total
        self._enabled = enabled
        self._next_mark = self._step()

    def _step(self):
        if self._total:
            return self._total * _PROGRESS_STEP_PERCENT / 100
        return _UNSIZED_PROGRESS_STEP_BYTES

    def update(self, received):
        if not self._enabled or received < self._next_mark:
            return
        if self._total:
            percent = int(100 * received / self._total)
            line = (f"Downloading {self._url}: {percent}% "
                    f"({received / 1e6:.1f} of {self._total / 1e6:.1f} MB)")
        else:
            line = f"Downloading {self._url}: {received / 1e6:.1f} MB"
        print(line, file=sys.stderr)
        step = self._step()
        while self._next_mark <= received:
            self._next_mark += step


def _verify_sha256(url, path, expected, mode, chunk_size):
    """Raise DownloadError unless the file's (decompressed) sha256 matches."""
    use_gzip = mode == "gzip" or (mode == "auto" and _starts_with_gzip(path))
    if use_gzip:
        actual = _sha256_of_gzip_content(url, path, chunk_size)
        what = "decompressed content"
    else:
        actual = _sha256_of_file(path, chunk_size)
        what = "file"
    if actual.lower() != expected.lower():
        raise DownloadError(
            url, f"sha256 mismatch of the {what}: expected {expected}, "
                 f"got {actual}")


def _starts_with_gzip(path):
    with open(path, "rb") as f:
        return f.read(len(GZIP_MAGIC)) == GZIP_MAGIC


def _sha256_of_file(path, chunk_size):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sha256_of_gzip_content(url, path, chunk_size):
    """Hash the gunzipped bytes; a broken gzip stream is a DownloadError."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as f:
            for chunk in iter(lambda: f.read(chunk_size), b""):
                digest.update(chunk)
    except EOFError as error:
        raise DownloadError(
            url, f"gzip stream is truncated: {error}") from error
    except (OSError, zlib.error) as error:
        raise DownloadError(url, f"gzip stream is corrupt: {error}") from error
    return digest.hexdigest()


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
