"""A TF1 name-based checkpoint, converted into a TF2 model's object-based one.

``convert_checkpoint`` is the binary; this is its library. The steps:

1. ``load_objects`` calls the user's model function (``module:function``):
   it returns the TF2 model, a Keras model with its weights built or a
   ``tf.Module``, alone, or as ``(model, optimizer)``, or as a dict
   ``{"model": model, "optimizer": optimizer}``. The optimizer is a Keras
   optimizer; it is built on the model's trainable variables if it is not.
2. ``plan`` pairs every TF1 variable with a TF2 one: the model's variables
   by the user's rules, by name, by the built-in rules, then by leaf name
   and a shape no other candidate has (``checkpoint_rules``); the
   optimizer's slots through the model variable they belong to; the global
   step as the optimizer's ``iterations``. What cannot be paired is listed,
   on either side, with the reason.
3. ``format_table`` prints the plan; ``write`` assigns the values, saves a
   ``tf.train.Checkpoint(model=..., optimizer=...)`` with a
   ``tf.train.CheckpointManager`` (``ckpt-STEP`` and the ``checkpoint``
   state file), builds the objects afresh, restores them with
   ``assert_existing_objects_matched`` and compares every value with what
   the TF1 tensor gave.

Optimizer state (TF1 ``tf.compat.v1.train`` optimizers -> Keras 3):

* ``GradientDescentOptimizer`` has no slots;
* ``MomentumOptimizer``'s slot ``<var>/Momentum`` is an accumulator ``a``
  with ``a <- mu * a + g; var <- var - lr * a``. Keras's ``SGD(momentum=mu)``
  keeps ``m <- mu * m - lr * g; var <- var + m``, so ``m = -lr * a`` (the
  same holds with Nesterov), with ``lr`` the rate the Keras optimizer uses
  at the converted step;
* ``AdamOptimizer``'s ``<var>/Adam`` and ``<var>/Adam_1`` are Keras
  ``Adam``'s momentum and velocity as they are. TF1 keeps the bias
  correction in two variables, ``beta1_power`` and ``beta2_power``, which
  after ``n`` steps hold ``beta1 ** (n + 1)`` and ``beta2 ** (n + 1)``;
  Keras computes them from ``iterations`` (``beta_1 ** (iterations + 1)``
  at the next step), so ``iterations = n``: the global step, or, in a
  graph without one, the ``n`` that ``beta1_power`` gives. The plan says
  whether the powers agree with the Keras ``beta_1``/``beta_2`` and ``n``;
* any other TF1 slot (RMSProp, Adagrad, Ftrl...) is listed as not carried;
* ``tf.train.ExponentialMovingAverage``'s ``<var>/ExponentialMovingAverage``
  go into the model in place of the weights with ``moving_averages=True``
  (what an evaluation program restores), or into a Keras optimizer made
  with ``use_ema=True``; otherwise they are listed as not carried.
"""

import dataclasses
import importlib
import importlib.util
import math
import os
import re
import sys

import numpy as np

from tfmech.tools import checkpoint_rules
from tfmech.tools.checkpoint_rules import RulesError  # noqa: F401 (re-export)


class ConversionError(ValueError):
    """Input the converter cannot use; the message is one line naming it."""


GLOBAL_STEP = "global_step"
EMA_SUFFIX = "ExponentialMovingAverage"
_SLOT = re.compile(r"^(?P<var>.+)/(?P<slot>(?:Adam|Momentum|RMSProp|Adagrad|"
                   r"AdagradDA|ProximalAdagrad|Ftrl|Adadelta|Adamax|Nadam)"
                   r"(?:_\d+)?|" + EMA_SUFFIX + r")$")
_TINY = 1e-30   # beta powers below this are float32 underflow, not data
_BETA_POWER = re.compile(r"^(?:.*/)?beta(?P<which>[12])_power(?:_\d+)?$")

