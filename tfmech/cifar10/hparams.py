"""CIFAR-10 hyperparameters: plain values, no TensorFlow import.

The binaries build these from their flags; everything below them takes them
as arguments and never reads flags.
"""

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class HParams:
    """Everything that decides the numbers a training run produces.

    Defaults are the original cifar10_train.py flags (``max_steps`` aside,
    which is a run length, not a property of the model).
    """

    batch_size: int = 128
    max_steps: int = 1000000
    seed: int = 0
    use_fp16: bool = False
    # v2 only: norm1 and norm2 by model.banded_local_response_norm
    # (--fast_lrn), not TensorFlow's LRN kernel.
    fast_lrn: bool = False
    log_frequency: int = 10            # console line every N steps
    save_summaries_steps: int = 100
    save_checkpoint_secs: Optional[int] = 600
    save_checkpoint_steps: Optional[int] = None


@dataclasses.dataclass(frozen=True)
class EvalParams:
    """What one evaluation pass does (cifar10_eval.py's flags)."""

    eval_data: str = "test"            # "test" or "train_eval"
    num_examples: int = 10000
    batch_size: int = 128
    use_fp16: bool = False
    # v1 only: import each checkpoint's .meta graph instead of building the
    # model (eval_meta_graph.py).
    from_meta_graph: bool = False
