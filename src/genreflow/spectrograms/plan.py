"""Planning a spectrogram run on rank 0: read the manifest, split the clips, resume or clear.

The clips are split into balanced shares by file size (longest-processing-time-first,
:func:`lpt_partition`); the partition is deterministic, so a rerun after a kill finds each
rank's share where the killed run left it and keeps what its journals vouch for.
"""

from __future__ import annotations

import heapq
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genreflow.core.errors import StageError
from genreflow.spectrograms.journal import (
    JOURNAL_DIR,
    ClipTask,
    Recovered,
    Share,
    has_journals,
    recover_journals,
    run_inputs,
)
from genreflow.spectrograms.outputs import remove_stale_outputs
from genreflow.spectrograms.previews import PREVIEWS


@dataclass
class Plan:
    """Rank 0's plan of a run: the shares to scatter and what an earlier run finished."""

    manifest: Path
    out: Path
    labels: list[str]
    shares: list[Share]
    recovered: list[Recovered]
    resume_note: str | None = None  # the line logged about resuming (None: nothing to resume)
    previews: list[ClipTask] = field(default_factory=list)  # the clips to draw a preview of
    weak_clips: int | None = None  # weak scaling: the clips kept of the manifest


def make_plan(
    *,
    manifest: str | os.PathLike,
    out: Path,
    cfg: Mapping[str, Any],
    n_ranks: int,
    fresh: bool = False,
    clips: int | None = None,
) -> Plan:
    """Rank 0: read the manifest, split the clips into shares, resume or clear old outputs.

    ``clips`` (weak scaling) keeps only that many of the manifest's clips, evenly spaced.
    """
    from genreflow.data.manifest import read_manifest

    # First: even a run that fails below must not leave a directory that reads as complete.
    had_journals = has_journals(out)
    remove_stale_outputs(out, keep=frozenset() if fresh else None)
    manifest = Path(manifest).resolve()
    wanted = clips
    clips = read_manifest(manifest)
    if wanted is not None:
        if wanted > len(clips):
            raise StageError(
                f"weak scaling wants {wanted} clips, the manifest has {len(clips)}: lower "
                "preprocess.weak_scaling or the largest rank count"
            )
        clips = [clips[(i * len(clips)) // wanted] for i in range(wanted)]
    try:
        manifest_bytes = manifest.read_bytes()
    except OSError as exc:
        raise StageError(f"{manifest}: cannot read: {exc.strerror or exc}") from None

    # A weak-scaling run's features are a timing subset that nobody looks at: no previews.
    per_label = 0 if wanted is not None else cfg["preprocess"]["previews_per_genre"]
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
    inputs = run_inputs(manifest_bytes=manifest_bytes, cfg=cfg, stats=stats)

    recovered = [Recovered(rank=r) for r in range(n_ranks)]
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
            *(shard.name for shard in r.shards),
            *(f"{JOURNAL_DIR}/{j}" for j in r.journals),
            *(f"{PREVIEWS}/{p}" for p in r.previews),
        )
    }
    remove_stale_outputs(out, keep=keep)
    if note:
        print(f"genreflow spectrograms: {note}", file=sys.stderr, flush=True)
    return Plan(
        manifest=manifest,
        out=out,
        labels=labels,
        shares=[
            Share(tasks=share[r.done :], done=r.done, first_shard=len(r.shards), inputs=inputs)
            for share, r in zip(shares, recovered, strict=True)
        ],
        recovered=recovered,
        resume_note=note,
        previews=[t for t in tasks if t.preview],
        weak_clips=wanted,
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
