"""Detect a usable SLURM cluster for tests; skip (or fail, in CI) when there is none."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

#: Set to 1 where a cluster must be up (CI after `slurm/local-cluster.sh up`): no silent skips.
REQUIRE_ENV = "GENREFLOW_REQUIRE_SLURM"

_READY_STATES = {"idle", "mixed", "allocated", "completing"}


def slurm_problem() -> str | None:
    """Why SLURM cannot take jobs here, or ``None`` when a controller is up with a ready node."""
    for tool in ("sinfo", "scontrol", "srun", "sbatch"):
        if shutil.which(tool) is None:
            return f"SLURM is not installed ({tool} not on PATH); start one with slurm/local-cluster.sh up"
    try:
        ping = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=15, check=False
        )
        if ping.returncode != 0 or "UP" not in ping.stdout:
            first = (ping.stdout + ping.stderr).strip().splitlines()[:1]
            return f"slurmctld does not answer `scontrol ping`: {' '.join(first) or 'no output'}"
        nodes = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return f"{' '.join(exc.cmd)} timed out"
    states = {s.strip().rstrip("*~#$@+").lower() for s in nodes.stdout.split()}
    if not states & _READY_STATES:
        return f"no SLURM node is ready for jobs (node states: {sorted(states) or 'none'})"
    return None


def require_slurm() -> None:
    """Skip the calling test without a cluster; fail instead when ``GENREFLOW_REQUIRE_SLURM=1``."""
    problem = slurm_problem()
    if problem is None:
        return
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {problem}")
    pytest.skip(problem)


def submitted_job_ids(text: str) -> list[str]:
    """SLURM job ids in ``sbatch``/Snakemake output ("Submitted batch job 12", "SLURM jobid 12")."""
    return re.findall(r"(?:Submitted batch job|SLURM jobid)\s+(\d+)", text)


def cancel_jobs(job_ids: list[str]) -> None:
    """Cancel jobs a test submitted (by id) so a failed test leaves no queue behind."""
    if job_ids and shutil.which("scancel"):
        subprocess.run(["scancel", *job_ids], capture_output=True, timeout=30, check=False)
