"""Feature shards: the per-rank ``.npy`` writer and the reader of a feature directory.

A feature directory (written by ``genreflow spectrograms``, format in ``docs/formats.md``,
"Features") holds float16 shards ``part-<rank>-<k>.npy`` of shape ``(rows, n_mels, n_frames)``,
``index.csv`` (which rows of which shard belong to which clip) and the completion marker
``features.json``. Later stages read it only through :func:`open_features`::

    fs = open_features("work/features")      # StageError unless features.json is there
    fs.info                                   # features.json as a dict ("labels", "mel", ...)
    fs.labels, fs.n_mels, fs.n_frames
    for row in fs.rows(split="train"):        # IndexRow: clip_id, label, labels, split, ...
        x = fs.clip_segments(row)             # (k, n_mels, n_frames) float16, read on demand
        row.offsets                           # start (s) of each of the k segments

``fs.shard(name)`` is the memory-mapped shard (opened once, cached); ``fs.read_rows`` reads rows
of it without mapping them into the process (what the later stages use, so that their
resident memory does not grow with the corpus); ``fs.index`` all rows in manifest order.

:class:`ShardWriter` streams rows into a shard whose final length is unknown: it writes an
``.npy`` header for zero rows (numpy reserves room in the header for the row count to grow),
appends raw rows, then rewrites the header with the real row count and renames the file into
place through :func:`genreflow.core.atomic.atomic_path`. Its ``on_finished`` callback runs after each
rename (the spectrogram stage writes its resume journal there) and ``first_index`` lets a
resumed run carry on numbering after the shards it kept.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from genreflow.core.atomic import atomic_open, atomic_path, reporting_full_disk
from genreflow.core.errors import StageError

log = logging.getLogger(__name__)

#: Shard element type on disk (little-endian float16).
SHARD_DTYPE = np.dtype("<f2")

#: Columns of ``index.csv``, in order.
INDEX_COLUMNS = (
    "clip_id",
    "path",
    "label",
    "labels",
    "group",
    "split",
    "shard",
    "row_start",
    "row_stop",
    "offsets",
    "duration",
)

MARKER = "features.json"
INDEX = "index.csv"

_SHARD_NAME = re.compile(r"part-(\d+)-(\d+)\.npy")


class ShardFile(NamedTuple):
    """A finished shard: file name, row count, size in bytes and SHA-256 of the whole file.

    The checksum is what ``sha256sum part-0-0.npy`` prints; ``features.json`` records it
    (``shard_files``) and the readers check it (:meth:`FeatureSet.verify`).
    """

    name: str
    rows: int
    bytes: int
    sha256: str


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the file at ``path``, hex (``sha256sum``'s)."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def shard_name(rank: int, k: int) -> str:
    """File name of rank ``rank``'s ``k``-th shard: ``part-<rank>-<k>.npy``."""
    return f"part-{rank}-{k}.npy"


def parse_shard_name(name: str) -> tuple[int, int] | None:
    """``(rank, k)`` of a shard file name ``part-<rank>-<k>.npy``; ``None`` for any other name."""
    match = _SHARD_NAME.fullmatch(name)
    return (int(match[1]), int(match[2])) if match else None


