"""The console lines of the original tutorials, shared by both APIs.

Users compare runs by eye against the tutorials' output, so the formats are
the originals' exactly; both drivers print through these functions so a v1
and a v2 run print the same lines.
"""

import datetime
import time


def say(line):
    """Prints one progress line now (unbuffered, so long runs show progress)."""
    print(line, flush=True)


def now():
    """Wall-clock seconds, for the per-step timings the lines print."""
    return time.time()


def step_line(step, loss_value, duration_sec):
    """Mechanics 101's training line."""
    return "Step %d: loss = %.2f (%.3f sec)" % (step, loss_value, duration_sec)


def examples_step_line(batch_size):
    """CIFAR-10's training line, as a ``(step, loss, seconds per step)``
    formatter like ``step_line``: the original printed a timestamp, the loss,
    examples/sec and sec/batch."""
    def line(step, loss_value, duration_sec):
        examples_per_sec = batch_size / duration_sec if duration_sec > 0 else 0.0
        return "%s: step %d, loss = %.2f (%.1f examples/sec; %.3f sec/batch)" % (
            datetime.datetime.now(), step, loss_value, examples_per_sec,
            duration_sec)
    return line


def precision_at_1_line(precision):
    """CIFAR-10's evaluation line."""
    return "%s: precision @ 1 = %.3f" % (datetime.datetime.now(), precision)


def precision_line(num_examples, true_count):
    """Mechanics 101's evaluation line: counts and precision @ 1."""
    precision = float(true_count) / num_examples if num_examples else 0.0
    return "Num examples: %d  Num correct: %d  Precision @ 1: %0.04f" % (
        num_examples, true_count, precision)


def accuracy_line(step, accuracy):
    """MNIST with summaries' test line."""
    return "Accuracy at step %s: %s" % (step, accuracy)


class RunRecord:
    """What a run printed, as numbers, for tests and run-comparison scripts.

    Attributes:
      losses: step -> training loss on the steps that were logged.
      accuracies: step -> test accuracy (MNIST with summaries).
      evaluations_by_step: global step -> {split: (num_examples,
        true_count)}, one entry per evaluation of every split (Mechanics
        101: every 1000th step and the last).
      start_step: the step training started from (> 0 after a resume).
      final_step: the global step when the run ended.
    """

    def __init__(self):
        self.losses = {}
        self.accuracies = {}
        self.evaluations_by_step = {}
        self.start_step = 0
        self.final_step = 0

    @property
    def evaluations(self):
        """The last evaluation: split -> (num_examples, true_count), or {}."""
        if not self.evaluations_by_step:
            return {}
        return self.evaluations_by_step[max(self.evaluations_by_step)]


def nothing_to_train_line(step, max_steps):
    """Said when a resumed run is already at or past --max_steps."""
    return "Nothing to train: already at step %d (max_steps=%d)" % (step,
                                                                     max_steps)


def resume_line(checkpoint_path, step):
    """Said when a run continues from a checkpoint instead of starting over."""
    return "Resuming from %s at step %d" % (checkpoint_path, step)