# How a pair was made, as the table prints it.
BY_RULE = "rule"
BY_NAME = "name"
BY_BUILTIN = "built-in"
BY_NAME_AND_SHAPE = "leaf+shape"
BY_SLOT = "slot"
BY_STEP = "step count"
UNINITIALIZED = "UNINITIALIZED: no TF1 variable"


# ---------------------------------------------------------------------------
# The user's objects


def load_function(spec):
    """The function ``spec`` names: ``package.module:function`` or
    ``path/to/file.py:function``."""
    module_name, sep, function_name = spec.rpartition(":")
    if not sep or not module_name or not function_name:
        raise ConversionError(f"--model={spec}: expected "
                              f"package.module:function")
    try:
        if module_name.endswith(".py"):
            if not os.path.isfile(module_name):
                raise ConversionError(f"--model={spec}: no file {module_name}")
            name = os.path.splitext(os.path.basename(module_name))[0]
            module_spec = importlib.util.spec_from_file_location(name,
                                                                 module_name)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            if "" not in sys.path and os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())
            module = importlib.import_module(module_name)
    except ConversionError:
        raise
    except Exception as error:  # pylint: disable=broad-except
        raise ConversionError(
            f"--model={spec}: cannot import {module_name}: "
            f"{type(error).__name__}: {_one_line(error)}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConversionError(f"--model={spec}: {module_name} has no "
                              f"function {function_name}")
    return function


@dataclasses.dataclass
class Objects:
    """What the model function gave: the model and the optimizer (or None)."""
    model: object
    optimizer: object = None

    def checkpoint(self):
        import tensorflow as tf
        if self.optimizer is None:
            return tf.train.Checkpoint(model=self.model)
        return tf.train.Checkpoint(model=self.model, optimizer=self.optimizer)


def load_objects(function, spec="model"):
    """Calls the model function and checks what it returned."""
    import keras
    # Keras numbers unnamed layers per session (dense, dense_1...): a fresh
    # session gives the function's layers the same names on every call,
    # the names a new process running it would give them.
    keras.utils.clear_session()
    try:
        returned = function()
    except Exception as error:  # pylint: disable=broad-except
        raise ConversionError(f"--model={spec}: the function raised "
                              f"{type(error).__name__}: "
                              f"{_one_line(error)}") from None
    if isinstance(returned, dict):
        unknown = set(returned) - {"model", "optimizer"}
        if "model" not in returned or unknown:
            raise ConversionError(f"--model={spec}: a dict must have the key "
                                  f"'model' and at most 'optimizer', got "
                                  f"{sorted(returned)}")
        objects = Objects(returned["model"], returned.get("optimizer"))
    elif isinstance(returned, tuple) and len(returned) == 2:
        objects = Objects(*returned)
    else:
        objects = Objects(returned)
    import tensorflow as tf
    if not isinstance(objects.model, (tf.Module, keras.Model, keras.Layer)):
        raise ConversionError(f"--model={spec}: expected a Keras model or a "
                              f"tf.Module, got {type(objects.model).__name__}")
    if not objects.model.variables:
        raise ConversionError(f"--model={spec}: the model has no variables "
                              f"yet: build it (keras.Input, or call it once "
                              f"on a batch) before returning it")
    if objects.optimizer is not None:
        if not isinstance(objects.optimizer, keras.optimizers.Optimizer):
            raise ConversionError(
                f"--model={spec}: expected a Keras optimizer, got "
                f"{type(objects.optimizer).__name__}")
        if not objects.optimizer.built:
            objects.optimizer.build(objects.model.trainable_variables)
    return objects


def _one_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else repr(error)


# ---------------------------------------------------------------------------
# The two sides


@dataclasses.dataclass
class TF2Variable:
    """One variable of the model or of the optimizer."""
    name: str                 # Keras's path, or the object path in the model
    variable: object
    owner: str                # "model" or "optimizer"
    index: int                # position in owner.variables (stable per build)
    aliases: tuple = ()       # other names a TF1 name may match

    @property
    def shape(self):
        return tuple(self.variable.shape)

    @property
    def dtype(self):
        return np.dtype(_dtype_name(self.variable.dtype))


