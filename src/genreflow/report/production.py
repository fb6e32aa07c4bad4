"""The setting a production job uses when the config says ``auto``: its sweep's fastest point.

``preprocess.production_ranks: auto`` and ``train.production_threads: auto`` make the workflow
wait for the sweep (the rank or thread timing jobs) and then run with the count whose time was
shortest, by the same measure the report's speed-ups use (:mod:`genreflow.report.summary`):
the spectrogram stage's work seconds, or the seconds per epoch of training steps. The choice
and the figures it was made from go to ``production.json`` (written atomically), which the
report reads back to say which setting was chosen and why.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from genreflow.core.atomic import write_json
from genreflow.core.errors import StageError
from genreflow.report.readers import (
    load_json,
    read_embed_timings,
    read_spectrogram_timings,
    read_train_timings,
)
from genreflow.report.records import UnusableFile
from genreflow.report.text import format_seconds, format_speedup, plural

__all__ = ["choose_setting", "read_choice", "write_choice"]


def choose_setting(*, timings: Sequence[str | os.PathLike]) -> dict[str, Any]:
    """The fastest setting among the sweep runs whose ``timings.json`` files are given.

    Parameters
    ----------
    timings : sequence of path-like
        One file per sweep run, all of one stage (spectrograms or train).

    Returns
    -------
    dict
        ``stage``, ``axis`` (``ranks`` or ``threads``), ``chosen`` (the count), ``folder``
        (the chosen run's folder name), ``measured`` (``{count: seconds}``, medians),
        ``metric``, ``timings`` (the files) and ``text`` (one sentence).

    Raises
    ------
    StageError
        No file given, a file unusable, or files of different stages.
    """
    from genreflow.report.scaling import scaling

    if not timings:
        raise StageError("no sweep timings to choose a production setting from")
    runs = []
    for path in map(Path, timings):
        try:
            data = load_json(path)
            if not isinstance(data, dict):
                raise UnusableFile("not a JSON object")
            if data.get("stage") == "spectrograms":
                runs.append(("spectrograms", read_spectrogram_timings(path, data=data)))
            elif data.get("stage") == "train":
                runs.append(("train", read_train_timings(path, data=data)))
            elif data.get("stage") == "embed":
                runs.append(("embed", read_embed_timings(path, data=data)))
            else:
                raise UnusableFile(f"stage {data.get('stage')!r} is not a sweep stage")
        except UnusableFile as exc:
            raise StageError(f"{path}: cannot choose a production setting from it: {exc}") from None
    stages = {stage for stage, _ in runs}
    if len(stages) != 1:
        raise StageError(f"sweep timings of several stages given: {sorted(stages)}")
    stage = stages.pop()
    if stage == "spectrograms":
        axis, metric = "ranks", "work seconds (scatter to the last rank's last shard)"
        counts = [r.n_ranks for _, r in runs]
        times = [r.compute_seconds for _, r in runs]
    elif stage == "embed":
        axis, metric = "threads", "seconds of the backbone's forward passes"
        counts = [r.intra_op for _, r in runs]
        times = [r.seconds for _, r in runs]
    else:
        axis, metric = "threads", "seconds per epoch of training steps"
        counts = [r.intra_op for _, r in runs]
        times = [r.epoch_seconds for _, r in runs]
    result = scaling(counts=counts, times=times)
    best = result.best
    chosen_run = next(r for (_, r), n in zip(runs, counts, strict=True) if n == best.count)
    measured = {str(p.count): round(p.seconds, 4) for p in result.points}
    others = ", ".join(
        f"{plural(p.count, axis[:-1])} {format_seconds(p.seconds)}"
        for p in result.points
        if p.count != best.count
    )
    title = {"spectrograms": "spectrograms", "embed": "embedding"}.get(stage, "training")
    text = (
        f"production {title} uses {plural(best.count, axis[:-1])}: the fastest of its sweep "
        f"({format_seconds(best.seconds)}, {format_speedup(best.speedup)}"
        + (f"; {others}" if others else "")
        + ")"
    )
    return {
        "stage": stage,
        "axis": axis,
        "chosen": best.count,
        "folder": chosen_run.path.parent.name,
        "measured": measured,
        "metric": metric,
        "timings": [str(Path(t)) for t in timings],
        "text": text,
    }


def write_choice(
    choice: dict[str, Any], *, out: str | os.PathLike, link: str | None = None
) -> None:
    """Write ``production.json`` atomically; with ``link``, first point that symlink (a
    sibling of the chosen run's folder) at the chosen folder, also atomically."""
    out = Path(out)
    if link:
        link_path = Path(link)
        chosen = Path(choice["timings"][0]).parent.parent / choice["folder"]
        target = os.path.relpath(chosen, link_path.parent)
        tmp = link_path.with_name(f".{link_path.name}.tmp-{os.getpid()}")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, link_path)
        choice = {**choice, "link": str(link_path)}
    write_json(out, choice)


def read_choice(path: str | os.PathLike) -> dict[str, Any]:
    """A ``production.json`` (the one reader: ``genreflow train --threads-from`` and the
    report); :class:`UnusableFile` if it is unreadable or names no count."""
    try:
        data = load_json(Path(path))
    except UnusableFile as exc:
        raise UnusableFile(f"{path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("chosen"), int):
        raise UnusableFile(f"{path}: not a production choice (no integer 'chosen')")
    return data
