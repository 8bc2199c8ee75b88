"""A real ``tensorboard --logdir`` on 127.0.0.1 for the tests that say so.

The server itself is ``tfmech.tools.tensorboard_server`` (scripts use it too);
here a server that fails to start fails the test with its stderr.
"""

import contextlib

import pytest

from tfmech.tools.tensorboard_server import (  # noqa: F401  (re-exported)
    TensorBoardError, free_port, get_json)
from tfmech.tools import tensorboard_server


@contextlib.contextmanager
def serving(logdir, min_runs, timeout_secs=300):
    """Yields the base URL once TensorBoard lists ``min_runs`` runs; stops it."""
    with contextlib.ExitStack() as stack:
        try:
            base = stack.enter_context(
                tensorboard_server.serving(logdir, min_runs, timeout_secs))
        except TensorBoardError as error:
            pytest.fail(str(error))
        yield base
