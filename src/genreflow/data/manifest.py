"""The manifest: a dataset's clips, checked, split and written to ``manifest.csv``.

A dataset comes either from a folder tree (GTZAN layout ``DIR/genres/<label>/...``,
``DIR/genres_original/<label>/...`` or any folder-per-label tree ``DIR/<label>/...``), found
by :func:`discover`, or from a user CSV (``path,label[,group][,labels][,split]``), read by
:func:`read_csv` with the same checks. Both give a list of :class:`Clip` plus the list of
:class:`SkippedItem` that could not be used and why. :func:`make_manifest` (``genreflow
manifest``) splits them (:mod:`genreflow.data.splits`) and writes ``manifest.csv``, the
checked, split clip list that later stages read (:func:`read_manifest`, the one reader), with
a ``manifest.json`` sidecar that records how it was made (:func:`write_manifest`).

The manifest checks that a file exists, is a readable regular file and has a known audio
extension; decoding (and so zero-byte or corrupt audio) is the spectrogram stage's job.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from genreflow.core.atomic import atomic_open, write_json
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


#: Columns of ``manifest.csv``, in order (see docs/formats.md, "Manifest").
MANIFEST_COLUMNS = ("clip_id", "path", "label", "labels", "group", "split")


def read_csv(*, path: str | os.PathLike) -> tuple[list[Clip], list[SkippedItem]]:
    """Read a dataset CSV.

    Required columns ``path`` and ``label``; optional ``group`` (artist/album), ``labels``
    (several labels, ``;``-separated), ``split`` (used by ``split.method: column``) and
    ``clip_id`` (default: the file stem). Column names are case-insensitive; other columns are
    ignored. Relative paths are relative to the CSV's folder.

    Parameters
    ----------
    path : path-like
        The CSV file (UTF-8, a BOM is accepted).

    Returns
    -------
    clips : list of Clip
        Sorted by ``clip_id``; ``split`` holds the CSV's (lower-cased) split value or ``""``.
    skipped : list of SkippedItem
        Rows with an empty path or label, unknown extension, missing/unreadable file or a
        duplicate clip id (the first in sorted path order is kept).

    Raises
    ------
    DatasetError
        The file is missing or unreadable, lacks a required column, or holds no usable clip.
    """
    path = Path(path).expanduser().resolve()
    rows, columns = _read_rows(path)
    missing = [c for c in ("path", "label") if c not in columns]
    if missing:
        raise DatasetError(
            f"{path}: missing required column(s) {', '.join(missing)}; "
            f"found {', '.join(columns) or 'no header'} (need path,label[,group][,labels][,split])"
        )
    skipped: list[SkippedItem] = []
    entries = []
    for line, row in rows:
        where = f"{path}:{line}"
        raw_path = row.get("path", "")
        if not raw_path:
            skipped.append(SkippedItem(where, "empty path", "empty-path"))
            continue
        labels = _row_labels(row.get("label", ""), row.get("labels", ""))
        if not labels:
            skipped.append(SkippedItem(where, f"empty label for {raw_path}", "empty-label"))
            continue
        audio = Path(raw_path).expanduser()
        if not audio.is_absolute():
            audio = path.parent / audio
        audio = Path(os.path.normpath(audio))
        clip_id = row.get("clip_id") or clip_id_of(audio)
        group = row.get("group", "")
        split = row.get("split", "").lower()
        entries.append((str(audio), clip_id, labels[0], labels, group, split, where))

    clips, more = checked_clips(entries)
    skipped.extend(more)
    if not clips:
        raise DatasetError(no_clips_message(str(path), skipped))
    return sorted(clips, key=lambda c: c.clip_id), skipped


def read_manifest(path: str | os.PathLike) -> list[Clip]:
    """Read and validate a ``manifest.csv``.

    Parameters
    ----------
    path : path-like
        A file written by :func:`write_manifest`.

    Returns
    -------
    list of Clip
        In file order.

    Raises
    ------
    DatasetError
        Missing file, missing columns, no rows, or a row with an empty or duplicate clip id, a
        relative path, an empty label, a ``label`` not in ``labels`` or an unknown split (the
        message names the file and line).
    """
    path = Path(path)
    rows, columns = _read_rows(path)
    missing = [c for c in MANIFEST_COLUMNS if c not in columns]
    if missing:
        raise DatasetError(
            f"{path}: not a genreflow manifest: missing column(s) {', '.join(missing)} "
            f"(expected {','.join(MANIFEST_COLUMNS)})"
        )
    clips: list[Clip] = []
    seen: set[str] = set()
    for line, row in rows:
        where = f"{path}:{line}"
        clip_id, label, split = row["clip_id"], row["label"], row["split"]
        labels = tuple(x.strip() for x in row["labels"].split(LABEL_SEPARATOR) if x.strip())
        if not clip_id:
            raise DatasetError(f"{where}: empty clip_id")
        if clip_id in seen:
            raise DatasetError(f"{where}: duplicate clip_id '{clip_id}'")
        if not os.path.isabs(row["path"]):
            raise DatasetError(f"{where}: path '{row['path']}' is not absolute")
        if not label:
            raise DatasetError(f"{where}: empty label for clip '{clip_id}'")
        if label not in labels:
            raise DatasetError(f"{where}: label '{label}' is not among labels '{row['labels']}'")
        if split not in SPLITS:
            raise DatasetError(f"{where}: split '{split}' is not one of {', '.join(SPLITS)}")
        seen.add(clip_id)
        clips.append(Clip(clip_id, row["path"], label, labels, row["group"], split))
    if not clips:
        raise DatasetError(f"{path}: the manifest has no clips")
    return clips


def write_manifest(
    path: str | os.PathLike,
    clips: Sequence[Clip],
    *,
    info: Mapping[str, Any],
    skipped: Sequence[SkippedItem] = (),
) -> Path:
    """Write ``manifest.csv`` and its sidecar ``manifest.json``, both atomically.

    Parameters
    ----------
    path : path-like
        The CSV to write; must end in ``.csv``. The sidecar is the same name with ``.json``.
    clips : sequence of Clip
        Clips with a split each; written sorted by (split order, label, clip_id).
    info : mapping
        Extra sidecar fields (split method, seed, fractions, config hash, data root...).
    skipped : sequence of SkippedItem
        Everything left out, with reasons.

    Returns
    -------
    Path
        The sidecar's path.

    Raises
    ------
    DatasetError
        ``path`` does not end in ``.csv``, or a clip has no valid split.
    """
    from genreflow import __version__

    path = Path(path)
    if path.suffix.lower() != ".csv":
        raise DatasetError(f"manifest {path}: the file name must end in .csv")
    for clip in clips:
        if clip.split not in SPLITS:
            raise DatasetError(f"clip '{clip.clip_id}' has no valid split ('{clip.split}')")
    order = {name: i for i, name in enumerate(SPLITS)}
    ordered = sorted(clips, key=lambda c: (order[c.split], c.label, c.clip_id))
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for c in ordered:
            labels = LABEL_SEPARATOR.join(c.labels)
            writer.writerow([c.clip_id, c.path, c.label, labels, c.group, c.split])

    sidecar = path.with_suffix(".json")
    record = dict(info)
    record.update(
        {
            "manifest": str(path.resolve()),
            "n_clips": len(clips),
            "labels": sorted({c.label for c in clips}),
            "counts": split_counts(clips),
            "skipped": [s.as_dict() for s in skipped],
            "n_skipped": len(skipped),
            "genreflow_version": __version__,
            "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
    )
    write_json(sidecar, record)
    return sidecar


def _row_labels(label: str, labels: str) -> tuple[str, ...]:
    """``label`` first, then the other ``labels``, without repeats; both may be ``;``-separated."""
    out: list[str] = []
    for name in [*label.split(LABEL_SEPARATOR), *labels.split(LABEL_SEPARATOR)]:
        name = name.strip()
        if name and name not in out:
            out.append(name)
    return tuple(out)


def _read_rows(path: Path) -> tuple[list[tuple[int, dict[str, str]]], list[str]]:
    """Rows of a CSV as ``(line number, {lower-cased column: stripped value})``, and the columns."""
    if not path.exists():
        raise DatasetError(f"{path}: file does not exist")
    if not path.is_file():
        raise DatasetError(f"{path}: not a regular file")
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise DatasetError(f"{path}: the CSV is empty (no header)")
            columns = [h.strip().lower() for h in header]
            rows = []
            for record in reader:
                if not any(v.strip() for v in record):
                    continue
                values = dict(zip(columns, (v.strip() for v in record), strict=False))
                rows.append((reader.line_num, {c: values.get(c, "") for c in columns}))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: not a readable UTF-8 CSV: {exc}") from None
    return rows, columns


#: Skipped items printed one per line before pointing to manifest.json for the rest.
MAX_SKIPPED_SHOWN = 20


def make_manifest(
    *,
    out: str | os.PathLike,
    split: Mapping[str, Any],
    config_hash: str,
    data: str | os.PathLike | None = None,
    csv_file: str | os.PathLike | None = None,
) -> Path:
    """``genreflow manifest``: find the clips, split them, write ``manifest.csv`` and its sidecar.

    Prints the split, the counts per label and split, warnings and what was skipped.

    Parameters
    ----------
    out : path
        ``manifest.csv`` to write (the sidecar is ``manifest.json`` beside it).
    split : mapping
        The config's ``split`` section.
    config_hash : str
        Hash of that section, recorded in the sidecar.
    data, csv_file : path or None
        The dataset folder, or a dataset CSV (which wins when both are given).

    Returns
    -------
    Path
        The sidecar written.
    """
    from collections import Counter

    # splits builds on this module's Clip: imported here so the two stay one-way at load time.
    from genreflow.data.splits import assign_splits

    out = Path(out)
    if out.suffix.lower() != ".csv":
        raise DatasetError(f"--out {out}: the manifest file name must end in .csv")
    if csv_file:
        clips, skipped = read_csv(path=csv_file)
        source = {
            "source": "csv",
            "csv": str(Path(csv_file).expanduser().resolve()),
            "data_root": None,
        }
        beside = Path(csv_file).expanduser().resolve().parent
        if data and Path(data).expanduser().resolve() != beside:
            print(f"note: using the CSV {csv_file}; the data folder {data} is not searched")
    elif data:
        clips, skipped = discover(root=data)
        source = {
            "source": "folder",
            "csv": None,
            "data_root": str(Path(data).expanduser().resolve()),
        }
    else:
        raise DatasetError(
            "no dataset: give --data DIR or --csv FILE (or set data.root / data.csv); "
            "`genreflow demo-data` makes a synthetic one"
        )

    method = split["method"]
    demo = method == "auto" and not csv_file and is_demo_dataset(data)
    if demo:  # GTZAN's names, but never GTZAN's split (however many clips per genre)
        method = "stratified"
    result = assign_splits(clips, method=method, fractions=split["fractions"], seed=split["seed"])
    if demo:
        note = "split.method auto -> stratified: the genreflow demo dataset (demo.json)"
        result = dataclasses.replace(result, requested="auto", notes=[note, *result.notes])
    skipped = [*skipped, *result.left_out]
    warnings = [
        f"split '{name}' is empty"
        for name, fraction in split["fractions"].items()
        if fraction > 0 and not any(c.split == name for c in result.clips)
    ]
    info = {
        **source,
        "method": result.method,
        "requested_method": result.requested,
        "group_aware": result.group_aware,
        "seed": split["seed"],
        "fractions": split["fractions"],
        "split_config": split,
        "config_hash": config_hash,
        "notes": result.notes,
        "warnings": warnings,
    }
    sidecar = write_manifest(out, result.clips, info=info, skipped=skipped)

    for note in result.notes:
        print(f"note: {note}")
    how = result.method
    if result.method == "stratified":
        how += f"{', group-aware' if result.group_aware else ''}, seed {split['seed']}"
    print(
        f"manifest: {len(result.clips)} clips, {len({c.label for c in result.clips})} labels, "
        f"split {how} -> {out}"
    )
    print(format_counts(result.clips))
    for warning in warnings:
        print(f"warning: {warning}")
    if skipped:
        kinds = Counter(item.kind for item in skipped)
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        print(f"skipped {len(skipped)} item(s) ({summary}):")
        for item in skipped[:MAX_SKIPPED_SHOWN]:
            print(f"  {item.item}: {item.reason}")
        if len(skipped) > MAX_SKIPPED_SHOWN:
            print(f"  ... and {len(skipped) - MAX_SKIPPED_SHOWN} more (all listed in {sidecar})")
    return sidecar
