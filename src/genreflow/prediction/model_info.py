"""``genreflow.json``, the record of a model directory: read it and check it has what prediction needs.

Standard library only, so commands can check a model directory before TensorFlow starts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from genreflow.core.errors import ModelError

#: Keys ``genreflow.json`` must have (docs/formats.md, "Model directory").
MODEL_INFO_KEYS = (
    "labels",
    "audio",
    "mel",
    "norm",
    "multilabel",
    "features_hash",
    "segment_frames",
)


def read_model_info(model_dir: str | os.PathLike) -> dict:
    """``genreflow.json`` of ``model_dir``, checked for the keys prediction needs.

    Raises
    ------
    ModelError
        Missing folder/file, unreadable JSON or missing keys.
    """
    model_dir = Path(model_dir)
    path = model_dir / "genreflow.json"
    if not model_dir.is_dir():
        raise ModelError(f"{model_dir}: model directory not found")
    if not path.is_file():
        raise ModelError(f"{model_dir}: no genreflow.json (not a trained model directory?)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable: {exc}") from None
    missing = [k for k in MODEL_INFO_KEYS if k not in info]
    if missing:
        raise ModelError(f"{path}: missing key(s) {', '.join(missing)}")
    return info
