"""A local ``tensorboard --logdir`` process, started and stopped from Python.

Tests that check what TensorBoard serves and scripts that take screenshots of
it need the same thing: a real TensorBoard on 127.0.0.1 on a port nobody
else uses, a way to know when it has loaded the runs (it answers HTTP before
it has read the event files), and a stop that cannot leave it running. This
module is that, in one place; it never touches TensorBoard's internals, only
its command line and its ``/data/runs`` route.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HOST = "127.0.0.1"


class TensorBoardError(RuntimeError):
    """TensorBoard exited, or did not serve the runs in time."""


def free_port(host=HOST):
    """A TCP port free on ``host`` now (the OS picks it), so several
    TensorBoards (parallel tests, other developers) never collide."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def get_json(base, path, **params):
    """GET ``base + path`` with query ``params`` and decode the JSON reply."""
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    with urllib.request.urlopen(base + path + query, timeout=30) as response:
        return json.loads(response.read())


def command(logdir, port, host=HOST):
    """The TensorBoard command line: this interpreter's TensorBoard (``-m
    tensorboard.main``, so it works in any virtual environment without its
    ``bin/`` on PATH), re-reading the log directory every second."""
    return [sys.executable, "-m", "tensorboard.main", f"--logdir={logdir}",
            f"--host={host}", f"--port={port}", "--reload_interval=1"]


def _listed_runs(base):
    """The runs TensorBoard lists now, or None while it does not answer."""
    try:
        return get_json(base, "/data/runs")
    except (OSError, ValueError):
        return None


def _stop(process):
    """Terminates TensorBoard by its own process handle, then kills it if
    it has not exited within 30 s."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def serving(logdir, min_runs=1, timeout_secs=300, host=HOST):
    """Runs TensorBoard over ``logdir``; yields its base URL
    (``http://127.0.0.1:PORT``) once ``/data/runs`` lists at least
    ``min_runs`` runs, and stops it on exit.

    Raises TensorBoardError, with the end of TensorBoard's stderr, when it
    exits early or has not listed the runs within ``timeout_secs``.
    """
    port = free_port(host)
    # stderr goes to a file, not a pipe: a pipe nobody reads would block a
    # long-running TensorBoard once its buffer is full.
    with tempfile.TemporaryFile() as stderr:
        # TensorBoard imports TensorFlow: its start-up lines only if asked.
        env = {"TF_CPP_MIN_LOG_LEVEL": "2", **os.environ}
        process = subprocess.Popen(command(logdir, port, host), env=env,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            yield _wait_for_runs(process, f"http://{host}:{port}", logdir,
                                 min_runs, timeout_secs, stderr)
        finally:
            _stop(process)


def _wait_for_runs(process, base, logdir, min_runs, timeout_secs, stderr):
    """Returns ``base`` once TensorBoard lists ``min_runs`` runs; raises
    TensorBoardError if it exits first or the time runs out."""
    deadline = time.monotonic() + timeout_secs
    while True:
        if process.poll() is not None:
            stderr.seek(0)
            tail = stderr.read().decode("utf-8", errors="replace")[-2000:]
            last = (tail.strip().splitlines() or ["no output"])[-1]
            # One line that says why (its last), then the rest for a log.
            raise TensorBoardError(
                f"tensorboard --logdir={logdir} exited with status "
                f"{process.returncode}: {last}\n{tail}")
        runs = _listed_runs(base)
        if runs is not None and len(runs) >= min_runs:
            return base
        if time.monotonic() > deadline:
            raise TensorBoardError(
                f"tensorboard --logdir={logdir} listed {len(runs or [])} of "
                f"{min_runs} runs after {timeout_secs} s")
        time.sleep(0.5)
