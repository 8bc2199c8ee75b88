"""A real ``tensorboard --logdir`` on 127.0.0.1 for the tests that say so."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(base, path, **params):
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    with urllib.request.urlopen(base + path + query, timeout=30) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def serving(logdir, min_runs, timeout_secs=300):
    """Yields the base URL once TensorBoard lists ``min_runs`` runs; stops it."""
    port = free_port()
    binary = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    process = subprocess.Popen(
        [binary, f"--logdir={logdir}", "--host=127.0.0.1", f"--port={port}",
         "--reload_interval=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout_secs
    try:
        while True:
            if process.poll() is not None:
                pytest.fail("tensorboard exited: " + process.stderr.read()[-2000:])
            try:
                if len(get_json(base, "/data/runs")) >= min_runs:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                pytest.fail(f"tensorboard did not serve {min_runs} runs in "
                            f"{timeout_secs} s")
            time.sleep(1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
