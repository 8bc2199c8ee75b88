"""MNIST-with-summaries hyperparameters: plain values, no TensorFlow import."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class HParams:
    """Everything that decides the numbers a run produces.

    Defaults are the original mnist_with_summaries.py flags and constants.
    """

    max_steps: int = 1000
    learning_rate: float = 0.001
    dropout: float = 0.9          # keep probability while training
    batch_size: int = 100
    seed: int = 0
    test_every: int = 10          # i % 10 == 0: evaluate instead of training
    trace_every: int = 100        # i % 100 == 99: record a full trace
    images_per_summary: int = 10
    # --projector: layer1's activations for the first test digits, for
    # TensorBoard's Projector tab (written once, after training).
    projector: bool = False
    projector_examples: int = 1000
    projector_layer: str = "layer1"   # the last hidden layer
