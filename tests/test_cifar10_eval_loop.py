"""cifar10_eval's watch loop: each new checkpoint once, bounded waits.

Real checkpoints are written (a CheckpointManager over a global step); only
the clock is injected, so the waits cost no wall time.
"""

import pytest
import tensorflow as tf

from tfmech import checkpoints
from tfmech.cifar10 import eval_loop


class FakeTime:
    """A clock that ``sleep`` advances; ``on_sleep`` runs at each sleep."""

    def __init__(self, on_sleep=None):
        self.now = 0.0
        self.sleeps = []
        self.on_sleep = on_sleep

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(len(self.sleeps))


class Trainer:
    """Writes ``ckpt-STEP`` files the way the v2 driver does."""

    def __init__(self, directory):
        self.step = tf.Variable(0, dtype=tf.int64)
        self.manager = tf.train.CheckpointManager(
            checkpoints.v2_checkpoint({"global_step": self.step}), directory,
            max_to_keep=None, checkpoint_name=checkpoints.V2_PREFIX,
            step_counter=self.step)

    def save_at(self, step):
        self.step.assign(step)
        return self.manager.save(checkpoint_number=step)


def test_watching_evaluates_each_new_checkpoint_once_then_gives_up(tmp_path,
                                                                   capsys):
    trainer = Trainer(str(tmp_path))
    trainer.save_at(100)
    # A new checkpoint appears during the 2nd sleep; none after.
    fake = FakeTime(on_sleep=lambda n: trainer.save_at(200) if n == 2 else None)
    seen = []
    results = eval_loop.evaluate_checkpoints(
        str(tmp_path), lambda path, step: seen.append((path, step)) or step,
        interval_secs=30, max_wait_secs=100, sleep=fake.sleep, clock=fake.clock)
    assert results == [100, 200]
    assert [step for _, step in seen] == [100, 200]
    assert seen[1][0].endswith("ckpt-200")
    out = capsys.readouterr().out
    assert f"Evaluating {seen[0][0]} (global step 100)" in out
    assert (f"No new checkpoint in {tmp_path} yet; waiting for up to 100 s"
            in out)
    # After ckpt-200: waits of 30 + 30 + 30 + 10 s, then it stops, saying so.
    assert fake.sleeps[2:] == [30, 30, 30, 10]
    assert out.rstrip().splitlines()[-1] == (
        f"No new checkpoint in {tmp_path} for 100 s (--max_wait_secs); "
        f"stopping after 2 evaluations")


def test_run_once_evaluates_only_the_newest(tmp_path):
    trainer = Trainer(str(tmp_path))
    trainer.save_at(5)
    trainer.save_at(10)
    fake = FakeTime()
    results = eval_loop.evaluate_checkpoints(
        str(tmp_path), lambda path, step: step, run_once=True,
        sleep=fake.sleep, clock=fake.clock)
    assert results == [10] and fake.sleeps == []


def test_no_checkpoint_within_the_wait_is_an_error_naming_the_directory(tmp_path):
    fake = FakeTime()
    with pytest.raises(eval_loop.NoCheckpointError,
                       match=f"no checkpoint found in --checkpoint_dir "
                             f"{tmp_path} after waiting 60 s"):
        eval_loop.evaluate_checkpoints(
            str(tmp_path), lambda path, step: step, run_once=True,
            interval_secs=300, max_wait_secs=60, sleep=fake.sleep,
            clock=fake.clock)
    assert fake.sleeps == [60]


def test_a_checkpoint_that_appears_while_waiting_is_evaluated(tmp_path):
    trainer = Trainer(str(tmp_path))
    fake = FakeTime(on_sleep=lambda n: trainer.save_at(7) if n == 3 else None)
    results = eval_loop.evaluate_checkpoints(
        str(tmp_path), lambda path, step: step, run_once=True,
        interval_secs=5, max_wait_secs=60, sleep=fake.sleep, clock=fake.clock)
    assert results == [7] and fake.sleeps == [5, 5, 5]


def test_a_checkpoint_deleted_before_it_is_read_is_skipped_with_a_message(
        tmp_path, capsys):
    """The trainer's keep-the-newest-N removed ckpt-200's data after the
    state file named it; the watch says so and evaluates the next one."""
    trainer = Trainer(str(tmp_path))
    deleted = trainer.save_at(200)
    (tmp_path / "ckpt-200.data-00000-of-00001").unlink()
    fake = FakeTime(on_sleep=lambda n: trainer.save_at(300) if n == 1 else None)
    results = eval_loop.evaluate_checkpoints(
        str(tmp_path), lambda path, step: step, interval_secs=5,
        max_wait_secs=10, sleep=fake.sleep, clock=fake.clock)
    assert results == [300]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(
        f"Skipping {deleted}: it was deleted or damaged before it could be "
        f"read (")
    assert f"Evaluating {tmp_path / 'ckpt-300'} (global step 300)" in lines
