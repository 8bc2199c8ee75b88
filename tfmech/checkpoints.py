"""Checkpoint names and layout, and moving weights between the two APIs.

v1 writes ``model.ckpt-STEP`` with a ``tf.compat.v1.train.Saver``: keys are
variable names (``hidden1/weights``). v2 writes ``ckpt-STEP`` with a
``tf.train.CheckpointManager``: keys are object paths. tfmech arranges the
v2 objects so the path spells the canonical name
(``model/hidden1/weights/.ATTRIBUTES/VARIABLE_VALUE``); from either file the
canonical names can be recovered, which is what lets a checkpoint written by
one API be restored by the other.

Moving averages keep the name TF1's ``ExponentialMovingAverage`` gave its
shadow variables, ``conv1/weights/ExponentialMovingAverage``. A v2 object
path cannot hang a child under a variable, so they live under a second root,
``ema/conv1/weights``; ``v2_key`` knows both roots. The CIFAR-10 loss
averages keep the original's names too (``ExponentialMovingAverage(0.9,
name='avg')`` applied to the loss tensors: ``total_loss/avg``).

``Entry`` describes one variable a pipeline's checkpoint holds (a layout is
a list of them), so a checkpoint from elsewhere can be checked before it is
used; see ``tfmech.cli.init_checkpoint``.
"""

import contextlib
import dataclasses
import glob
import os
import re
import shutil

import tensorflow as tf

from tfmech import faults
from tfmech import progress

V1_PREFIX = "model.ckpt"
V2_PREFIX = "ckpt"
V2_MODEL_ROOT = "model"
V2_EMA_ROOT = "ema"
EMA_SUFFIX = "/ExponentialMovingAverage"
LOSS_AVERAGE_SUFFIX = "/avg"
RAW_LOSS_SUFFIX = "/raw"
_V2_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"


class CheckpointMismatchError(ValueError):
    """A train_dir holds checkpoints of the other API (or of another model)."""


def api_of(checkpoint_path):
    """"v1" for ``.../model.ckpt-N``, "v2" for ``.../ckpt-N``, else None."""
    base = os.path.basename(checkpoint_path)
    if base.startswith(V1_PREFIX + "-"):
        return "v1"
    if base.startswith(V2_PREFIX + "-"):
        return "v2"
    return None


class DamagedCheckpointError(CheckpointMismatchError):
    """A directory holds checkpoints, and none of them can be read whole."""


_PREFIX_OF_API = {"v1": V1_PREFIX, "v2": V2_PREFIX}
_CHECKPOINT_FILE = re.compile(r"^(?P<prefix>.+)-(?P<step>\d+)"
                              r"\.(?:index|data-\d+-of-\d+)$")


def checkpoints_by_step(directory):
    """{prefix: {step: path}} of the checkpoints whose files are in
    ``directory`` (an ``.index`` or ``.data`` file makes one exist)."""
    found = {}
    for name in tf.io.gfile.listdir(directory):
        match = _CHECKPOINT_FILE.match(name)
        if match:
            found.setdefault(match["prefix"], {})[int(match["step"])] = (
                os.path.join(directory, f"{match['prefix']}-{match['step']}"))
    return found


def _state_file_problem(directory):
    """Why ``directory``'s ``checkpoint`` state file cannot be trusted, or
    None. (TensorFlow then quietly answers "no checkpoint", and a run that
    believed it would start over at step 0.)"""
    state_path = os.path.join(directory, "checkpoint")
    if not tf.io.gfile.exists(state_path):
        return None
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception as error:  # pylint: disable=broad-except
        return f"cannot be read ({error})"
    if state is None or not state.model_checkpoint_path:
        return "holds no checkpoint (damaged?)"
    named = os.path.join(directory,
                         os.path.basename(state.model_checkpoint_path))
    if not tf.io.gfile.exists(named + ".index"):
        return f"names {os.path.basename(named)}, whose .index file is missing"
    return None


def damage_of(path):
    """Why checkpoint ``path`` cannot be restored, or None if every tensor in
    it reads back whole (its checksums match)."""
    try:
        reader = tf.train.load_checkpoint(path)
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)
    except Exception as error:  # pylint: disable=broad-except
        first_line = str(error).strip().splitlines()[0] if str(error) else ""
        return f"{type(error).__name__}: {first_line}"
    return None