def _dtype_name(dtype):
    return getattr(dtype, "name", None) or str(dtype)


def _object_paths(root):
    """id(variable) -> the attribute path from ``root`` (breadth first)."""
    import tensorflow as tf
    view = tf.train.TrackableView(root)
    paths, seen, queue = {}, {id(root)}, [(root, "")]
    while queue:
        node, prefix = queue.pop(0)
        for name, child in view.children(node).items():
            if id(child) in seen:
                continue
            seen.add(id(child))
            path = f"{prefix}{name}"
            if isinstance(child, tf.Variable):
                paths.setdefault(id(child), path)
            else:
                queue.append((child, path + "/"))
    return paths


def model_variables(model):
    """The model's variables, named by Keras's ``path`` or, for plain
    ``tf.Variable``s, by their attribute path in the model (their TF name
    without ``:0`` matches too)."""
    object_paths = None
    found = []
    for index, variable in enumerate(model.variables):
        path = getattr(variable, "path", None)
        aliases = ()
        if not path:
            if object_paths is None:
                object_paths = _object_paths(model)
            path = object_paths.get(id(variable), variable.name.split(":")[0])
            aliases = (variable.name.split(":")[0],)
        found.append(TF2Variable(path, variable, "model", index, aliases))
    return found


def optimizer_variables(optimizer):
    if optimizer is None:
        return []
    return [TF2Variable(getattr(variable, "path", variable.name), variable,
                        "optimizer", index)
            for index, variable in enumerate(optimizer.variables)]


def read_tf1(checkpoint):
    """(path of the checkpoint, reader, {name: shape}, {name: dtype})."""
    import tensorflow as tf
    # The prefix, also when a user names one of its files.
    path = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", checkpoint)
    if os.path.isdir(checkpoint):
        path = tf.train.latest_checkpoint(checkpoint)
        if path is None:
            raise ConversionError(f"{checkpoint}: no checkpoint in this "
                                  f"directory (no 'checkpoint' state file "
                                  f"naming one)")
    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except (tf.errors.OpError, ValueError) as error:
        raise ConversionError(f"{checkpoint}: not a readable TF checkpoint: "
                              f"{_one_line(getattr(error, 'message', error))}"
                              ) from None
    if "_CHECKPOINTABLE_OBJECT_GRAPH" in shapes:
        raise ConversionError(f"{checkpoint}: already an object-based TF2 "
                              f"checkpoint (restore it with "
                              f"tf.train.Checkpoint)")
    shapes = {name: tuple(shape) for name, shape in shapes.items()}
    dtypes = {name: np.dtype(dtype.as_numpy_dtype) for name, dtype in
              dtypes.items()}
    return path, reader, shapes, dtypes


# ---------------------------------------------------------------------------
# The plan


@dataclasses.dataclass
class Pair:
    """One row of the table: a TF1 variable, a TF2 variable, or both."""
    tf1: str = None
    tf1_shape: tuple = None
    tf2: TF2Variable = None
    how: str = ""                  # BY_*; "" when unpaired
    renamed: str = None            # the name the lookup used, if not tf1
    transform: str = ""            # "transpose", "reshape", "x -lr", ...
    note: str = ""
    problem: str = ""              # shape that cannot fit, ambiguity...
    value_of: object = None        # reader -> np.ndarray (paired rows)

    @property
    def carried(self):
        return self.tf2 is not None and self.tf1 is not None and not self.problem


@dataclasses.dataclass
class Plan:
    checkpoint: str
    model_pairs: list
    optimizer_pairs: list
    tf1_left: list                 # Pairs with only tf1 (not carried)
    tf2_left: list                 # Pairs with only tf2 (not from TF1)
    step: int
    notes: list

    @property
    def pairs(self):
        return self.model_pairs + self.optimizer_pairs

    def problems(self):
        """One line per reason the conversion cannot be written."""
        lines = [f"{pair.tf1} -> {pair.tf2.name}: {pair.problem}"
                 for pair in self.pairs if pair.problem]
        lines += [f"{name}: {UNINITIALIZED}" for name in self.uninitialized()]
        return lines

    def uninitialized(self):
        """The model variables no TF1 value reaches."""
        return [pair.tf2.name for pair in self.tf2_left
                if pair.note == UNINITIALIZED]


