"""MPI plumbing of the spectrogram stage (genreflow.spectrograms.mpi): which launcher started
us, and an MPI start-up that never finishes ends the rank instead of hanging the job."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from genreflow.core.errors import StageError
from genreflow.spectrograms.mpi import _init_timeout, detect_launcher, expected_size
from tests.support.spectrogram_runs import MPIEXEC, TIMEOUT

needs_mpi = pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec beside this Python")


def test_detect_launcher():
    assert detect_launcher({}) == "none"
    hydra = {"PMI_RANK": "0", "PMI_SIZE": "4", "PMI_FD": "9", "MPI_LOCALNRANKS": "4"}
    assert detect_launcher(hydra) == "mpiexec" and expected_size(hydra) == 4
    # Hydra under SLURM starts its proxies with srun: still mpiexec.
    assert detect_launcher({**hydra, "SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0"}) == "mpiexec"
    srun = {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "3"}
    assert detect_launcher(srun) == "srun" and expected_size(srun) == 3
    assert detect_launcher({**srun, "PMI_SIZE": "3", "PMI_FD": "5"}) == "srun"
    batch = {"SLURM_JOB_ID": "7", "SLURM_STEP_ID": "batch", "SLURM_NTASKS": "4"}
    assert detect_launcher(batch) == "none" and expected_size(batch) is None
    assert detect_launcher({"OMPI_COMM_WORLD_SIZE": "2", "PMIX_RANK": "0"}) == "mpiexec"


def _ranks(code: str, *, timeout_env: str) -> subprocess.CompletedProcess:
    """``code`` on two ranks of the venv's ``mpiexec`` with ``GENREFLOW_MPI_INIT_TIMEOUT``."""
    return subprocess.run(
        [str(MPIEXEC), "-n", "2", sys.executable, "-c", code],
        env={**os.environ, "GENREFLOW_MPI_INIT_TIMEOUT": timeout_env},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


@needs_mpi
def test_a_start_up_that_outlasts_its_timeout_ends_the_ranks():
    # 1 ms: MPI_Init (loading libmpi, the PMI exchange) takes far longer, as a hung one would.
    code = "from genreflow.spectrograms.mpi import init_world; init_world(); print('started')"
    result = _ranks(code, timeout_env="0.001")
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert "Timeout (" in result.stderr and "_import_mpi_within" in result.stderr


@needs_mpi
def test_the_start_up_watchdog_is_off_once_mpi_has_started():
    code = (
        "import time; from genreflow.spectrograms.mpi import init_world; "
        "world = init_world(); time.sleep(4); print('alive', world.rank, world.size)"
    )
    result = _ranks(code, timeout_env="3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(result.stdout.split("\n")[:2]) == ["alive 0 2", "alive 1 2"]


def test_a_bad_start_up_timeout_names_the_variable():
    assert _init_timeout({}) == 120.0 and _init_timeout({"GENREFLOW_MPI_INIT_TIMEOUT": "30"}) == 30
    for bad in ("soon", "0", "-5"):
        with pytest.raises(StageError, match="GENREFLOW_MPI_INIT_TIMEOUT must be"):
            _init_timeout({"GENREFLOW_MPI_INIT_TIMEOUT": bad})
