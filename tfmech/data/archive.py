"""Unpack a downloaded tar archive without trusting what is inside it.

A tar member can name any path (``/etc/passwd``, ``../../.bashrc``), be a
symbolic or hard link that later members write *through*, or be a device
node. ``tarfile.extractall`` happily honours all of that, so extracting an
archive from a mirror we do not control is a way to write anywhere the user
can. The data sets tfmech unpacks hold nothing but plain files in plain
directories, so we accept exactly that and refuse everything else by name
before a single byte of it reaches the disk.

The extraction itself is ours too: each accepted file is streamed into a
freshly created file (``O_EXCL``) under the destination, with ordinary
permissions, ignoring the owner, mode bits and times recorded in the
archive. Because no link is ever created, a path that is relative and has no
``..`` component cannot leave the destination directory.

Every problem, whether an unsafe member or a corrupt archive, raises one
``ArchiveError`` whose message starts with the archive's path and names the
member. The destination is expected to be a scratch directory that the
caller removes on failure; this module does not clean up after itself.
"""

import os
import posixpath
import shutil
import tarfile
import zlib

try:
    import lzma
    _LZMA_ERRORS = (lzma.LZMAError,)    # not an OSError, unlike gzip's
except ImportError:                     # Python built without lzma
    _LZMA_ERRORS = ()

_COPY_CHUNK_SIZE = 1024 * 1024
_ONLY_PLAIN = "only regular files and directories are allowed"


class ArchiveError(ValueError):
    """An archive is unreadable or holds a member we refuse to extract.

    The message starts with the archive's path (``source``) and then says
    what is wrong (``problem``), naming the member when there is one.
    """

    def __init__(self, source, problem):
        super().__init__(f"{source}: {problem}")
        self.source = source
        self.problem = problem


def safe_extract_tar(archive_path, dest_dir):
    """Extract the regular files and directories of a tar archive.

    Reads the archive in one streaming pass (gzip, bz2, xz or plain, detected
    by tarfile), checking each member before writing it.

    Args:
      archive_path: the tar file.
      dest_dir: an existing, empty scratch directory to extract into.

    Returns:
      The normalized names (``a/b.bin``) of the regular files extracted, in
      archive order.

    Raises:
      ArchiveError: an absolute path, a ``..`` component, a link, a device,
        a fifo or any other non-plain member; a file named twice; a
        corrupt or truncated archive. Some members may already have been
        written to ``dest_dir`` when this is raised.
    """
    archive_path = os.fspath(archive_path)
    files = []
    seen = set()
    try:
        with tarfile.open(archive_path, mode="r:*") as tar:
            for member in tar:
                name = member_name(archive_path, member)
                if member.isdir():
                    _make_dir(archive_path, member, dest_dir, name)
                    continue
                # A second copy of a file would silently replace the first
                # (and whichever was checked), so the archive is ambiguous.
                if name in seen:
                    raise ArchiveError(
                        archive_path,
                        f"member {member.name!r} appears more than once")
                seen.add(name)
                _extract_file(archive_path, tar, member, dest_dir, name)
                files.append(name)
            _read_to_the_end(tar.fileobj)
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, *_LZMA_ERRORS) as error:
        raise ArchiveError(
            archive_path, f"not a readable tar archive ({error})") from error
    except OSError as error:     # gzip.BadGzipFile, bz2 errors, I/O errors
        raise ArchiveError(
            archive_path, f"could not read the archive ({error})") from error
    return files


def _read_to_the_end(fileobj):
    """Read the rest of the (decompressed) archive, so the stream is checked.

    tarfile stops at the end-of-archive blocks, before the end of the
    compressed stream, and gzip, bz2 and xz check their CRC and length
    only there: without this, a damaged byte in the compressed data came
    out as a changed byte in an extracted file with no error at all, and a
    truncated download was accepted.
    """
    while fileobj.read(_COPY_CHUNK_SIZE):
        pass


def member_name(archive_path, member):
    """The member's path relative to the destination, checked for safety.

    Returns the name normalized ("./a//b/" -> "a/b"; "" for the top
    directory itself), or raises ArchiveError if the member is not a plain
    file or directory or its path could leave the destination.
    """
    raw = member.name
    kind = _unsupported_kind(member)
    if kind is not None:
        raise ArchiveError(
            archive_path, f"unsafe member {raw!r}: {kind}; {_ONLY_PLAIN}")
    if raw.startswith("/") or raw.startswith("\\"):
        raise ArchiveError(
            archive_path, f"unsafe member {raw!r}: absolute path")
    parts = [p for p in raw.replace("\\", "/").split("/") if p not in ("",
                                                                       ".")]
    if ".." in parts:
        raise ArchiveError(
            archive_path, f"unsafe member {raw!r}: '..' in its path")
    if any("\0" in part for part in parts):
        raise ArchiveError(
            archive_path, f"unsafe member {raw!r}: NUL byte in its path")
    name = posixpath.join(*parts) if parts else ""
    if not name and not member.isdir():
        raise ArchiveError(archive_path, f"member {raw!r} has an empty name")
    return name


def _unsupported_kind(member):
    """A description of a member that is not a plain file or dir, or None."""
    if member.isreg() or member.isdir():
        return None
    if member.issym():
        return f"symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"hard link to {member.linkname!r}"
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "fifo"
    return f"unsupported member type {member.type!r}"


def _make_dir(archive_path, member, dest_dir, name):
    try:
        os.makedirs(os.path.join(dest_dir, name), exist_ok=True)
    except OSError as error:
        raise ArchiveError(
            archive_path,
            f"could not create directory {member.name!r}: {error}") from error


def _extract_file(archive_path, tar, member, dest_dir, name):
    """Stream one regular member into a new file under ``dest_dir``."""
    path = os.path.join(dest_dir, name)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as error:
        raise ArchiveError(
            archive_path,
            f"could not extract member {member.name!r}: {error}") from error
    with os.fdopen(fd, "wb") as out:
        source = tar.extractfile(member)
        shutil.copyfileobj(source, out, _COPY_CHUNK_SIZE)
