"""A tiny model trained on the synthetic demo music, and the demo-music clip writer.

Used by the HTTP API and streaming tests (session fixture ``demo_model`` in ``conftest.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from genreflow.cli import main

SR = 22050


def tiny_model(root: Path) -> Path:
    """A model trained for one epoch on 3 demo clips per genre, in ``root/model``.

    demo-data -> manifest -> spectrograms (one process) -> train, all in this process.
    """
    model = root / "model"
    data, manifest, features = root / "data", root / "manifest.csv", root / "features"
    demo = ["demo-data", "--out", str(data), "--clips-per-genre", "3", "--seconds", "4"]
    assert main([*demo, "--no-progress"]) == 0
    assert main(["manifest", "--data", str(data), "--out", str(manifest)]) == 0
    settings = ["--set", "mel.n_mels=32", "--set", "preprocess.previews_per_genre=0"]
    assert (
        main(["spectrograms", "--manifest", str(manifest), "--out", str(features), *settings]) == 0
    )
    train = ["train", "--features", str(features), "--out", str(model), "--epochs", "1"]
    train += ["--threads", "1", *settings]
    train += ["--set", "train.batch_size=8", "--set", "train.segments_per_clip=1"]
    assert main(train) == 0
    return model


def write_clip(
    path: Path, *, seconds: float, sr: int = SR, channels: int = 1, genre: str = "rock", **kw
) -> Path:
    """Demo music (real audio, not silence) written in the format the suffix or ``kw`` says."""
    from genreflow.demo import synthesize_clip

    y = synthesize_clip(genre=genre, index=0, seed=11, seconds=seconds, sample_rate=sr)
    data = np.stack([y] * channels, axis=1) if channels > 1 else y
    sf.write(path, data, sr, **kw)
    return path


def model_labels(model: Path) -> list[str]:
    return json.loads((model / "genreflow.json").read_text(encoding="utf-8"))["labels"]
