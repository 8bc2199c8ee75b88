"""Model variables that start identical in both APIs.

Each model lists its variables once as ``VariableSpec``s under the original
tutorial's names (``hidden1/weights``, ``softmax_linear/biases``...). Their
initial values come from *stateless* random ops keyed by (seed, hash of the
name), so a v1 graph and an eager v2 program build bit-identical weights
without sharing any random-number-generator state, and adding a variable
never changes the initial value of another.
"""

import dataclasses
import zlib

import tensorflow as tf

GLOBAL_STEP = "global_step"


@dataclasses.dataclass(frozen=True)
class VariableSpec:
    """One model variable: canonical name, shape and how it starts.

    ``initializer`` is "truncated_normal" (mean 0, ``stddev``) or "constant"
    (every element ``value``). ``set_by`` names the flags the shape follows
    (``("hidden1",)``), so an error about a checkpoint of another shape can
    say which flag to change.
    """

    name: str
    shape: tuple
    initializer: str = "constant"
    stddev: float = 0.0
    value: float = 0.0
    set_by: tuple = ()

    def __post_init__(self):
        if self.initializer not in ("truncated_normal", "constant"):
            raise ValueError(
                f"variable {self.name}: unknown initializer {self.initializer!r}")


def name_key(name):
    """A stable 31-bit integer for a variable name (second half of its seed)."""
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def initial_value(spec, seed):
    """The starting value of ``spec`` as a float32 tensor, pure in (seed, name).

    Works in eager mode and inside a graph (where it becomes the variable's
    initializer op), giving the same numbers in both.
    """
    if spec.initializer == "constant":
        return tf.fill(spec.shape, tf.constant(spec.value, tf.float32))
    return tf.random.stateless_truncated_normal(
        spec.shape, seed=[seed, name_key(spec.name)], stddev=spec.stddev,
        dtype=tf.float32)


def create_variables(specs, seed):
    """Creates one ``tf.Variable`` per spec, named by its canonical name.

    In a tf.compat.v1 graph these are graph variables that
    ``global_variables_initializer`` sets and a ``Saver`` stores under their
    names; in eager mode they are ordinary TF2 variables. Either way
    ``variable.name`` is ``"<canonical name>:0"``.

    Returns:
      A dict from canonical name to variable, in spec order.
    """
    return {spec.name: tf.Variable(initial_value(spec, seed), name=spec.name)
            for spec in specs}


def create_global_step():
    """The step counter every pipeline keeps, named ``global_step`` (int64)."""
    return tf.Variable(0, dtype=tf.int64, trainable=False, name=GLOBAL_STEP)


def create_shadow_variables(specs, seed, name_of):
    """One non-trainable copy per spec, starting at the spec's initial value.

    TF1's ``ExponentialMovingAverage`` starts each shadow variable at its
    variable's initial value; keying the stateless initializer by the
    *variable's* name (not the shadow's) gives that in both APIs.

    Args:
      specs: the ``VariableSpec``s of the variables to shadow.
      seed: the run's seed (the one the variables were created with).
      name_of: canonical variable name -> the shadow's name.

    Returns:
      A dict from the shadow's name to its variable, in spec order.
    """
    return {name_of(spec.name): tf.Variable(initial_value(spec, seed),
                                            trainable=False,
                                            name=name_of(spec.name))
            for spec in specs}