class ShardWriter:
    """Append ``(rows, n_mels, n_frames)`` blocks to rolling float16 shards of one rank.

    Parameters
    ----------
    directory : path-like
        The feature directory.
    rank : int
        Names the files ``part-<rank>-<k>.npy``.
    row_shape : tuple of int
        ``(n_mels, n_frames)``.
    max_bytes : int
        Start a new shard before a block would take the current file (header included) past
        this size. One clip's block is never split; a block larger than ``max_bytes`` gets a
        shard of its own.
    first_index : int
        Number of the first shard this writer opens (``part-<rank>-<first_index>.npy``); a
        resumed run starts after the shards it kept.
    on_finished : callable, optional
        ``on_finished(shard)``, called with the :class:`ShardFile` after each shard has been
        renamed into place. An exception it raises propagates out of :meth:`append` or
        :meth:`close`; the shard stays in place.

    Notes
    -----
    Use as a context manager: leaving the block normally finalises the open shard; leaving it
    with an exception deletes the unfinished temporary file, so only complete shards ever
    appear under a ``part-*.npy`` name. A full disk raises
    :class:`~genreflow.core.errors.DiskFullError` naming the shard, and leaves no shard behind.
    """

    def __init__(
        self,
        *,
        directory: str | os.PathLike,
        rank: int,
        row_shape: tuple[int, int],
        max_bytes: int,
        first_index: int = 0,
        on_finished: Callable[[ShardFile], None] | None = None,
    ) -> None:
        if first_index < 0:
            raise ValueError(f"first_index must be >= 0, got {first_index}")
        self.directory = Path(directory)
        self.rank = rank
        self.row_shape = tuple(int(n) for n in row_shape)
        self.row_bytes = SHARD_DTYPE.itemsize * int(np.prod(self.row_shape))
        self.max_bytes = int(max_bytes)
        self.first_index = int(first_index)
        self.on_finished = on_finished
        self.finished: list[ShardFile] = []  # the shards this writer closed
        self.bytes_written = 0
        self._stack: contextlib.ExitStack | None = None
        self._fh: Any = None
        self._tmp: Path | None = None
        self._name = ""
        self._rows = 0
        self._data_offset = 0

    def append(self, block: np.ndarray) -> tuple[str, int, int]:
        """Write ``block`` (shape ``(k, n_mels, n_frames)``, k >= 1) after the current rows.

        Returns
        -------
        shard : str
            File name the block went to.
        row_start, row_stop : int
            Its rows in that shard.
        """
        if block.ndim != 3 or tuple(block.shape[1:]) != self.row_shape or len(block) == 0:
            raise ValueError(
                f"block of shape {block.shape} does not fit rows of shape {self.row_shape}"
            )
        size = len(block) * self.row_bytes
        if self._fh is not None and self._rows and self._current_bytes() + size > self.max_bytes:
            self._close_shard()
        if self._fh is None:
            self._open_shard()
        with reporting_full_disk(self.directory / self._name):
            self._fh.write(
                np.ascontiguousarray(block, dtype=SHARD_DTYPE).reshape(-1).view(np.uint8)
            )
        start = self._rows
        self._rows += len(block)
        return self._name, start, self._rows

    def close(self) -> None:
        """Finalise the open shard (if any)."""
        if self._fh is not None:
            self._close_shard()

    def discard(self) -> None:
        """Drop the unfinished shard without renaming it into place."""
        if self._stack is not None:
            stack, self._stack, self._fh = self._stack, None, None
            with contextlib.suppress(Exception):
                # Entering the exit path with an exception makes atomic_path delete the temp file.
                stack.__exit__(RuntimeError, RuntimeError("discarded"), None)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def _current_bytes(self) -> int:
        return self._data_offset + self._rows * self.row_bytes

    def _header(self, rows: int) -> dict[str, Any]:
        return {"descr": SHARD_DTYPE.str, "fortran_order": False, "shape": (rows, *self.row_shape)}

    def _open_shard(self) -> None:
        self._name = shard_name(self.rank, self.first_index + len(self.finished))
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(atomic_path(self.directory / self._name))
        # The stack owns the file: it stays open across appends until the shard is finalised.
        self._fh = self._stack.enter_context(open(self._tmp, "wb"))  # noqa: SIM115
        with reporting_full_disk(self.directory / self._name):
            np.lib.format.write_array_header_1_0(self._fh, self._header(0))
        self._data_offset = self._fh.tell()
        self._rows = 0

    def _close_shard(self) -> None:
        fh = self._fh
        with reporting_full_disk(self.directory / self._name):
            fh.seek(0)
            np.lib.format.write_array_header_1_0(fh, self._header(self._rows))
            if fh.tell() != self._data_offset:  # numpy reserves 21 digits for the row count
                raise RuntimeError(
                    f"{self._name}: the .npy header changed size when it was finalised"
                )
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.flush()
        # Read back from the page cache: the header is only final now, and a whole-file
        # digest is the one `sha256sum` gives (about 1.7 GB/s here, a few ms per shard).
        shard = ShardFile(self._name, self._rows, size, file_sha256(self._tmp))
        self.bytes_written += size
        stack, self._stack, self._fh = self._stack, None, None
        stack.close()  # closes the file, then fsync + rename into place
        self.finished.append(shard)
        if self.on_finished is not None:
            self.on_finished(shard)


@dataclass(frozen=True)
class IndexRow:
    """One good clip in ``index.csv``: its metadata and where its segments are.

    Attributes
    ----------
    clip_id, path, label, group, split : str
    labels : tuple of str
    shard : str
        File name of the shard in the feature directory.
    row_start, row_stop : int
        The clip's segments are rows ``row_start:row_stop`` of ``shard``, in time order.
    offsets : tuple of float
        Start time (s) of each segment.
    duration : float
        Clip length (s).
    """

    clip_id: str
    path: str
    label: str
    labels: tuple[str, ...]
    group: str
    split: str
    shard: str
    row_start: int
    row_stop: int
    offsets: tuple[float, ...]
    duration: float

    @property
    def n_segments(self) -> int:
        return self.row_stop - self.row_start


