"""How the training processes of ``genreflow train`` start: :func:`train` decides, once.

- **One process**: no ``TF_CONFIG`` and no multi-task ``srun`` step, ``--workers`` auto or 1.
  A backbone's head is always fitted in one process.
- **N local workers**: ``--workers N`` (N > 1) with neither: this process picks N free loopback
  ports, starts N copies of its own command line (:func:`worker_command`), each with its own
  ``TF_CONFIG``, and waits (:func:`run_local_workers`); it never trains itself.
- **Workers given by the environment**: the tasks of an ``srun`` step (the workflow builds that
  command: :mod:`genreflow.snakefile.launch`) or ``TF_CONFIG`` set in each process by hand. This
  process is one of them (:func:`genreflow.training.distributed.detect_workers`).

Local workers: worker 0 (the chief) writes to the launcher's stdout/stderr; the others' lines
are prefixed ``[worker k]``. When any worker fails, the others are stopped at once (TensorFlow's
own failure detection would take ~10 s more) and the launcher exits non-zero; running the same
command again resumes from the chief's last checkpoint.

Thread counts are set (:func:`genreflow.core.threads.start_tensorflow`) before TensorFlow is
imported: nothing here imports it at module level.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from genreflow.core.threads import (
    WORKER_SLOT_ENV,
    keep_freed_memory,
    quiet_tensorflow,
    start_tensorflow,
    usable_cpus,
)
from genreflow.training.distributed import (
    WorkerGroup,
    build_strategy,
    check_worker_count,
    detect_workers,
)

__all__ = [
    "free_ports",
    "production_threads",
    "restored_affinity",
    "run_local_workers",
    "tf_config",
    "train",
    "worker_command",
]

PathLike = str | os.PathLike


def train(
    *,
    features_dir: PathLike,
    out_dir: PathLike,
    cfg: Mapping[str, Any],
    threads: int | None = None,
    threads_from: PathLike | None = None,
    epochs: int | None = None,
    max_seconds: float | None = None,
    workers: int | None = None,
    embeddings_dir: PathLike | None = None,
    role: str = "production",
    config_file: PathLike | None = None,
    overrides: Sequence[str] = (),
) -> int:
    """Train ``cfg``'s model (the CNN, or a head on its backbone) in this process or in the
    local workers it starts; the exit code.

    Parameters
    ----------
    features_dir, out_dir : path-like
        ``genreflow spectrograms`` output; the model directory to write.
    cfg : mapping
        The validated config.
    threads : int, optional
        Intra-op threads (``--threads``, or the count read from ``threads_from``); none given:
        ``train.production_threads``.
    threads_from : path-like, optional
        The sweep's ``production.json`` that ``threads`` was read from: local workers are
        given it rather than the count, as the command was.
    epochs, max_seconds : optional
        Override ``train.epochs`` and ``train.max_seconds`` (the CNN only).
    workers : int, optional
        ``--workers N``; ``None`` (auto) takes as many as the environment has.
    embeddings_dir : path-like, optional
        With a backbone: ``genreflow embed`` output of these features (none: embed here).
    role : str
        ``"production"`` or ``"sweep"`` (a timing point), recorded in ``timings.json``.
    config_file, overrides : optional
        ``--config`` and the ``--set KEY=VALUE`` strings, for the local workers' command line.

    Raises
    ------
    ConfigError
        ``TF_CONFIG`` is malformed or the environment's worker count is not ``workers``.
    """
    if cfg["train"]["model"]["backbone"] != "none":
        if workers not in (None, 1):
            print(
                "train: a backbone's head is fitted in one process (--workers ignored)", flush=True
            )
        _train_head(
            features_dir=features_dir,
            out_dir=out_dir,
            cfg=cfg,
            intra=production_threads(cfg, threads=threads),
            embeddings_dir=embeddings_dir,
        )
        return 0
    # Once: the tasks of an srun step, the workers of TF_CONFIG, or this process alone.
    found = detect_workers(requested=None)
    if workers is not None and workers > 1 and found.source == "single":
        command = worker_command(
            features_dir=features_dir,
            out_dir=out_dir,
            workers=workers,
            threads=threads,
            threads_from=threads_from,
            epochs=epochs,
            max_seconds=max_seconds,
            role=role,
            config_file=config_file,
            overrides=overrides,
        )
        return run_local_workers(command, count=workers)
    group = check_worker_count(found, requested=workers)
    _train_cnn(
        features_dir=features_dir,
        out_dir=out_dir,
        cfg=cfg,
        intra=production_threads(cfg, threads=threads),
        epochs=epochs,
        max_seconds=max_seconds,
        group=group,
        role=role,
    )
    return 0


def _train_cnn(
    *, features_dir, out_dir, cfg, intra: int, epochs, max_seconds, group: WorkerGroup, role: str
) -> None:
    """The CNN in this process, one of ``group`` (threads set here, then the strategy)."""
    inter = cfg["train"]["inter_op_threads"]
    inter = intra if inter == "auto" else int(inter)
    # The environment must be in place before TensorFlow (and its OpenMP/BLAS) is imported.
    keep_freed_memory()
    with restored_affinity():
        settings = start_tensorflow(intra_op=intra, inter_op=inter, bind=cfg["train"]["bind_cores"])
        # The strategy right after the thread settings: it starts TensorFlow's runtime.
        strategy, group = build_strategy(group, port_base=cfg["train"]["port_base"])
        from genreflow.training.fit import train_model

        train_model(
            features_dir=features_dir,
            out_dir=out_dir,
            cfg=cfg,
            threads=settings,
            epochs=epochs,
            max_seconds=max_seconds,
            workers=group,
            strategy=strategy,
            role=role,
        )


def _train_head(*, features_dir, out_dir, cfg, intra: int, embeddings_dir) -> None:
    """A head on the pretrained backbone: one process, seconds after embedding."""
    keep_freed_memory()
    with restored_affinity():
        settings = start_tensorflow(intra_op=intra, inter_op=1, bind=cfg["train"]["bind_cores"])
        quiet_tensorflow()
        from genreflow.training.head import train_head

        train_head(
            features_dir=features_dir,
            out_dir=out_dir,
            cfg=cfg,
            threads=settings,
            embeddings_dir=embeddings_dir,
        )


def production_threads(cfg: Mapping[str, Any], *, threads: int | None) -> int:
    """``threads`` when given, else ``train.production_threads`` (``auto``: every usable CPU)."""
    if threads:
        return threads
    value = cfg["train"]["production_threads"]
    if value == "auto":
        # The workflow passes the sweep's choice; run by hand, take every CPU we may use.
        count = usable_cpus()
        print(
            f"train: train.production_threads is auto and no sweep choice was given "
            f"(--threads-from): using the {count} CPU(s) this process may run on",
            flush=True,
        )
        return count
    return int(value)


@contextlib.contextmanager
def restored_affinity():
    """Give the calling thread its CPU affinity back afterwards (``train.bind_cores`` binds
    it): a caller that trains in-process (tests, notebooks) keeps all of its cores."""
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    original = os.sched_getaffinity(0)
    try:
        yield
    finally:
        os.sched_setaffinity(0, original)


def worker_command(
    *,
    features_dir: PathLike,
    out_dir: PathLike,
    workers: int,
    threads: int | None = None,
    threads_from: PathLike | None = None,
    epochs: int | None = None,
    max_seconds: float | None = None,
    role: str = "production",
    config_file: PathLike | None = None,
    overrides: Sequence[str] = (),
) -> list[str]:
    """The command line each local worker runs: ``genreflow train`` with these settings
    (``threads_from`` rather than the ``threads`` read from it: each worker reads it)."""
    command = [sys.executable, "-m", "genreflow", "train"]
    command += ["--features", str(features_dir), "--out", str(out_dir), "--workers", str(workers)]
    options = {
        "threads": None if threads_from else threads,
        "threads-from": threads_from,
        "epochs": epochs,
        "max-seconds": max_seconds,
    }
    for option, value in options.items():
        if value is not None:
            command += [f"--{option}", str(value)]
    if role == "sweep":
        command.append("--sweep-point")
    if config_file:
        command += ["--config", str(config_file)]
    for setting in overrides:
        command += ["--set", setting]
    return command


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 right now."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_config(addresses: Sequence[str], index: int) -> str:
    """The ``TF_CONFIG`` value for worker ``index`` of ``addresses``."""
    return json.dumps(
        {"cluster": {"worker": list(addresses)}, "task": {"type": "worker", "index": index}}
    )


def _relay(stream, prefix: str, out) -> None:
    for line in iter(stream.readline, ""):
        out.write(f"{prefix}{line}")
        out.flush()
    stream.close()


def run_local_workers(
    argv: Sequence[str], *, count: int, poll_seconds: float = 0.2, grace_seconds: float = 5.0
) -> int:
    """Run ``argv`` as ``count`` workers on loopback; 0 when all succeed, else the first failure's code.

    Parameters
    ----------
    argv : sequence of str
        The worker command (``python -m genreflow train ... --workers N``).
    count : int
    poll_seconds, grace_seconds : float
        How often to check the workers; how long a stopped worker gets before SIGKILL.
    """
    addresses = [f"127.0.0.1:{port}" for port in free_ports(count)]
    print(
        f"train: starting {count} local workers on {', '.join(addresses)} (chief: worker 0)",
        flush=True,
    )
    procs: list[subprocess.Popen] = []
    relays: list[threading.Thread] = []
    for index in range(count):
        # Each worker's slot on this machine: bound workers take different cores.
        env = dict(
            os.environ, TF_CONFIG=tf_config(addresses, index), **{WORKER_SLOT_ENV: str(index)}
        )
        if index == 0:
            proc = subprocess.Popen(list(argv), env=env)
        else:
            proc = subprocess.Popen(
                list(argv),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
            )
            relay = threading.Thread(
                target=_relay, args=(proc.stdout, f"[worker {index}] ", sys.stdout), daemon=True
            )
            relay.start()
            relays.append(relay)
        procs.append(proc)

    failed: tuple[int, int] | None = None
    try:
        while True:
            codes = [p.poll() for p in procs]
            bad = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if bad:
                failed = bad[0]
                break
            if all(c == 0 for c in codes):
                break
            time.sleep(poll_seconds)
    except KeyboardInterrupt:
        failed = (-1, 130)
    if failed is not None:
        _stop(procs, grace_seconds=grace_seconds)
    for relay in relays:
        relay.join(timeout=2.0)
    if failed is None:
        return 0
    index, code = failed
    who = "interrupted" if index < 0 else f"worker {index} exited with {_describe(code)}"
    print(
        f"train: {who}; stopped the other workers. The chief's last checkpoint is kept: run the "
        "same command again to resume.",
        file=sys.stderr,
        flush=True,
    )
    return code if code > 0 else 1


def _stop(procs: Sequence[subprocess.Popen], *, grace_seconds: float) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace_seconds
    for p in procs:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"
