"""Running a binary in its own process to hurt it for real: signals, kills,
file-size limits, damaged files. Shared by the fault tests."""

import contextlib
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Binary:
    """``python -m tfmech.<program> args`` with its output collected as it
    arrives, so a test can act when a given line appears."""

    def __init__(self, program, *args, preexec_fn=None):
        # As a user runs it: the binary quiets TensorFlow itself.
        env = {key: value for key, value in os.environ.items()
               if key != "TF_CPP_MIN_LOG_LEVEL"}
        self.program = program
        self.process = subprocess.Popen(
            [sys.executable, "-m", f"tfmech.{program}", *args], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, preexec_fn=preexec_fn)
        self.stdout, self.stderr = [], []
        self._readers = [
            threading.Thread(target=self._collect, args=(stream, lines),
                             daemon=True)
            for stream, lines in ((self.process.stdout, self.stdout),
                                  (self.process.stderr, self.stderr))]
        for reader in self._readers:
            reader.start()

    @property
    def pid(self):
        return self.process.pid

    @staticmethod
    def _collect(stream, lines):
        for line in stream:
            lines.append(line.rstrip("\n"))

    def wait_for(self, pattern, timeout=300, or_success=False):
        """The first stdout line matching ``pattern`` (waits for it). With
        ``or_success``, a run that ends with exit 0 before printing it returns
        None instead of failing: it had too little left to reach that line."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            for line in list(self.stdout):
                if regex.search(line):
                    return line
            if self.process.poll() is not None:
                self._join()
                for line in self.stdout:
                    if regex.search(line):
                        return line
                if or_success and self.process.returncode == 0:
                    return None
                raise AssertionError(
                    f"{self.program} ended (exit {self.process.returncode}) "
                    f"before printing {pattern!r}:\n" + self.output())
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n"
                             + self.output())

    def send(self, signum):
        self.process.send_signal(signum)

    def finish(self, timeout=600):
        """Waits for the end; returns the exit status."""
        self.process.wait(timeout=timeout)
        self._join()
        return self.process.returncode

    def _join(self):
        for reader in self._readers:
            reader.join(timeout=30)

    def output(self):
        return "\n".join(self.stdout[-30:] + ["--- stderr:"] + self.stderr[-30:])

    def last_error_line(self):
        return self.stderr[-1] if self.stderr else ""


def run(program, *args, preexec_fn=None, timeout=600):
    """Runs a binary to its end; returns it (exit status in ``returncode``)."""
    binary = Binary(program, *args, preexec_fn=preexec_fn)
    binary.returncode = binary.finish(timeout)
    return binary


def checkpoint_values(path):
    """Every tensor of checkpoint ``path`` by its key (save counters and
    object-graph bookkeeping left out)."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(path)
    return {key: reader.get_tensor(key)
            for key in reader.get_variable_to_shape_map()
            if "_CHECKPOINTABLE_OBJECT_GRAPH" not in key
            and not key.startswith("save_counter")}


def assert_same_checkpoints(path, expected_path, atol=0.0):
    """The two checkpoints hold the same keys and values."""
    got, expected = checkpoint_values(path), checkpoint_values(expected_path)
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=0, atol=atol,
                                   err_msg=key)


def listing(directory):
    return sorted(os.listdir(directory))


@contextlib.contextmanager
def tmpfs(mount_point, options):
    """A real tmpfs mounted at ``mount_point`` with ``options`` (a size, ro)
    for the ``with`` block; skips the test where mounting is not allowed."""
    import pytest
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): "
                    f"{mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