def newest_intact(directory, prefix, warn=True):
    """The newest checkpoint ``<prefix>-N`` in ``directory`` that reads back
    whole, or None when the directory holds none of that name.

    Found by the files' names, not only the ``checkpoint`` state file, so a
    damaged state file or a damaged newest checkpoint falls back to the
    newest intact one, with a printed warning for each thing skipped.

    Args:
      warn: print what is skipped (off for a check that precedes the run's
        own lookup, so each warning shows once).

    Raises:
      DamagedCheckpointError: checkpoints exist and none is intact; names
        them (a run must never silently start over at step 0).
    """
    if not tf.io.gfile.isdir(directory):
        return None
    candidates = checkpoints_by_step(directory).get(prefix, {})
    problem = _state_file_problem(directory)
    if problem and candidates and warn:
        progress.say(f"warning: {os.path.join(directory, 'checkpoint')} "
                     f"{problem}; using the checkpoint files themselves")
    damaged = []
    for step in sorted(candidates, reverse=True):
        path = candidates[step]
        damage = damage_of(path)
        if damage is None:
            if damaged and warn:
                progress.say(f"warning: skipped damaged "
                             f"{', '.join(damaged)}; resuming from "
                             f"{os.path.basename(path)}")
            return path
        damaged.append(f"{os.path.basename(path)} ({damage})")
    if damaged:
        raise DamagedCheckpointError(
            f"{directory}: no intact checkpoint; damaged: "
            f"{'; '.join(damaged)}. Move them away to start over at step 0")
    return None


def latest_checkpoint(train_dir, api, warn=True):
    """The newest intact checkpoint of ``api`` in ``train_dir``, or None if
    there is none (see ``newest_intact``).

    Raises CheckpointMismatchError when the directory's newest checkpoint was
    written by the other API: resuming from it would silently start over, and
    the other API's checkpoint manager could delete those files.
    """
    by_prefix = (checkpoints_by_step(train_dir)
                 if tf.io.gfile.isdir(train_dir) else {})
    newest = {prefix: max(steps) for prefix, steps in by_prefix.items()
              if prefix in _PREFIX_OF_API.values()}
    if newest:
        found_prefix = max(newest, key=newest.get)
        found = {V1_PREFIX: "v1", V2_PREFIX: "v2"}[found_prefix]
        if found != api:
            raise CheckpointMismatchError(
                f"--train_dir {train_dir} holds checkpoints written by "
                f"--api={found} (latest: {found_prefix}-{newest[found_prefix]}"
                f"); --api={api} will not resume from or overwrite them. Use "
                f"another --train_dir (with --init_checkpoint={train_dir} to "
                f"start from them), or --api={found}.")
    return newest_intact(train_dir, _PREFIX_OF_API[api], warn)


@contextlib.contextmanager
def write_guard(directory, prefix, step):
    """Around writing checkpoint ``<prefix>-<step>``: a full disk or a file
    size limit becomes ``faults.WriteFailedError`` (one line), and the
    half-written files are removed. TensorFlow writes a checkpoint into
    ``<prefix>-<step>_temp`` and updates the ``checkpoint`` state file only
    after it, so the previous checkpoint stays the newest and intact."""
    try:
        yield
    except Exception as error:  # pylint: disable=broad-except
        problem = faults.write_failure(error)
        if problem is None:
            raise
        # v2's manager writes into <prefix>-<step>_temp/, v1's Saver into
        # <prefix>-<step>.data-*.tempstate* files.
        for pattern in (f"{prefix}-{step}_temp*", f"{prefix}-{step}.*tempstate*"):
            for temp in glob.glob(os.path.join(directory, pattern)):
                if os.path.isdir(temp):
                    shutil.rmtree(temp, ignore_errors=True)
                else:
                    os.remove(temp)
        previous = tf.train.latest_checkpoint(directory)
        kept = (f"the newest checkpoint is still {os.path.basename(previous)}"
                if previous else "there is no earlier checkpoint")
        raise faults.WriteFailedError(
            f"could not write checkpoint {prefix}-{step} in {directory}: "
            f"{problem}; {kept}") from error


def moving_average_name(name):
    """``conv1/weights`` -> ``conv1/weights/ExponentialMovingAverage`` (TF1's)."""
    return name + EMA_SUFFIX


def loss_average_name(loss_name):
    """``total_loss`` -> ``total_loss/avg``: the shadow variable the original
    CIFAR-10 program's ``ExponentialMovingAverage(0.9, name='avg')`` made."""
    return loss_name + LOSS_AVERAGE_SUFFIX


def raw_loss_name(loss_name):
    """``total_loss`` -> ``total_loss/raw``: tfmech's copy of the last raw
    value (the original kept none, so its checkpoints lack these)."""
    return loss_name + RAW_LOSS_SUFFIX


