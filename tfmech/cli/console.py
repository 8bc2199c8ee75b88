"""A console as quiet as the original tutorials', TensorFlow's log on request.

On a CPU-only machine TensorFlow 2.21 prints a dozen lines that say nothing
about the run: oneDNN and CPU-feature notices, "Could not find cuda
drivers", a "failed call to cuInit" error, and at every v2 checkpoint
"Sharding callback duration". They come from three places, each with its
own switch:

* C++ logging after start-up honours ``TF_CPP_MIN_LOG_LEVEL``, read once,
  so it must be set before TensorFlow is imported;
* lines logged while TensorFlow's shared libraries load come before absl's
  C++ logging is initialized, and absl then writes every line to stderr
  whatever the level (after a "WARNING: All log messages before
  absl::InitializeLog() is called are written to STDERR" banner).
  ``import_tensorflow`` therefore points file descriptor 2 at a temporary
  file during the import and passes on only the lines at or above the
  level (everything that is not a log line, e.g. a traceback, passes);
* TensorFlow's Python logging goes through absl logging, whose verbosity is
  absl's ``-v``/``--verbosity`` flag.

The binaries call ``configure`` with the ``-v`` value when one was given:
``-v 0`` shows INFO lines and up, ``-v -1`` warnings, ``-v -2`` errors. By
default C++ shows only fatal errors (unless ``TF_CPP_MIN_LOG_LEVEL`` is set
in the environment, which is then respected) and Python errors and up
(e.g. tf_should_use's reports of ops built and never run).
"""

import contextlib
import os
import re
import sys
import tempfile

TF_CPP_MIN_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"
QUIET_CPP_LEVEL = 3          # FATAL only: hides the CUDA-not-found ERROR line
# absl's ERROR: TensorFlow's Python warnings are deprecation notices about
# its own internals (e.g. on every v1 resume), nothing a user can act on.
QUIET_PYTHON_VERBOSITY = -2
_SEVERITIES = "IWEF"         # C++ levels 0..3, the first letter of a log line
_LOG_LINE = re.compile(r"^([IWEF])\d{4} ")
_ABSL_BANNER = "WARNING: All log messages before absl::InitializeLog()"

_cpp_level = None  # set by configure; None: import_tensorflow filters nothing


def cpp_level_for_verbosity(verbosity):
    """absl's ``-v`` (0 INFO, -1 WARNING, -2 ERROR, -3 FATAL; 1+ debug) as
    the matching ``TF_CPP_MIN_LOG_LEVEL`` (0 INFO .. 3 FATAL)."""
    return min(3, max(0, -verbosity))


def configure(verbosity=None):
    """Sets TensorFlow's C++ and Python log levels for this process.

    Args:
      verbosity: absl's ``-v`` value when the user gave one, else None for
        the quiet default.
    """
    global _cpp_level
    from absl import logging
    if verbosity is not None:
        _cpp_level = cpp_level_for_verbosity(verbosity)
        os.environ[TF_CPP_MIN_LOG_LEVEL] = str(_cpp_level)
        logging.set_verbosity(verbosity)
        return
    os.environ.setdefault(TF_CPP_MIN_LOG_LEVEL, str(QUIET_CPP_LEVEL))
    _cpp_level = _level_from_environment()
    logging.set_verbosity(QUIET_PYTHON_VERBOSITY)


def _level_from_environment():
    try:
        return min(3, max(0, int(os.environ[TF_CPP_MIN_LOG_LEVEL])))
    except ValueError:
        return 0


def import_tensorflow():
    """Imports TensorFlow, keeping its load-time lines below the level out.

    Does nothing when TensorFlow is already imported; filters nothing
    unless ``configure`` ran (library users keep TensorFlow's defaults).
    """
    if "tensorflow" in sys.modules:
        return
    if not _cpp_level:
        import tensorflow  # noqa: F401
        return
    with native_stderr_filtered(_cpp_level):
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def native_stderr_filtered(min_level):
    """Sends file descriptor 2 to a temporary file for the block, then
    writes back what ``filter_log_lines`` keeps (also when the block
    raises)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", errors="replace")
            kept = filter_log_lines(text, min_level)
            if kept:
                sys.stderr.write(kept)
                sys.stderr.flush()


def filter_log_lines(text, min_level):
    """``text`` without the C++ log lines below ``min_level`` (with their
    continuation lines) and without absl's pre-initialization banner."""
    kept = []
    keeping = True
    for line in text.splitlines(keepends=True):
        if line.startswith(_ABSL_BANNER):
            continue
        match = _LOG_LINE.match(line)
        if match:
            keeping = _SEVERITIES.index(match.group(1)) >= min_level
        if keeping:
            kept.append(line)
    return "".join(kept)