def _lookup(name, candidates):
    """The TF2 variables ``name`` names: equal to a path (or an alias), or
    the end of one after a ``/`` (Keras paths start with the model's name)."""
    exact = [c for c in candidates if name == c.name or name in c.aliases]
    if exact:
        return exact
    return [c for c in candidates
            if c.name.endswith("/" + name)
            or any(alias.endswith("/" + name) for alias in c.aliases)]


def _fit(tf1_shape, tf2_shape, transpose):
    """(transform, problem) to put a TF1 value of ``tf1_shape`` into a TF2
    variable of ``tf2_shape``."""
    if transpose:
        if len(tf1_shape) != 2:
            return "", f"'transpose' needs a 2-D value, not {_shape(tf1_shape)}"
        tf1_shape = tf1_shape[::-1]
        if tf1_shape == tf2_shape:
            return "transpose", ""
    elif tf1_shape == tf2_shape:
        return "", ""
    squeezed = ([d for d in tf1_shape if d != 1], [d for d in tf2_shape if d != 1])
    if squeezed[0] == squeezed[1]:
        return ("transpose+" if transpose else "") + "reshape", ""
    return "", f"shape {_shape(tf1_shape)} cannot fit {_shape(tf2_shape)}"


def _reader_value(name, transform="", scale=None, dtype=None, shape=None):
    def value_of(reader):
        value = np.asarray(reader.get_tensor(name))
        if transform.startswith("transpose"):
            value = value.T
        if "reshape" in transform:
            value = value.reshape(shape)
        if scale is not None:
            value = value * np.asarray(scale, dtype=value.dtype)
        if dtype is not None:
            value = value.astype(dtype)
        return value
    return value_of


