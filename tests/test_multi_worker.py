"""CIFAR-10 on several machines: MultiWorkerMirroredStrategy on loopback.

The cluster description is checked in Python (fast tests); the jobs are
real worker processes on 127.0.0.1 with free ports, each one CPU replica.
Every process and every wait has a time limit, and a test that fails
SIGKILLs what it started (a worker ignores SIGTERM: TensorFlow's
coordination agent takes it for a preemption notice).

Tolerance: 2 workers at global batch B against one process at B, 8 steps:
losses to 1e-5 and weights to 1e-4, as two devices in one process (the
all-reduce only orders the sums differently; see test_cifar10_multi_gpu
for why no longer).
"""

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests import events
from tests.conftest import REPO
from tests.test_cifar10 import expected_train_tags
from tests.test_cifar10_multi_gpu import (LOSS_TOLERANCE, PROGRAM,
                                          WEIGHT_TOLERANCE, last_line,
                                          raw_losses, run_binary,
                                          variable_names)
from tfmech import checkpoints
from tfmech import distribute

JOB_TIMEOUT = 300       # one worker process, start to end
EXIT_AFTER_PEER_DIES = 60


def free_ports(count):
    """Ports nothing listens on now (the OS's choice; closed again)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def worker_hosts(count):
    return ",".join(f"127.0.0.1:{port}" for port in free_ports(count))


def worker_command(task_index, hosts, *args):
    return [sys.executable, "-m", f"tfmech.{PROGRAM}", "--api=v2",
            f"--worker_hosts={hosts}", f"--task_index={task_index}", *args]


@contextlib.contextmanager
def workers(hosts, *args, log_dir):
    """Starts one process per worker; SIGKILLs any still running on exit."""
    processes = []
    try:
        for index in range(len(hosts.split(","))):
            with open(log_dir / f"worker{index}.out", "w") as out, \
                    open(log_dir / f"worker{index}.err", "w") as err:
                processes.append(subprocess.Popen(
                    worker_command(index, hosts, *args), cwd=REPO, stdout=out,
                    stderr=err, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                                     # the other workers' checkpoints go here
                                     "TMPDIR": str(log_dir)}))
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)


def wait_all(processes, timeout):
    deadline = time.monotonic() + timeout
    return [process.wait(timeout=max(1.0, deadline - time.monotonic()))
            for process in processes]


def output(log_dir, index, stream="out"):
    return (log_dir / f"worker{index}.{stream}").read_text()


# The cluster description (no TensorFlow start-up).

def tf_config(cluster, task_type="worker", index=0):
    return json.dumps({"cluster": cluster,
                       "task": {"type": task_type, "index": index}})


def test_worker_hosts_build_the_tf_config_of_a_worker_cluster():
    cluster = distribute.Cluster.from_worker_hosts(
        "10.0.0.1:2222, 10.0.0.2:2222", 1)
    assert json.loads(cluster.to_json()) == {
        "cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]},
        "task": {"type": "worker", "index": 1}}
    assert (cluster.num_workers, cluster.is_chief, cluster.address) == (
        2, False, "10.0.0.2:2222")
    assert distribute.Cluster.from_worker_hosts("h:1,h:2", 0).is_chief


def test_a_chief_job_makes_the_chief_and_not_worker_0_the_chief():
    jobs = {"chief": ["h:1"], "worker": ["h:2", "h:3"]}
    assert distribute.Cluster.parse(tf_config(jobs, "chief", 0)).is_chief
    assert not distribute.Cluster.parse(tf_config(jobs, "worker", 0)).is_chief
    assert distribute.Cluster.parse(tf_config(jobs, "worker", 0)).num_workers == 3


@pytest.mark.parametrize("jobs, task_type, task_id, chief", [
    ({"worker": ["h:1", "h:2"]}, "worker", 0, True),
    ({"worker": ["h:1", "h:2"]}, "worker", 1, False),
    ({"chief": ["h:0"], "worker": ["h:1", "h:2"]}, "chief", 0, True),
    ({"chief": ["h:0"], "worker": ["h:1", "h:2"]}, "worker", 0, False),
    ({}, None, None, True),  # one machine
])
def test_the_strategy_chief_is_the_chief_task_or_worker_0(jobs, task_type,
                                                          task_id, chief):
    """distribute.is_chief reads the strategy's cluster resolver."""
    import types
    import tensorflow as tf
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
        tf.train.ClusterSpec(jobs), task_type=task_type, task_id=task_id)
    strategy = types.SimpleNamespace(cluster_resolver=resolver)
    assert distribute.is_chief(strategy) is chief
    assert distribute.is_chief(None) is True


