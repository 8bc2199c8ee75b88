"""Starting a new train_dir from a checkpoint written elsewhere.

A TF1 user's checkpoints come from the original programs: ``model.ckpt-999``
of fully_connected_feed.py (the six weights and biases, ``global_step``) or
of cifar10_train.py (also the weights' ``<var>/ExponentialMovingAverage``
and the loss averages ``cross_entropy/avg``, ``local3/weight_loss/avg``,
``local4/weight_loss/avg``, ``total_loss/avg``). Their keys are the
canonical names, as in tfmech's v1 checkpoints; tfmech's v2 checkpoints
spell the same names as object paths. Either way ``--init_checkpoint``
lets a training binary start a fresh ``--train_dir`` from one:

1. every variable of the pipeline's layout (``checkpoints.Entry`` list) is
   looked up under either spelling and its shape checked; a missing or
   mis-shaped required variable is an error naming it (with both shapes
   and the flags the shape follows), before anything is written;
2. the values are written into ``--train_dir`` as a checkpoint of the
   run's own API (``model.ckpt-N`` or ``ckpt-N``) at the source's global
   step N, optional variables it lacks (loss averages, raw values) at zero
   with a printed note, other variables it has (e.g. an optimizer's
   iteration count) left out;
3. the driver then resumes from that checkpoint as from its own, at step N,
   drawing the batches an uninterrupted run would have drawn.

Writing a checkpoint first, rather than teaching each driver a second way
to restore, keeps one restore path per API, and leaves the directory
resumable if the run is stopped. A ``--train_dir`` that already holds
checkpoints is resumed as usual (``--init_checkpoint`` is then not used, so
rerunning the same command continues); one whose newest checkpoint cannot
be resumed by this API (an original checkpoint copied there, say) is an
error that says to use ``--init_checkpoint`` instead.
"""

import os

import numpy as np
import tensorflow as tf

from tfmech import checkpoints
from tfmech import progress
from tfmech.checkpoints import CheckpointMismatchError


def prepare_train_dir(train_dir, api, layout, init_checkpoint=None):
    """Readies ``train_dir`` for a driver of ``api``; call before it runs.

    Args:
      train_dir: the run's ``--train_dir``.
      api: "v1" or "v2".
      layout: the pipeline's ``checkpoints.Entry`` list for this run's flags.
      init_checkpoint: ``--init_checkpoint`` (a checkpoint prefix or a
        directory), or None.

    Returns:
      The checkpoint written from ``init_checkpoint``, or None.

    Raises:
      CheckpointMismatchError: the checkpoint cannot be used; one line.
    """
    # Refuses the other API's checkpoints and a directory of damaged ones.
    latest = checkpoints.latest_checkpoint(train_dir, api, warn=False)
    if latest is not None:
        if init_checkpoint:
            progress.say(f"note: --train_dir {train_dir} already holds "
                         f"checkpoints; resuming from them, --init_checkpoint "
                         f"is not used")
        _check_resumable(train_dir, latest, layout)
        return None
    if init_checkpoint is None:
        return None
    return import_checkpoint(resolve(init_checkpoint), train_dir, api, layout)


def resolve(path):
    """The checkpoint ``--init_checkpoint`` names: a prefix, or a directory's
    newest (also when the directory was moved: the original's ``checkpoint``
    file holds absolute paths)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        state = tf.train.get_checkpoint_state(path)
        if state is None or not state.model_checkpoint_path:
            raise CheckpointMismatchError(
                f"--init_checkpoint {path}: the directory has no `checkpoint` "
                f"file naming a checkpoint; pass the checkpoint's prefix, "
                f"e.g. {os.path.join(path, 'model.ckpt-999')}")
        named = state.model_checkpoint_path
        for candidate in (named, os.path.join(path, os.path.basename(named))):
            if tf.io.gfile.exists(candidate + ".index"):
                return candidate
        path = named
    if not tf.io.gfile.exists(path + ".index"):
        raise CheckpointMismatchError(
            f"--init_checkpoint {path}: no such checkpoint ({path}.index does "
            f"not exist)")
    return path


def import_checkpoint(source, train_dir, api, layout):
    """Writes ``layout``'s variables from ``source`` into ``train_dir`` as an
    ``api`` checkpoint at the source's global step; returns its path."""
    what = f"--init_checkpoint {source}"
    contents = _Contents(source)
    values, missing, confirmed = {}, [], set()
    for entry in layout:
        key = contents.key(entry.name)
        if key is None and entry.optional:
            missing.append(entry.name)
            values[entry.name] = np.zeros(entry.shape, entry.dtype)
            continue
        if key is None:
            raise CheckpointMismatchError(
                f"{what}: has no variable {entry.name!r}, which this model "
                f"needs; is it a checkpoint of this model?")
        _check_shape(what, contents, key, entry, confirmed,
                     otherwise="pass another --init_checkpoint")
        values[entry.name] = contents.reader.get_tensor(key).astype(entry.dtype)
    step = int(values[checkpoints.global_step_entry().name])
    progress.say(f"Initializing {train_dir} from {source} at step {step}")
    if missing:
        progress.say(f"note: {os.path.basename(source)} has no "
                     f"{', '.join(missing)}; they start at 0")
    os.makedirs(train_dir, exist_ok=True)
    write = _write_v1 if api == "v1" else _write_v2
    return write(train_dir, values, step)