def plan(checkpoint, objects, rules=(), moving_averages=False):
    """Pairs every TF1 variable of ``checkpoint`` with the objects' ones."""
    path, reader, shapes, dtypes = read_tf1(checkpoint)
    model_vars = model_variables(objects.model)
    opt_vars = optimizer_variables(objects.optimizer)
    notes = []

    slots, beta_powers, model_names = {}, {}, []
    for name in sorted(shapes):
        slot = _SLOT.match(name)
        power = _BETA_POWER.match(name)
        if slot and slot.group("var") in shapes:
            slots.setdefault(slot.group("var"), {})[slot.group("slot")] = name
        elif power:
            beta_powers[name] = int(power.group("which"))
        elif name != GLOBAL_STEP:
            model_names.append(name)

    # -- model variables
    model_pairs, claimed, unpaired = [], {}, []
    for name in model_names:
        renamed, transpose, applied = checkpoint_rules.apply_rules(rules, name)
        how = BY_RULE if applied else BY_NAME
        found = _lookup(renamed, model_vars)
        if not found:
            for candidate in checkpoint_rules.builtin_candidates(renamed):
                found = _lookup(candidate, model_vars)
                if found:
                    renamed = candidate
                    how = f"{BY_RULE}+{BY_BUILTIN}" if applied else BY_BUILTIN
                    break
        pair = Pair(tf1=name, tf1_shape=shapes[name], how=how,
                    renamed=renamed if renamed != name else None)
        if len(found) > 1:
            pair.how = ""
            pair.problem = ("matches " + ", ".join(c.name for c in found)
                            + ": name them apart with a rule")
            unpaired.append((pair, transpose))
            continue
        if not found:
            unpaired.append((pair, transpose))
            continue
        pair.tf2 = found[0]
        model_pairs.append((pair, transpose))
    # Leaf name and a shape that only one candidate on each side has.
    taken = {id(pair.tf2.variable) for pair, _ in model_pairs}
    left_tf2 = [v for v in model_vars if id(v.variable) not in taken]
    still = []
    for pair, transpose in unpaired:
        if pair.problem:
            still.append(pair)
            continue
        leaf = checkpoint_rules.leaf_of(pair.renamed or pair.tf1)
        fits = [v for v in left_tf2 if v.name.rsplit("/", 1)[-1] == leaf
                and v.shape == pair.tf1_shape]
        rivals = [other for other, _ in unpaired if not other.problem
                  and checkpoint_rules.leaf_of(other.renamed or other.tf1) == leaf
                  and other.tf1_shape == pair.tf1_shape]
        if len(fits) == 1 and len(rivals) == 1:
            pair.tf2, pair.how = fits[0], BY_NAME_AND_SHAPE
            left_tf2.remove(fits[0])
            model_pairs.append((pair, transpose))
        else:
            still.append(pair)
    seen_tf2, averaged = {}, []
    for pair, transpose in model_pairs:
        pair.transform, pair.problem = _fit(pair.tf1_shape, pair.tf2.shape,
                                            transpose)
        if dtypes[pair.tf1] != pair.tf2.dtype:
            cast = f"cast {dtypes[pair.tf1].name} to {pair.tf2.dtype.name}"
            pair.transform = f"{pair.transform}, {cast}" if pair.transform else cast
        weight = pair.tf1
        if moving_averages:
            shadow = slots.get(weight, {}).get(EMA_SUFFIX)
            if shadow:
                pair.tf1 = shadow
                pair.note = f"the moving average of {weight}"
                averaged.append(Pair(
                    tf1=weight, tf1_shape=pair.tf1_shape,
                    note=f"--moving_averages: {shadow} loaded instead"))
            else:
                pair.note = "no moving average in the checkpoint: the weight"
        pair.value_of = _reader_value(pair.tf1, pair.transform,
                                      dtype=pair.tf2.dtype,
                                      shape=pair.tf2.shape)
        if id(pair.tf2.variable) in seen_tf2:
            pair.problem = (f"{pair.tf2.name} is also the target of "
                            f"{seen_tf2[id(pair.tf2.variable)]}")
        seen_tf2[id(pair.tf2.variable)] = pair.tf1
        claimed[weight] = pair
    model_pairs = [pair for pair, _ in model_pairs]
    tf1_left = [dataclasses.replace(pair, how="", note=pair.note or
                                    "no TF2 variable of this name")
                for pair in still]
    for pair in tf1_left:
        if pair.problem:
            pair.note, pair.problem = pair.problem, ""
    tf1_left += averaged

    # -- optimizer: iterations, slots, beta powers
    optimizer = objects.optimizer
    opt_pairs, opt_claimed = [], set()
    step = None
    if GLOBAL_STEP in shapes:
        step = int(reader.get_tensor(GLOBAL_STEP))
    kind = type(optimizer).__name__ if optimizer is not None else None
    iterations = None
    if optimizer is not None:
        iterations = next(v for v in opt_vars
                          if v.variable is optimizer.iterations)
    step_from = GLOBAL_STEP if step is not None else None
    if step is None and beta_powers and kind in ("Adam", "AdamW"):
        inferred = (_steps_from_power(reader, beta_powers, 1, optimizer.beta_1)
                    or _steps_from_power(reader, beta_powers, 2,
                                         optimizer.beta_2))
        if inferred is not None:
            step, step_from = inferred
            which = beta_powers[step_from]
            notes.append(f"no global_step in the checkpoint: {step} steps "
                         f"from {step_from} = beta_{which} ** (steps + 1)")
    if step is not None and iterations is not None:
        pair = Pair(tf1=step_from, tf1_shape=shapes[step_from], tf2=iterations,
                    how=BY_STEP)
        if step_from == GLOBAL_STEP:
            pair.value_of = _reader_value(GLOBAL_STEP, dtype=iterations.dtype)
        else:
            pair.value_of = lambda reader, step=step: np.asarray(
                step, iterations.dtype)
            pair.note = (f"{step} steps, from beta_{beta_powers[step_from]}"
                         f" ** (steps + 1)")
        opt_pairs.append(pair)
        opt_claimed.add(id(iterations.variable))
        optimizer.iterations.assign(step)   # the rate at this step, below
    elif step is not None:
        tf1_left.append(Pair(tf1=GLOBAL_STEP, tf1_shape=shapes[GLOBAL_STEP],
                             note=f"no optimizer to take it (the checkpoint "
                                  f"is numbered {step})"))

    for power_name, which in sorted(beta_powers.items()):
        if power_name == step_from:
            continue   # the iterations row above
        note = _beta_power_note(reader, power_name, which, optimizer, kind, step)
        pair = Pair(tf1=power_name, tf1_shape=shapes[power_name], note=note)
        if (kind in ("Adam", "AdamW") and iterations is not None
                and id(iterations.variable) in opt_claimed):
            pair.tf2, pair.how = iterations, BY_STEP
            pair.value_of = None   # checked through iterations
            opt_pairs.append(pair)
        else:
            tf1_left.append(pair)

    by_name = {v.variable.name: v for v in opt_vars}
    for tf1_var, var_slots in sorted(slots.items()):
        target = claimed.get(tf1_var)
        for slot_name, slot_var in sorted(var_slots.items()):
            pair = Pair(tf1=slot_var, tf1_shape=shapes[slot_var])
            if slot_name == EMA_SUFFIX:
                if moving_averages and target is not None:
                    continue   # a model row above
                keras_slot = "average"
                if optimizer is None or not optimizer.use_ema:
                    pair.note = ("moving average: not carried (pass "
                                 "--moving_averages to load it into the model, "
                                 "or give the optimizer use_ema=True)")
                    tf1_left.append(pair)
                    continue
            elif slot_name == "Adam" and kind in ("Adam", "AdamW"):
                keras_slot = "momentum"
            elif slot_name == "Adam_1" and kind in ("Adam", "AdamW"):
                keras_slot = "velocity"
            elif slot_name == "Momentum" and kind == "SGD" and optimizer.momentum:
                keras_slot = "momentum"
            else:
                what = (f"the TF2 optimizer is {kind}" if kind
                        else "no optimizer was given")
                pair.note = f"optimizer slot {slot_name}: not carried ({what})"
                tf1_left.append(pair)
                continue
            if target is None:
                pair.note = f"slot of {tf1_var}, which is not carried"
                tf1_left.append(pair)
                continue
            slot = _keras_slot(by_name, target.tf2, keras_slot)
            if slot is None:
                pair.note = (f"{kind} has no {keras_slot} variable for "
                             f"{target.tf2.name}")
                tf1_left.append(pair)
                continue
            pair.tf2, pair.how = slot, BY_SLOT
            pair.transform, pair.problem = _fit(
                pair.tf1_shape, slot.shape, "transpose" in target.transform)
            scale = None
            if slot_name == "Momentum":
                rate = float(np.asarray(optimizer.learning_rate))
                scale = -rate
                pair.transform = (pair.transform + " " if pair.transform
                                  else "") + f"x -lr ({rate:g})"
            pair.value_of = _reader_value(slot_var, pair.transform, scale,
                                          dtype=slot.dtype, shape=slot.shape)
            opt_pairs.append(pair)
            opt_claimed.add(id(slot.variable))

    tf2_left = []
    for v in model_vars:
        if id(v.variable) in seen_tf2:
            continue
        if v.name.rsplit("/", 1)[-1] == "seed_generator_state":
            tf2_left.append(Pair(tf2=v, note="Keras's random-number state "
                                 "(dropout): kept as built"))
        else:
            tf2_left.append(Pair(tf2=v, note=UNINITIALIZED))
    for v in opt_vars:
        if id(v.variable) in opt_claimed:
            continue
        if v.variable is getattr(optimizer, "iterations", None):
            note = "starts at 0 (no global step in the checkpoint)"
        elif v.name.rsplit("/", 1)[-1] == "learning_rate":
            note = (f"the TF2 optimizer's own value "
                    f"({float(np.asarray(v.variable)):g})")
        else:
            note = "zeros, as a new optimizer's (no TF1 slot)"
        tf2_left.append(Pair(tf2=v, note=note))
    return Plan(path, model_pairs, opt_pairs, tf1_left, tf2_left,
                step if step is not None else 0, notes)


