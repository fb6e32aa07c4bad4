"""Make the workflow's jobs run the ``genreflow`` of the Python that runs Snakemake.

Jobs (local, or SLURM jobs submitted with ``--export=ALL``) inherit Snakemake's PATH. Without
an activated environment (``.venv/bin/snakemake --profile slurm``) a bare ``genreflow`` in a
rule's shell command is not found and every job exits with status 127; putting the
environment's ``bin/`` first on PATH fixes that, and a Snakemake whose environment has no
``genreflow`` at all is stopped before any job with one line that says what to do.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from genreflow.core.errors import GenreflowError


def use_environment_of(python: str | os.PathLike) -> str:
    """Put the ``bin/`` folder of ``python`` first on this process's PATH (inherited by jobs).

    Parameters
    ----------
    python : path-like
        The interpreter running Snakemake (``sys.executable``).

    Returns
    -------
    str
        The ``genreflow`` executable the jobs will run.

    Raises
    ------
    GenreflowError
        No ``genreflow`` beside ``python`` nor on PATH.
    """
    env_bin = str(Path(python).parent)
    path = os.environ.get("PATH", "")
    if env_bin not in path.split(os.pathsep):
        os.environ["PATH"] = f"{env_bin}{os.pathsep}{path}" if path else env_bin
    found = shutil.which("genreflow")
    if found is None:
        raise GenreflowError(
            f"the `genreflow` command is not installed beside {python}, the Python running "
            "Snakemake, nor on PATH: activate the environment that has genreflow (e.g. "
            "`source .venv/bin/activate`, after `make install`) and run Snakemake from it"
        )
    return found
