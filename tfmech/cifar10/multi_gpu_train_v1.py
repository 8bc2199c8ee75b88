"""CIFAR-10 training on several devices in the TF1 style: one tower each.

This is the original cifar10_multi_gpu_train.py through ``tf.compat.v1``:
the variables live once, on the CPU, and every device builds a tower
(``tower_0``, ``tower_1``... name scopes) that computes the loss and the
gradients of its part of the batch with those shared variables; the
gradients are averaged on the CPU and applied in ONE update, followed by the
weights' moving averages. Everything else (input, hooks, summaries,
checkpoints, the session) is ``train_v1``'s: ``TowerGraph`` only replaces
how a step's logs and gradients are built.

One difference from the original, so that N devices are the same training
as one: ``--batch_size`` is the GLOBAL batch B, split into N slices of B/N
(the original gave each tower its own batch of B, i.e. trained at N*B).
Tower i gets slice i, as replica i does in the v2 driver. The loss terms
logged and averaged are the mean over the towers (equal to the whole
batch's); the activations summarized are tower 0's. Summary tags carry
no tower prefix (the original stripped it too), so they are the
single-device program's.
"""

import functools

import tensorflow as tf

from tfmech.cifar10 import model
from tfmech.cifar10 import train_v1


def average_over_towers(values_per_tower):
    """The element-wise mean of the same nest of tensors from every tower."""
    if len(values_per_tower) == 1:
        return values_per_tower[0]
    return tf.nest.map_structure(
        lambda *values: tf.reduce_mean(tf.stack(values), axis=0),
        *values_per_tower)


class TowerGraph(train_v1.Graph):
    """``train_v1.Graph`` with the batch split over one tower per device.

    Args:
      devices: the towers' devices, e.g. ["/gpu:0", "/gpu:1"] or the CPU's
        logical devices; the batch size must be divisible by their number.
      (the rest): ``train_v1.Graph``'s.
    """

    def __init__(self, hparams, paths, num_records, start_step, devices):
        self.devices = list(devices)
        # Variables, input, averaging and update on the CPU, as the
        # original placed them; the towers override the device below.
        with tf.device("/cpu:0"):
            super().__init__(hparams, paths, num_records, start_step)

    def build_step(self, hparams, images, labels, opt):
        towers = []
        for index, (device, tower_images, tower_labels) in enumerate(zip(
                self.devices, tf.split(images, len(self.devices)),
                tf.split(labels, len(self.devices)))):
            with tf.device(device), tf.name_scope(
                    f"{train_v1.TOWER_NAME}_{index}"):
                towers.append(model.forward(
                    tower_images, tower_labels, self.params,
                    train_v1.compute_dtype(hparams)))
        # Tower 0's activations stand for all (tags without the tower).
        for activations in towers[0]["activations"].values():
            train_v1.activation_summary(activations)
        # The loss terms of the whole batch: the mean over the towers, under
        # the single-device names (the summaries' tags).
        mean = average_over_towers([{key: tower[key] for key in
                                     model.BATCH_MEAN_LOGS}
                                    for tower in towers])
        losses = {name: tf.identity(value, name=name)
                  for name, value in mean["losses"].items()}
        total_loss = tf.identity(mean["total_loss"], name=model.TOTAL_LOSS)
        loss_averages_op, self.loss_averages = train_v1.add_loss_summaries(
            losses, total_loss)
        self.loss_terms = {**losses, model.TOTAL_LOSS: total_loss}
        variables = list(self.params.values())
        tower_gradients = []
        with tf.control_dependencies([loss_averages_op]):
            for index, (device, tower) in enumerate(zip(self.devices, towers)):
                with tf.device(device), tf.name_scope(
                        f"{train_v1.TOWER_NAME}_{index}"):
                    tower_gradients.append(
                        [gradient for gradient, _ in opt.compute_gradients(
                            tower["total_loss"], var_list=variables)])
        # Synchronization point: the towers' gradients, averaged.
        gradients = average_over_towers(tower_gradients)
        return total_loss, list(zip(gradients, variables))


def run_training(hparams, batches_dir, train_dir, devices,
                 log_device_placement=False):
    """``train_v1.run_training`` with one tower per device in ``devices``."""
    if hparams.batch_size % len(devices):
        raise ValueError(f"batch size {hparams.batch_size} is not divisible "
                         f"by the {len(devices)} towers")
    return train_v1.run_training(
        hparams, batches_dir, train_dir,
        log_device_placement=log_device_placement,
        make_graph=functools.partial(TowerGraph, devices=devices))
