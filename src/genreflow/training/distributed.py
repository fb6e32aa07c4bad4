"""Data-parallel training over several worker processes with TensorFlow's own engine.

Workers are found in one of three ways (:func:`detect_workers`):

- under ``srun`` with several tasks: one worker per SLURM task, addresses from
  ``SlurmClusterResolver`` (host names of the step, ports ``port_base + local task index``);
- with ``TF_CONFIG`` set (TensorFlow's standard: ``{"cluster": {"worker": ["host:port", ...]},
  "task": {"type": "worker", "index": i}}``): one worker per listed address;
- otherwise one worker: plain single-process training, no strategy at all.

Several workers train with ``tf.distribute.MultiWorkerMirroredStrategy``: every worker holds a
replica of the model, reads its own part of the data, and gradients are summed with collective
all-reduce after every step. Worker 0 is the chief: it alone writes files.

Nothing here imports TensorFlow at module level (the CLI and the launcher import it cheaply).
"""

from __future__ import annotations

import functools
import json
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genreflow.core.errors import ConfigError

__all__ = [
    "WorkerGroup",
    "allreduce_seconds",
    "any_worker",
    "build_strategy",
    "check_worker_count",
    "close_leaked_pools",
    "detect_workers",
    "gather_rows",
    "patch_keras_for_multi_worker",
    "lost_worker_message",
    "slurm_port_base",
    "worker_batch",
]

#: Ports of a SLURM job's workers start here plus an offset from the job id (see slurm_port_base).
DEFAULT_PORT_BASE = 20000
PORT_SPAN = 20000


@dataclass(frozen=True)
class WorkerGroup:
    """The training workers and this process's place among them.

    Attributes
    ----------
    count : int
        Number of workers (1 = no distribution).
    index : int
        This worker, ``0 <= index < count``; worker 0 is the chief.
    source : str
        ``"single"``, ``"tf_config"`` or ``"slurm"``.
    addresses : list of str
        ``host:port`` of every worker (empty for a single worker or before SLURM resolution).
    """

    count: int
    index: int
    source: str
    addresses: list[str] = field(default_factory=list)

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def distributed(self) -> bool:
        return self.count > 1


def detect_workers(
    *, requested: int | None, environ: Mapping[str, str] | None = None
) -> WorkerGroup:
    """The worker group this process belongs to.

    Parameters
    ----------
    requested : int or None
        ``--workers N``; ``None`` (``--workers auto``) takes whatever the environment says.
    environ : mapping, optional
        Defaults to ``os.environ``.

    Raises
    ------
    ConfigError
        ``TF_CONFIG`` is malformed, or the environment's worker count is not ``requested``
        (the message says how to start that many).
    """
    env = os.environ if environ is None else environ
    if env.get("TF_CONFIG"):
        group = _from_tf_config(env["TF_CONFIG"])
    elif _slurm_tasks(env) > 1:
        group = WorkerGroup(
            count=_slurm_tasks(env), index=int(env.get("SLURM_PROCID", "0")), source="slurm"
        )
    else:
        group = WorkerGroup(count=1, index=0, source="single")
    return check_worker_count(group, requested=requested)


def check_worker_count(group: WorkerGroup, *, requested: int | None) -> WorkerGroup:
    """``group`` when it has ``requested`` workers (``None``: any number); else
    :class:`ConfigError`, saying how to start that many."""
    if requested is not None and requested != group.count:
        where = {
            "tf_config": f"TF_CONFIG lists {group.count} worker(s)",
            "slurm": f"this SLURM step has {group.count} task(s)",
            "single": "no TF_CONFIG and no multi-task SLURM step (one worker)",
        }[group.source]
        raise ConfigError(
            f"--workers {requested} but {where}. Start one process per worker: under SLURM "
            f"`srun -n {requested} genreflow train ...`; elsewhere set TF_CONFIG in each "
            "process (docs/distributed.md), or run `genreflow train --workers N` without "
            "TF_CONFIG to start N local workers on loopback"
        )
    return group


def _slurm_tasks(env: Mapping[str, str]) -> int:
    # Only a job *step* (srun) has one process per task; the batch script itself is one process.
    if "SLURM_STEP_ID" not in env or "SLURM_PROCID" not in env:
        return 1
    value = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or "1"
    try:
        return int(value)
    except ValueError:
        return 1


