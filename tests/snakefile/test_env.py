"""Jobs run the genreflow of the Python that runs Snakemake, activated or not."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from genreflow.core.errors import GenreflowError
from genreflow.snakefile.env import use_environment_of

BIN = Path(sys.executable).parent


def test_the_environment_of_snakemakes_python_goes_first_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # nothing activated
    found = use_environment_of(sys.executable)
    assert Path(found) == BIN / "genreflow"
    assert os.environ["PATH"].split(os.pathsep)[0] == str(BIN)
    # Idempotent: a second call (the job's own Snakemake) adds nothing.
    use_environment_of(sys.executable)
    assert os.environ["PATH"].split(os.pathsep).count(str(BIN)) == 1


def test_a_python_without_genreflow_is_refused_with_what_to_do(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(GenreflowError, match="activate the environment that has genreflow"):
        use_environment_of(tmp_path / "bin" / "python")
