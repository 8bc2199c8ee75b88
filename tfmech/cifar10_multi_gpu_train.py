"""Trains the CIFAR-10 network on several devices, or several machines.

    python -m tfmech.cifar10_multi_gpu_train --num_gpus=2 [--api=v1|v2] ...
    # one process per machine; --task_index=1 on host2:
    python -m tfmech.cifar10_multi_gpu_train --api=v2
        --worker_hosts=host1:2222,host2:2222 --task_index=0

The flags of cifar10_train, plus the original's ``--num_gpus``. Unlike the
original, ``--batch_size`` is the global batch: N devices at batch B train
exactly as one device at batch B (each device gets B/N examples a step).

``--num_gpus=N`` trains on the first N GPUs; on a machine without GPUs it
splits the CPU into N logical devices (same cores, so no speed-up: for
checking the multi-device program without GPUs). ``--api=v1`` builds one
tower per device (``multi_gpu_train_v1``); ``--api=v2`` runs the
single-device step under ``tf.distribute.MirroredStrategy``, or under
``MultiWorkerMirroredStrategy`` when ``TF_CONFIG`` (or ``--worker_hosts``)
names a cluster. Summaries and checkpoints keep cifar10_train's tags and
names, so cifar10_eval and TensorBoard read them unchanged.

A cluster in TF_CONFIG (what --worker_hosts=h0:p0,h1:p1 --task_index=1
builds): ``{"cluster": {"worker": ["h0:p0", "h1:p1"]}, "task": {"type":
"worker", "index": 1}}``; a "chief" job of one task may be added, and is
then the chief instead of worker 0. The chief writes the event file and the
checkpoints in --train_dir; the other workers restore from it (so it must be
a shared directory) and save into temporary directories they delete.
"""

import os
import sys

from absl import app
from absl import flags

from tfmech import cifar10_train
from tfmech.cli import flags as tfmech_flags
from tfmech.cli import hparams_dashboard

FLAGS = flags.FLAGS
PROGRAM = "cifar10_multi_gpu_train"

tfmech_flags.define_positive_integer(
    "num_gpus", 1, "How many GPUs to use; without GPUs, how many logical "
    "devices to split the CPU into. --batch_size is split evenly over them.")
flags.DEFINE_string(
    "worker_hosts", "", "Comma-separated host:port of every worker of a "
    "multi-worker job (--api=v2); builds TF_CONFIG. Worker 0 is the chief.")
flags.DEFINE_integer("task_index", None, "This worker's index in "
                     "--worker_hosts.", lower_bound=0)
tfmech_flags.define_positive_integer(
    "cluster_wait_secs", 600, "Multi-worker: how long to wait for every "
    "worker to join before giving up.")
# --help lists cifar10_train's flags too: they are this binary's.
flags.adopt_module_key_flags(cifar10_train)
flags.adopt_module_key_flags(tfmech_flags)


def cluster_or_exit():
    """The multi-worker cluster the flags or TF_CONFIG name, or None."""
    from tfmech import distribute
    try:
        cluster = distribute.cluster_from(os.environ, FLAGS.worker_hosts,
                                          FLAGS.task_index)
    except distribute.ClusterError as error:
        tfmech_flags.usage_error(PROGRAM, error)
    if cluster is not None and FLAGS.api != "v2":
        tfmech_flags.usage_error(
            PROGRAM, "several machines (TF_CONFIG or --worker_hosts) need "
            "--api=v2 (tf.distribute.MultiWorkerMirroredStrategy)")
    return cluster


def check_batch_or_exit(batch_size, num_gpus, cluster):
    from tfmech import distribute
    workers = 1 if cluster is None else cluster.num_workers
    try:
        distribute.check_divisible(
            batch_size, num_gpus * workers,
            "devices" if cluster is None else "devices of all workers")
    except distribute.ClusterError as error:
        tfmech_flags.usage_error(PROGRAM, error)


def train(hparams, batches_dir, cluster):
    """Configures the devices (before TensorFlow starts them), then trains."""
    from tfmech import distribute
    devices = distribute.local_devices(FLAGS.num_gpus,
                                       multi_worker=cluster is not None)
    if FLAGS.api == "v1":
        from tfmech.cifar10 import multi_gpu_train_v1
        tfmech_flags.output_dir_or_exit(PROGRAM, "train_dir")
        with tfmech_flags.guarded_training(PROGRAM):
            hparams_dashboard.record_start(FLAGS.train_dir, PROGRAM, "v1",
                                           hparams)
            record = multi_gpu_train_v1.run_training(
                hparams, batches_dir, FLAGS.train_dir, devices,
                log_device_placement=FLAGS.log_device_placement)
            hparams_dashboard.record_final_metrics(FLAGS.train_dir, record)
            return record
    from tfmech.cifar10 import multi_worker_v2
    strategy = distribute.make_strategy(devices, cluster,
                                        wait_secs=FLAGS.cluster_wait_secs)
    # Once the cluster is up: a cluster that never forms writes nothing.
    tfmech_flags.output_dir_or_exit(PROGRAM, "train_dir")
    # Only the chief writes --train_dir; the other workers do not lock it.
    is_chief = cluster is None or cluster.is_chief
    with tfmech_flags.guarded_training(PROGRAM, lock=is_chief):
        if is_chief:
            hparams_dashboard.record_start(FLAGS.train_dir, PROGRAM, "v2",
                                           hparams)
        record = multi_worker_v2.run_training(
            hparams, batches_dir, FLAGS.train_dir, strategy,
            log_device_placement=FLAGS.log_device_placement)
        if is_chief:
            hparams_dashboard.record_final_metrics(FLAGS.train_dir, record)
        return record


def main(argv):
    tfmech_flags.reject_positional_arguments(PROGRAM, argv)
    tfmech_flags.warn_about_absl_log_dir(PROGRAM, "train_dir")
    hparams = cifar10_train.hparams_from_flags()
    cluster = cluster_or_exit()
    check_batch_or_exit(hparams.batch_size, FLAGS.num_gpus, cluster)
    batches_dir = tfmech_flags.read_cifar10_or_exit(PROGRAM)
    tfmech_flags.start_tensorflow()
    import tensorflow as tf
    from tfmech import distribute
    from tfmech.cli import init_checkpoint
    from tfmech.checkpoints import CheckpointMismatchError
    from tfmech.cifar10 import model
    try:
        # The chief alone readies --train_dir (the others read it).
        if cluster is None or cluster.is_chief:
            init_checkpoint.prepare_train_dir(FLAGS.train_dir, FLAGS.api,
                                              model.checkpoint_layout(),
                                              FLAGS.init_checkpoint)
        train(hparams, batches_dir, cluster)
    except distribute.ClusterStartError as error:
        exit_from_cluster(error)
    except (distribute.ClusterError, CheckpointMismatchError) as error:
        tfmech_flags.exit_with_error(PROGRAM, error)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.AbortedError, tf.errors.CancelledError) as error:
        if cluster is None:
            raise
        exit_from_cluster(distribute.runtime_failure(cluster, error))


def exit_from_cluster(message):
    """Ends a worker of a failed cluster with one line, at once.

    TensorFlow's teardown of a broken cluster waits for the missing peers
    and logs several lines; checkpoints on disk are complete, so skip it.
    """
    sys.stdout.flush()
    print("%s: error: %s" % (PROGRAM, message), file=sys.stderr, flush=True)
    os._exit(1)


if __name__ == "__main__":
    app.run(main, flags_parser=tfmech_flags.flags_parser(PROGRAM))
