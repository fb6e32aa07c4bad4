"""The clip records, and finding and checking a folder dataset's audio files.

A dataset comes either from a folder tree (GTZAN layout ``DIR/genres/<label>/...``,
``DIR/genres_original/<label>/...`` or any folder-per-label tree ``DIR/<label>/...``), found
here by :func:`discover`, or from a user CSV (``path,label[,group][,labels][,split]``), read by
:mod:`genreflow.data.manifest_csv` with this module's checks. Both give a list of :class:`Clip`
plus the list of :class:`SkippedItem` that could not be used and why. Reading and writing
``manifest.csv`` is :mod:`genreflow.data.manifest_csv`'s job, splitting
:mod:`genreflow.data.splits`'.

The manifest checks that a file exists, is a readable regular file and has a known audio
extension; decoding (and so zero-byte or corrupt audio) is the spectrogram stage's job.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from genreflow.core.errors import DatasetError

#: Audio file extensions the manifest accepts (compared case-insensitively).
AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")

#: Split names, in the order they are reported.
SPLITS = ("train", "valid", "test")

#: Sub-folders that hold the label folders in the GTZAN distributions (original, Kaggle).
GTZAN_SUBDIRS = ("genres", "genres_original")

#: Separator of several labels in the ``labels`` column.
LABEL_SEPARATOR = ";"

#: The record ``genreflow demo-data`` writes at the root of a synthetic dataset.
DEMO_RECORD = "demo.json"

#: Kinds of :class:`SkippedItem`.
SKIP_KINDS = (
    "hidden",
    "outside-label-folder",
    "bad-label",
    "empty-label",
    "empty-path",
    "unknown-extension",
    "missing",
    "not-a-file",
    "unreadable",
    "duplicate-id",
    "not-in-split-lists",
)


@dataclasses.dataclass(frozen=True)
class Clip:
    """One audio clip of the dataset.

    Attributes
    ----------
    clip_id : str
        Unique id; the file stem for folder datasets (``blues.00012``).
    path : str
        Absolute path of the audio file.
    label : str
        The (first) label.
    labels : tuple of str
        All labels, ``label`` first; ``(label,)`` for single-label data.
    group : str
        Artist/album group, ``""`` when unknown.
    split : str
        ``train``, ``valid`` or ``test``; ``""`` before splitting (or a CSV's raw split value).
    """

    clip_id: str
    path: str
    label: str
    labels: tuple[str, ...]
    group: str = ""
    split: str = ""


@dataclasses.dataclass(frozen=True)
class SkippedItem:
    """Something the manifest left out: the file, folder or CSV row, why, and a short kind.

    ``kind`` is one of :data:`SKIP_KINDS` (for counting and filtering); ``reason`` is the
    sentence for people.
    """

    item: str
    reason: str
    kind: str

    def as_dict(self) -> dict[str, str]:
        return {"item": self.item, "kind": self.kind, "reason": self.reason}


def find_dataset_root(root: str | os.PathLike) -> Path:
    """The folder whose immediate sub-folders are the labels.

    ``root/genres`` or ``root/genres_original`` when present (GTZAN, Kaggle GTZAN), else ``root``.

    Raises
    ------
    DatasetError
        ``root`` does not exist or is not a folder.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise DatasetError(f"data folder {root} does not exist")
    if not root.is_dir():
        raise DatasetError(f"data folder {root} is not a folder")
    for name in GTZAN_SUBDIRS:
        if (root / name).is_dir():
            return root / name
    return root


def is_demo_dataset(root: str | os.PathLike) -> bool:
    """True when ``root`` is a synthetic dataset written by ``genreflow demo-data``.

    It uses GTZAN's genres and file names, so only its record tells it apart from GTZAN.
    """
    record = Path(root).expanduser() / DEMO_RECORD
    try:
        info = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("generator") == "genreflow.demo"


def discover(*, root: str | os.PathLike) -> tuple[list[Clip], list[SkippedItem]]:
    """Find the audio clips of a folder-per-label dataset.

    Labels are the names of the immediate sub-folders of :func:`find_dataset_root`; every audio
    file below a label folder (at any depth) is a clip of that label, with its file stem as
    ``clip_id``. Files are visited in sorted path order, so for a duplicated stem the first in
    that order is kept.

    Parameters
    ----------
    root : path-like
        The dataset folder.

    Returns
    -------
    clips : list of Clip
        Sorted by ``clip_id``; ``group`` and ``split`` are empty.
    skipped : list of SkippedItem
        Hidden entries, files outside label folders, unknown extensions, unreadable files,
        duplicate clip ids and label folders without audio.

    Raises
    ------
    DatasetError
        The folder is missing, or holds no usable clip.
    """
    base = find_dataset_root(root).resolve()
    skipped: list[SkippedItem] = []
    candidates: list[tuple[str, Path]] = []  # (label, file)
    label_dirs: list[tuple[str, Path]] = []
    for entry in sorted(base.iterdir()):
        if entry.name.startswith("."):
            skipped.append(SkippedItem(str(entry), "hidden file or folder", "hidden"))
        elif entry.is_dir():
            if LABEL_SEPARATOR in entry.name:
                reason = f"label folder name contains '{LABEL_SEPARATOR}' (the labels separator)"
                skipped.append(SkippedItem(str(entry), reason, "bad-label"))
            else:
                label_dirs.append((entry.name, entry))
        else:
            reason = "not inside a label folder"
            skipped.append(SkippedItem(str(entry), reason, "outside-label-folder"))

    for label, folder in label_dirs:
        files, hidden = _walk_files(folder)
        skipped.extend(SkippedItem(str(p), "hidden file or folder", "hidden") for p in hidden)
        candidates.extend((label, f) for f in files)

    clips, more = checked_clips(
        (str(path), clip_id_of(path), label, (label,), "", "", str(path))
        for label, path in candidates
    )
    skipped.extend(more)

    present = {c.label for c in clips}
    for label, folder in label_dirs:
        if label not in present:
            reason = f"label '{label}' has no usable audio files"
            skipped.append(SkippedItem(str(folder), reason, "empty-label"))

    if not clips:
        raise DatasetError(no_clips_message(str(base), skipped))
    return sorted(clips, key=lambda c: c.clip_id), skipped


def split_counts(clips: Iterable[Clip]) -> dict[str, dict[str, int]]:
    """Clip counts per split and label: ``{"train": {"blues": 70, ...}, ...}``."""
    counts: dict[str, dict[str, int]] = {name: {} for name in SPLITS}
    for clip in clips:
        per_label = counts.setdefault(clip.split, {})
        per_label[clip.label] = per_label.get(clip.label, 0) + 1
    return {split: dict(sorted(per_label.items())) for split, per_label in counts.items()}


def format_counts(clips: Sequence[Clip]) -> str:
    """A small text table of clips per label (rows) and split (columns), with totals."""
    counts = split_counts(clips)
    labels = sorted({c.label for c in clips})
    columns = [*SPLITS, "total"]
    width = max([len("label"), len("total"), *(len(x) for x in labels)])
    lines = ["label".ljust(width) + "".join(f"{c:>8}" for c in columns)]
    for label in [*labels, "total"]:
        if label == "total":
            values = [sum(counts[s].values()) for s in SPLITS]
            lines.append("-" * len(lines[0]))
        else:
            values = [counts[s].get(label, 0) for s in SPLITS]
        lines.append(label.ljust(width) + "".join(f"{v:>8}" for v in [*values, sum(values)]))
    return "\n".join(lines)


def clip_id_of(path: Path) -> str:
    """The clip id of an audio file that names none: its file stem."""
    return path.stem


def _walk_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """All files below ``folder`` (following links, once per real folder) and hidden entries."""
    files: list[Path] = []
    hidden: list[Path] = []
    visited: set[str] = set()
    for top, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in visited:  # a link back up the tree: do not loop
            dirs[:] = []
            continue
        visited.add(real)
        hidden.extend(Path(top, d) for d in dirs if d.startswith("."))
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in names:
            (hidden if name.startswith(".") else files).append(Path(top, name))
    return sorted(files), sorted(hidden)


def checked_clips(
    entries: Iterable[tuple[str, str, str, tuple[str, ...], str, str, str]],
) -> tuple[list[Clip], list[SkippedItem]]:
    """Turn ``(path, clip_id, label, labels, group, split, where)`` entries into clips.

    Entries are taken in sorted path order; the first of a duplicated clip id wins.
    """
    clips: list[Clip] = []
    skipped: list[SkippedItem] = []
    kept: dict[str, str] = {}
    for path, clip_id, label, labels, group, split, where in sorted(entries):
        shown = path if where == path else f"{where}: {path}"
        problem = _file_problem(Path(path))
        if problem:
            skipped.append(SkippedItem(shown, problem[1], problem[0]))
        elif clip_id in kept:
            reason = f"duplicate clip id '{clip_id}' (kept {kept[clip_id]})"
            skipped.append(SkippedItem(shown, reason, "duplicate-id"))
        else:
            kept[clip_id] = path
            clips.append(Clip(clip_id, path, label, labels, group, split))
    return clips, skipped


def _file_problem(path: Path) -> tuple[str, str] | None:
    """``(kind, reason)`` why ``path`` cannot be a clip, or None. Does not decode the audio."""
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        shown = path.suffix or "(none)"
        reason = f"unknown extension {shown} (expected one of {', '.join(AUDIO_EXTENSIONS)})"
        return "unknown-extension", reason
    if not path.exists():
        return "missing", "broken symbolic link" if path.is_symlink() else "file does not exist"
    if not path.is_file():
        return "not-a-file", "not a regular file"
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return "unreadable", f"cannot open: {exc.strerror or exc}"
    return None


def no_clips_message(source: str, skipped: Sequence[SkippedItem]) -> str:
    """Why ``source`` gave no clip: no audio at all, or the first of what was skipped."""
    if not skipped:
        return f"{source}: no audio files found (expected {', '.join(AUDIO_EXTENSIONS)})"
    first = skipped[0]
    return (
        f"{source}: no usable audio files ({len(skipped)} item(s) skipped, "
        f"e.g. {first.item}: {first.reason})"
    )
