"""cifar10_eval --api=v1 --from_meta_graph: the checkpoint's own graph.

Nothing of the model is built in Python: the graph comes from the ``.meta``
file that v1 training writes beside every checkpoint, its input and logits
found by their documented names. The precision must be the normal path's.
"""

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from tests import events
from tests.conftest import REPO
from tfmech.checkpoints import CheckpointMismatchError
from tfmech.cifar10 import eval_v1
from tfmech.cifar10 import model
from tfmech.cifar10 import train_v1
from tfmech.cifar10 import train_v2
from tfmech.cifar10.hparams import EvalParams, HParams
from tfmech.data import cifar10

HPARAMS = HParams(batch_size=32, max_steps=30, log_frequency=10,
                  save_summaries_steps=1000, save_checkpoint_secs=None,
                  save_checkpoint_steps=15)
# 150 examples in batches of 64: the last batch holds 22.
EVAL = EvalParams(num_examples=150, batch_size=64)
FROM_META_GRAPH = EvalParams(num_examples=150, batch_size=64,
                             from_meta_graph=True)


@pytest.fixture(scope="module")
def v1_train_dir(small_cifar10_dir, tmp_path_factory):
    train_dir = str(tmp_path_factory.mktemp("cifar10_v1"))
    train_v1.run_training(HPARAMS, small_cifar10_dir, train_dir)
    return train_dir


@pytest.fixture(scope="module")
def test_paths(small_cifar10_dir):
    return cifar10.check_split(small_cifar10_dir, "test")[0]


def evaluate(eval_params, paths, checkpoint_dir, eval_dir):
    [result] = eval_v1.run_evaluation(eval_params, paths, checkpoint_dir,
                                      str(eval_dir), run_once=True,
                                      interval_secs=1, max_wait_secs=0)
    return result


def test_v1_training_writes_meta_graphs_with_named_input_and_logits(
        v1_train_dir):
    for step in (15, 30):
        meta = os.path.join(v1_train_dir, f"model.ckpt-{step}.meta")
        assert os.path.exists(meta)
    with tf.Graph().as_default() as graph:
        tf.compat.v1.train.import_meta_graph(meta)
        images = graph.get_tensor_by_name(f"{model.INPUT_IMAGES_NAME}:0")
        logits = graph.get_tensor_by_name(f"{model.LOGITS_NAME}:0")
    assert images.shape.as_list() == [32, 24, 24, 3]
    assert logits.shape.as_list() == [32, 10]


def test_the_meta_graph_gives_the_normal_paths_precision(v1_train_dir,
                                                         test_paths, tmp_path):
    normal = evaluate(EVAL, test_paths, v1_train_dir, tmp_path / "normal")
    imported = evaluate(FROM_META_GRAPH, test_paths, v1_train_dir,
                        tmp_path / "meta")
    assert (imported.step, imported.num_examples) == (30, 150)
    assert imported.true_count == normal.true_count
    assert normal.true_count / 150 > 0.3  # the averaged weights, trained
    assert events.scalars(tmp_path / "meta")["Precision @ 1"] == [
        (30, pytest.approx(normal.precision))]


def test_a_checkpoint_without_a_meta_graph_is_a_clear_error(
        small_cifar10_dir, test_paths, tmp_path):
    train_dir = tmp_path / "v2"
    train_v2.run_training(HParams(**{**HPARAMS.__dict__, "max_steps": 1}),
                          small_cifar10_dir, str(train_dir))
    with pytest.raises(CheckpointMismatchError) as error:
        evaluate(FROM_META_GRAPH, test_paths, str(train_dir), tmp_path / "eval")
    assert str(error.value) == (
        f"--from_meta_graph: {train_dir / 'ckpt-1'}.meta does not exist; only "
        f"checkpoints written by cifar10_train --api=v1 carry their graph "
        f"(evaluate ckpt-1 without --from_meta_graph)")
    assert not (tmp_path / "eval").exists()


def test_from_meta_graph_with_api_v2_is_a_usage_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tfmech.cifar10_eval", "--api=v2",
         "--from_meta_graph", "--run_once", f"--eval_dir={tmp_path / 'eval'}"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert ("--from_meta_graph needs --api=v1 (a .meta file holds a TF1 "
            "graph)") in result.stderr
    assert not (tmp_path / "eval").exists()
