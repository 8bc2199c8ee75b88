"""Converts a TF1 checkpoint into a checkpoint of your TF2 model.

    python -m tfmech.convert_checkpoint TF1_CHECKPOINT OUT_DIR
        --model=package.module:function [--map=RULES_FILE]
        [--moving_averages] [--write [--overwrite]]

TF1_CHECKPOINT is a checkpoint prefix written by a ``tf.compat.v1`` Saver
(``/tmp/train/model.ckpt-1999``) or a directory (its newest checkpoint).
``--model`` names a function (in an importable module, or
``path/to/file.py:function``) that builds the TF2 model and returns it (a
Keras model with its weights built, or a ``tf.Module``), alone, or as
``(model, optimizer)``, or as ``{"model": ..., "optimizer": ...}``, the
optimizer a Keras one when the TF1 optimizer's state (Momentum, Adam) and
the step count are to be carried.

Every TF1 model variable is looked up among the TF2 variables by the rules
of ``--map`` (ordered regular-expression renames, ``PATTERN -> REPLACEMENT``
per line, or JSON), by name, by the built-in TF1 conventions (``weights``
-> ``kernel``, ``biases`` -> ``bias``, slim's ``BatchNorm``), then by leaf
name and a shape no other candidate shares. Optimizer slots follow their
variable; ``global_step`` becomes the optimizer's ``iterations``.

Without ``--write`` it prints the table of every pair and what is left on
either side, and writes nothing. With ``--write`` it writes
``OUT_DIR/ckpt-STEP`` and the ``checkpoint`` state file (refusing a
directory that already holds a checkpoint unless ``--overwrite``), restores
it into a freshly built model (and optimizer) with
``assert_existing_objects_matched`` and compares every value with the TF1
tensor it came from.

Exit status: 0 when every TF2 model variable gets a TF1 value (and, with
``--write``, the checkpoint was written and checked); 1 when the dry run
finds a model variable left uninitialized or a shape that cannot fit; 2 on
bad input (a checkpoint that is not one, a model function that does not
import, a bad rule, an occupied OUT_DIR...), with one line naming it.
"""

import sys

from absl import app
from absl import flags

from tfmech.cli import console
from tfmech.cli import flags as tfmech_flags

PROGRAM = "convert_checkpoint"
FLAGS = flags.FLAGS

flags.DEFINE_string("model", None, "The function that builds the TF2 model: "
                    "package.module:function or path/to/file.py:function. It "
                    "returns the model, (model, optimizer) or "
                    "{'model': ..., 'optimizer': ...}.")
flags.DEFINE_string("map", None, "A rules file: ordered regular-expression "
                    "renames of the TF1 names, 'PATTERN -> REPLACEMENT' per "
                    "line (optionally followed by 'transpose'), or a JSON "
                    "list of [PATTERN, REPLACEMENT] pairs.")
flags.DEFINE_boolean("write", False, "Write OUT_DIR/ckpt-STEP and check it; "
                     "without it, only print the table (a dry run).")
flags.DEFINE_boolean("overwrite", False, "With --write: replace a checkpoint "
                     "OUT_DIR already holds.")
flags.DEFINE_boolean("moving_averages", False, "Load each weight's "
                     "<var>/ExponentialMovingAverage into the model instead "
                     "of the weight (what an evaluation program restores).")
flags.mark_flag_as_required("model")


def usage_error(message):
    tfmech_flags.usage_error(PROGRAM, message)


def main(argv):
    positional = argv[1:]
    if len(positional) != 2:
        usage_error("expected TF1_CHECKPOINT OUT_DIR; got "
                    f"{len(positional)} arguments"
                    + (f": {' '.join(positional)}" if positional else ""))
    tf1_checkpoint, out_dir = positional
    tfmech_flags.configure_console()
    console.import_tensorflow()
    from tfmech.tools import checkpoint_conversion as conversion
    from tfmech.tools import checkpoint_rules
    try:
        rules = checkpoint_rules.read_rules(FLAGS.map) if FLAGS.map else ()
        if FLAGS.write:
            existing = conversion.existing_checkpoint(out_dir)
            if existing and not FLAGS.overwrite:
                raise conversion.ConversionError(
                    f"{out_dir}: already holds a checkpoint; choose another "
                    f"directory or pass --overwrite")
        function = conversion.load_function(FLAGS.model)
        conversion.read_tf1(tf1_checkpoint)   # a bad path, before building

        def make_objects():
            return conversion.load_objects(function, FLAGS.model)

        objects = make_objects()
        plan = conversion.plan(tf1_checkpoint, objects, rules,
                               moving_averages=FLAGS.moving_averages)
        print(conversion.format_table(plan))
        if not FLAGS.write:
            sys.exit(1 if plan.problems() else 0)
        path, checked = conversion.write(plan, objects, out_dir, make_objects,
                                         overwrite=FLAGS.overwrite)
    except (conversion.ConversionError, checkpoint_rules.RulesError) as error:
        usage_error(error)
    print(f"Wrote {path} (+ {out_dir}/checkpoint): restored into a fresh "
          f"model{' and optimizer' if objects.optimizer is not None else ''} "
          f"with assert_existing_objects_matched; {checked} values equal "
          f"their TF1 tensors.")


if __name__ == "__main__":
    app.run(main, flags_parser=tfmech_flags.flags_parser(PROGRAM))