def _check_resumable(train_dir, latest, layout):
    """Raises unless the driver can restore every variable of ``layout``
    from ``latest`` as it is (names, shapes and dtypes)."""
    what = f"--train_dir {train_dir}: {os.path.basename(latest)}"
    contents = _Contents(latest)
    confirmed = set()
    for entry in layout:
        key = contents.key(entry.name)
        if key is not None:
            _check_shape(what, contents, key, entry, confirmed,
                         otherwise="use another directory")
            found = contents.dtypes[key].name
        if key is None or found != entry.dtype:
            problem = (f"has no variable {entry.name!r}" if key is None else
                       f"holds {entry.name} as {found}, not {entry.dtype}")
            raise CheckpointMismatchError(
                f"{what} {problem}, so it was not written by tfmech; start a "
                f"new --train_dir from it with --init_checkpoint={latest}")


class _Contents:
    """A checkpoint's keys, shapes and dtypes, read once."""

    def __init__(self, path):
        self.reader = tf.train.load_checkpoint(path)
        self.shapes = self.reader.get_variable_to_shape_map()
        self.dtypes = self.reader.get_variable_to_dtype_map()

    def key(self, name):
        """Where canonical ``name`` is stored (v1 or v2 spelling), or None."""
        for key in (name, checkpoints.v2_key(name)):
            if key in self.shapes:
                return key
        return None


def _check_shape(what, contents, key, entry, confirmed, otherwise):
    """Raises unless ``entry``'s variable has this run's shape.

    ``confirmed`` gathers the flags of the entries that matched so far (the
    layout lists ``hidden1/weights`` before ``hidden2/weights``), so when one
    dimension differs and a single flag it follows is not yet confirmed,
    the error names that flag with the checkpoint's value and this run's,
    and says what else the user can do (``otherwise``).
    """
    shape = tuple(contents.shapes[key])
    if shape == tuple(entry.shape):
        confirmed.update(entry.set_by)
        return
    suspects = [flag for flag in entry.set_by if flag not in confirmed]
    differing = [i for i, (there, here) in enumerate(zip(shape, entry.shape))
                 if there != here]
    if len(suspects) == 1 and len(differing) == 1 and len(shape) == len(
            entry.shape):
        flag, dim = suspects[0], differing[0]
        raise CheckpointMismatchError(
            f"{what} was written with --{flag}={shape[dim]}, this run has "
            f"--{flag}={entry.shape[dim]} ({entry.name} has shape "
            f"{list(shape)} there, {list(entry.shape)} here); pass "
            f"--{flag}={shape[dim]} to go on with it, or {otherwise}")
    flags = " and ".join(f"--{flag}" for flag in entry.set_by)
    hint = f"set by {flags}" if flags else "no flag changes it"
    raise CheckpointMismatchError(
        f"{what}: {entry.name} has shape {list(shape)} there but "
        f"{list(entry.shape)} in this run ({hint})")


def _write_v1(train_dir, values, step):
    """``model.ckpt-<step>`` through a Saver, keys = canonical names. No
    ``.meta``: the graph here is not the training graph."""
    with tf.Graph().as_default():
        variables = {name: tf.Variable(value, name=name)
                     for name, value in values.items()}
        saver = tf.compat.v1.train.Saver(variables, save_relative_paths=True)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, os.path.join(train_dir,
                                                    checkpoints.V1_PREFIX),
                              global_step=step, write_meta_graph=False)


def _write_v2(train_dir, values, step):
    """``ckpt-<step>`` laid out as the v2 drivers' ``v2_checkpoint``."""
    variables = {name: tf.Variable(value, name=name)
                 for name, value in values.items()}
    manager = tf.train.CheckpointManager(
        checkpoints.v2_checkpoint(variables), train_dir, max_to_keep=None,
        checkpoint_name=checkpoints.V2_PREFIX)
    return manager.save(checkpoint_number=step)
