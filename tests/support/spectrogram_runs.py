"""The spectrogram stage's test data and how the tests start it (one process or mpiexec)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genreflow.core.config import load_config
from tests.support.tone_data import GENRES, write_manifest_rows, write_tone_clip

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


def start_slowed(cmd: list[str], *, delay: float, **popen) -> subprocess.Popen:
    """Start ``cmd`` with every rank sleeping ``delay`` s after each clip (the stage's test
    hook), stderr piped as text: a run slow enough to act on half-way."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["GENREFLOW_FAULT_INJECT"] = f"delay={delay}"
    popen = {"stdout": subprocess.PIPE, **popen}
    return subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env=env, **popen)


def config(**overrides):
    base = {"mel.n_mels": 64, "preprocess.previews_per_genre": 1}
    return load_config(None, overrides={**base, **overrides})


def wait_for_release(out: Path, *, timeout: float = 60) -> None:
    """Wait until no live process holds ``out``'s run lock (``genreflow.core.runlock``)."""
    import json
    import time

    lock = out / ".genreflow.lock"
    deadline = time.monotonic() + timeout
    while True:
        text = lock.read_text() if lock.exists() else ""
        holder = json.loads(text)["pid"] if text.strip() else None
        if holder is None or not Path(f"/proc/{holder}").exists():
            return
        assert time.monotonic() < deadline, f"{out} still held by PID {holder}"
        time.sleep(0.1)


#: n_mels 128 and 1 MiB shards: 3-5 clips of 10-14 s per shard, so a rank writes several.
RESUME_SETTINGS = {
    "mel.n_mels": 128,
    "preprocess.shard_mb": 1,
    "preprocess.max_failed_fraction": 0.2,
}
CLI_SETTINGS = [f"{k}={v}" for k, v in RESUME_SETTINGS.items()]


def make_long_dataset(root: Path, *, per_genre: int) -> tuple[Path, list[dict]]:
    """``per_genre`` clips of 10-14 s per genre, an empty .wav early on and a junk one last."""
    audio = root / "audio"
    audio.mkdir(parents=True)
    clips = []
    for g, f0 in enumerate((110.0, 660.0, 3520.0)):
        for i in range(per_genre):
            path = audio / f"g{g}.{i:05d}.wav"
            write_clip(path, f0=f0 * (1 + 0.03 * i), seconds=10.0 + (i + g) % 5, seed=10 * g + i)
            split = ("train", "train", "valid", "test")[i % 4]
            clips.append(
                {"clip_id": path.stem, "path": str(path), "label": f"g{g}", "split": split}
            )
    (audio / "empty.wav").write_bytes(b"")
    (audio / "junk.wav").write_bytes(b"RIFF not really a wave file" * 10)
    bad = [
        {"clip_id": name, "path": str(audio / f"{name}.wav"), "label": "g1", "split": "train"}
        for name in ("empty", "junk")
    ]
    clips = clips[:2] + bad[:1] + clips[2:] + bad[1:]
    return write_manifest(root / "manifest.csv", clips), clips


def resume_cmd(manifest: Path, out: Path, *extra: str, ranks: int | None = 2) -> list[str]:
    cmd = genreflow_cmd("--manifest", str(manifest), "--out", str(out), *extra, ranks=ranks)
    for setting in CLI_SETTINGS:
        cmd += ["--set", setting]
    return cmd


def output_files(out: Path) -> dict[str, bytes]:
    """Every file of a feature directory but timings.json, with ``created`` cut from the marker."""
    files = {}
    for path in sorted(out.rglob("*")):
        name = path.relative_to(out).as_posix()
        if path.is_file() and name != "timings.json":
            data = path.read_bytes()
            if name == "features.json":
                info = json.loads(data)
                assert info.pop("created")
                data = json.dumps(info, sort_keys=True).encode()
            files[name] = data
    return files
