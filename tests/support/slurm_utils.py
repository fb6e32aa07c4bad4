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


#: The two-node cluster of `slurm/local-cluster.sh up --nodes 2` (its commands need SLURM_CONF).
TWO_NODE_CONF = "/etc/slurm-genreflow-two/slurm.conf"
TWO_NODES = ("n1", "n2")


def slurm_problem(*, env: dict | None = None, nodes: int = 1) -> str | None:
    """Why SLURM cannot take jobs here, or ``None`` when a controller is up with ``nodes`` ready."""
    for tool in ("sinfo", "scontrol", "srun", "sbatch"):
        if shutil.which(tool) is None:
            return f"SLURM is not installed ({tool} not on PATH); start one with slurm/local-cluster.sh up"
    try:
        ping = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=15, check=False, env=env
        )
        if ping.returncode != 0 or "UP" not in ping.stdout:
            first = (ping.stdout + ping.stderr).strip().splitlines()[:1]
            return f"slurmctld does not answer `scontrol ping`: {' '.join(first) or 'no output'}"
        listing = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%T"],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        return f"{' '.join(exc.cmd)} timed out"
    states = [s.strip().rstrip("*~#$@+").lower() for s in listing.stdout.split()]
    if sum(s in _READY_STATES for s in states) < nodes:
        return f"fewer than {nodes} SLURM node(s) ready for jobs (node states: {states or 'none'})"
    return None


def two_node_env() -> dict:
    """This process's environment pointed at the two-node cluster."""
    return {**os.environ, "SLURM_CONF": TWO_NODE_CONF}


def require_slurm(*, nodes: int = 1) -> None:
    """Skip the calling test without a cluster; fail instead when ``GENREFLOW_REQUIRE_SLURM=1``.

    ``nodes=2``: the two-node cluster (``slurm/local-cluster.sh up --nodes 2``).
    """
    if nodes == 2:
        problem = (
            slurm_problem(env=two_node_env(), nodes=2)
            if os.path.exists(TWO_NODE_CONF)
            else f"no two-node cluster ({TWO_NODE_CONF} missing): slurm/local-cluster.sh up --nodes 2"
        )
    else:
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
