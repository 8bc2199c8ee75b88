"""One trainer per output directory.

Two trainers writing one ``--train_dir`` would interleave checkpoints,
delete each other's files through their keep-the-newest-N lists and mix
event files. ``locked`` takes an exclusive ``flock`` on ``<dir>/.tfmech.lock``
and writes the holder's pid, host and program into it. The kernel drops a
flock when its process dies, however it dies, so a lock left by a killed
run is never in force: the next run finds the file unlocked, says whose it
was, and takes it. A live holder makes the next run refuse with that pid.
"""

import contextlib
import fcntl
import os
import socket

from tfmech import faults
from tfmech import progress

LOCK_NAME = ".tfmech.lock"


class TrainDirBusyError(faults.TrainingStopped):
    """Another live process trains in the directory."""


def _holder(fd):
    """The lock file's "pid host program" line, or "" when empty."""
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, 4096).decode("utf-8", "replace").strip()


def _describe(holder):
    pid, _, rest = holder.partition(" ")
    host, _, program = rest.partition(" ")
    return f"{program or 'a trainer'} (pid {pid} on {host or 'this host'})"


@contextlib.contextmanager
def locked(directory, program, flag="train_dir"):
    """Holds ``directory``'s trainer lock for the ``with`` block.

    Raises:
      TrainDirBusyError: another process holds it; names its pid.
    """
    path = os.path.join(directory, LOCK_NAME)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TrainDirBusyError(
                f"--{flag} {directory} is in use by "
                f"{_describe(_holder(fd))}; wait for it to finish, stop it, "
                f"or use another --{flag}") from None
        stale = _holder(fd)
        if stale:
            progress.say(f"note: {_describe(stale)} left a lock in "
                         f"{directory} and is no longer running; taking it")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {program}\n"
                  .encode(), 0)
        try:
            yield
        finally:
            # Emptied, not removed: a process that opened the file just now
            # must lock the same inode as the next one.
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)
