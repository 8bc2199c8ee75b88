"""When cifar10_eval evaluates: once, or each new checkpoint as it appears.

Shared by both eval drivers, which supply ``evaluate(checkpoint_path, step)``.
The original slept ``eval_interval_secs`` between evaluations forever and
evaluated whatever was newest, even twice; this loop evaluates each new
checkpoint once, says when it is waiting, and can be bounded
(``max_wait_secs``) so that scripts and tests end.
"""

import time

import tensorflow as tf

from tfmech import checkpoints
from tfmech import progress


class NoCheckpointError(RuntimeError):
    """No checkpoint appeared in the checkpoint directory in time."""


def evaluating_line(checkpoint_path, step):
    return "Evaluating %s (global step %d)" % (checkpoint_path, step)


def no_checkpoint_message(checkpoint_dir, max_wait_secs):
    waited = " after waiting %d s" % max_wait_secs if max_wait_secs else ""
    return "no checkpoint found in --checkpoint_dir %s%s" % (checkpoint_dir,
                                                             waited)


def stopping_line(checkpoint_dir, max_wait_secs, count):
    return ("No new checkpoint in %s for %d s (--max_wait_secs); stopping "
            "after %d evaluation%s" % (checkpoint_dir, max_wait_secs, count,
                                       "" if count == 1 else "s"))


def skipping_line(checkpoint_path, damage):
    return ("Skipping %s: it was deleted or damaged before it could be read "
            "(%s)" % (checkpoint_path, damage))


def waiting_line(checkpoint_dir, max_wait_secs):
    bound = ("without a bound" if max_wait_secs is None
             else "for up to %d s" % max_wait_secs)
    return "No new checkpoint in %s yet; waiting %s" % (checkpoint_dir, bound)


def evaluate_checkpoints(checkpoint_dir, evaluate, run_once=False,
                         interval_secs=300, max_wait_secs=None,
                         sleep=time.sleep, clock=time.monotonic):
    """Evaluates the newest checkpoint, then (unless ``run_once``) each new one.

    Args:
      checkpoint_dir: the training run's directory (either API).
      evaluate: ``evaluate(checkpoint_path, global_step) -> result``.
      run_once: evaluate the newest checkpoint and return.
      interval_secs: seconds between looks for a new checkpoint.
      max_wait_secs: give up after this long without a new checkpoint
        (None: wait forever, as the original did).

    Returns:
      The list of ``evaluate`` results, in order.

    Raises:
      NoCheckpointError: nothing to evaluate appeared within the wait.
    """
    results = []
    evaluated = None
    waiting_since = clock()
    said_waiting = False
    while True:
        latest = tf.train.latest_checkpoint(checkpoint_dir)
        if latest is not None and latest != evaluated:
            evaluated = latest
            try:
                step = checkpoints.global_step_of(latest)
                progress.say(evaluating_line(latest, step))
                results.append(evaluate(latest, step))
            except Exception as error:  # pylint: disable=broad-except
                damage = checkpoints.damage_of(latest)
                if damage is None:
                    raise  # the checkpoint is fine: a real error
                # The trainer's keep-the-newest-N deleted it after the
                # listing, or it is damaged: not worth stopping a watch for.
                progress.say(skipping_line(latest, damage))
                if run_once:
                    raise NoCheckpointError(
                        "the newest checkpoint in --checkpoint_dir %s could "
                        "not be read (%s)" % (checkpoint_dir, damage)) from error
                continue
            if run_once:
                return results
            waiting_since = clock()
            said_waiting = False
        else:
            waited = clock() - waiting_since
            if max_wait_secs is not None and waited >= max_wait_secs:
                if not results:
                    raise NoCheckpointError(no_checkpoint_message(
                        checkpoint_dir, max_wait_secs))
                progress.say(stopping_line(checkpoint_dir, max_wait_secs,
                                           len(results)))
                return results
            if not said_waiting:
                progress.say(waiting_line(checkpoint_dir, max_wait_secs))
                said_waiting = True
        pause = interval_secs
        if max_wait_secs is not None:
            pause = min(pause, max(0.0, max_wait_secs - (clock() - waiting_since)))
        sleep(pause)


def evaluate_and_close(evaluator, checkpoint_dir, run_once, interval_secs,
                       max_wait_secs):
    """``evaluate_checkpoints`` with an eager evaluator, then closes the
    summary writer it opened (``evaluator.writer``, None until it wrote)."""
    try:
        return evaluate_checkpoints(
            checkpoint_dir, evaluator, run_once=run_once,
            interval_secs=interval_secs, max_wait_secs=max_wait_secs)
    finally:
        if evaluator.writer is not None:
            evaluator.writer.close()


class Evaluation:
    """What one evaluation found: the step and the counts."""

    def __init__(self, checkpoint_path, step, num_examples, true_count):
        self.checkpoint_path = checkpoint_path
        self.step = step
        self.num_examples = num_examples
        self.true_count = true_count

    @property
    def precision(self):
        return self.true_count / self.num_examples if self.num_examples else 0.0

    def __repr__(self):
        return ("Evaluation(step=%d, %d/%d, precision=%.4f)"
                % (self.step, self.true_count, self.num_examples, self.precision))