def _from_tf_config(text: str) -> WorkerGroup:
    try:
        spec = json.loads(text)
        cluster = spec["cluster"]
        task = spec["task"]
        chiefs = list(cluster.get("chief", []))
        workers = list(cluster.get("worker", []))
        kind, index = task["type"], int(task["index"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"TF_CONFIG: expected {{'cluster': {{'worker': ['host:port', ...]}}, 'task': "
            f"{{'type': 'worker', 'index': i}}}}; could not read it ({exc})"
        ) from exc
    addresses = chiefs + workers
    if kind == "chief" and chiefs:
        position = index
    elif kind == "worker":
        position = len(chiefs) + index
    else:
        raise ConfigError(f"TF_CONFIG: task type '{kind}' is not supported; allowed: worker, chief")
    if not 0 <= position < len(addresses):
        raise ConfigError(
            f"TF_CONFIG: task index {index} is outside the {len(addresses)} listed address(es)"
        )
    return WorkerGroup(
        count=len(addresses), index=position, source="tf_config", addresses=addresses
    )


def slurm_port_base(*, configured: int | None, environ: Mapping[str, str] | None = None) -> int:
    """First port of this job's workers on each node.

    ``train.port_base`` when set; otherwise derived from the job id so that two jobs sharing a
    node (a thread sweep, say) do not collide.
    """
    if configured is not None:
        return int(configured)
    env = os.environ if environ is None else environ
    try:
        job = int(env.get("SLURM_JOB_ID", "0"))
    except ValueError:
        job = 0
    return DEFAULT_PORT_BASE + (job * 8) % PORT_SPAN


# --------------------------------------------------------------------------- TensorFlow side


def build_strategy(group: WorkerGroup, *, port_base: int | None = None):
    """``MultiWorkerMirroredStrategy`` for ``group`` (call right after configuring threads).

    Returns ``(strategy, group)``: the group with the resolved addresses. For a single worker
    the strategy is ``None`` (plain Keras training, unchanged).
    """
    if not group.distributed:
        return None, group
    import tensorflow as tf

    if group.source == "slurm":
        resolver = _slurm_resolver(port_base=slurm_port_base(configured=port_base))
        spec = resolver.cluster_spec().as_dict()
        addresses = list(spec.get("worker", []))
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    else:
        addresses = group.addresses
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    patch_keras_for_multi_worker()
    resolved = WorkerGroup(
        count=int(strategy.num_replicas_in_sync),
        index=int(strategy.cluster_resolver.task_id),
        source=group.source,
        addresses=addresses,
    )
    return strategy, resolved


def _slurm_resolver(*, port_base: int):
    from tensorflow.python.distribute.cluster_resolver import slurm_cluster_resolver as scr

    try:
        gpus = scr.get_num_gpus()
    except (RuntimeError, OSError):
        gpus = 0
    if gpus:
        return scr.SlurmClusterResolver(port_base=port_base)
    # CPU nodes: the resolver hands out GPUs in steps of gpus_per_task and lists one address per
    # GPU handed out, so with 0 GPUs it lists no workers. One pretend GPU per task, never
    # applied (auto_set_gpu=False), gives one address per task.
    per_node = max(scr.expand_tasks_per_node(os.environ["SLURM_STEP_TASKS_PER_NODE"]))
    return scr.SlurmClusterResolver(
        port_base=port_base, gpus_per_node=per_node, gpus_per_task=1, auto_set_gpu=False
    )


_PATCHED = False


def patch_keras_for_multi_worker() -> None:
    """Work around two Keras 3 defects that stop ``fit`` under MultiWorkerMirroredStrategy.

    keras-team/keras#20585 (open; Keras 3.15, TF 2.21): ``fit`` fails before the first step
    with "Attempt to convert a value (PerReplica...)". Two places are at fault:

    1. ``Trainer._maybe_symbolic_build`` reduces a whole ``(x, y)`` batch with
       ``strategy.reduce``, which multi-worker collectives accept only for single tensors. The
       model only needs shapes there: :func:`build_for_distribution` builds it from a spec.
    2. ``reduce_per_replica`` reduces scalar metric values with ``axis=0``; a scalar has no
       axis 0. The replacement averages them over workers with ``axis=None``, so every worker
       sees the same, global loss and metrics (and takes the same early-stopping decisions).

    Only multi-worker strategies take the replaced paths; everything else is untouched.
    """
    global _PATCHED
    if _PATCHED:
        return
    from keras.src import tree
    from keras.src.backend.tensorflow import trainer as tf_trainer

    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(
            strategy
        ):

            def mean(value):
                if tf_trainer._is_per_replica_instance(value):
                    return strategy.reduce("MEAN", value, axis=None)
                return value

            return tree.map_structure(mean, values)
        return original(values, strategy, reduction)

    tf_trainer.reduce_per_replica = reduce_per_replica
    _PATCHED = True


def build_for_distribution(model, *, input_spec) -> None:
    """Build ``model``'s loss, metrics and optimizer from ``input_spec`` (see the patch above).

    Replaces the model's ``_maybe_symbolic_build`` so that ``fit`` does not pull (and reduce) a
    batch from the distributed dataset to learn its shapes.

    Parameters
    ----------
    input_spec : tuple of tf.TensorSpec
        ``(x, y)`` specs of one batch, batch dimension ``None``.
    """
    import types

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=input_spec)

    model._maybe_symbolic_build = types.MethodType(_maybe_symbolic_build, model)


