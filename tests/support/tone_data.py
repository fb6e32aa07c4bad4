"""Tone "genres" for the tests: the one tone-clip writer, tiny features and tiny models.

Three tone "genres" (clearly different spectra), 4 s clips, 32 mel bands: one training run
takes seconds. ``tests/conftest.py`` builds the features and a model once per session.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from genreflow.cli import main

SR = 22050
#: Fundamental (Hz) of each tone "genre": three clearly different spectra.
GENRES = {"bass": 110.0, "mid": 660.0, "high": 3520.0}
SPLITS = ("train", "train", "train", "train", "valid", "test")
FEATURE_SETTINGS = ("mel.n_mels=32", "preprocess.previews_per_genre=0")
TRAIN_SETTINGS = (
    "train.batch_size=8",
    "train.segments_per_clip=2",
    "train.patience=50",
    "train.export=best",
)
TIMEOUT = 180


def write_tone_clip(
    path: Path, *, f0: float, seconds: float, seed: int, sr: int = SR, channels: int = 1
) -> Path:
    """A harmonic tone with tremolo over noise; ``f0`` sets its "genre". Format from the suffix
    (a ``.wav`` is 16-bit PCM)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.2 / h * np.sin(2 * np.pi * f0 * h * t + rng.uniform(0, 6)) for h in (1, 2, 3))
    y = y * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 3) * t))
    y = (y + 0.03 * rng.standard_normal(len(t))).astype(np.float32)
    data = np.stack([y] * channels, axis=1) if channels > 1 else y
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr)
    return path


def write_manifest_rows(path: Path, rows: list[list]) -> Path:
    """``manifest.csv`` from rows of ``clip_id, path, label, labels, group, split``."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["clip_id", "path", "label", "labels", "group", "split"])
        writer.writerows(rows)
    return path


def make_features(root: Path, *, splits: tuple[str, ...] = SPLITS) -> Path:
    """Tone clips (one per entry of ``splits`` and genre) -> manifest -> ``genreflow spectrograms``."""
    rows = []
    for g, (genre, f0) in enumerate(GENRES.items()):
        for i, split in enumerate(splits):
            path = root / "audio" / genre / f"{genre}.{i:05d}.wav"
            write_tone_clip(path, f0=f0 * (1 + 0.03 * i), seconds=4.0, seed=100 * g + i)
            rows.append([path.stem, str(path), genre, genre, "", split])
    manifest = write_manifest_rows(root / "manifest.csv", rows)
    out = root / "features"
    args = ["spectrograms", "--manifest", str(manifest), "--out", str(out)]
    for setting in FEATURE_SETTINGS:
        args += ["--set", setting]
    assert main(args) == 0
    return out


def train_args(features: Path, out: Path, *extra: str) -> list[str]:
    args = ["train", "--features", str(features), "--out", str(out), *extra]
    for setting in TRAIN_SETTINGS:
        args += ["--set", setting]
    return args


def train_tiny_model(features: Path, out: Path, *, epochs: int = 2) -> Path:
    """Train in this process for ``epochs`` epochs; returns the model directory."""
    assert main(train_args(features, out, "--epochs", str(epochs))) == 0
    return out


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def genreflow_subprocess(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    return subprocess.Popen(
        [sys.executable, "-m", "genreflow", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def music_like(seconds: float, *, sr: int = SR, seed: int = 0, channels: int = 1) -> np.ndarray:
    """Harmonic tones with vibrato and decaying notes over a little noise, shape (n, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.02 * rng.standard_normal(len(t))
    for f0 in rng.uniform(110, 880, size=3):
        phase = 2 * np.pi * f0 * t + 3 * np.sin(2 * np.pi * 5 * t)
        notes = np.exp(-4 * np.mod(t, rng.uniform(0.2, 0.6)))
        for h in range(1, 5):
            y += 0.1 / h * notes * np.sin(h * phase)
    out = np.stack([y * (1 - 0.3 * c) for c in range(channels)], axis=1)
    return (out / np.abs(out).max() * 0.8).astype(np.float32)
