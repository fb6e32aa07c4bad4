"""The spectrogram stage: manifest -> float16 log-mel segments, one MPI rank per share of clips.

Rank 0 reads the manifest, removes ``features.json`` and the other outputs derived from the
whole run, splits the clips into balanced shares by file size (longest-processing-time-first)
and scatters them: paths and metadata only. Every rank decodes its clips, cuts them into log-mel
segments (:class:`genreflow.spectrograms.logmel.FeatureExtractor`) and streams them into its own shards
(:class:`genreflow.spectrograms.shards.ShardWriter`). Rank 0
gathers counts, failures, decode notes, timings and index rows, writes ``index.csv``,
``bad_files.csv``, ``notes.csv``, the preview PNGs (once per run, after the timed work, so
that no rank pays for matplotlib) and ``timings.json``, and, only if few enough clips failed,
``features.json`` last. Formats: ``docs/formats.md``, "Features" and "Spectrogram timings".
Read the result with :func:`genreflow.spectrograms.shards.open_features`.

This module runs a rank; the steps live beside it: :mod:`~genreflow.spectrograms.plan` (rank 0
splits the clips), :mod:`~genreflow.spectrograms.journal` (resume records),
:mod:`~genreflow.spectrograms.previews` and :mod:`~genreflow.spectrograms.finish` (rank 0
writes the outputs). Every rank imports all of them, so none may import more than conversion
needs (no TensorFlow, librosa, scipy or numba; matplotlib and PIL only inside functions).

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

import contextlib
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from genreflow.core.errors import AudioError, GenreflowError, StageError
from genreflow.core.runlock import output_lock
from genreflow.spectrograms.finish import RankReport, SpectrogramSummary, finish_run
from genreflow.spectrograms.journal import ShardJournal, Share
from genreflow.spectrograms.mpi import World, init_world
from genreflow.spectrograms.plan import Plan, make_plan
from genreflow.spectrograms.shards import IndexRow, ShardWriter

#: Environment variable of the fault-injection test hook (see the module docstring).
FAULT_ENV = "GENREFLOW_FAULT_INJECT"

_MIB = 1 << 20
# Taken once the imports above are done: the start time where /proc is unavailable.
_IMPORTED_AT = time.time()


class PeerStageError(StageError):
    """Raised on ranks other than 0 when rank 0 stopped the stage; rank 0 reports the reason."""


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
    weak_clips_per_rank: int | None = None,
) -> SpectrogramSummary:
    """Convert the clips of ``manifest`` into a feature directory ``out`` on every rank.

    Call it on every rank of the job (it is collective).

    Parameters
    ----------
    manifest : path-like
        ``manifest.csv`` (``genreflow manifest``).
    out : path-like
        Feature directory. A previous run's outputs there are removed first, except the
        shards that an interrupted run with the same inputs finished:
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
    weak_clips_per_rank : int, optional
        Weak scaling: convert only this many clips per rank (spread evenly over the
        manifest); ``timings.json`` records the run as a weak-scaling point.

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

    # Rank 0 holds the output folder for the whole run (a second run there refuses).
    with contextlib.ExitStack() as held:
        # Every step that can fail on one rank alone is guarded, so no rank waits forever.
        with world.abort_on_error(what="genreflow spectrograms"):
            _import_kernels()
            report.threads = _set_threads(int(cfg["preprocess"]["threads_per_rank"]))
            report.cpus = _cpus()
            report.seconds["import"] = time.time() - started
            t0 = time.perf_counter()
            from genreflow.spectrograms.logmel import FeatureExtractor

            extractor = FeatureExtractor.from_config(cfg)
            _warm_up(extractor)
            report.seconds["warmup"] = time.perf_counter() - t0

            t0 = time.perf_counter()
            plan: Plan | None = None
            plan_error: GenreflowError | None = None
            shares: list[Any] | None = None
            if world.is_root:
                try:
                    held.enter_context(output_lock(out, command="genreflow spectrograms"))
                    plan = make_plan(
                        manifest=manifest,
                        out=out,
                        cfg=cfg,
                        n_ranks=world.size,
                        fresh=fresh,
                        clips=weak_clips_per_rank * world.size if weak_clips_per_rank else None,
                    )
                    shares = plan.shares
                except GenreflowError as exc:
                    plan_error = exc
                    shares = [{"error": str(exc)}] * world.size
            share = world.scatter(shares)
            report.seconds["setup"] = time.perf_counter() - t0
            report.work_start = time.time()
        if isinstance(share, dict):
            if world.is_root:
                raise plan_error
            raise PeerStageError(f"rank 0 stopped the stage: {share['error']}")
        with world.abort_on_error(what="genreflow spectrograms"):
            problem = _check_shared_output(world, out)
        if problem:
            raise (StageError if world.is_root else PeerStageError)(problem)
        _warn_if_cpus_are_short(world, report, int(cfg["preprocess"]["threads_per_rank"]))

        with world.abort_on_error(what="genreflow spectrograms"):
            _convert_share(share, extractor=extractor, out=out, cfg=cfg, world=world, report=report)
            reports = world.gather(report)
            outcome = (
                finish_run(plan=plan, reports=reports, cfg=cfg, world=world, extractor=extractor)
                if world.is_root
                else None
            )
            outcome = world.bcast(outcome)
        if "error" in outcome:
            raise (StageError if world.is_root else PeerStageError)(outcome["error"])
        return SpectrogramSummary(**{**outcome["summary"], "rank": world.rank})