def any_worker(strategy, flag: bool) -> bool:
    """True on every worker when ``flag`` is true on any (a collective: all must call it)."""
    import tensorflow as tf

    if strategy is None:
        return bool(flag)
    total, _ = _collectives(strategy)
    return bool(total(tf.constant(1.0 if flag else 0.0)).numpy() > 0)


def gather_rows(strategy, row: list[float]):
    """Every worker's ``row``, shape (workers, len(row)), on every worker (a collective)."""
    import numpy as np
    import tensorflow as tf

    if strategy is None:
        return np.asarray([row], dtype=np.float64)
    _, gather = _collectives(strategy)
    return np.asarray(gather(tf.constant(row, dtype=tf.float64)).numpy())


@functools.cache
def _collectives(strategy):
    """``(total, gather)``: the collectives above as graph functions, traced once per strategy.

    Run eagerly, ``MultiWorkerMirroredStrategy`` reduces through a ``multiprocessing`` thread
    pool that it only closes when the reduction succeeds: a worker whose peer died inside one
    leaked the pool, and its ``__del__`` could print a traceback at interpreter exit, after
    the clear "lost contact" line. In a graph the reduction runs without that pool.
    """
    import tensorflow as tf

    @tf.function
    def total(value):
        return strategy.reduce("SUM", strategy.run(lambda v: v, args=(value,)), axis=None)

    @tf.function
    def gather(row):
        return strategy.gather(strategy.run(lambda r: r[tf.newaxis], args=(row,)), axis=0)

    return total, gather


def allreduce_seconds(strategy, *, n_values: int, repeats: int = 20) -> float:
    """Median wall time of one all-reduce of ``n_values`` float32 (the model's gradient size).

    A collective: every worker must call it. 0.0 for a single worker.
    """
    import numpy as np
    import tensorflow as tf

    if strategy is None:
        return 0.0

    @tf.function
    def step():
        def reduce():
            return tf.distribute.get_replica_context().all_reduce(
                "SUM", tf.zeros([int(n_values)], tf.float32)
            )

        return strategy.run(reduce)

    step()  # trace and connect outside the timing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = step()
        strategy.experimental_local_results(result)[0].numpy()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def describe_group(group: WorkerGroup) -> dict[str, Any]:
    """The ``workers`` part of ``timings.json``."""
    return {
        "count": group.count,
        "source": group.source,
        "addresses": list(group.addresses),
    }


# --------------------------------------------------------------------------- batch and failures


def worker_batch(tcfg: Mapping[str, Any], *, workers: int) -> dict[str, Any]:
    """Per-worker and global batch and the learning rate for ``workers`` data-parallel workers.

    ``train.worker_batch``: ``per_worker`` (each worker takes ``batch_size``) or ``split``
    (``batch_size`` is the global batch). ``train.learning_rate_scaling`` (``sqrt``,
    ``linear``, ``none``) scales ``learning_rate`` by global batch / ``batch_size``.
    """
    size = int(tcfg["batch_size"])
    per_worker = max(1, size // workers) if tcfg["worker_batch"] == "split" else size
    total = per_worker * workers
    factor = {"sqrt": math.sqrt, "linear": float, "none": lambda _: 1.0}[
        tcfg["learning_rate_scaling"]
    ](total / size)
    return {
        "per_worker": per_worker,
        "global": total,
        "learning_rate": float(tcfg["learning_rate"]) * factor,
    }


def close_leaked_pools() -> int:
    """Terminate the thread pools that failed eager all-reduces left running; their count.

    Keras resets and reads its metric variables eagerly at every epoch's start and end, and run
    eagerly, ``MultiWorkerMirroredStrategy``'s all-reduce maps over a
    ``multiprocessing.pool.ThreadPool`` that it closes only when the map succeeds
    (``tensorflow/python/distribute/cross_device_ops.py``, ``_all_reduce_per_replica_values``).
    When a peer dies during one, the pool stays running, and at interpreter exit its
    ``__del__`` warns and writes to a pipe that may already be closed (EBADF). Call this once a
    collective has failed, before leaving.
    """
    import gc
    from multiprocessing.pool import ThreadPool

    leaked = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, ThreadPool) and getattr(obj, "_state", None) == "RUN"
    ]
    for pool in leaked:
        pool.terminate()
    return len(leaked)


def lost_worker_message(exc: Exception, *, state: Mapping[str, Any], checkpoint_dir: Path) -> str:
    """One clear line for a collective that failed because another worker went away."""
    first = str(getattr(exc, "message", exc)).strip().splitlines()
    reason = next((line for line in first if "unhealthy" in line or "heartbeat" in line), None)
    reason = reason or (first[0] if first else type(exc).__name__)
    done = int(state.get("epochs_done", 0))
    where = (
        f"the chief's checkpoint after epoch {done} in {checkpoint_dir} is kept: "
        "start all workers again to resume from it"
        if done
        else "no epoch was completed: start all workers again"
    )
    return f"lost contact with another worker ({reason.rstrip('.:')}); {where}"
