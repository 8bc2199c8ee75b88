"""tfmech: the classic TensorFlow tutorials on TensorFlow 2.21, in two APIs.

Each pipeline writes its model's math once (``<pipeline>/model.py``) and runs
it through two drivers: ``train_v1`` (tf.compat.v1 graph + Session) and
``train_v2`` (eager TF2 with tf.function). See README.md.
"""

__version__ = "0.1.0"
