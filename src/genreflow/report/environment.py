"""The software and hardware a report was made on: versions, MPI library, SLURM, CPU.

Nothing heavy is imported: package versions come from ``importlib.metadata`` (TensorFlow is
never imported), and the MPI library version is asked of ``mpi4py`` in a child process so that
this process never initialises MPI.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

#: Distributions reported, in order; the first installed of each alternative list is shown.
PACKAGES: tuple[tuple[str, ...], ...] = (
    ("tensorflow", "tensorflow-cpu", "tensorflow-macos", "tf-nightly"),
    ("keras",),
    ("librosa",),
    ("numpy",),
    ("scipy",),
    ("soundfile",),
    ("mpi4py",),
    ("mpich", "openmpi", "impi-rt"),
    ("snakemake",),
    ("snakemake-executor-plugin-slurm",),
    ("matplotlib",),
    ("genreflow",),
)

_MPI_VERSION_CODE = "from mpi4py import MPI; print(MPI.Get_library_version().strip())"


def package_versions() -> dict[str, str | None]:
    """``{name: version}`` for :data:`PACKAGES` (None when not installed)."""
    found: dict[str, str | None] = {}
    for names in PACKAGES:
        for name in names:
            with contextlib.suppress(metadata.PackageNotFoundError):
                found[name] = metadata.version(name)
                break
        else:
            found[names[0]] = None
    return found


def mpi_library_version(*, timeout: float = 30.0) -> str | None:
    """First line of ``MPI.Get_library_version()`` (None without mpi4py or a working MPI)."""
    if "mpi4py.MPI" in sys.modules:  # already loaded here: asking costs nothing
        with contextlib.suppress(Exception):
            text = sys.modules["mpi4py.MPI"].Get_library_version()
            return " ".join(text.strip().splitlines()[0].split())
    try:
        done = subprocess.run(
            [sys.executable, "-c", _MPI_VERSION_CODE],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.strip().splitlines()
    # MPICH pads its first line with runs of spaces: collapse them.
    return " ".join(lines[0].split()) if done.returncode == 0 and lines else None


def slurm_version(*, timeout: float = 10.0) -> str | None:
    """``sinfo --version`` (None when SLURM's client tools are not installed)."""
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return None
    try:
        done = subprocess.run(
            [sinfo, "--version"], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def cpu_model(*, cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str | None:
    """The CPU's model name from ``/proc/cpuinfo`` (else ``platform.processor()``)."""
    with contextlib.suppress(OSError):
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                return value.strip()
    return platform.processor() or None


def physical_cores(*, cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> int | None:
    """Physical cores: distinct (physical id, core id) pairs, else ``os.cpu_count()``.

    Hyper-threads share a core's execution units, so efficiency per core counts cores, not
    logical CPUs.
    """
    cores: set[tuple[str, str]] = set()
    physical = core = None
    with contextlib.suppress(OSError):
        for line in Path(cpuinfo).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                physical = value.strip()
            elif key == "core id":
                core = value.strip()
            elif not line.strip():
                if core is not None:
                    cores.add((physical or "0", core))
                physical = core = None
        if core is not None:
            cores.add((physical or "0", core))
    return len(cores) or os.cpu_count()


def hostname() -> str:
    return socket.gethostname()


def collect_environment() -> dict:
    """Versions, MPI library, SLURM and CPU of this machine, as a JSON-able dict."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "host": hostname(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "packages": package_versions(),
        "mpi_library": mpi_library_version(),
        "slurm": slurm_version(),
        "cpu_model": cpu_model(),
        "physical_cores": physical_cores(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
    }
