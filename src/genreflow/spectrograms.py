"""The spectrogram stage: manifest -> float16 log-mel segments, one MPI rank per share of clips.

Rank 0 reads the manifest, clears a previous run's outputs (``features.json`` first), splits the
clips into balanced shares by file size (longest-processing-time-first) and scatters them:
paths and metadata only. Every rank decodes its clips, cuts them into log-mel segments
(:class:`genreflow.features.FeatureExtractor`) and streams them into its own shards
(:class:`genreflow.shards.ShardWriter`), writing preview PNGs for the clips it owns. Rank 0
gathers counts, failures, timings and index rows, writes ``index.csv``, ``bad_files.csv`` and
``timings.json``, and, only if few enough clips failed, ``features.json`` last. Formats:
``docs/formats.md``, "Features" and "Spectrogram timings". Read the result with
:func:`genreflow.shards.open_features`.

A clip that cannot be used is an :class:`~genreflow.errors.AudioError`, recorded and skipped.
Anything else on any rank (a bug, a full disk) aborts every rank (see
:meth:`genreflow.mpi.World.abort_on_error`).

Test hook: ``GENREFLOW_FAULT_INJECT=rank1`` (comma-separate several) makes rank 1 raise
``RuntimeError`` right after writing its first clip, i.e. with a shard half written, to test
that a crash aborts all ranks and leaves no ``features.json``.
"""

from __future__ import annotations

import csv
import datetime
import heapq
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genreflow.atomic import atomic_open, atomic_path, write_json
from genreflow.errors import AudioError, GenreflowError, StageError
from genreflow.mpi import World, init_world, launcher_env
from genreflow.shards import INDEX, MARKER, IndexRow, ShardWriter, write_index

#: Environment variable of the fault-injection test hook (see the module docstring).
FAULT_ENV = "GENREFLOW_FAULT_INJECT"

#: Thread-count variables set per rank from ``preprocess.threads_per_rank``.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

BAD_FILES = "bad_files.csv"
TIMINGS = "timings.json"
PREVIEWS = "previews"

_MIB = 1 << 20
_IMPORTED_AT = time.time()
_STALE_PATTERNS = (
    "part-*.npy",
    ".part-*.tmp-*",
    INDEX,
    BAD_FILES,
    TIMINGS,
    ".index.tmp-*",
    ".bad_files.tmp-*",
    ".timings.tmp-*",
    ".features.tmp-*",
)


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


@dataclass
class RankReport:
    """What one rank sends back to rank 0."""

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
    shards: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class SpectrogramSummary:
    """The outcome of a run: the same on every rank but for ``rank``."""

    rank: int
    out: str
    n_ranks: int
    files: int
    good: int
    bad: int
    segments: int
    wall_seconds: float
    startup_seconds: float

    @property
    def clips_per_second(self) -> float:
        return self.files / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def line(self) -> str:
        """The one-line summary printed at the end of a run."""
        return (
            f"spectrograms: {self.files} files, {self.good} good, {self.bad} bad, "
            f"{self.segments} segments, {self.wall_seconds:.1f} s wall "
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
) -> SpectrogramSummary:
    """Convert the clips of ``manifest`` into a feature directory ``out`` on every rank.

    Call it on every rank of the job (it is collective).

    Parameters
    ----------
    manifest : path-like
        ``manifest.csv`` (``genreflow manifest``).
    out : path-like
        Feature directory; a previous run's outputs there are removed first.
    cfg : mapping
        Validated config; uses ``audio``, ``mel`` and ``preprocess``.
    world : World, optional
        Default :func:`genreflow.mpi.init_world` (one rank without a launcher).
    started : float, optional
        Epoch time this process started (default: from ``/proc``); the ``import`` timing
        and ``startup_seconds`` count from it.

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
        from genreflow.features import FeatureExtractor

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
                plan = _plan(manifest=manifest, out=out, cfg=cfg, n_ranks=world.size)
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
    shares: list[list[ClipTask]]


def _plan(*, manifest: str | os.PathLike, out: Path, cfg: Mapping[str, Any], n_ranks: int) -> _Plan:
    """Rank 0: read the manifest, clear stale outputs and split the clips into shares."""
    from genreflow.manifest import read_manifest

    remove_stale_outputs(out)  # first: even a run that fails below must not leave old data
    manifest = Path(manifest).resolve()
    clips = read_manifest(manifest)

    per_label = cfg["preprocess"]["previews_per_genre"]
    previews_left: dict[str, int] = {}
    tasks = []
    for pos, clip in enumerate(clips):
        try:
            size = os.stat(clip.path).st_size
        except OSError:
            size = 0  # decoding will report why
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
    return _Plan(
        manifest=manifest,
        out=out,
        labels=labels,
        shares=[[tasks[i] for i in part] for part in parts],
    )


def remove_stale_outputs(out: str | os.PathLike) -> None:
    """Clear a previous run's outputs from ``out``, ``features.json`` first.

    Removing the completion marker before anything else means that a run killed half-way
    through this clean-up (or through the conversion after it) never leaves a directory that
    looks complete. Only files this stage writes are removed.

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
        for pattern in _STALE_PATTERNS:
            for stale in out.glob(pattern):
                stale.unlink(missing_ok=True)
        previews = out / PREVIEWS
        if previews.is_dir():
            for stale in [*previews.glob("*.png"), *previews.glob(".*.tmp-*")]:
                stale.unlink(missing_ok=True)
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StageError(f"--out {out}: cannot prepare the folder: {exc}") from None


