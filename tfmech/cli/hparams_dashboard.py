"""Records a training run for TensorBoard's HParams dashboard.

The dashboard sets runs side by side, one row per run: its hyperparameters
(here: the frozen HParams a binary built from its flags, plus ``--api``)
and its final metrics. A binary records both at its edge, around the
driver, so the tutorial code never sees it:

    hparams_dashboard.record_start(train_dir, program, api, hparams)
    record = driver.run_training(...)
    hparams_dashboard.record_final_metrics(train_dir, record)

Everything goes through TensorBoard's public HParams API
(``tensorboard.plugins.hparams.api``) and ``tf.summary`` into a new event
file in the run's directory; the row's trial ID is that directory's
absolute path, so two runs of the same flags stay two rows.
Every run also writes the same experiment configuration: the dashboard
reads one configuration per log directory and picks any run's, so all
tfmech runs describe one table (the union of the three pipelines'
hyperparameters, and the final metrics below).
"""

import dataclasses
import os
import time

from tfmech.cifar10.hparams import HParams as Cifar10HParams
from tfmech.mechanics101.hparams import HParams as Mechanics101HParams
from tfmech.mnist_summaries.hparams import HParams as MnistSummariesHParams

# Scalar tags the dashboard shows as metric columns. Written once, at the
# end of a run, at the run's final global step.
FINAL_LOSS = "final/loss"
FINAL_PRECISION = "final/precision"

# Columns besides the hyperparameters: which binary and which API made the
# run (a v1 and a v2 run of the same flags differ only there).
RUN_COLUMNS = ("program", "api")


def hyperparameter_names():
    """Every column name, in the order the dashboard lists them."""
    names = list(RUN_COLUMNS)
    for hparams_class in (Mechanics101HParams, MnistSummariesHParams,
                          Cifar10HParams):
        names += [field.name for field in dataclasses.fields(hparams_class)
                  if field.name not in names]
    return names


def session_values(program, api, hparams):
    """The row's hyperparameter values (unset options, None, are left out:
    the dashboard has no value for "not set")."""
    values = {"program": program, "api": api}
    values.update((name, value)
                  for name, value in dataclasses.asdict(hparams).items()
                  if value is not None)
    return values


def final_metrics(record):
    """``{tag: value}`` for what a finished run measured last.

    The loss of the last logged step; the precision of the last evaluation
    of the test split (Mechanics 101) or the last test accuracy (MNIST with
    summaries). A metric the program does not measure stays empty rather
    than being computed for the dashboard: MNIST with summaries prints no
    loss, and CIFAR-10's trainer evaluates nothing (``cifar10_eval``
    measures precision).
    """
    metrics = {}
    if record.losses:
        metrics[FINAL_LOSS] = float(record.losses[max(record.losses)])
    test = record.evaluations.get("test")
    if test and test[0]:
        metrics[FINAL_PRECISION] = test[1] / test[0]
    elif record.accuracies:
        metrics[FINAL_PRECISION] = float(
            record.accuracies[max(record.accuracies)])
    return metrics


def record_start(run_dir, program, api, hparams):
    """Writes the experiment configuration and this run's hyperparameters."""
    import tensorflow as tf
    from tensorboard.plugins.hparams import api as hp
    metrics = [hp.Metric(FINAL_LOSS, display_name="final loss"),
               hp.Metric(FINAL_PRECISION, display_name="final precision")]
    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default():
        hp.hparams_config(
            hparams=[hp.HParam(name) for name in hyperparameter_names()],
            metrics=metrics)
        hp.hparams(session_values(program, api, hparams),
                   trial_id=os.path.abspath(run_dir),
                   start_time_secs=time.time())
    writer.close()


def record_final_metrics(run_dir, record):
    """Writes the run's final metrics at its final step; nothing if the run
    trained no step (a resumed run already at --max_steps: its metrics are
    the earlier run's)."""
    metrics = final_metrics(record)
    if not metrics or record.final_step <= record.start_step:
        return
    import tensorflow as tf
    writer = tf.summary.create_file_writer(run_dir)
    with writer.as_default():
        for tag, value in metrics.items():
            tf.summary.scalar(tag, value, step=record.final_step)
    writer.close()
