"""Keras callbacks that write the tutorials' TensorBoard summaries, and save
their checkpoints.

They work in ``Model.fit`` and in tfmech's own v2 training loop (which
passes its tensors in ``logs``; see ``base.PeriodicSummary`` and
``TensorGroup``), and write through ``tfmech.summaries`` so the tags are the
same as the v1 programs'. ``CheckpointManagerCallback`` gives both drivers
one checkpoint policy.
"""

from tfmech.callbacks.activation_summaries import ActivationSummaries
from tfmech.callbacks.base import (MissingLogKeyError, PeriodicSummary,
                                   TensorGroup, file_writer)
from tfmech.callbacks.checkpoint_manager import CheckpointManagerCallback
from tfmech.callbacks.embedding_projector import EmbeddingProjector
from tfmech.callbacks.gradient_histograms import GradientHistograms
from tfmech.callbacks.image_summaries import ImageSummaries
from tfmech.callbacks.moving_average_losses import MovingAverageLosses
from tfmech.callbacks.scalar_summaries import ScalarSummaries
from tfmech.callbacks.variable_summaries import VariableSummaries

__all__ = [
    "ActivationSummaries",
    "CheckpointManagerCallback",
    "EmbeddingProjector",
    "GradientHistograms",
    "ImageSummaries",
    "MissingLogKeyError",
    "MovingAverageLosses",
    "PeriodicSummary",
    "ScalarSummaries",
    "TensorGroup",
    "VariableSummaries",
    "file_writer",
]