def test_no_cluster_means_one_machine():
    assert distribute.cluster_from({}, "", None) is None
    assert distribute.cluster_from({"TF_CONFIG": " "}, "", None) is None


@pytest.mark.parametrize("text, message", [
    ("{not json", "TF_CONFIG is not valid JSON"),
    ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG has no "cluster" object'),
    (tf_config({"ps": ["h:1"], "worker": ["h:2"]}),
     "TF_CONFIG: job(s) ['ps'] are not trained by MultiWorkerMirroredStrategy"),
    (tf_config({"worker": []}), 'TF_CONFIG: "cluster" names no "worker" tasks'),
    (tf_config({"worker": "h:1"}), 'cluster "worker" must be a non-empty list'),
    (tf_config({"worker": ["h:1", "nohostport"]}),
     "TF_CONFIG worker[1]: 'nohostport' is not host:port (port 1..65535)"),
    (tf_config({"worker": ["h:1", "h:70000"]}), "'h:70000' is not host:port"),
    (tf_config({"worker": ["h:1", "h:1"]}), "TF_CONFIG: h:1 is both worker 0 and worker 1"),
    (tf_config({"worker": ["h:1", "h:2"]}, index=2),
     "TF_CONFIG: task index 2 is not in 0..1 (2 worker task(s))"),
    (tf_config({"worker": ["h:1"]}, task_type="chief"),
     '"task" must name this process\'s job, one of [\'worker\']'),
    (tf_config({"chief": ["h:1", "h:2"]}), 'a cluster has one "chief", got 2'),
])
def test_a_bad_tf_config_is_named_in_one_line(text, message):
    with pytest.raises(distribute.ClusterError) as raised:
        distribute.Cluster.parse(text)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("hosts, index, message", [
    ("h:1,,h:2", 0, "--worker_hosts='h:1,,h:2': an empty entry"),
    ("h:1,h:2", None, "--worker_hosts needs --task_index"),
    ("h:1,h:2", 5, "--worker_hosts/--task_index: task index 5 is not in 0..1"),
    ("h:1,h", 0, "--worker_hosts/--task_index worker[1]: 'h' is not host:port"),
])
def test_a_bad_worker_list_is_named_in_one_line(hosts, index, message):
    with pytest.raises(distribute.ClusterError, match="^" + re.escape(message)):
        distribute.Cluster.from_worker_hosts(hosts, index)


def test_flags_and_tf_config_together_are_refused():
    with pytest.raises(distribute.ClusterError, match="give one of them"):
        distribute.cluster_from({"TF_CONFIG": tf_config({"worker": ["h:1"]})},
                                "h:1", 0)
    with pytest.raises(distribute.ClusterError,
                       match="--task_index needs --worker_hosts"):
        distribute.cluster_from({}, "", 1)


def test_the_binary_reports_a_bad_cluster_in_one_line(tmp_path):
    bad_json = run_binary(PROGRAM, f"--train_dir={tmp_path}", "--api=v2",
                          env={"TF_CONFIG": "{oops"}, timeout=120)
    assert bad_json.returncode == 2
    assert last_line(bad_json).startswith(
        f"{PROGRAM}: error: TF_CONFIG is not valid JSON (")
    bad_list = run_binary(PROGRAM, f"--train_dir={tmp_path}",
                          "--worker_hosts=127.0.0.1:1,127.0.0.1", "--task_index=0",
                          timeout=120)
    assert bad_list.returncode == 2
    assert last_line(bad_list) == (
        f"{PROGRAM}: error: --worker_hosts/--task_index worker[1]: "
        f"'127.0.0.1' is not host:port (port 1..65535)")
    v1 = run_binary(PROGRAM, f"--train_dir={tmp_path}", "--api=v1",
                    "--worker_hosts=127.0.0.1:1,127.0.0.1:2", "--task_index=0",
                    timeout=120)
    assert v1.returncode == 2
    assert last_line(v1) == (
        f"{PROGRAM}: error: several machines (TF_CONFIG or --worker_hosts) "
        f"need --api=v2 (tf.distribute.MultiWorkerMirroredStrategy)")
    odd = run_binary(PROGRAM, f"--train_dir={tmp_path}", "--batch_size=33",
                     "--worker_hosts=127.0.0.1:1,127.0.0.1:2", "--task_index=0",
                     timeout=120)
    assert odd.returncode == 2
    assert last_line(odd) == (
        f"{PROGRAM}: error: --batch_size=33 is the global batch and must be "
        f"divisible by the number of devices of all workers (2)")
    assert not os.listdir(tmp_path)


