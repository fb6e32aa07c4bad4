"""genreflow.core.threads: pools and cores in force, whatever the environment says.

Each check runs in a fresh interpreter: thread pools and CPU affinity are per process and
cannot be undone inside the test runner.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from genreflow.core.threads import worker_slot


def run_python(code: str, **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_blas_pool_is_sized_and_read_back_whatever_the_environment_says():
    found = run_python(
        "import json, numpy\n"
        "from genreflow.core.threads import blas_threads, limit_blas_threads\n"
        "before = blas_threads()['blas']\n"
        "limit_blas_threads(1)\n"
        "print(json.dumps({'before': before, 'after': blas_threads()}))",
        OMP_NUM_THREADS="8",
        OPENBLAS_NUM_THREADS="8",
    )
    # The library took the inherited setting at load time (OpenBLAS caps it at the CPUs).
    assert found["before"] == min(8, os.cpu_count())
    assert found["after"]["blas"] == 1
    assert all(lib["threads"] == 1 for lib in found["after"]["libraries"])


@pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs CPU affinity and at least 2 CPUs",
)
def test_bind_to_cores_takes_its_slots_block_and_threads_inherit_it():
    allowed = sorted(os.sched_getaffinity(0))
    code = (
        "import json, os, threading\n"
        "from genreflow.core.threads import bind_to_cores\n"
        "chosen = bind_to_cores({count}, slot={slot})\n"
        "seen = []\n"
        "t = threading.Thread(target=lambda: seen.append(sorted(os.sched_getaffinity(0))))\n"
        "t.start(); t.join()\n"
        "print(json.dumps({{'chosen': chosen, 'thread': seen[0]}}))"
    )
    first = run_python(code.format(count=1, slot=0))
    assert first == {"chosen": [allowed[0]], "thread": [allowed[0]]}
    second = run_python(code.format(count=1, slot=1))
    assert second == {"chosen": [allowed[1]], "thread": [allowed[1]]}
    every = run_python(code.format(count=len(allowed), slot=0))
    assert every["chosen"] == every["thread"] == allowed


def test_worker_slot_comes_from_the_launcher_or_slurm():
    assert worker_slot({}) == 0
    assert worker_slot({"SLURM_LOCALID": "3"}) == 3
    assert worker_slot({"GENREFLOW_WORKER_SLOT": "1", "SLURM_LOCALID": "3"}) == 1
    assert worker_slot({"SLURM_LOCALID": "x"}) == 0