def write_index(path: str | os.PathLike, rows: Iterable[IndexRow]) -> None:
    """Write ``index.csv`` atomically (columns :data:`INDEX_COLUMNS`)."""
    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(INDEX_COLUMNS)
        for r in rows:
            writer.writerow(
                [
                    r.clip_id,
                    r.path,
                    r.label,
                    ";".join(r.labels),
                    r.group,
                    r.split,
                    r.shard,
                    r.row_start,
                    r.row_stop,
                    ";".join(repr(round(float(x), 6)) for x in r.offsets),
                    repr(round(float(r.duration), 6)),
                ]
            )


def read_index(path: str | os.PathLike) -> list[IndexRow]:
    """Read ``index.csv``.

    Raises
    ------
    StageError
        Missing file, wrong columns or a malformed row (names the file and line).
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or tuple(header) != INDEX_COLUMNS:
                raise StageError(
                    f"{path}: not a feature index (expected columns {','.join(INDEX_COLUMNS)})"
                )
            rows = []
            for record in reader:
                try:
                    d = dict(zip(INDEX_COLUMNS, record, strict=True))
                    rows.append(
                        IndexRow(
                            clip_id=d["clip_id"],
                            path=d["path"],
                            label=d["label"],
                            labels=tuple(x for x in d["labels"].split(";") if x),
                            group=d["group"],
                            split=d["split"],
                            shard=d["shard"],
                            row_start=int(d["row_start"]),
                            row_stop=int(d["row_stop"]),
                            offsets=tuple(float(x) for x in d["offsets"].split(";") if x),
                            duration=float(d["duration"]),
                        )
                    )
                except ValueError as exc:
                    raise StageError(f"{path}:{reader.line_num}: malformed row: {exc}") from None
    except OSError as exc:
        raise StageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return rows


class FeatureSet:
    """A complete feature directory (see the module docstring). Build it with :func:`open_features`.

    Attributes
    ----------
    path : Path
    info : dict
        ``features.json``.
    index : list of IndexRow
        Every good clip, in manifest order.
    """

    def __init__(self, path: Path, info: dict, index: list[IndexRow]) -> None:
        self.path = path
        self.info = info
        self.index = index
        self._shards: dict[str, np.ndarray] = {}
        self._files: dict[str, Any] = {}
        #: Seconds the last :meth:`verify` took (``None``: not verified).
        self.verify_seconds: float | None = None

    @property
    def labels(self) -> list[str]:
        """Sorted label names of the manifest (the classifier's classes)."""
        return list(self.info["labels"])

    @property
    def n_mels(self) -> int:
        return int(self.info["n_mels"])

    @property
    def n_frames(self) -> int:
        """Frames per segment."""
        return int(self.info["n_frames"])

    def __len__(self) -> int:
        return len(self.index)

    def rows(self, *, split: str | None = None) -> list[IndexRow]:
        """Index rows, optionally only those of one ``split`` (``train``/``valid``/``test``)."""
        return [r for r in self.index if split is None or r.split == split]

    def shard(self, name: str) -> np.ndarray:
        """Shard ``name`` memory-mapped read-only, shape ``(rows, n_mels, n_frames)`` float16.

        Raises
        ------
        StageError
            The shard is not listed in ``features.json``, is missing, or has the wrong shape.
        """
        if name not in self._shards:
            if name not in self.info["shards"]:
                raise StageError(f"{self.path}: shard '{name}' is not listed in {MARKER}")
            file = self.path / name
            try:
                array = np.load(file, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise StageError(f"{file}: cannot read shard: {exc}") from None
            expected = (self.n_mels, self.n_frames)
            if array.dtype != SHARD_DTYPE or array.ndim != 3 or array.shape[1:] != expected:
                raise StageError(
                    f"{file}: shard is {array.dtype} {array.shape}, expected float16 "
                    f"(rows, {expected[0]}, {expected[1]})"
                )
            self._shards[name] = array
        return self._shards[name]

    def read_rows(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of shard ``name`` as a new array, ``(stop - start, n_mels, n_frames)`` float16.

        Read with ``pread`` rather than through the memory map: pages of a mapping that a
        reader touched stay in its resident memory, so an epoch over a large corpus would grow
        the process by the corpus size; read pages stay in the (shared, reclaimable) page
        cache only. Safe from several threads (no shared file position).
        """
        array = self.shard(name)
        stop = min(stop, len(array))
        if start >= stop:
            return np.empty((0, *array.shape[1:]), dtype=SHARD_DTYPE)
        row_bytes = array.itemsize * self.n_mels * self.n_frames
        handle = self._files.get(name)
        if handle is None:
            handle = self._files[name] = open(self.path / name, "rb")  # noqa: SIM115
        out = np.empty((stop - start, self.n_mels, self.n_frames), dtype=SHARD_DTYPE)
        got = os.preadv(handle.fileno(), [out.data.cast("B")], array.offset + start * row_bytes)
        if got != out.nbytes:
            raise StageError(f"{self.path / name}: shard shorter than its header says")
        return out

    def verify(self) -> float:
        """Check every shard's SHA-256 against ``features.json``; the seconds it took.

        Raises
        ------
        StageError
            A shard's bytes differ from those written (bit rot, a partial copy between file
            systems), named with both digests. A directory written before checksums were
            recorded passes with a warning.
        """
        recorded = self.info.get("shard_files")
        if recorded is None:
            log.warning(
                "%s: %s records no shard checksums (written by an earlier genreflow); "
                "shards not verified",
                self.path,
                MARKER,
            )
            return 0.0
        t0 = time.perf_counter()
        for name in self.info["shards"]:
            found = file_sha256(self.path / name)
            if found != recorded[name]["sha256"]:
                raise StageError(
                    f"{self.path / name}: checksum mismatch (sha256 {found[:16]}…, {MARKER} "
                    f"records {recorded[name]['sha256'][:16]}…): the shard changed after it was "
                    f"written (bit rot, an incomplete copy); {_REBUILD}"
                )
        self.verify_seconds = time.perf_counter() - t0
        return self.verify_seconds

    def clip_segments(self, row: IndexRow) -> np.ndarray:
        """The segments of one clip: shape ``(k, n_mels, n_frames)``, float16 (a copy)."""
        return self.read_rows(row.shard, row.row_start, row.row_stop)


def open_features(path: str | os.PathLike, *, verify: bool = False) -> FeatureSet:
    """Open a feature directory written by ``genreflow spectrograms``.

    Parameters
    ----------
    path : path-like
        The directory given as ``--out`` to ``genreflow spectrograms``.
    verify : bool
        Also check every shard's SHA-256 against ``features.json`` (:meth:`FeatureSet.verify`:
        one read of every shard). Sizes are always checked.

    Returns
    -------
    FeatureSet

    Raises
    ------
    StageError
        No ``features.json`` (the stage never finished, crashed, or failed on too many bad
        files), an unreadable marker or index, an index that disagrees with the marker, or a
        listed shard that is missing, of another size than recorded, or (``verify``) of other
        bytes.
    """
    path = Path(path)
    marker = path / MARKER
    if not marker.is_file():
        why = "the folder does not exist" if not path.is_dir() else f"there is no {MARKER}"
        raise StageError(
            f"{path}: not a complete feature directory ({why}): the spectrogram stage did not "
            "finish there; run `genreflow spectrograms` (again)"
        )
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StageError(f"{marker}: cannot read: {exc}") from None
    missing = [k for k in ("labels", "n_mels", "n_frames", "shards", "n_clips") if k not in info]
    if missing:
        raise StageError(f"{marker}: missing field(s) {', '.join(missing)}")
    index = read_index(path / INDEX)
    if len(index) != info["n_clips"]:
        raise StageError(
            f"{path / INDEX}: {len(index)} rows, but {MARKER} records {info['n_clips']} clips"
        )
    sizes = {name: _file_size(path / name) for name in info["shards"]}
    absent = [name for name, size in sizes.items() if size is None]
    if absent:
        raise StageError(f"{path}: shard(s) listed in {MARKER} are missing: {', '.join(absent)}")
    features = FeatureSet(path, info, index)
    for name, recorded in info.get("shard_files", {}).items():
        if sizes.get(name) != recorded["bytes"]:
            raise StageError(
                f"{path / name}: {sizes.get(name)} bytes, {MARKER} records {recorded['bytes']}: "
                f"the shard changed after it was written; {_REBUILD}"
            )
    if verify:
        features.verify()
    return features


def _file_size(path: Path) -> int | None:
    """Size of the regular file at ``path``; ``None`` when there is none."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


#: How a damaged shard is mended: the stage's resume check converts its clips again.
_REBUILD = "run `genreflow spectrograms` on this folder again to convert its clips anew"