def _keras_slot(by_name, target, slot):
    """Keras 3 names a slot ``<variable path with _ for />_<slot>``."""
    keys = [target.name.replace("/", "_")] + [
        alias.replace("/", "_").replace(":", "_") for alias in target.aliases]
    keys.append(target.variable.name.replace("/", "_").replace(":", "_"))
    for key in keys:
        found = by_name.get(f"{key}_{slot}")
        if found is not None:
            return found
    return None


def _steps_from_power(reader, beta_powers, which, beta):
    for name, number in sorted(beta_powers.items()):
        if number == which:
            power = float(reader.get_tensor(name))
            # A float32 running product: after a few hundred steps
            # beta1 ** n is below float32's normal range (or 0).
            if _TINY < power < 1 and 0 < beta < 1:
                return round(math.log(power) / math.log(beta)) - 1, name
    return None


def _beta_power_note(reader, name, which, optimizer, kind, step):
    power = float(reader.get_tensor(name))
    if kind not in ("Adam", "AdamW"):
        return (f"Adam's bias correction ({power:.6g}): not carried (the "
                f"TF2 optimizer is {kind})" if kind else
                f"Adam's bias correction ({power:.6g}): no optimizer given")
    beta = float(optimizer.beta_1 if which == 1 else optimizer.beta_2)
    if step is None:
        return f"{power:.6g}: no step count to check it against"
    expected = beta ** (step + 1)
    # TF1 multiplies in float32 at every step: its rounding grows with the
    # step count, and the product leaves float32's range after a while.
    if max(power, expected) < _TINY:
        return (f"{power:.6g}: float32 underflow, as beta_{which} ** "
                f"(step + 1) = {beta:g} ** {step + 1} would be: Keras "
                f"recomputes it from iterations")
    if math.isclose(power, expected, rel_tol=max(1e-4, 1e-7 * (step + 1))):
        return (f"= beta_{which} ** (step + 1) = {beta:g} ** {step + 1}: "
                f"Keras recomputes it from iterations")
    return (f"MISMATCH: {power:.6g}, but beta_{which} ** (step + 1) = "
            f"{beta:g} ** {step + 1} = {expected:.6g}: Keras will use the "
            f"latter (another beta_{which} in TF1, or steps without the "
            f"global step)")


