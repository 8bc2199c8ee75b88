"""What the CIFAR-10 tutorial draws in v2, as lists of summary callbacks.

The v2 drivers hand these to their loop (train_v2) or call them after an
evaluation (eval_v2); the v1 drivers write TF1's own summary ops instead
(train_v1, eval_v1), under TF1's tags. The canonical tags:

* scalars: ``<layer>/sparsity``; ``<layer>/weight_loss``,
  ``cross_entropy`` and ``total_loss``, each beside its ``(raw)`` value
  (``MovingAverageLosses``); ``learning_rate``; ``global_step/sec``;
* histograms: ``<layer>/activations``, ``<layer>/weights`` and
  ``<layer>/biases``, and ``<variable>/gradients``;
* images: ``images``, three of the training crops.
"""

from tfmech import summaries
from tfmech.callbacks import ActivationSummaries
from tfmech.callbacks import GradientHistograms
from tfmech.callbacks import ImageSummaries
from tfmech.callbacks import MovingAverageLosses
from tfmech.callbacks import ScalarSummaries
from tfmech.callbacks import VariableSummaries
from tfmech.cifar10 import model

IMAGES_PER_SUMMARY = 3    # tf.summary.image's default max_outputs in TF1


def loss_averages(writer, every_n_steps):
    """The moving averages of the loss terms (updated every step)."""
    return MovingAverageLosses(writer, loss_names=model.LOSS_NAMES,
                               total_name=model.TOTAL_LOSS,
                               decay=model.LOSS_AVERAGE_DECAY,
                               every_n_steps=every_n_steps)


def train_summaries(writer, params, every_n_steps):
    """The callbacks that summarize a training step (losses aside)."""
    return [
        ActivationSummaries(writer, every_n_steps=every_n_steps, sparsity=True),
        VariableSummaries(writer, every_n_steps=every_n_steps, variables=params,
                          statistics=False),
        GradientHistograms(writer, every_n_steps=every_n_steps),
        ImageSummaries(writer, summaries.CIFAR10_IMAGES,
                       every_n_steps=every_n_steps,
                       max_outputs=IMAGES_PER_SUMMARY, normalize=True),
        ScalarSummaries(writer, every_n_steps=every_n_steps,
                        from_logs={summaries.LEARNING_RATE: "learning_rate"}),
    ]


def steps_per_second(writer, every_n_steps):
    """``global_step/sec``, the training speed (MonitoredTrainingSession's)."""
    return ScalarSummaries(writer, every_n_steps=every_n_steps,
                           from_logs={summaries.GLOBAL_STEP_PER_SEC:
                                      "steps_per_sec"})


def eval_summaries(writer):
    """What one evaluation writes: the first batch's activations and images,
    and the precision over all of them."""
    return [
        ActivationSummaries(writer, sparsity=True, on="test"),
        ImageSummaries(writer, summaries.CIFAR10_IMAGES,
                       max_outputs=IMAGES_PER_SUMMARY, normalize=True,
                       on="test"),
    ]


def precision_summary(writer):
    return ScalarSummaries(writer, from_logs={summaries.PRECISION_AT_1:
                                              "precision"}, on="test")
