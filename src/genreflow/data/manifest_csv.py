"""Read a dataset CSV, and read and write the workflow's ``manifest.csv`` with its sidecar.

A user CSV (``path,label[,group][,labels][,split]``) is checked like a folder dataset (see
:mod:`genreflow.data.manifest`); ``manifest.csv`` is the checked, split clip list that later
stages read, with a ``manifest.json`` sidecar that records how it was made.
"""

from __future__ import annotations

import csv
import datetime
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from genreflow.core.atomic import atomic_open, write_json
from genreflow.core.errors import DatasetError
from genreflow.data.manifest import (
    LABEL_SEPARATOR,
    SPLITS,
    Clip,
    SkippedItem,
    checked_clips,
    clip_id_of,
    no_clips_message,
    split_counts,
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