# ---------------------------------------------------------------------------
# The table


def _shape(shape):
    return "[" + ",".join(str(d) for d in shape) + "]" if shape is not None else ""


def format_table(plan_):
    """The dry run's report, as text."""
    lines = [f"TF1 checkpoint: {plan_.checkpoint} (step {plan_.step})"]
    lines += [f"note: {note}" for note in plan_.notes]

    def section(title, pairs, header):
        if not pairs:
            return
        rows = [header] + [_row(pair) for pair in pairs]
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines.append("")
        lines.append(f"{title} ({len(pairs)})")
        for row in rows:
            lines.append("  " + "  ".join(
                cell.ljust(width) for cell, width in zip(row, widths)).rstrip())

    header = ("TF1 variable", "shape", "TF2 variable", "shape", "matched by",
              "renamed / transform / note")
    section("Model variables", plan_.model_pairs, header)
    section("Optimizer", plan_.optimizer_pairs, header)
    section("TF1 variables not carried", plan_.tf1_left, header)
    section("TF2 variables not from TF1", plan_.tf2_left, header)
    problems = plan_.problems()
    lines.append("")
    carried = sum(pair.carried for pair in plan_.pairs)
    lines.append(f"{carried} of {len(plan_.pairs)} pairs carried; "
                 f"{len(plan_.tf1_left)} TF1 variables not carried; "
                 f"{len(plan_.tf2_left)} TF2 variables not from TF1, "
                 f"{len(plan_.uninitialized())} of them model variables "
                 f"left uninitialized")
    lines += [f"PROBLEM: {line}" for line in problems]
    return "\n".join(lines)


