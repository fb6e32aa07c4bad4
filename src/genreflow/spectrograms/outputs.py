"""The output files of the spectrogram stage, and clearing a previous run's before a run."""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from genreflow.core.errors import StageError
from genreflow.spectrograms.journal import JOURNAL_DIR
from genreflow.spectrograms.previews import PREVIEWS
from genreflow.spectrograms.shards import INDEX, MARKER

#: What rank 0 writes beside ``index.csv`` and ``features.json`` (``docs/formats.md``).
BAD_FILES = "bad_files.csv"
NOTES = "notes.csv"
TIMINGS = "timings.json"

#: Outputs derived from the whole run: removed at the start of every run (after the marker).
_DERIVED_PATTERNS = (
    INDEX,
    BAD_FILES,
    NOTES,
    TIMINGS,
    ".index.tmp-*",
    ".bad_files.tmp-*",
    ".notes.tmp-*",
    ".timings.tmp-*",
    ".features.tmp-*",
)
_STALE_PATTERNS = ("part-*.npy", ".part-*.tmp-*", *_DERIVED_PATTERNS)
_JOURNAL_PATTERNS = ("part-*.json", ".part-*.tmp-*")


def remove_stale_outputs(
    out: str | os.PathLike, *, keep: Collection[str] | None = frozenset()
) -> None:
    """Clear a previous run's outputs from ``out``, ``features.json`` first.

    Removing the completion marker before anything else means that a run killed half-way
    through this clean-up (or through the conversion after it) never leaves a directory that
    looks complete. Only files this stage writes are removed.

    Parameters
    ----------
    out : path-like
    keep : collection of str or None
        Paths relative to ``out`` of shards (``part-0-3.npy``), journals
        (``journal/part-0-3.json``) and previews (``previews/x.png``) to keep. ``None`` keeps
        every shard, journal and preview and removes only the marker, ``index.csv``,
        ``bad_files.csv``, ``notes.csv``, ``timings.json`` and temporary files.

    Raises
    ------
    StageError
        ``out`` exists but is not a folder, or cannot be created or cleared.
    """
    out = Path(out)
    try:
        if out.exists() and not out.is_dir():
            raise StageError(f"--out {out}: exists and is not a folder")
        (out / MARKER).unlink(missing_ok=True)
        keep_all = keep is None
        kept = frozenset(keep or ())
        for pattern in _DERIVED_PATTERNS if keep_all else _STALE_PATTERNS:
            for stale in out.glob(pattern):
                if stale.name not in kept:
                    stale.unlink(missing_ok=True)
        for sub, globs in (
            (JOURNAL_DIR, _JOURNAL_PATTERNS),
            (PREVIEWS, ("*.png", ".*.tmp-*")),
        ):
            folder = out / sub
            if not folder.is_dir():
                continue
            for pattern in globs:
                for stale in folder.glob(pattern):
                    temporary = stale.name.startswith(".")
                    if temporary or not (keep_all or f"{sub}/{stale.name}" in kept):
                        stale.unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StageError(f"--out {out}: cannot prepare the folder: {exc}") from None
