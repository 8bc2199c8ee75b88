"""What the tutorial draws at every step, as tfmech's summary callbacks.

The v2 driver traces them into its step functions (``record_in_graph``)
with the step's logs; they write ``tf.summary`` ops under the canonical tags
(``accuracy``, ``layer1/weights/summaries/mean``, ``input_reshape/input``...).
The v1 driver writes the same summaries with the original's TF1 ops
instead (``variable_summaries``, ``merge_all``), under the tags TF1 gives
them.
"""

from tfmech import summaries
from tfmech.callbacks import ActivationSummaries
from tfmech.callbacks import ImageSummaries
from tfmech.callbacks import ScalarSummaries
from tfmech.callbacks import VariableSummaries

SCALARS_FROM_LOGS = {summaries.CROSS_ENTROPY: "cross_entropy",
                     summaries.ACCURACY: "accuracy",
                     summaries.DROPOUT_KEEP_PROBABILITY: "keep_prob"}


def step_summaries(writer, params, on, images_per_summary):
    """The callbacks that summarize one step into ``writer``.

    Args:
      writer: the run's summary writer (``train/`` or ``test/``).
      params: canonical name -> variable (``layer1/weights``...).
      on: "train" or "test": which Keras hook records.
      images_per_summary: images kept in the ``input_reshape/input`` card.
    """
    return [
        VariableSummaries(writer, variables=params, on=on),
        ActivationSummaries(writer, on=on),
        ImageSummaries(writer, summaries.INPUT_IMAGES,
                       max_outputs=images_per_summary, on=on),
        ScalarSummaries(writer, from_logs=SCALARS_FROM_LOGS, on=on),
    ]
