"""The spectrogram stage: manifest -> float16 log-mel segments, one MPI rank per share of clips.

Rank 0 reads the manifest, removes ``features.json`` and the other outputs derived from the
whole run, splits the clips into balanced shares by file size (longest-processing-time-first)
and scatters them: paths and metadata only. Every rank decodes its clips, cuts them into log-mel
segments (:class:`genreflow.spectrograms.logmel.FeatureExtractor`) and streams them into its own shards
(:class:`genreflow.spectrograms.shards.ShardWriter`), writing preview PNGs for the clips it owns. Rank 0
gathers counts, failures, decode notes, timings and index rows, writes ``index.csv``,
``bad_files.csv``, ``notes.csv`` and ``timings.json``, and, only if few enough clips failed,
``features.json`` last. Formats: ``docs/formats.md``, "Features" and "Spectrogram timings".
Read the result with :func:`genreflow.spectrograms.shards.open_features`.

Resuming. Each time a rank has renamed a finished shard into place it writes a journal
``journal/part-<rank>-<k>.json`` (atomically): the share positions the shard covers and all
that the final outputs need about them (index rows, failures, decode notes), plus a key of the
run's inputs (manifest bytes, clip sizes and mtimes, the config that shapes shard bytes,
genreflow version) and the rank count. The partition and the shard roll-over points are
deterministic, so a rerun after a kill (time limit, preemption, node failure) keeps, per rank,
the longest run ``part-<rank>-0 .. k`` of shards whose journals check out, deletes everything
else, and converts only the rest of each share, starting at shard ``k + 1``. Its outputs are
byte for byte those of an uninterrupted run (but for ``created`` in ``features.json`` and the
timings). A journal from other inputs or another rank count starts the run over, with one
line on stderr saying why; so does ``fresh=True`` (``genreflow spectrograms --fresh``).

A clip that cannot be used is an :class:`~genreflow.core.errors.AudioError`, recorded and skipped.
Anything else on any rank (a bug, a full disk) aborts every rank (see
:meth:`genreflow.spectrograms.mpi.World.abort_on_error`).

Test hook: ``GENREFLOW_FAULT_INJECT=rank1`` (comma-separate several) makes rank 1 raise
``RuntimeError`` right after writing its first clip, i.e. with a shard half written, to test
that a crash aborts all ranks and leaves no ``features.json``. ``delay=SECONDS`` in the same
variable makes every rank sleep that long after each clip (to kill a run half-way in tests).
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import heapq
import json
import os
import re
import sys
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genreflow import __version__
from genreflow.core.atomic import atomic_open, atomic_path, write_json, write_text
from genreflow.core.errors import AudioError, GenreflowError, StageError
from genreflow.spectrograms.mpi import World, init_world, launcher_env
from genreflow.spectrograms.shards import (
    INDEX,
    MARKER,
    IndexRow,
    ShardWriter,
    parse_shard_name,
    shard_name,
    write_index,
)

#: Environment variable of the fault-injection test hook (see the module docstring).
FAULT_ENV = "GENREFLOW_FAULT_INJECT"

#: Thread-count variables set per rank from ``preprocess.threads_per_rank``.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

BAD_FILES = "bad_files.csv"
NOTES = "notes.csv"
TIMINGS = "timings.json"
PREVIEWS = "previews"

#: Sub-folder of the feature directory holding one resume journal per finished shard.
JOURNAL_DIR = "journal"
#: Version of the journal format; journals of another version start the run over.
JOURNAL_FORMAT = 1

_MIB = 1 << 20
_IMPORTED_AT = time.time()
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
_JOURNAL_NAME = re.compile(r"part-(\d+)-(\d+)\.json")
#: Why a journal's key does not match this run, by field.
_KEY_CHANGES = {
    "manifest_sha256": "the manifest changed",
    "clips_sha256": "a clip file changed (size or modification time)",
    "config_hash": "audio, mel, preprocess.shard_mb or preprocess.previews_per_genre changed",
    "genreflow_version": "the genreflow version changed",
}


class PeerStageError(StageError):
    """Raised on ranks other than 0 when rank 0 stopped the stage; rank 0 reports the reason."""


@dataclass(frozen=True)
class ClipTask:
    """One clip as scattered to a rank: metadata only, never audio."""

    pos: int  # position in the manifest (orders the index)
    clip_id: str
    path: str
    label: str
    labels: tuple[str, ...]
    group: str
    split: str
    size: int
    preview: bool


@dataclass(frozen=True)
class _Share:
    """What rank 0 scatters to one rank: the rest of its share and how to journal it."""

    tasks: list[ClipTask]  # the share's clips not yet in complete shards, in share order
    done: int  # clips at the start of the share already in complete shards
    first_shard: int  # number of the first shard to write
    inputs: dict[str, str]  # the run's key (see _run_inputs)


@dataclass
class _Recovered:
    """Rank 0: what the kept journals of one rank hold (its share's first ``done`` clips)."""

    rank: int
    done: int = 0
    shards: list[tuple[str, int]] = field(default_factory=list)  # (name, rows)
    journals: list[str] = field(default_factory=list)
    previews: list[str] = field(default_factory=list)
    index: list[tuple[int, IndexRow]] = field(default_factory=list)
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # (pos, path, reason)
    notes: list[tuple[int, str, str]] = field(default_factory=list)  # (pos, path, note)
    segments: int = 0

    @property
    def bad(self) -> int:
        return len(self.failures)


@dataclass
class RankReport:
    """What one rank sends back to rank 0 (this run's work only, not resumed clips)."""

    rank: int
    host: str
    files: int = 0
    bad: int = 0
    segments: int = 0
    bytes_in: int = 0
    bytes_written: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    started: float = 0.0  # epoch time the process started
    ready: float = 0.0  # epoch time it was ready to convert (imports, MPI, warm-up done)
    index: list[tuple[int, IndexRow]] = field(default_factory=list)
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # (pos, path, reason)
    notes: list[tuple[int, str, str]] = field(default_factory=list)  # (pos, path, note)
    shards: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class SpectrogramSummary:
    """The outcome of a run: the same on every rank but for ``rank``.

    ``files``, ``good``, ``bad`` and ``segments`` count the whole feature directory;
    ``resumed`` of the ``files`` were taken over from an interrupted earlier run, and
    ``wall_seconds`` and ``clips_per_second`` cover only the clips converted by this run.
    """

    rank: int
    out: str
    n_ranks: int
    files: int
    good: int
    bad: int
    segments: int
    wall_seconds: float
    startup_seconds: float
    resumed: int = 0

    @property
    def clips_per_second(self) -> float:
        converted = self.files - self.resumed
        return converted / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def line(self) -> str:
        """The one-line summary printed at the end of a run."""
        resumed = f" ({self.resumed} resumed from an earlier run)" if self.resumed else ""
        return (
            f"spectrograms: {self.files} files, {self.good} good, {self.bad} bad, "
            f"{self.segments} segments{resumed}, {self.wall_seconds:.1f} s wall "
            f"({self.startup_seconds:.1f} s start-up), {self.clips_per_second:.1f} clips/s, "
            f"{self.n_ranks} rank(s) -> {self.out}"
        )


def lpt_partition(weights: Sequence[float], n_parts: int) -> list[list[int]]:
    """Split items into ``n_parts`` shares of nearly equal total weight.

    Longest-processing-time-first: items in decreasing weight each go to the currently
    lightest share (ties to the lowest share number), so the result is deterministic.

    Parameters
    ----------
    weights : sequence of float, length n
    n_parts : int >= 1

    Returns
    -------
    list of list of int
        ``n_parts`` lists of item indices, each in increasing order; together a partition of
        ``range(n)``.
    """
    if n_parts < 1:
        raise ValueError(f"n_parts must be >= 1, got {n_parts}")
    heap = [(0.0, part) for part in range(n_parts)]
    shares: list[list[int]] = [[] for _ in range(n_parts)]
    for i in sorted(range(len(weights)), key=lambda i: (-weights[i], i)):
        load, part = heapq.heappop(heap)
        shares[part].append(i)
        heapq.heappush(heap, (load + float(weights[i]), part))
    return [sorted(share) for share in shares]


def process_start_time() -> float:
    """Epoch time this process started (from ``/proc``; 10 ms resolution).

    Falls back to the time this module was imported where ``/proc`` is unavailable.
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return time.time() - (uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return _IMPORTED_AT


def run_spectrograms(
    *,
    manifest: str | os.PathLike,
    out: str | os.PathLike,
    cfg: Mapping[str, Any],
    world: World | None = None,
    started: float | None = None,
    fresh: bool = False,
) -> SpectrogramSummary:
    """Convert the clips of ``manifest`` into a feature directory ``out`` on every rank.

    Call it on every rank of the job (it is collective).

    Parameters
    ----------
    manifest : path-like
        ``manifest.csv`` (``genreflow manifest``).
    out : path-like
        Feature directory. A previous run's outputs there are removed first, except the
        shards (and their previews) that an interrupted run with the same inputs finished:
        those clips are not converted again (see the module docstring).
    cfg : mapping
        Validated config; uses ``audio``, ``mel`` and ``preprocess``.
    world : World, optional
        Default :func:`genreflow.spectrograms.mpi.init_world` (one rank without a launcher).
    started : float, optional
        Epoch time this process started (default: from ``/proc``); the ``import`` timing
        and ``startup_seconds`` count from it.
    fresh : bool
        Ignore (and remove) an earlier run's journals and shards: convert every clip.

    Returns
    -------
    SpectrogramSummary
        The same on every rank.

    Raises
    ------
    StageError, DatasetError
        On rank 0: unreadable manifest, unusable output folder, no good clip, or more bad
        clips than ``preprocess.max_failed_fraction`` allows (``bad_files.csv`` and
        ``timings.json`` are written, ``features.json`` is not). Other ranks raise
        :class:`PeerStageError` with the same message.
    """
    started = process_start_time() if started is None else started
    world = world if world is not None else init_world()
    out = Path(out).resolve()
    report = RankReport(rank=world.rank, host=world.host, started=started)

    # Every step that can fail on one rank alone is guarded, so no rank waits forever.
    with world.abort_on_error(what="genreflow spectrograms"):
        _import_kernels()
        report.seconds["import"] = time.time() - started
        t0 = time.perf_counter()
        from genreflow.spectrograms.logmel import FeatureExtractor

        extractor = FeatureExtractor.from_config(cfg)
        _warm_up(extractor)
        report.ready = time.time()
        report.seconds["warmup"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        plan: _Plan | None = None
        plan_error: GenreflowError | None = None
        shares: list[Any] | None = None
        if world.is_root:
            try:
                plan = _plan(manifest=manifest, out=out, cfg=cfg, n_ranks=world.size, fresh=fresh)
                shares = plan.shares
            except GenreflowError as exc:
                plan_error = exc
                shares = [{"error": str(exc)}] * world.size
        share = world.scatter(shares)
        report.seconds["setup"] = time.perf_counter() - t0
    if isinstance(share, dict):
        if world.is_root:
            raise plan_error
        raise PeerStageError(f"rank 0 stopped the stage: {share['error']}")

    with world.abort_on_error(what="genreflow spectrograms"):
        _convert_share(share, extractor=extractor, out=out, cfg=cfg, world=world, report=report)
        reports = world.gather(report)
        outcome = (
            _finish(plan, reports, cfg=cfg, world=world, n_frames=extractor.segment_frames)
            if world.is_root
            else None
        )
        outcome = world.bcast(outcome)
    if "error" in outcome:
        raise (StageError if world.is_root else PeerStageError)(outcome["error"])
    return SpectrogramSummary(**{**outcome["summary"], "rank": world.rank})


@dataclass
class _Plan:
    manifest: Path
    out: Path
    labels: list[str]
    shares: list[_Share]
    recovered: list[_Recovered]
    resume_note: str | None = None  # the line logged about resuming (None: nothing to resume)


def _plan(
    *,
    manifest: str | os.PathLike,
    out: Path,
    cfg: Mapping[str, Any],
    n_ranks: int,
    fresh: bool = False,
) -> _Plan:
    """Rank 0: read the manifest, split the clips into shares, resume or clear old outputs."""
    from genreflow.data.manifest import read_manifest

    # First: even a run that fails below must not leave a directory that reads as complete.
    had_journals = _has_journals(out)
    remove_stale_outputs(out, keep=frozenset() if fresh else None)
    manifest = Path(manifest).resolve()
    clips = read_manifest(manifest)
    try:
        manifest_bytes = manifest.read_bytes()
    except OSError as exc:
        raise StageError(f"{manifest}: cannot read: {exc.strerror or exc}") from None

    per_label = cfg["preprocess"]["previews_per_genre"]
    previews_left: dict[str, int] = {}
    tasks = []
    stats = []
    for pos, clip in enumerate(clips):
        try:
            st = os.stat(clip.path)
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = 0, 0  # decoding will report why
        stats.append((size, mtime))
        left = previews_left.setdefault(clip.label, per_label)
        if left:
            previews_left[clip.label] = left - 1
        tasks.append(
            ClipTask(
                pos=pos,
                clip_id=clip.clip_id,
                path=clip.path,
                label=clip.label,
                labels=tuple(clip.labels),
                group=clip.group,
                split=clip.split,
                size=size,
                preview=bool(left),
            )
        )
    parts = lpt_partition([t.size for t in tasks], n_ranks)
    labels = sorted({name for clip in clips for name in clip.labels})
    shares = [[tasks[i] for i in part] for part in parts]
    inputs = _run_inputs(manifest_bytes, cfg, stats)

    recovered = [_Recovered(rank=r) for r in range(n_ranks)]
    note = None
    if fresh:
        if had_journals:
            note = f"--fresh: not resuming the earlier run in {out}; converting every clip"
    elif had_journals:
        found, why = recover_journals(out, shares=shares, inputs=inputs, n_ranks=n_ranks)
        if found is None:
            note = f"not resuming the earlier run in {out}: {why}; converting every clip"
        else:
            recovered = found
            done = sum(r.done for r in recovered)
            per_rank = ", ".join(
                f"rank {r.rank}: {r.done}/{len(share)}"
                for r, share in zip(recovered, shares, strict=True)
            )
            note = (
                f"resuming the earlier run in {out}: {done} of {len(tasks)} clips are in its "
                f"complete shards ({per_rank}); converting the other {len(tasks) - done}"
            )
    keep = {
        name
        for r in recovered
        for name in (
            *(shard for shard, _ in r.shards),
            *(f"{JOURNAL_DIR}/{j}" for j in r.journals),
            *(f"{PREVIEWS}/{p}" for p in r.previews),
        )
    }
    remove_stale_outputs(out, keep=keep)
    if note:
        print(f"genreflow spectrograms: {note}", file=sys.stderr, flush=True)
    return _Plan(
        manifest=manifest,
        out=out,
        labels=labels,
        shares=[
            _Share(tasks=share[r.done :], done=r.done, first_shard=len(r.shards), inputs=inputs)
            for share, r in zip(shares, recovered, strict=True)
        ],
        recovered=recovered,
        resume_note=note,
    )


def _run_inputs(
    manifest_bytes: bytes, cfg: Mapping[str, Any], stats: Sequence[tuple[int, int]]
) -> dict[str, str]:
    """The key of a run's inputs: what decides the partition and every byte of the outputs.

    The manifest's bytes, each clip's size and modification time, the config that shapes
    shards and previews (``audio``, ``mel``, ``preprocess.shard_mb`` and
    ``preprocess.previews_per_genre``) and the genreflow version. The rank count is checked
    separately.
    """
    from genreflow.core.config import config_hash

    clips = "".join(f"{size} {mtime}\n" for size, mtime in stats).encode("ascii")
    shaping = {
        "audio": cfg["audio"],
        "mel": cfg["mel"],
        "shard_mb": cfg["preprocess"]["shard_mb"],
        "previews_per_genre": cfg["preprocess"]["previews_per_genre"],
    }
    return {
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "clips_sha256": hashlib.sha256(clips).hexdigest(),
        "config_hash": config_hash(shaping),
        "genreflow_version": __version__,
    }


def journal_name(rank: int, k: int) -> str:
    """File name (in ``journal/``) of the journal of shard ``part-<rank>-<k>.npy``."""
    return f"part-{rank}-{k}.json"


def _has_journals(out: Path) -> bool:
    folder = out / JOURNAL_DIR
    return folder.is_dir() and any(folder.glob("part-*.json"))


def recover_journals(
    out: str | os.PathLike,
    *,
    shares: Sequence[Sequence[ClipTask]],
    inputs: Mapping[str, str],
    n_ranks: int,
) -> tuple[list[_Recovered] | None, str | None]:
    """Rank 0: what an interrupted earlier run in ``out`` finished, per rank.

    For each rank, the longest run of journals ``part-<rank>-0 .. k`` that check out: the
    journal reads, its shard is there with the recorded size, it continues the share where the
    previous one stopped, and the previews of its clips are there.

    Returns
    -------
    (recovered, None)
        One :class:`_Recovered` per rank (``done == 0`` where nothing can be kept).
    (None, why)
        A journal is of another format, other inputs or another rank count: start over.
    """
    out = Path(out)
    journals: dict[tuple[int, int], Any] = {}
    folder = out / JOURNAL_DIR
    for file in sorted(folder.glob("part-*.json")) if folder.is_dir() else []:
        match = _JOURNAL_NAME.fullmatch(file.name)
        if not match:
            continue
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # unreadable: ends its rank's run of journals below
        why = _key_mismatch(record, inputs=inputs, n_ranks=n_ranks)
        if why:
            return None, f"{JOURNAL_DIR}/{file.name}: {why}"
        journals[int(match[1]), int(match[2])] = record
    recovered = []
    for rank, share in enumerate(shares):
        rec = _Recovered(rank=rank)
        k = 0
        while (rank, k) in journals:
            try:
                if not _take_journal(journals[rank, k], rec, share=share, out=out, k=k):
                    break
            except (KeyError, TypeError, ValueError, AttributeError):
                break
            k += 1
        recovered.append(rec)
    return recovered, None


def _key_mismatch(record: Any, *, inputs: Mapping[str, str], n_ranks: int) -> str | None:
    """Why ``record`` cannot be resumed by this run (``None``: it can, as far as the key goes)."""
    if not isinstance(record, dict) or record.get("format") != JOURNAL_FORMAT:
        found = record.get("format") if isinstance(record, dict) else None
        return f"journal format {found!r}, this genreflow writes format {JOURNAL_FORMAT}"
    if record.get("n_ranks") != n_ranks:
        return f"the earlier run had {record.get('n_ranks')} rank(s), this one has {n_ranks}"
    theirs = record.get("inputs")
    theirs = theirs if isinstance(theirs, dict) else {}
    for key, change in _KEY_CHANGES.items():
        if theirs.get(key) != inputs.get(key):
            return change
    return None


def _take_journal(
    record: dict, rec: _Recovered, *, share: Sequence[ClipTask], out: Path, k: int
) -> bool:
    """Add journal ``k`` of ``rec.rank`` to ``rec`` if it checks out; ``False`` if it does not."""
    rank = rec.rank
    name = shard_name(rank, k)
    if record["rank"] != rank or record["shard"] != name or record["share_start"] != rec.done:
        return False
    try:
        if (out / name).stat().st_size != record["shard_bytes"]:
            return False
    except OSError:
        return False
    positions = [int(p) for p in record["positions"]]
    tasks = share[rec.done : rec.done + len(positions)]
    if not positions or [t.pos for t in tasks] != positions:
        return False
    by_pos = {t.pos: t for t in tasks}
    index = []
    for pos, row in record["index"]:
        row = IndexRow(**{**row, "labels": tuple(row["labels"]), "offsets": tuple(row["offsets"])})
        if pos not in by_pos or row.shard != name:
            return False
        index.append((int(pos), row))
    if sum(row.n_segments for _, row in index) != record["shard_rows"]:
        return False
    previews = [
        preview_name(by_pos[pos].label, by_pos[pos].clip_id)
        for pos, _ in index
        if by_pos[pos].preview
    ]
    if not all((out / PREVIEWS / p).is_file() for p in previews):
        return False
    failures = [(int(pos), str(path), str(reason)) for pos, path, reason in record["failures"]]
    notes = [(int(pos), str(path), str(note)) for pos, path, note in record["notes"]]
    if len(index) + len(failures) != len(positions):
        return False
    rec.done += len(positions)
    rec.shards.append((name, int(record["shard_rows"])))
    rec.journals.append(journal_name(rank, k))
    rec.previews += previews
    rec.index += index
    rec.failures += failures
    rec.notes += notes
    rec.segments += int(record["shard_rows"])
    return True


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


def _import_kernels() -> None:
    """Import what the conversion needs, so that start-up cost shows up as ``import``.

    Only that: the window and mel filterbank are computed by :mod:`genreflow.spectrograms.logmel`
    itself, so no rank imports librosa, scipy.signal or numba (~1.5 s per process), nor the
    ``scipy.fft`` and ``scipy.sparse`` packages (~0.4 s: :mod:`genreflow.spectrograms.stft` loads
    pocketfft alone), and never TensorFlow (``tests/test_spectrograms.py`` checks the modules
    a rank loads).
    """
    import soundfile  # noqa: F401
    import soxr  # noqa: F401

    from genreflow.spectrograms.stft import real_fft

    real_fft()


def _warm_up(extractor) -> None:
    """One tiny conversion, so that first-call costs do not land on the first clip."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(extractor.sample_rate, dtype=np.float32) * 0.1
    extractor.segments(noise)


def _faulty_ranks() -> set[int]:
    spec = os.environ.get(FAULT_ENV, "")
    return {int(m) for m in re.findall(r"rank(\d+)", spec)}


def _fault_delay() -> float:
    match = re.search(r"delay=([0-9.]+)", os.environ.get(FAULT_ENV, ""))
    return float(match[1]) if match else 0.0


class _Journal:
    """One rank's record of the clips since its last finished shard; written beside each shard."""

    def __init__(self, *, out: Path, rank: int, n_ranks: int, share: _Share) -> None:
        self.folder = out / JOURNAL_DIR
        self.rank = rank
        self.n_ranks = n_ranks
        self.inputs = share.inputs
        self.start = share.done  # share position of the first clip not yet journalled
        self._reset()

    def _reset(self) -> None:
        self.positions: list[int] = []
        self.index: list[tuple[int, IndexRow]] = []
        self.failures: list[tuple[int, str, str]] = []
        self.notes: list[tuple[int, str, str]] = []

    def shard_finished(self, name: str, rows: int, size: int) -> None:
        """:class:`ShardWriter` callback: journal every clip handled since the previous shard.

        Runs inside :meth:`ShardWriter.append` of the clip that opens the next shard, before
        that clip is recorded here, or when the share's last shard is closed.
        """
        parsed = parse_shard_name(name)
        if parsed is None or parsed[0] != self.rank:
            raise RuntimeError(f"shard {name!r} is not one of rank {self.rank}'s")
        record = {
            "format": JOURNAL_FORMAT,
            "stage": "spectrograms",
            "rank": self.rank,
            "n_ranks": self.n_ranks,
            "inputs": dict(self.inputs),
            "shard": name,
            "shard_rows": rows,
            "shard_bytes": size,
            "share_start": self.start,
            "positions": self.positions,
            "index": [[pos, asdict(row)] for pos, row in self.index],
            "failures": [list(f) for f in self.failures],
            "notes": [list(n) for n in self.notes],
        }
        # Compact (about half the size of indented JSON): one journal per shard adds up.
        write_text(
            self.folder / journal_name(*parsed),
            json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n",
        )
        self.start += len(self.positions)
        self._reset()


def _convert_share(
    share: _Share,
    *,
    extractor,
    out: Path,
    cfg: Mapping[str, Any],
    world: World,
    report: RankReport,
) -> None:
    """Convert the rest of this rank's share into its shards and previews; fill ``report``."""
    from genreflow.core.progress import progress

    seconds = report.seconds
    for key in ("decode", "resample", "mel", "write", "previews"):
        seconds[key] = 0.0
    fault = world.rank in _faulty_ranks()
    delay = _fault_delay()
    max_bytes = int(cfg["preprocess"]["shard_mb"]) * _MIB
    journal = _Journal(out=out, rank=world.rank, n_ranks=world.size, share=share)
    writer = ShardWriter(
        directory=out,
        rank=world.rank,
        row_shape=(extractor.n_mels, extractor.segment_frames),
        max_bytes=max_bytes,
        first_index=share.first_shard,
        on_finished=journal.shard_finished,
    )
    preview_bytes = 0
    tasks = share.tasks
    desc = f"spectrograms (rank 0 of {world.size})"
    with writer:
        for task in progress(tasks, total=len(tasks), desc=desc, enabled=world.is_root):
            report.files += 1
            try:
                audio = extractor.load(task.path)
            except AudioError as exc:
                _failed(report, journal, (task.pos, task.path, exc.reason))
                continue
            seconds["decode"] += audio.seconds["decode"]
            seconds["resample"] += audio.seconds["resample"]
            notes = [(task.pos, task.path, str(n)) for n in getattr(audio, "notes", ()) or ()]
            report.notes += notes
            journal.notes += notes
            clip = extractor.segments(audio.samples, dtype=np.float16)
            seconds["mel"] += clip.seconds["mel"]
            if len(clip.segments) == 0:
                reason = (
                    f"too short for one segment: {audio.duration:.2f} s "
                    f"(segment {cfg['audio']['segment_seconds']:g} s, audio.tail is drop)"
                )
                _failed(report, journal, (task.pos, task.path, reason))
                continue
            report.bytes_in += audio.bytes_in
            t0 = time.perf_counter()
            # May finish the previous shard, and journal the clips before this one.
            shard, start, stop = writer.append(clip.segments)
            seconds["write"] += time.perf_counter() - t0
            report.segments += stop - start
            row = IndexRow(
                clip_id=task.clip_id,
                path=task.path,
                label=task.label,
                labels=task.labels,
                group=task.group,
                split=task.split,
                shard=shard,
                row_start=start,
                row_stop=stop,
                offsets=tuple(float(x) for x in clip.offsets),
                duration=audio.duration,
            )
            report.index.append((task.pos, row))
            journal.index.append((task.pos, row))
            if task.preview:
                t0 = time.perf_counter()
                preview_bytes += write_preview(
                    out / PREVIEWS / preview_name(task.label, task.clip_id),
                    extractor.logmel(audio.samples),
                )
                seconds["previews"] += time.perf_counter() - t0
            journal.positions.append(task.pos)  # done: the next finished shard journals it
            if fault:
                raise RuntimeError(
                    f"fault injected by {FAULT_ENV}={os.environ[FAULT_ENV]!r} on rank {world.rank}"
                )
            if delay:
                time.sleep(delay)
        t0 = time.perf_counter()
    seconds["write"] += time.perf_counter() - t0  # finalising the last shard
    report.shards = list(writer.finished)
    report.bytes_written = writer.bytes_written + preview_bytes
    seconds["total"] = time.time() - report.started


def _failed(report: RankReport, journal: _Journal, failure: tuple[int, str, str]) -> None:
    report.bad += 1
    report.failures.append(failure)
    journal.failures.append(failure)
    journal.positions.append(failure[0])
    if delay := _fault_delay():
        time.sleep(delay)


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


def _finish(
    plan: _Plan,
    reports: list[RankReport],
    *,
    cfg: Mapping[str, Any],
    world: World,
    n_frames: int,
) -> dict[str, Any]:
    """Rank 0: write index, bad files, notes, timings and (if the run passed) ``features.json``.

    Resumed clips (``plan.recovered``) count in the outputs as if this run had converted them;
    ``timings.json`` counts this run's work and gives the resumed clips apart.
    """
    from genreflow.core.config import config_hash

    out = plan.out
    recovered = plan.recovered
    index = [
        row
        for _, row in sorted(
            (pair for part in (*recovered, *reports) for pair in part.index), key=lambda p: p[0]
        )
    ]
    failures = sorted(f for part in (*recovered, *reports) for f in part.failures)
    rank_of = {pos: part.rank for part in (*recovered, *reports) for pos, *_ in part.failures}
    # Stable: a clip's notes keep their order (one rank wrote them all).
    notes = sorted(
        (
            (pos, path, note, part.rank)
            for part in (*recovered, *reports)
            for pos, path, note in part.notes
        ),
        key=lambda n: n[0],
    )
    write_index(out / INDEX, index)
    with atomic_open(out / BAD_FILES, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "rank", "reason"])
        for pos, path, reason in failures:
            writer.writerow([path, rank_of[pos], reason])
    with atomic_open(out / NOTES, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "rank", "note"])
        for _, path, note, rank in notes:
            writer.writerow([path, rank, note])

    resumed = sum(r.done for r in recovered)
    files = sum(r.files for r in reports) + resumed
    bad = len(failures)
    segments = sum(r.segments for r in reports) + sum(r.segments for r in recovered)
    shards = sorted(
        (name for part in (*recovered, *reports) for name, _ in part.shards),
        key=lambda n: _shard_sort_key(n),
    )
    first_start = min(r.started for r in reports)
    startup = max(r.ready for r in reports) - first_start
    wall = time.time() - first_start
    hash_ = config_hash(cfg, ("audio", "mel"))
    summary = SpectrogramSummary(
        rank=0,
        out=str(out),
        n_ranks=world.size,
        files=files,
        good=files - bad,
        bad=bad,
        segments=segments,
        wall_seconds=round(wall, 4),
        startup_seconds=round(startup, 4),
        resumed=resumed,
    )
    threads = int(cfg["preprocess"]["threads_per_rank"])
    new_files = sum(r.files for r in reports)
    new_bad = sum(r.bad for r in reports)
    by_rank = {r.rank: r for r in recovered}
    write_json(
        out / TIMINGS,
        {
            "stage": "spectrograms",
            "n_ranks": world.size,
            "wall_seconds": summary.wall_seconds,
            "startup_seconds": summary.startup_seconds,
            "work_seconds": round(wall - startup, 4),
            "clips_per_second": round(summary.clips_per_second, 3),
            "hosts": sorted({r.host for r in reports}),
            "threads_per_rank": threads,
            "thread_env": {k: os.environ.get(k) for k in THREAD_ENV},
            "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
            "files": new_files,
            "good": new_files - new_bad,
            "bad": new_bad,
            "segments": sum(r.segments for r in reports),
            "bytes_in": sum(r.bytes_in for r in reports),
            "bytes_written": sum(r.bytes_written for r in reports),
            "resumed_clips": resumed,
            "resume": plan.resume_note,
            "config_hash": hash_,
            "started": _iso(first_start),
            "launcher": world.launcher,
            "launcher_env": launcher_env(),
            "python": sys.version.split()[0],
            "ranks": [
                _rank_record(r, by_rank[r.rank]) for r in sorted(reports, key=lambda r: r.rank)
            ],
        },
    )

    limit = float(cfg["preprocess"]["max_failed_fraction"])
    if files - bad == 0:
        return {"error": f"no clip could be converted ({bad} bad); see {out / BAD_FILES}"}
    if bad / files > limit:
        examples = "; ".join(f"{path}: {reason}" for _, path, reason in failures[:3])
        return {
            "error": f"{bad} of {files} clips ({100 * bad / files:.1f}%) could not be used, more "
            f"than preprocess.max_failed_fraction={limit:g} allows; no {MARKER} written. "
            f"See {out / BAD_FILES} (e.g. {examples})"
        }
    write_json(
        out / MARKER,
        {
            "audio": dict(cfg["audio"]),
            "mel": dict(cfg["mel"]),
            "n_frames": n_frames,
            "n_mels": int(cfg["mel"]["n_mels"]),
            "dtype": "float16",
            "labels": plan.labels,
            "n_clips": len(index),
            "n_segments": segments,
            "n_bad": bad,
            "shards": shards,
            "manifest": str(plan.manifest),
            "n_ranks": world.size,
            "config_hash": hash_,
            "genreflow_version": __version__,
            "created": _iso(time.time()),
        },
    )
    return {"summary": asdict(summary)}


def _shard_sort_key(name: str) -> tuple[int, int]:
    parsed = parse_shard_name(name)
    if parsed is None:
        raise ValueError(f"not a shard name: {name!r}")
    return parsed


def _rank_record(r: RankReport, rec: _Recovered) -> dict[str, Any]:
    return {
        "rank": r.rank,
        "host": r.host,
        "files": r.files,
        "bad": r.bad,
        "segments": r.segments,
        "bytes_in": r.bytes_in,
        "bytes_written": r.bytes_written,
        "shards": [name for name, _ in r.shards],
        "resumed_clips": rec.done,
        "resumed_shards": [name for name, _ in rec.shards],
        "seconds": {k: round(v, 4) for k, v in r.seconds.items()},
    }


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="seconds")
