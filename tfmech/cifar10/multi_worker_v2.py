"""train_v2 on several machines: what only a multi-worker job needs.

``tf.distribute.MultiWorkerMirroredStrategy`` runs train_v2's step on every
worker unchanged. Around it, the TF multi-worker guide's rules:

* only the chief writes summaries and the checkpoints that are kept; every
  worker takes part in saving (the save is a collective), so the others
  save into temporary directories, removed at the end;
* every worker resumes from the chief's newest checkpoint in ``train_dir``,
  and they check that they all restored the same step (a worker that cannot
  see the chief's files would train mismatched weights);
* they leave together, none while another still saves.

With one machine (``MirroredStrategy``) this is ``train_v2.run_training``.
"""

import os

import tensorflow as tf

from tfmech import checkpoints
from tfmech import distribute
from tfmech import progress
from tfmech import summaries
from tfmech.cifar10 import train_v2
from tfmech.data import cifar10 as cifar10_records


def run_training(hparams, batches_dir, train_dir, strategy,
                 log_device_placement=False):
    """``train_v2.run_training`` as one worker of ``strategy``'s cluster."""
    tf.debugging.set_log_device_placement(log_device_placement)
    batches = cifar10_records.check_split(batches_dir, "train")
    chief = distribute.is_chief(strategy)
    if chief:
        os.makedirs(train_dir, exist_ok=True)
    # Refuse another API's train_dir before this run writes anything there.
    latest = (checkpoints.latest_checkpoint(train_dir, api="v2")
              if os.path.isdir(train_dir) else None)
    writer = (summaries.create_file_writer(train_dir) if chief
              else tf.summary.create_noop_writer())
    net = train_v2.build(hparams, writer, strategy)
    with distribute.checkpoint_dir(train_dir, chief) as checkpoint_dir:
        if not chief and latest:
            # The chief's newest checkpoint: every worker resumes from it.
            net.checkpoint.restore(latest).assert_existing_objects_matched()
        record = train_v2.train(
            hparams, net, train_v2.checkpointer_for(hparams, net, checkpoint_dir),
            writer, batches, progress.RunRecord(), strategy,
            restored=lambda step: distribute.agree_on_step(strategy, step))
        # Workers leave together, none while another still saves.
        distribute.agree_on_step(strategy, record.final_step)
    return record