def _import_kernels() -> None:
    """Import what the conversion needs, so that start-up cost shows up as ``import``."""
    import librosa.filters  # noqa: F401
    import scipy.fft  # noqa: F401
    import scipy.signal  # noqa: F401
    import scipy.sparse  # noqa: F401
    import soundfile  # noqa: F401
    import soxr  # noqa: F401


def _warm_up(extractor) -> None:
    """One tiny conversion, so that first-call costs do not land on the first clip."""
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(extractor.sample_rate, dtype=np.float32) * 0.1
    extractor.segments(noise)


def _faulty_ranks() -> set[int]:
    spec = os.environ.get(FAULT_ENV, "")
    return {int(m) for m in re.findall(r"rank(\d+)", spec)}


def _convert_share(
    share: list[ClipTask],
    *,
    extractor,
    out: Path,
    cfg: Mapping[str, Any],
    world: World,
    report: RankReport,
) -> None:
    """Convert this rank's clips into its shards and previews; fill ``report``."""
    from genreflow.progress import progress

    seconds = report.seconds
    for key in ("decode", "resample", "mel", "write", "previews"):
        seconds[key] = 0.0
    fault = world.rank in _faulty_ranks()
    max_bytes = int(cfg["preprocess"]["shard_mb"]) * _MIB
    writer = ShardWriter(
        directory=out,
        rank=world.rank,
        row_shape=(extractor.n_mels, extractor.segment_frames),
        max_bytes=max_bytes,
    )
    preview_bytes = 0
    desc = f"spectrograms (rank 0 of {world.size})"
    with writer:
        for task in progress(share, total=len(share), desc=desc, enabled=world.is_root):
            report.files += 1
            try:
                audio = extractor.load(task.path)
            except AudioError as exc:
                report.bad += 1
                report.failures.append((task.pos, task.path, exc.reason))
                continue
            seconds["decode"] += audio.seconds["decode"]
            seconds["resample"] += audio.seconds["resample"]
            clip = extractor.segments(audio.samples)
            seconds["mel"] += clip.seconds["mel"]
            if len(clip.segments) == 0:
                report.bad += 1
                reason = (
                    f"too short for one segment: {audio.duration:.2f} s "
                    f"(segment {cfg['audio']['segment_seconds']:g} s, audio.tail is drop)"
                )
                report.failures.append((task.pos, task.path, reason))
                continue
            report.bytes_in += audio.bytes_in
            t0 = time.perf_counter()
            shard, start, stop = writer.append(clip.segments.astype(np.float16))
            seconds["write"] += time.perf_counter() - t0
            report.segments += stop - start
            report.index.append(
                (
                    task.pos,
                    IndexRow(
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
                    ),
                )
            )
            if task.preview:
                t0 = time.perf_counter()
                preview_bytes += write_preview(
                    out / PREVIEWS / preview_name(task.label, task.clip_id),
                    extractor.logmel(audio.samples),
                )
                seconds["previews"] += time.perf_counter() - t0
            if fault:
                raise RuntimeError(
                    f"fault injected by {FAULT_ENV}={os.environ[FAULT_ENV]!r} on rank {world.rank}"
                )
        t0 = time.perf_counter()
    seconds["write"] += time.perf_counter() - t0  # finalising the last shard
    report.shards = list(writer.finished)
    report.bytes_written = writer.bytes_written + preview_bytes
    seconds["total"] = time.time() - report.started


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
    """Rank 0: write index, bad files, timings and (if the run passed) ``features.json``."""
    from genreflow import __version__
    from genreflow.config import config_hash

    out = plan.out
    index = [row for _, row in sorted(pair for r in reports for pair in r.index)]
    failures = sorted(f for r in reports for f in r.failures)
    rank_of = {pos: r.rank for r in reports for pos, *_ in r.failures}
    write_index(out / INDEX, index)
    with atomic_open(out / BAD_FILES, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["path", "rank", "reason"])
        for pos, path, reason in failures:
            writer.writerow([path, rank_of[pos], reason])

    files = sum(r.files for r in reports)
    bad = sum(r.bad for r in reports)
    segments = sum(r.segments for r in reports)
    shards = sorted(
        (name for r in reports for name, _ in r.shards), key=lambda n: _shard_sort_key(n)
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
    )
    threads = int(cfg["preprocess"]["threads_per_rank"])
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
            "files": files,
            "good": files - bad,
            "bad": bad,
            "segments": segments,
            "bytes_in": sum(r.bytes_in for r in reports),
            "bytes_written": sum(r.bytes_written for r in reports),
            "config_hash": hash_,
            "started": _iso(first_start),
            "launcher": world.launcher,
            "launcher_env": launcher_env(),
            "python": sys.version.split()[0],
            "ranks": [_rank_record(r) for r in sorted(reports, key=lambda r: r.rank)],
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
    rank, k = name[len("part-") : -len(".npy")].split("-")
    return int(rank), int(k)


def _rank_record(r: RankReport) -> dict[str, Any]:
    return {
        "rank": r.rank,
        "host": r.host,
        "files": r.files,
        "bad": r.bad,
        "segments": r.segments,
        "bytes_in": r.bytes_in,
        "bytes_written": r.bytes_written,
        "shards": [name for name, _ in r.shards],
        "seconds": {k: round(v, 4) for k, v in r.seconds.items()},
    }


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="seconds")
