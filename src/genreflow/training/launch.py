"""Start N training workers on this machine (loopback) and watch them.

``genreflow train --workers N`` outside SLURM and without ``TF_CONFIG`` comes here: it picks
N free loopback ports, starts N copies of the same command, each with its own ``TF_CONFIG``,
and waits. Worker 0 (the chief) writes to this process's stdout/stderr; the others' lines are
prefixed ``[worker k]``. When any worker fails, the others are stopped at once (TensorFlow's
own failure detection would take ~10 s more) and the launcher exits non-zero; running the same
command again resumes from the chief's last checkpoint.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from genreflow.core.threads import WORKER_SLOT_ENV

__all__ = ["free_ports", "run_local_workers", "tf_config"]


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
