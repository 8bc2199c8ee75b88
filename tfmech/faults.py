"""What a training run does when something goes wrong, in one place.

Every training binary runs its driver inside ``guarded(program)``, which
turns each fault below into one line on stderr and a documented exit status:

=======================================  ======  ============================
fault                                    status  what is on disk afterwards
=======================================  ======  ============================
SIGTERM / Ctrl-C (SIGINT)                143/130 a checkpoint at the current
                                                 step, event files flushed
a NaN or Inf loss                        1       the last finite checkpoint
                                                 stays the newest; nothing
                                                 non-finite is saved
another trainer holds ``--train_dir``    1       nothing written
a full disk / file-size limit            1       the previous checkpoint
                                                 (a half-written one removed)
=======================================  ======  ============================

Stopping on a signal follows Keras' BackupAndRestore and TF's
PreemptionCheckpointHandler: the first SIGTERM or SIGINT only sets a flag
(``stop_requested``); the training loop looks at it between steps (v1) or
between tf.function calls (v2), saves a checkpoint at the step it reached
and raises ``Interrupted``. Rerunning the same command resumes exactly
there. A second signal stops at once (Python's default action).

The drivers raise these exceptions; only the binaries turn them into exit
statuses, so library code (and tests) can catch them.
"""

import contextlib
import errno
import os
import re
import resource
import signal
import sys

EXIT_ERROR = 1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_received = []


class TrainingStopped(Exception):
    """A fault that ends a run with one line and ``exit_status``."""

    exit_status = EXIT_ERROR
    label = "error: "


class Interrupted(TrainingStopped):
    """SIGTERM or SIGINT arrived; the run saved ``checkpoint`` at ``step``."""

    label = ""  # asked for, not an error

    def __init__(self, signum, step, checkpoint=None):
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint
        self.exit_status = 128 + signum
        saved = (f"saved {os.path.basename(checkpoint)}; rerun the same "
                 f"command to resume" if checkpoint else
                 "this program keeps no checkpoints; event files flushed")
        super().__init__(f"stopped by {signal.Signals(signum).name} at step "
                         f"{step}; {saved}")


class Diverged(TrainingStopped):
    """Training produced NaN or Inf at ``step``; the run stopped before
    saving anything of it, so ``checkpoint`` (the newest) is finite."""

    def __init__(self, what, step, checkpoint=None):
        self.step = step
        kept = (f"the newest checkpoint is {os.path.basename(checkpoint)}"
                if checkpoint else "no checkpoint was saved")
        super().__init__(f"{what} at step {step}; stopped without saving "
                         f"({kept}). Try a smaller --learning_rate")


class NonFiniteLossError(Diverged):
    """The loss (``name``) became NaN or Inf."""

    def __init__(self, name, value, step, checkpoint=None):
        super().__init__(f"{name} is {value}", step, checkpoint)


class WriteFailedError(TrainingStopped):
    """A checkpoint or event file could not be written (disk full, file too
    large, ...)."""


def stop_requested():
    """The number of the first stop signal received, or None."""
    return _received[0] if _received else None


def _on_stop_signal(signum, frame):
    """Remembers the signal; a second one gets Python's default action."""
    del frame
    _received.append(signum)
    for each in _STOP_SIGNALS:
        signal.signal(each, signal.SIG_DFL if each == signal.SIGTERM
                      else signal.default_int_handler)


@contextlib.contextmanager
def stop_signals():
    """Within, SIGTERM and SIGINT ask the training loop to stop and save."""
    previous = {each: signal.getsignal(each) for each in _STOP_SIGNALS}
    del _received[:]
    for each in _STOP_SIGNALS:
        signal.signal(each, _on_stop_signal)
    try:
        yield
    finally:
        for each, handler in previous.items():
            signal.signal(each, handler)
        del _received[:]


def raise_if_stop_requested(step, save):
    """Between steps: on a stop signal, ``save()`` (returns the checkpoint
    path, or None for a program without checkpoints) and raise Interrupted."""
    signum = stop_requested()
    if signum is not None:
        raise Interrupted(signum, step, save())


def check_finite(name, value, step, newest_checkpoint):
    """Raises NonFiniteLossError unless ``value`` (a float) is finite.

    Args:
      newest_checkpoint: a callable returning the newest checkpoint on disk,
        for the message (called only on failure).
    """
    if value != value or value in (float("inf"), float("-inf")):
        raise NonFiniteLossError(name, value, step, newest_checkpoint())


class NonFiniteSummaryError(Diverged):
    """A histogram was asked to describe NaN or Inf values (the weights or
    activations diverged)."""

    def __init__(self, tags, step, checkpoint=None):
        super().__init__(f"{tags} hold NaN or Inf values", step, checkpoint)


_NON_FINITE_HISTOGRAM = re.compile(
    r"histogram of NaN or Inf values: (.*?) at step (-?\d+)")


def non_finite_histogram(error):
    """(tags, step) when ``error`` is a histogram's NaN/Inf check failing
    (``tfmech.summaries.histograms``), else None."""
    match = _NON_FINITE_HISTOGRAM.search(str(error))
    return (match.group(1), int(match.group(2))) if match else None


# (errno, how TensorFlow's error text says it, what to tell the user)
_WRITE_FAILURES = (
    (errno.ENOSPC, "no space left", "no space left on the device"),
    (errno.EFBIG, "file too large", "file too large (the file size limit)"),
    (errno.EDQUOT, "quota exceeded", "disk quota exceeded"),
    (errno.EROFS, "read-only file system", "read-only file system"),
)


def write_failure(error):
    """What went wrong if ``error`` says a write failed for lack of room or
    permission to grow (an OSError's errno, or the text of TensorFlow's
    error, which keeps only strerror), else None."""
    text = str(error).lower()
    for number, fragment, description in _WRITE_FAILURES:
        if getattr(error, "errno", None) == number or fragment in text:
            return description
    return None


def event_file_problem(directory):
    """Why the event files under ``directory`` may be incomplete, or None.

    TensorFlow's summary writer drops what it cannot write without raising:
    an event file that reached the process's file-size limit, or a file
    system with no room left, loses the summaries after that point silently.
    The binaries ask this after training, so the user hears of it.
    """
    limit, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    for root, _, names in os.walk(directory):
        for name in sorted(names):
            path = os.path.join(root, name)
            if ("tfevents" in name and limit != resource.RLIM_INFINITY
                    and os.path.getsize(path) >= limit):
                return (f"event file {path} reached the file size limit "
                        f"({limit} bytes); the summaries after that are lost")
    stats = os.statvfs(directory)
    if stats.f_bavail == 0:
        return (f"the file system of {directory} is full; the event files may "
                f"miss the last summaries")
    return None


def exit_for(program, error):
    """Ends the program for a TrainingStopped ``error``: one line, its status."""
    print(f"{program}: {error.label}{error}", file=sys.stderr, flush=True)
    sys.exit(error.exit_status)
