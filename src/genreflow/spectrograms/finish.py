"""The end of a spectrogram run: rank 0 gathers every rank's report and writes the outputs.

``index.csv``, ``bad_files.csv``, ``notes.csv`` and ``timings.json`` always, and, only if few
enough clips failed, ``features.json`` last. Formats: ``docs/formats.md``, "Features" and
"Spectrogram timings".
"""

from __future__ import annotations

import csv
import datetime
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genreflow import __version__
from genreflow.core.atomic import atomic_open, write_json
from genreflow.core.threads import BLAS_ENV
from genreflow.spectrograms.journal import ClipTask, Recovered
from genreflow.spectrograms.mpi import World, launcher_env
from genreflow.spectrograms.outputs import BAD_FILES, NOTES, TIMINGS
from genreflow.spectrograms.plan import Plan
from genreflow.spectrograms.shards import (
    INDEX,
    MARKER,
    IndexRow,
    ShardFile,
    parse_shard_name,
    write_index,
)


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
    work_start: float = 0.0  # epoch time it had its share (rank 0's plan scattered)
    done: float = 0.0  # epoch time its share was converted and its last shard closed
    threads: dict[str, Any] = field(default_factory=dict)  # BLAS/OpenMP pools in force
    cpus: list[int] = field(default_factory=list)  # the CPUs it may run on (its affinity)
    index: list[tuple[int, IndexRow]] = field(default_factory=list)
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # (pos, path, reason)
    notes: list[tuple[int, str, str]] = field(default_factory=list)  # (pos, path, note)
    shards: list[ShardFile] = field(default_factory=list)


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


def finish_run(
    *,
    plan: Plan,
    reports: list[RankReport],
    cfg: Mapping[str, Any],
    world: World,
    extractor,
) -> dict[str, Any]:
    """Rank 0: write index, bad files, notes, previews, timings and (if the run passed)
    ``features.json``.

    Resumed clips (``plan.recovered``) count in the outputs as if this run had converted them;
    ``timings.json`` counts this run's work and gives the resumed clips apart. Its
    ``work_seconds`` is the parallel part (from the scatter to the last rank's last shard);
    start-up, previews and writing the outputs are timed beside it.
    """
    from genreflow.core.config import config_hash

    work_end = max(r.done for r in reports)
    n_frames = extractor.segment_frames
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
    shard_files = sorted(
        (shard for part in (*recovered, *reports) for shard in part.shards),
        key=lambda s: _shard_sort_key(s.name),
    )
    t0 = time.perf_counter()
    good = {pos for part in (*recovered, *reports) for pos, _ in part.index}
    preview_bytes = draw_previews(
        [t for t in plan.previews if t.pos in good], out=out, extractor=extractor
    )
    previews_seconds = time.perf_counter() - t0
    first_start = min(r.started for r in reports)
    work_start = min(r.work_start for r in reports)
    startup = work_start - first_start
    end = time.time()
    wall = end - first_start
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
            "work_seconds": round(work_end - work_start, 4),
            "previews_seconds": round(previews_seconds, 4),
            "finish_seconds": round(end - work_end - previews_seconds, 4),
            "start_time": round(first_start, 3),
            "end_time": round(end, 3),
            "clips_per_second": round(summary.clips_per_second, 3),
            "hosts": sorted({r.host for r in reports}),
            "threads_per_rank": threads,
            "blas_threads": sorted({r.threads.get("blas") or 0 for r in reports}),
            "cpus_per_rank": sorted({len(r.cpus) for r in reports}),
            "thread_env": {k: os.environ.get(k) for k in BLAS_ENV},
            "numba_cache_dir": os.environ.get("NUMBA_CACHE_DIR"),
            "files": new_files,
            "good": new_files - new_bad,
            "bad": new_bad,
            "segments": sum(r.segments for r in reports),
            "bytes_in": sum(r.bytes_in for r in reports),
            "bytes_written": sum(r.bytes_written for r in reports) + preview_bytes,
            "scaling": "weak" if plan.weak_clips else "strong",
            "clips_per_rank": plan.weak_clips // world.size if plan.weak_clips else None,
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
            "shards": [s.name for s in shard_files],
            "shard_files": {s.name: {"bytes": s.bytes, "sha256": s.sha256} for s in shard_files},
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


def _rank_record(r: RankReport, rec: Recovered) -> dict[str, Any]:
    return {
        "rank": r.rank,
        "host": r.host,
        "files": r.files,
        "bad": r.bad,
        "segments": r.segments,
        "bytes_in": r.bytes_in,
        "bytes_written": r.bytes_written,
        "shards": [s.name for s in r.shards],
        "resumed_clips": rec.done,
        "resumed_shards": [s.name for s in rec.shards],
        "seconds": {k: round(v, 4) for k, v in r.seconds.items()},
        "threads": r.threads,
        "cpus": r.cpus,
    }


def draw_previews(tasks: list[ClipTask], *, out: Path, extractor) -> int:
    """Draw the preview PNG of each clip in ``tasks`` that has none yet; bytes written.

    Once per run on rank 0, after the timed work: each rank would otherwise import matplotlib
    (~0.5 s) inside its share. A clip that cannot be decoded now (changed since) gets none.
    """
    from genreflow.core.errors import AudioError
    from genreflow.spectrograms.previews import PREVIEWS, preview_name, write_preview

    written = 0
    for task in tasks:
        path = out / PREVIEWS / preview_name(task.label, task.clip_id)
        if path.is_file():
            continue
        try:
            audio = extractor.load(task.path)
        except AudioError:
            continue
        written += write_preview(path, extractor.logmel(audio.samples))
    return written


def _iso(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).isoformat(timespec="seconds")
