"""Running the repository's Snakemake workflow in a scratch folder: the tiny config, its
working directory, the ``snakemake`` call and where its results land."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.slurm_utils import cancel_jobs, submitted_job_ids

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
BIN = Path(sys.executable).parent

#: A workflow small enough to run end to end in a couple of minutes on 2 cores.
TINY = {
    "data": {"demo": {"clips_per_genre": 4, "seconds": 4, "seed": 0}},
    "preprocess": {"ranks": [1, 2], "production_ranks": 2, "previews_per_genre": 0},
    "train": {
        "threads": [1, 2],
        "production_threads": 2,
        "epochs": 2,
        "sweep_epochs": 1,
        "batch_size": 8,
        "patience": 2,
    },
}


def merged(base: dict, changes: dict) -> dict:
    """``base`` with ``changes`` merged in, section by section."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def workdir(path: Path, cfg: dict) -> Path:
    """A working directory with ``config/config.yaml`` = ``cfg`` (like a deployed workflow)."""
    (path / "config").mkdir(parents=True, exist_ok=True)
    (path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    return path


def snakemake(
    cwd: Path, *args: str, timeout: float = 120, activated: bool = True
) -> subprocess.CompletedProcess:
    """Run the repository's workflow in ``cwd``; stdout and stderr together in ``.stdout``.

    ``activated=False`` runs ``.venv/bin/snakemake`` as a user would without activating the
    environment: PATH holds no folder of it.
    """
    env = dict(os.environ)
    if activated:
        # Like `source .venv/bin/activate`: genreflow, mpiexec... on PATH.
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    else:
        env.pop("VIRTUAL_ENV", None)
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != BIN
        )
    env.setdefault("MPLBACKEND", "Agg")
    cmd = [str(BIN / "snakemake"), "-s", str(SNAKEFILE), *args]
    try:
        return subprocess.run(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        cancel_jobs(submitted_job_ids(out))
        pytest.fail(f"snakemake {' '.join(args)} did not finish in {timeout} s:\n{out[-6000:]}")


def run_dir(path: Path, cfg: dict) -> Path:
    """``results/<dataset>`` of a demo config run in ``path``."""
    demo = cfg["data"]["demo"]
    return (
        path / "results" / f"demo-{demo['clips_per_genre']}x{demo['seconds']:g}s-seed{demo['seed']}"
    )
