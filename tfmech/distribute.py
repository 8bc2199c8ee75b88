"""Several devices and several machines, on TensorFlow's own runtime.

Shared by the pipelines' drivers (nothing here knows a model). Three jobs:

* Devices. ``local_devices(n)`` names the n devices a run trains on: the
  first n GPUs when the machine has GPUs, otherwise the CPU split into n
  *logical* devices (``tf.config.set_logical_device_configuration``), so
  that the multi-device code paths run, and are tested, on a machine
  without GPUs. The split must happen before TensorFlow initializes its
  devices, so binaries call this first thing.
* The cluster. A multi-worker job is described by ``TF_CONFIG`` (the JSON
  that ``tf.distribute.MultiWorkerMirroredStrategy`` reads) or by the flag
  shortcut ``--worker_hosts=h:p,h:p --task_index=i`` that builds it.
  ``Cluster.parse`` checks it before any TensorFlow start-up and raises
  ``ClusterError`` with one line naming what is wrong; ``make_strategy``
  checks this task's port and, before TensorFlow joins the cluster, waits
  at most ``--cluster_wait_secs`` for every other task to come up
  (``wait_for_peers``).
* The replicas' share of the work. ``replica_mean`` is the all-reduce a
  step function calls on what must be the same on every replica (gradients,
  batch-mean losses); with one replica it returns its argument untouched, so
  a single-device step is unchanged. ``distribute_batches`` gives replica r
  of R the r-th of R equal slices of each global batch, so R replicas at
  global batch B see exactly the examples one device sees at batch B.
"""

import contextlib
import dataclasses
import json
import os
import re
import shutil
import socket
import tempfile
import time

TF_CONFIG = "TF_CONFIG"
JOBS = ("chief", "worker")       # the jobs MultiWorkerMirroredStrategy trains in
DEFAULT_WAIT_SECS = 600


class ClusterError(ValueError):
    """A bad cluster description, device request, or a cluster that failed."""


class ClusterStartError(ClusterError):
    """The workers did not all join within the wait."""


class DeviceError(ClusterError):
    """More devices asked for than this machine can give."""


# Devices.

def local_devices(num_devices, multi_worker=False):
    """The names of the ``num_devices`` devices to train on, configured.

    With GPUs: the first ``num_devices`` (the others are hidden, so a
    multi-worker strategy, which takes every visible GPU, uses exactly
    these). Without: ``/cpu:0`` .. ``/cpu:N-1``, logical devices that share
    the CPU's cores. A worker of a multi-worker job without GPUs is one
    replica on its CPU (MultiWorkerMirroredStrategy does not split CPUs).

    Must run before TensorFlow initializes its devices (before any op runs).
    """
    import tensorflow as tf
    if num_devices < 1:
        raise DeviceError(f"--num_gpus must be >= 1, got {num_devices}")
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        if len(gpus) < num_devices:
            raise DeviceError(f"--num_gpus={num_devices} but this machine has "
                              f"{len(gpus)} GPU(s)")
        tf.config.set_visible_devices(gpus[:num_devices], "GPU")
        return [f"/gpu:{index}" for index in range(num_devices)]
    if multi_worker and num_devices > 1:
        raise DeviceError(
            f"--num_gpus={num_devices} in a multi-worker job needs "
            f"{num_devices} GPUs on each worker; this one has none (on a CPU "
            f"each worker trains as one replica: use --num_gpus=1)")
    if num_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
        except RuntimeError as error:
            raise DeviceError(
                f"cannot split the CPU into {num_devices} devices: TensorFlow "
                f"already initialized its devices ({error})") from error
    return [f"/cpu:{index}" for index in range(num_devices)]


def check_divisible(batch_size, num_replicas, what):
    """Every replica gets an equal slice of the global batch, or none runs."""
    if batch_size % num_replicas:
        raise ClusterError(
            f"--batch_size={batch_size} is the global batch and must be "
            f"divisible by the number of {what} ({num_replicas})")


# The cluster.

_ADDRESS = re.compile(r"^(?P<host>[^\s:/]+|\[[0-9a-fA-F:.]+\]):(?P<port>\d+)$")


