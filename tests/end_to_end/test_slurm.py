"""Real jobs on a real SLURM cluster (skipped without one; see slurm/local-cluster.sh)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.slurm_utils import cancel_jobs, require_slurm, submitted_job_ids

pytestmark = pytest.mark.slurm

MPI_PROGRAM = (
    "from mpi4py import MPI; c = MPI.COMM_WORLD; "
    "print('rank', c.Get_rank(), 'size', c.Get_size(), flush=True)"
)


@pytest.fixture(autouse=True)
def _cluster():
    require_slurm()


def _run(cmd: list[str], *, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = (exc.stderr or b"").decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        cancel_jobs(submitted_job_ids(out + err))
        pytest.fail(f"{' '.join(cmd)} did not finish in {timeout} s\n{out}\n{err}")


def test_srun_starts_mpi_ranks():
    result = _run(["srun", "-n", "2", "--time=5", sys.executable, "-c", MPI_PROGRAM])
    assert result.returncode == 0, result.stdout + result.stderr
    pairs = {
        tuple(line.split()[1::2]) for line in result.stdout.splitlines() if line.startswith("rank")
    }
    # Two processes that see each other: ranks 0 and 1 of one communicator of size 2.
    assert pairs == {("0", "2"), ("1", "2")}, result.stdout


def test_sbatch_wait_runs_a_batch_script(tmp_path: Path):
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        'echo "job $SLURM_JOB_ID on $(hostname) in $PWD"\n'
        f"{sys.executable} -c 'print(6 * 7)'\n"
    )
    out = tmp_path / "job.out"
    result = _run(
        ["sbatch", "--wait", "--time=5", f"--chdir={tmp_path}", f"--output={out}", str(script)]
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (job_id,) = submitted_job_ids(result.stdout)
    lines = out.read_text().splitlines()
    assert lines[0].startswith(f"job {job_id} on ") and lines[0].endswith(f"in {tmp_path}")
    assert lines[1] == "42"


def test_sbatch_wait_reports_a_failing_job(tmp_path: Path):
    script = tmp_path / "fail.sh"
    script.write_text("#!/bin/bash\necho 'about to fail' >&2\nexit 3\n")
    out = tmp_path / "fail.out"
    result = _run(["sbatch", "--wait", "--time=5", f"--output={out}", str(script)])
    assert result.returncode == 3, result.stdout + result.stderr
    assert "about to fail" in out.read_text()


def _partition_cpus() -> int:
    nodes = _run(["sinfo", "-h", "-N", "-o", "%c"]).stdout.split()
    return sum(int(n) for n in nodes)


def test_sbatch_refuses_a_job_no_partition_can_run(tmp_path: Path):
    """More tasks than the cluster's CPUs: refused at submission, not pending for ever."""
    tasks = 2 * _partition_cpus()
    script = tmp_path / "big.sh"
    script.write_text("#!/bin/bash\ntrue\n")
    result = _run(
        [
            "sbatch",
            f"--ntasks={tasks}",
            "--time=5",
            f"--output={tmp_path / 'big.out'}",
            str(script),
        ],
        timeout=30,
    )
    cancel_jobs(submitted_job_ids(result.stdout))
    assert result.returncode != 0, f"a {tasks}-task job was accepted: {result.stdout}"
    assert "submission failed" in result.stderr, result.stderr


def test_a_job_pending_for_a_reason_that_never_clears_is_reported_and_cancelled(tmp_path: Path):
    """The workflow's watcher (onstart under the profile) does not wait on such a job."""
    from genreflow.snakefile.slurm_check import cancel_hopeless_jobs

    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/bash\nexit 1\n")
    first = _run(
        [
            "sbatch",
            "--wait",
            "--time=5",
            "--mem=100",
            f"--output={tmp_path / 'a.out'}",
            str(failing),
        ]
    )
    (first_id,) = submitted_job_ids(first.stdout)
    # Depends on a job that failed: pends with reason DependencyNeverSatisfied for ever.
    second = _run(
        [
            "sbatch",
            f"--dependency=afterok:{first_id}",
            "--time=5",
            "--mem=100",
            "--comment=rule_train",
            f"--chdir={tmp_path}",
            f"--output={tmp_path / 'b.out'}",
            str(failing),
        ]
    )
    (second_id,) = submitted_job_ids(second.stdout)
    try:
        reported: list[str] = []
        for _ in range(30):  # the controller evaluates dependencies within seconds
            found = cancel_hopeless_jobs(workdir=str(tmp_path), report=reported.append)
            if found:
                break
            time.sleep(1)
        assert [j.job_id for j in found] == [second_id], reported
        assert "DependencyNeverSatisfied" in reported[0] and "cancelling" in reported[0]
        state = _run(["squeue", "-h", "-j", second_id, "-o", "%T"]).stdout.strip()
        assert state in {"", "CANCELLED"}, state
    finally:
        cancel_jobs([second_id])