# Worker processes (TensorFlow start-up: seconds to tens of seconds each).

def data_dir_of(batches_dir):
    return os.path.dirname(batches_dir)


def test_a_port_in_use_is_named_in_one_line(small_cifar10_dir, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        [other] = free_ports(1)
        result = run_binary(
            PROGRAM, f"--data_dir={data_dir_of(small_cifar10_dir)}",
            f"--train_dir={tmp_path / 'train'}", "--api=v2",
            f"--worker_hosts=127.0.0.1:{port},127.0.0.1:{other}",
            "--task_index=0", timeout=120)
    assert result.returncode == 1
    assert last_line(result) == (
        f"{PROGRAM}: error: port {port} of this task, worker 0 "
        f"(127.0.0.1:{port}), is in use (Address already in use)")


def test_a_worker_that_never_comes_up_is_named_within_the_wait(
        small_cifar10_dir, tmp_path):
    """The chief alone names the missing worker; a worker alone, the chief."""
    common = [f"--data_dir={data_dir_of(small_cifar10_dir)}",
              f"--train_dir={tmp_path / 'train'}", "--cluster_wait_secs=5"]
    # Two separate one-task-short clusters, run side by side.
    alone = {}
    for index in (0, 1):
        hosts = worker_hosts(2)
        alone[index] = (hosts.split(","), subprocess.Popen(
            worker_command(index, hosts, *common), cwd=REPO, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}))
    try:
        for index, (hosts, process) in alone.items():
            out, err = process.communicate(timeout=120)
            alone[index] = (hosts, subprocess.CompletedProcess(
                process.args, process.returncode, out, err), None)
    finally:
        for entry in alone.values():
            if isinstance(entry[1], subprocess.Popen) and entry[1].poll() is None:
                entry[1].kill()
    (chief, missing), result, _ = alone[0]
    assert result.returncode == 1
    assert last_line(result).startswith(
        f"{PROGRAM}: error: worker 1 ({missing}) did not join the cluster "
        f"within 5 s (--cluster_wait_secs; nothing answered on its port)")
    (chief, _), result, _ = alone[1]
    assert result.returncode == 1
    assert last_line(result).startswith(
        f"{PROGRAM}: error: worker 0 ({chief}) did not join the cluster "
        f"within 5 s (--cluster_wait_secs; nothing answered on its port)")
    assert not (tmp_path / "train").exists()