def _row(pair):
    extra = []
    if pair.renamed:
        extra.append(f"as {pair.renamed}")
    if pair.transform:
        extra.append(pair.transform)
    if pair.note:
        extra.append(pair.note)
    if pair.problem:
        extra.append("PROBLEM: " + pair.problem)
    return (pair.tf1 or "-", _shape(pair.tf1_shape),
            pair.tf2.name if pair.tf2 else "-",
            _shape(pair.tf2.shape) if pair.tf2 else "",
            pair.how or "-", "; ".join(extra))


# ---------------------------------------------------------------------------
# Writing and checking


def existing_checkpoint(out_dir):
    """What in ``out_dir`` a conversion would overwrite, or None."""
    if not os.path.isdir(out_dir):
        return None
    for entry in sorted(os.listdir(out_dir)):
        if entry == "checkpoint" or ".index" in entry or ".data-" in entry:
            return os.path.join(out_dir, entry)
    return None


def write(plan_, objects, out_dir, make_objects, overwrite=False):
    """Writes ``out_dir/ckpt-STEP`` and checks it; returns (path, checked).

    ``make_objects`` builds the objects afresh for the check.
    """
    import tensorflow as tf
    problems = plan_.problems()
    if problems:
        raise ConversionError(problems[0] + (
            f" (and {len(problems) - 1} more: see the dry run)"
            if len(problems) > 1 else ""))
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConversionError(f"{out_dir}: exists and is not a directory")
    existing = existing_checkpoint(out_dir)
    if existing and not overwrite:
        raise ConversionError(f"{out_dir}: already holds a checkpoint "
                              f"({os.path.basename(existing)}); choose another "
                              f"directory or pass --overwrite")
    _, reader, _, _ = read_tf1(plan_.checkpoint)
    expected = {}
    for pair in plan_.pairs:
        if pair.value_of is None:
            continue
        value = pair.value_of(reader)
        pair.tf2.variable.assign(value)
        expected[(pair.tf2.owner, pair.tf2.index)] = (pair, value)
    os.makedirs(out_dir, exist_ok=True)
    if existing and overwrite:
        for entry in os.listdir(out_dir):
            if entry == "checkpoint" or ".index" in entry or ".data-" in entry:
                os.remove(os.path.join(out_dir, entry))
    manager = tf.train.CheckpointManager(objects.checkpoint(), out_dir,
                                         max_to_keep=None,
                                         checkpoint_name="ckpt")
    path = manager.save(checkpoint_number=plan_.step)
    try:
        checked = verify(path, make_objects, expected)
    except Exception:
        for entry in os.listdir(out_dir):
            if entry == "checkpoint" or entry.startswith(
                    os.path.basename(path) + "."):
                os.remove(os.path.join(out_dir, entry))
        raise
    return path, checked


def verify(path, make_objects, expected):
    """Restores ``path`` into fresh objects (every object matched) and
    compares every carried value; returns how many were compared."""
    fresh = make_objects()
    status = fresh.checkpoint().restore(path)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        raise ConversionError(f"{path}: the written checkpoint does not "
                              f"restore: {_one_line(error)}") from None
    owners = {"model": fresh.model.variables,
              "optimizer": fresh.optimizer.variables if fresh.optimizer else []}
    for (owner, index), (pair, value) in expected.items():
        restored = np.asarray(owners[owner][index])
        if restored.shape != value.shape or not np.array_equal(restored, value):
            raise ConversionError(f"{path}: {pair.tf2.name} restored differs "
                                  f"from {pair.tf1}")
    return len(expected)