def _check_address(address, where):
    match = _ADDRESS.match(address) if isinstance(address, str) else None
    if match is None or not 1 <= int(match.group("port")) <= 65535:
        raise ClusterError(f"{where}: {address!r} is not host:port (port 1..65535)")
    return address


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A validated multi-worker cluster and this process's task in it.

    ``jobs`` maps "chief"/"worker" to their task addresses. The chief (task
    0 of "chief" if there is such a job, else worker 0) writes the summaries
    and the real checkpoints.
    """

    jobs: dict
    task_type: str
    task_index: int

    @classmethod
    def parse(cls, text, source=TF_CONFIG):
        """Checks a TF_CONFIG string; every error is one line naming it."""
        try:
            config = json.loads(text)
        except ValueError as error:
            raise ClusterError(f"{source} is not valid JSON ({error})") from None
        if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
            raise ClusterError(f'{source} has no "cluster" object: {text}')
        jobs = config["cluster"]
        unknown = sorted(set(jobs) - set(JOBS))
        if unknown:
            raise ClusterError(f'{source}: job(s) {unknown} are not trained by '
                               f'MultiWorkerMirroredStrategy (use "chief" and '
                               f'"worker")')
        if not jobs.get("worker") and not jobs.get("chief"):
            raise ClusterError(f'{source}: "cluster" names no "worker" tasks')
        seen = {}
        for job, addresses in jobs.items():
            if not isinstance(addresses, list) or not addresses:
                raise ClusterError(f'{source}: cluster "{job}" must be a '
                                   f'non-empty list of "host:port"')
            if job == "chief" and len(addresses) != 1:
                raise ClusterError(f'{source}: a cluster has one "chief", '
                                   f'got {len(addresses)}')
            for index, address in enumerate(addresses):
                _check_address(address, f"{source} {job}[{index}]")
                if address in seen:
                    raise ClusterError(f"{source}: {address} is both "
                                       f"{seen[address]} and {job} {index}")
                seen[address] = f"{job} {index}"
        task = config.get("task")
        if not isinstance(task, dict) or task.get("type") not in jobs:
            raise ClusterError(f'{source}: "task" must name this process\'s '
                               f'job, one of {sorted(jobs)}, got {task!r}')
        index = task.get("index")
        size = len(jobs[task["type"]])
        if isinstance(index, bool) or not isinstance(index, int) or not (
                0 <= index < size):
            raise ClusterError(f'{source}: task index {index!r} is not in '
                               f'0..{size - 1} ({size} {task["type"]} task(s))')
        return cls(jobs={job: list(addresses) for job, addresses in jobs.items()},
                   task_type=task["type"], task_index=index)

    @classmethod
    def from_worker_hosts(cls, worker_hosts, task_index):
        """The ``--worker_hosts`` / ``--task_index`` shortcut: workers only."""
        hosts = [host.strip() for host in worker_hosts.split(",")]
        if not all(hosts):
            raise ClusterError(f"--worker_hosts={worker_hosts!r}: an empty "
                               f"entry (write host:port,host:port)")
        if task_index is None:
            raise ClusterError("--worker_hosts needs --task_index (this "
                               "worker's position in the list, from 0)")
        return cls.parse(json.dumps({"cluster": {"worker": hosts},
                                     "task": {"type": "worker",
                                              "index": task_index}}),
                         source="--worker_hosts/--task_index")

    def to_json(self):
        return json.dumps({"cluster": self.jobs,
                           "task": {"type": self.task_type,
                                    "index": self.task_index}})

    @property
    def num_workers(self):
        return sum(len(addresses) for addresses in self.jobs.values())

    @property
    def is_chief(self):
        chief_job = "chief" if "chief" in self.jobs else "worker"
        return self.task_type == chief_job and self.task_index == 0

    @property
    def address(self):
        return self.jobs[self.task_type][self.task_index]

    def name_of(self, task):
        """``/job:worker/replica:0/task:1`` -> ``worker 1 (host:port)``."""
        match = re.search(r"/job:(\w+)/replica:\d+/task:(\d+)", task)
        if not match or match.group(1) not in self.jobs:
            return task
        job, index = match.group(1), int(match.group(2))
        return f"{job} {index} ({self.jobs[job][index]})"


def cluster_from(environ, worker_hosts, task_index):
    """The cluster the flags or TF_CONFIG name, or None for one machine."""
    text = environ.get(TF_CONFIG, "").strip()
    if worker_hosts:
        if text:
            raise ClusterError("both --worker_hosts and TF_CONFIG name a "
                               "cluster; give one of them")
        return Cluster.from_worker_hosts(worker_hosts, task_index)
    if task_index is not None:
        raise ClusterError("--task_index needs --worker_hosts")
    return Cluster.parse(text) if text else None


def _bind_own_port(cluster):
    """A socket bound to this task's port, or ClusterError if it is taken.

    SO_REUSEADDR, as servers set it, so a port a killed run left in
    TIME_WAIT counts as free; a port with a listener does not.
    """
    host, port = cluster.address.rsplit(":", 1)
    sock = socket.socket(socket.AF_INET6 if host.startswith("[") else
                         socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("", int(port)))
    except OSError as error:
        sock.close()
        raise ClusterError(
            f"port {port} of this task, {cluster.task_type} "
            f"{cluster.task_index} ({cluster.address}), is in use "
            f"({error.strerror})") from None
    return sock


def _answers(address, timeout_secs=1.0):
    """Whether something accepts a TCP connection at ``host:port``."""
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)),
                                      timeout=timeout_secs):
            return True
    except OSError:
        return False


def wait_for_peers(cluster, wait_secs, poll_secs=0.2):
    """Returns once every other task of ``cluster`` answers on its port;
    raises ClusterStartError naming those that did not within ``wait_secs``.

    TensorFlow's own registration with the cluster has no public bound: a
    task whose peer never starts blocks inside TensorFlow, where neither a
    timer nor SIGTERM reaches it. So the tasks meet first, here, in Python:
    each listens on its own port (the kernel completes a peer's connection
    from the listen backlog, nothing is read) until it has reached every
    peer, then frees the port for TensorFlow's server. A peer that already
    moved on answers through that server instead.
    """
    waiting = [(f"{job} {index}", address)
               for job, addresses in cluster.jobs.items()
               for index, address in enumerate(addresses)
               if (job, index) != (cluster.task_type, cluster.task_index)]
    listener = _bind_own_port(cluster)
    try:
        listener.listen(len(waiting) * 4)
        deadline = time.monotonic() + wait_secs
        while True:
            waiting = [(name, address) for name, address in waiting
                       if not _answers(address)]
            if not waiting:
                return
            if time.monotonic() >= deadline:
                names = ", ".join(f"{name} ({address})"
                                  for name, address in waiting)
                raise ClusterStartError(
                    f"{names} did not join the cluster within {wait_secs:g} s "
                    f"(--cluster_wait_secs; nothing answered on its port)")
            time.sleep(poll_secs)
    finally:
        listener.close()


def make_strategy(devices, cluster=None, wait_secs=DEFAULT_WAIT_SECS):
    """MirroredStrategy over ``devices``, or a MultiWorkerMirroredStrategy
    joining ``cluster`` once every task is up (``wait_for_peers``).

    Should TensorFlow itself give up while the cluster forms (a
    DeadlineExceeded or Unavailable error: a peer that came up and died),
    ClusterStartError names the missing tasks.
    """
    import tensorflow as tf
    if cluster is None:
        return tf.distribute.MirroredStrategy(devices)
    wait_for_peers(cluster, wait_secs)
    os.environ[TF_CONFIG] = cluster.to_json()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except (tf.errors.DeadlineExceededError, tf.errors.UnavailableError) as error:
        raise ClusterStartError(startup_failure(cluster, error, wait_secs)) from None


_TASK = re.compile(r"/job:\w+/replica:\d+/task:\d+")


def _first_line(error):
    """The error's type and its first informative line."""
    lines = [line.strip() for line in getattr(error, "message", str(error))
             .splitlines() if line.strip()
             and not line.startswith(("Graph execution error", "Detected at"))]
    return type(error).__name__ + (f": {lines[0][:160]}" if lines else "")