def _import_kernels() -> None:
    """Import what the conversion needs, so that start-up cost shows up as ``import``.

    Only that: the window and mel filterbank are computed by :mod:`genreflow.spectrograms.logmel`
    itself, so no rank imports librosa, scipy.signal or numba (~1.5 s per process), nor the
    ``scipy.fft`` and ``scipy.sparse`` packages (~0.4 s: :mod:`genreflow.spectrograms.stft` loads
    pocketfft alone), and never TensorFlow (``tests/spectrograms/test_stage.py`` checks the modules
    a rank loads).
    """
    import soundfile  # noqa: F401
    import soxr  # noqa: F401

    from genreflow.spectrograms.stft import real_fft

    real_fft()


def _cpus() -> list[int]:
    """The CPUs this rank may run on (what SLURM's task binding gave it)."""
    from genreflow.core.threads import allowed_cpus

    return allowed_cpus() or list(range(os.cpu_count() or 1))


def _check_shared_output(world: World, out: Path) -> str | None:
    """Every rank must see the folder rank 0 writes to; the problem (same on all ranks), or None.

    Each rank writes its own shards into ``out`` and rank 0 reads them all back (index, marker),
    so ``out`` must be on a filesystem every node of the job sees. Rank 0 writes a probe file;
    a rank on a node with its own copy of the path (node-local scratch, a /tmp per node) cannot
    see it, and the stage stops before any clip is converted instead of writing shards rank 0
    never finds.
    """
    if world.size == 1:
        return None
    probe = None
    if world.is_root:
        probe = out / f".shared-check-{os.getpid()}-{time.time_ns()}"
        probe.write_text(world.host)
    probe = world.bcast(probe)
    seen = world.gather((world.rank, world.host, Path(probe).is_file()))
    problem = None
    if world.is_root:
        Path(probe).unlink(missing_ok=True)
        blind = [(rank, host) for rank, host, ok in seen if not ok]
        if blind:
            who = ", ".join(f"rank {rank} on {host}" for rank, host in blind)
            problem = (
                f"the output folder {out} is not on a filesystem every rank sees: {who} cannot "
                f"see what rank 0 on {world.host} wrote there. Put the workflow's results/ (or "
                "--out) on a shared filesystem (not node-local scratch such as a per-node /tmp)"
            )
    return world.bcast(problem)


def _warn_if_cpus_are_short(world: World, report: RankReport, threads: int) -> None:
    """Say so when a rank may run on fewer CPUs than its threads (its timings would mislead)."""
    if len(report.cpus) < threads:
        print(
            f"genreflow spectrograms: rank {world.rank} on {world.host} may run on "
            f"{len(report.cpus)} CPU(s) but preprocess.threads_per_rank is {threads}: its "
            "threads share them (under SLURM: was the step started without -c/--cpus-per-task?)",
            file=sys.stderr,
        )


def _set_threads(threads: int) -> dict:
    """Size this rank's BLAS/OpenMP pools to ``threads`` and read back what is in force."""
    from genreflow.core.threads import blas_threads, limit_blas_threads

    limit_blas_threads(threads)
    return blas_threads()


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


def _convert_share(
    share: Share,
    *,
    extractor,
    out: Path,
    cfg: Mapping[str, Any],
    world: World,
    report: RankReport,
) -> None:
    """Convert the rest of this rank's share into its shards; fill ``report``."""
    from genreflow.core.progress import progress

    seconds = report.seconds
    for key in ("decode", "resample", "mel", "write"):
        seconds[key] = 0.0
    fault = world.rank in _faulty_ranks()
    delay = _fault_delay()
    max_bytes = int(cfg["preprocess"]["shard_mb"]) * _MIB
    journal = ShardJournal(out=out, rank=world.rank, n_ranks=world.size, share=share)
    writer = ShardWriter(
        directory=out,
        rank=world.rank,
        row_shape=(extractor.n_mels, extractor.segment_frames),
        max_bytes=max_bytes,
        first_index=share.first_shard,
        on_finished=journal.shard_finished,
    )
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
    report.bytes_written = writer.bytes_written
    report.done = time.time()
    seconds["total"] = report.done - report.started


def _failed(report: RankReport, journal: ShardJournal, failure: tuple[int, str, str]) -> None:
    report.bad += 1
    report.failures.append(failure)
    journal.failures.append(failure)
    journal.positions.append(failure[0])
    if delay := _fault_delay():
        time.sleep(delay)