@pytest.fixture(scope="module")
def single_process_run(small_cifar10_dir, tmp_path_factory):
    """8 steps of cifar10_train at batch 32: what 2 workers must equal."""
    run_dir = tmp_path_factory.mktemp("single_process")
    result = run_binary("cifar10_train", *common_flags(small_cifar10_dir),
                        f"--train_dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def common_flags(batches_dir, steps=8):
    return [f"--data_dir={data_dir_of(batches_dir)}", f"--max_steps={steps}",
            "--batch_size=32", "--log_frequency=5", "--save_summaries_steps=1",
            f"--save_checkpoint_steps={steps}"]


@pytest.mark.slow
def test_two_workers_train_as_one_process_at_the_same_global_batch(
        small_cifar10_dir, single_process_run, tmp_path):
    train_dir = tmp_path / "train"
    with workers(worker_hosts(2), *common_flags(small_cifar10_dir),
                 f"--train_dir={train_dir}", "--cluster_wait_secs=120",
                 log_dir=tmp_path) as processes:
        codes = wait_all(processes, JOB_TIMEOUT)
    assert codes == [0, 0], [output(tmp_path, i, "err")[-2000:] for i in (0, 1)]
    np.testing.assert_allclose(raw_losses(train_dir),
                               raw_losses(single_process_run), rtol=0,
                               atol=LOSS_TOLERANCE)
    names = variable_names()
    ours = checkpoints.read_canonical(tf.train.latest_checkpoint(str(train_dir)),
                                      names)
    single = checkpoints.read_canonical(
        tf.train.latest_checkpoint(str(single_process_run)), names)
    assert ours["global_step"] == 8
    for name in names:
        np.testing.assert_allclose(ours[name], single[name], rtol=0,
                                   atol=WEIGHT_TOLERANCE, err_msg=name)
    # Only the chief wrote: the training's event file with the canonical
    # tags, the two of its HParams records (start, end), and the checkpoint;
    # the other worker's temporary checkpoints are gone.
    assert not list(tmp_path.glob("tfmech_worker_checkpoints_*"))
    assert {(tag, kind) for tag, kind in events.tag_kinds(train_dir)
            if kind != "graphs"} == expected_train_tags() | events.HPARAMS_RECORDS
    written = [path.name for path in events.event_files(train_dir)]
    assert len(written) == 3
    # (.tfmech.lock: the chief's trainer lock; the other worker takes none.)
    assert sorted(os.listdir(train_dir)) == sorted(
        [".tfmech.lock", "checkpoint", "ckpt-8.index",
         "ckpt-8.data-00000-of-00001", *written])
    # Both print the original's line for the same steps and losses.
    lines = [[line.split(": step ")[1].split(" (")[0]
              for line in output(tmp_path, i).splitlines() if ": step " in line]
             for i in (0, 1)]
    assert lines[0] == lines[1]
    assert [line.split(",")[0] for line in lines[0]] == ["0", "5"]


@pytest.mark.slow
def test_a_killed_worker_ends_the_job_and_a_restart_resumes_at_the_chiefs_step(
        small_cifar10_dir, tmp_path):
    train_dir = tmp_path / "train"
    common = [f"--data_dir={data_dir_of(small_cifar10_dir)}",
              f"--train_dir={train_dir}", "--batch_size=32",
              "--save_checkpoint_steps=5", "--cluster_wait_secs=120"]
    hosts = worker_hosts(2)
    first = tmp_path / "first"
    first.mkdir()
    with workers(hosts, *common, "--max_steps=100000",
                 log_dir=first) as processes:
        deadline = time.monotonic() + JOB_TIMEOUT
        while len([name for name in os.listdir(train_dir) if name.endswith(
                ".index")] if train_dir.exists() else []) < 2:
            assert all(p.poll() is None for p in processes), (
                output(first, 0, "err")[-2000:], output(first, 1, "err")[-2000:])
            assert time.monotonic() < deadline, "no 2 checkpoints in time"
            time.sleep(0.2)
        processes[1].kill()
        processes[1].wait(timeout=30)
        # The chief notices and ends with one line, within a bound.
        assert processes[0].wait(timeout=EXIT_AFTER_PEER_DIES) == 1
    assert last_line_of(output(first, 0, "err")).startswith(
        f"{PROGRAM}: error: the cluster failed: worker 1 "
        f"({hosts.split(',')[1]}) stopped responding; restart every worker to "
        f"resume from the chief's last checkpoint")
    latest = tf.train.latest_checkpoint(str(train_dir))
    saved = checkpoints.read_canonical(
        latest, ["global_step", "conv1/weights/ExponentialMovingAverage"])
    step = int(saved["global_step"])
    assert step >= 10 and step % 5 == 0

    second = tmp_path / "second"
    second.mkdir()
    # The same addresses: the dead job's ports are free again.
    with workers(hosts, *common, f"--max_steps={step + 1}",
                 log_dir=second) as processes:
        assert wait_all(processes, JOB_TIMEOUT) == [0, 0], (
            output(second, 0, "err")[-2000:], output(second, 1, "err")[-2000:])
    assert f"Resuming from {latest} at step {step}" in output(second, 0)
    after = checkpoints.read_canonical(
        tf.train.latest_checkpoint(str(train_dir)),
        ["global_step", "conv1/weights/ExponentialMovingAverage",
         "conv1/weights"])
    assert after["global_step"] == step + 1
    # The moving average went on from the saved one: one update towards the
    # new weights, with TF1's decay at the restored step count.
    decay = min(0.9999, (1 + step + 1) / (10 + step + 1))
    saved_average = saved["conv1/weights/ExponentialMovingAverage"]
    np.testing.assert_allclose(
        after["conv1/weights/ExponentialMovingAverage"],
        saved_average - (saved_average - after["conv1/weights"]) * (1 - decay),
        atol=1e-6)


def last_line_of(text):
    return text.strip().splitlines()[-1]