@dataclasses.dataclass(frozen=True)
class Entry:
    """One variable of a pipeline's checkpoint, for checking others against.

    Attributes:
      name: canonical name.
      shape: the shape this run gives it.
      dtype: its dtype name ("float32", "int64").
      optional: it may be missing from a checkpoint made elsewhere and then
        starts at zero (loss averages, raw values); every model variable,
        moving average and ``global_step`` is required.
      set_by: the flags (without dashes) its shape follows, for the error
        message when a checkpoint's shape differs (``("hidden1",)``).
    """

    name: str
    shape: tuple
    dtype: str = "float32"
    optional: bool = False
    set_by: tuple = ()


def entries_of(specs, name_of=lambda name: name):
    """Required float32 entries for ``VariableSpec``s (named ``name_of(name)``,
    e.g. ``moving_average_name`` for their shadows)."""
    return [Entry(name_of(spec.name), tuple(spec.shape), set_by=spec.set_by)
            for spec in specs]


def global_step_entry():
    """``global_step``, int64, required: it says where a run continues."""
    return Entry("global_step", (), "int64")


def _v2_root_and_path(name):
    """(root, path under the root) of canonical ``name`` in a v2 checkpoint."""
    if name.endswith(EMA_SUFFIX):
        return V2_EMA_ROOT, name[:-len(EMA_SUFFIX)]
    return V2_MODEL_ROOT, name


def v2_key(name):
    """The key under which a v2 checkpoint stores canonical variable ``name``."""
    root, path = _v2_root_and_path(name)
    return f"{root}/{path}{_V2_SUFFIX}"


def key_for(checkpoint_path, name):
    """The key of canonical variable ``name`` inside either kind of checkpoint."""
    reader = tf.train.load_checkpoint(checkpoint_path)
    for key in (name, v2_key(name)):
        if reader.has_tensor(key):
            return key
    raise CheckpointMismatchError(
        f"checkpoint {checkpoint_path} has no variable {name!r} "
        f"(looked for {name!r} and {v2_key(name)!r})")


def read_canonical(checkpoint_path, names):
    """The values of canonical variables ``names`` from a v1 or v2 checkpoint."""
    reader = tf.train.load_checkpoint(checkpoint_path)
    return {name: reader.get_tensor(key_for(checkpoint_path, name))
            for name in names}


def global_step_of(checkpoint_path):
    """The ``global_step`` stored in a v1 or v2 checkpoint, as an int."""
    return int(read_canonical(checkpoint_path, ["global_step"])["global_step"])


def v1_saver_for(checkpoint_path, variables):
    """A v1 Saver that restores ``variables`` (canonical name -> variable) from
    ``checkpoint_path`` whichever API wrote it."""
    return tf.compat.v1.train.Saver(
        var_list={key_for(checkpoint_path, name): var
                  for name, var in variables.items()})


def assign_from(checkpoint_path, variables):
    """Eager: sets ``variables`` (canonical name -> variable) from a v1 or v2
    checkpoint."""
    values = read_canonical(checkpoint_path, list(variables))
    for name, var in variables.items():
        var.assign(values[name])


class ModelTree(tf.Module):
    """Holds variables so their checkpoint path is their canonical name.

    ``hidden1/weights`` becomes attribute ``weights`` of child ``hidden1``;
    ``tf.train.Checkpoint(model=ModelTree(...))`` then stores it under
    ``model/hidden1/weights``.
    """

    def __init__(self, variables, name=V2_MODEL_ROOT):
        super().__init__(name=name)
        for name, var in variables.items():
            node = self
            *scopes, leaf = name.split("/")
            for scope in scopes:
                if not hasattr(node, scope):
                    setattr(node, scope, tf.Module(name=scope))
                node = getattr(node, scope)
            setattr(node, leaf, var)


def v2_checkpoint(variables, optimizer=None):
    """A ``tf.train.Checkpoint`` of canonical variables (and optimizer state).

    Moving averages (names ending in ``EMA_SUFFIX``) go under the ``ema``
    root, everything else under ``model``.
    """
    by_root = {}
    for name, var in variables.items():
        root, path = _v2_root_and_path(name)
        by_root.setdefault(root, {})[path] = var
    parts = {root: ModelTree(tree, name=root) for root, tree in by_root.items()}
    if optimizer is not None:
        parts["optimizer"] = optimizer
    return tf.train.Checkpoint(**parts)