def startup_failure(cluster, error, wait_secs):
    """One line naming the tasks that never joined, from TF's error."""
    message = getattr(error, "message", str(error))
    if "timed out task names:" in message:
        # The service's barrier lists the missing tasks, one a line.
        listed = message.split("timed out task names:", 1)[1].strip()
        missing = _TASK.findall(listed.split("\n\n", 1)[0])
    else:
        # This task could not register with the service on the chief.
        chief = "chief" if "chief" in cluster.jobs else "worker"
        missing = [f"/job:{chief}/replica:0/task:0"]
    names = ", ".join(cluster.name_of(task) for task in sorted(set(missing)))
    return (f"{names} did not join the cluster within {wait_secs:g} s "
            f"(--cluster_wait_secs; {_first_line(error)})")


def runtime_failure(cluster, error):
    """One line naming the task that failed mid-run, from TF's error."""
    message = getattr(error, "message", str(error))
    me = cluster.name_of(
        f"/job:{cluster.task_type}/replica:0/task:{cluster.task_index}")
    others = sorted({cluster.name_of(task) for task in _TASK.findall(message)}
                    - {me})
    who = (", ".join(others) + " stopped responding") if others else (
        "a worker stopped responding")
    return (f"the cluster failed: {who}; restart every worker to resume from "
            f"the chief's last checkpoint ({_first_line(error)})")


