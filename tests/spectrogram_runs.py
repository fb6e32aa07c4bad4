"""The spectrogram stage's test data and how the tests start it (one process or mpiexec)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tone_data import GENRES, write_manifest_rows, write_tone_clip

from genreflow.core.config import load_config

SR = 22050
SETTINGS = ["mel.n_mels=64", "preprocess.previews_per_genre=1"]
MPIEXEC = Path(sys.executable).parent / "mpiexec"
needs_mpi = pytest.mark.skipif(not MPIEXEC.exists(), reason=f"no mpiexec next to {sys.executable}")
slow = pytest.mark.slow  # starts genreflow in subprocesses (MPI start-up, library imports)
TIMEOUT = 120


def write_clip(path: Path, *, f0: float, seconds: float, seed: int) -> None:
    """A tone "genre" clip (``tone_data.write_tone_clip``) as a 16-bit WAV."""
    write_tone_clip(path, f0=f0, seconds=seconds, seed=seed)


def write_manifest(path: Path, clips: list[dict]) -> Path:
    rows = [[c["clip_id"], c["path"], c["label"], c["label"], "", c["split"]] for c in clips]
    return write_manifest_rows(path, rows)


def make_dataset(root: Path, *, per_genre: int = 4) -> tuple[Path, list[dict]]:
    """``per_genre`` clips of 3-6 s for each genre (unequal sizes, so the partition matters)."""
    audio = root / "audio"
    audio.mkdir(parents=True)
    clips = []
    for g, (genre, f0) in enumerate(GENRES.items()):
        for i in range(per_genre):
            path = audio / f"{genre}.{i:05d}.wav"
            write_clip(path, f0=f0 * (1 + 0.05 * i), seconds=3.0 + (i + g) % 4, seed=10 * g + i)
            split = ("train", "train", "valid", "test")[i % 4]
            clips.append({"clip_id": path.stem, "path": str(path), "label": genre, "split": split})
    return write_manifest(root / "manifest.csv", clips), clips


def genreflow_cmd(*args: str, ranks: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "genreflow", "spectrograms", *args]
    for setting in SETTINGS:
        cmd += ["--set", setting]
    return [str(MPIEXEC), "-n", str(ranks), *cmd] if ranks else cmd


def run_cmd(cmd: list[str], **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",)}
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT, env={**clean, **env}, check=False
    )


def config(**overrides):
    base = {"mel.n_mels": 64, "preprocess.previews_per_genre": 1}
    return load_config(None, overrides={**base, **overrides})
