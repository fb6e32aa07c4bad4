"""Preview PNGs of the spectrogram stage: one colour-mapped log-mel image per chosen clip.

matplotlib and PIL are imported only when a preview is written, so that importing this module
costs a rank nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from genreflow.core.atomic import atomic_path

#: Sub-folder of the feature directory holding the preview PNGs.
PREVIEWS = "previews"


def preview_name(label: str, clip_id: str) -> str:
    """``<genre>__<clip_id>.png`` with characters unsafe in file names replaced by ``_``."""

    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", text)

    return f"{safe(label)}__{safe(clip_id)}.png"


def write_preview(path: Path, db: np.ndarray, *, dynamic_range: float = 80.0) -> int:
    """Save a log-mel spectrogram as a colour-mapped PNG (low frequencies at the bottom).

    Parameters
    ----------
    path : Path
    db : np.ndarray, shape (n_mels, n_frames)
        Log-mel dB; the top ``dynamic_range`` dB below its peak are mapped onto ``magma``.

    Returns
    -------
    int
        Bytes written.
    """
    from matplotlib import colormaps
    from PIL import Image

    lut = (colormaps["magma"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).round().astype(np.uint8)
    top = float(db.max()) if db.size else 0.0
    scaled = np.clip((db - (top - dynamic_range)) / dynamic_range, 0.0, 1.0)
    rgb = lut[(scaled[::-1] * 255).round().astype(np.uint8)]
    with atomic_path(path) as tmp:
        Image.fromarray(rgb, mode="RGB").save(tmp, format="PNG")
    return path.stat().st_size
