"""What the tutorial draws at every step, as a list of summary callbacks.

Both drivers use this one list. The v2 driver calls the callbacks after
each step with the step's logs; the v1 driver calls their
``summary_tensors``/``write_tensors`` once, while building the graph, with the same logs as
graph tensors, which builds the summary ops the Session then runs. So a v1
and a v2 run write the same tags by construction.
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