def _multi_worker(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    return resolver is not None and bool(resolver.cluster_spec().as_dict())


def is_chief(strategy):
    """Whether this process writes the summaries and the real checkpoints:
    the ``chief`` task, or worker 0 of a cluster without one (TensorFlow's
    rule for MultiWorkerMirroredStrategy)."""
    if not _multi_worker(strategy):
        return True
    resolver = strategy.cluster_resolver
    if resolver.task_type == "chief":
        return True
    return ("chief" not in resolver.cluster_spec().jobs
            and resolver.task_type == "worker" and resolver.task_id == 0)


@contextlib.contextmanager
def checkpoint_dir(train_dir, chief):
    """Where this process saves checkpoints: ``train_dir`` for the chief;
    for another worker a temporary directory, removed on the way out.

    Every worker of a multi-worker job must take part in saving (the TF
    multi-worker guide's rule), but only the chief's files are kept.
    """
    if chief:
        yield train_dir
        return
    directory = tempfile.mkdtemp(prefix="tfmech_worker_checkpoints_")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# The replicas' share of the work.

def scope(strategy):
    """``strategy.scope()``, or nothing when training on one device."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def replica_mean(values):
    """The mean over all replicas of ``values`` (a nest of tensors).

    Call it inside the step function. On one device (no strategy, or one
    replica) it returns ``values`` itself, so the single-device step runs
    exactly the ops it always ran.
    """
    import tensorflow as tf
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return context.all_reduce(tf.distribute.ReduceOp.MEAN, values)


def distribute_batches(strategy, make_dataset, global_batch_size):
    """A distributed dataset in which replica r gets slice r of every batch.

    Args:
      make_dataset: () -> a dataset of global batches (a tuple of tensors
        with the batch first); each worker builds it whole and keeps the
        slices of its replicas.
      global_batch_size: B; every replica gets B / num_replicas examples.

    ``distribute_datasets_from_function`` hands a worker's consecutive
    elements to its replicas in order, so each global batch becomes the
    worker's replicas' slices, one element each.
    """
    import tensorflow as tf
    replicas = strategy.num_replicas_in_sync
    check_divisible(global_batch_size, replicas, "replicas")
    per_replica = global_batch_size // replicas

    def dataset_fn(context):
        local = replicas // context.num_input_pipelines
        start = context.input_pipeline_id * local * per_replica

        def slices(*batch):
            return tuple(
                tf.reshape(part[start:start + local * per_replica],
                           [local, per_replica, *part.shape[1:]])
                for part in batch)
        return make_dataset().map(slices).unbatch().prefetch(local)

    return strategy.distribute_datasets_from_function(dataset_fn)


def agree_on_step(strategy, step):
    """Checks every worker starts at ``step``; ClusterError if one does not.

    A worker restores the chief's newest checkpoint from ``--train_dir``; a
    worker that cannot see it (no shared file system) would start over and
    the job would train on mismatched weights.
    """
    import tensorflow as tf
    if not _multi_worker(strategy):
        return

    def gather():
        context = tf.distribute.get_replica_context()
        return context.all_gather(tf.constant([step], tf.int64), axis=0)
    steps = strategy.experimental_local_results(strategy.run(gather))[0].numpy()
    if len(set(steps.tolist())) > 1:
        raise ClusterError(
            f"the replicas restored different steps {sorted(set(steps.tolist()))}: "
            f"every worker must read the chief's --train_dir (a shared file "
            f"system) to resume")
