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
used; see ``tfmech.init_checkpoint``.
"""

import dataclasses
import os

import tensorflow as tf

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


def latest_checkpoint(train_dir, api):
    """The newest checkpoint of ``api`` in ``train_dir``, or None if there is none.

    Raises CheckpointMismatchError when the directory's newest checkpoint was
    written by the other API: resuming from it would silently start over, and
    the other API's checkpoint manager could delete those files.
    """
    latest = tf.train.latest_checkpoint(train_dir)
    if latest is None:
        return None
    found = api_of(latest)
    if found != api:
        raise CheckpointMismatchError(
            f"--train_dir {train_dir} holds checkpoints written by "
            f"--api={found or 'unknown'} (latest: {os.path.basename(latest)}); "
            f"--api={api} will not resume from or overwrite them. Use another "
            f"--train_dir (with --init_checkpoint={train_dir} to start from "
            f"them), or --api={found}.")
    return latest


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
