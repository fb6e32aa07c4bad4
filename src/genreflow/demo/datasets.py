"""The two demo dataset writers (single- and multi-label), their READMEs and checks."""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from genreflow.core.errors import ConfigError, DatasetError
from genreflow.demo.arranger import (
    GENERATOR,
    GENERATOR_VERSION,
    GENRES,
    MIX_FRACTION,
    MULTILABEL_GENERATOR,
    MULTILABEL_GENERATOR_VERSION,
    PARTNER_INDEX_BASE,
    check_positive,
    synthesize_clip,
    synthesize_multilabel_clip,
)

log = logging.getLogger(__name__)

_CLIP_NAME = re.compile(r"^(?P<genre>[a-z]+)\.(?P<index>\d{5})\.wav$")
_MULTILABEL_CLIP_NAME = re.compile(r"^(?P<genre>[a-z]+)-ml\.(?P<index>\d{5})\.wav$")


def clip_path(out: Path, *, genre: str, index: int) -> Path:
    """``out/<genre>/<genre>.<index:05d>.wav`` (the GTZAN layout)."""
    return Path(out) / genre / f"{genre}.{index:05d}.wav"


def multilabel_clip_path(out: Path, *, genre: str, index: int) -> Path:
    """``out/<genre>/<genre>-ml.<index:05d>.wav``: not GTZAN names, so no GTZAN split applies."""
    return Path(out) / genre / f"{genre}-ml.{index:05d}.wav"


def write_demo_dataset(
    *,
    out: Path,
    clips_per_genre: int,
    seconds: float,
    seed: int,
    sample_rate: int = 22050,
    show_progress: bool = True,
) -> list[Path]:
    """Write the demo dataset in GTZAN layout, plus ``README.md`` and ``demo.json``.

    Each clip is a 16-bit PCM mono WAV written atomically. ``demo.json`` is written last,
    so a folder with it is complete. A folder that is neither empty nor an earlier demo
    dataset (no ``demo.json``) is refused rather than overwritten; in an earlier demo
    dataset, clips beyond ``clips_per_genre`` are removed so the folder matches the record.

    Returns
    -------
    list of Path
        The clip paths, genre by genre, in index order.
    """
    from genreflow import __version__
    from genreflow.core.atomic import write_json, write_text

    _check_count(clips_per_genre)
    out = Path(out)
    start = time.monotonic()

    def make(genre: str, index: int) -> tuple[np.ndarray, tuple[str, ...], Path]:
        samples = synthesize_clip(
            genre=genre, index=index, seed=seed, seconds=seconds, sample_rate=sample_rate
        )
        return samples, (genre,), clip_path(out, genre=genre, index=index)

    written = _write_clips(
        out,
        make=make,
        generator=GENERATOR,
        pattern=_CLIP_NAME,
        clips_per_genre=clips_per_genre,
        seconds=seconds,
        sample_rate=sample_rate,
        show_progress=show_progress,
    )
    paths = [path for path, _ in written]
    info = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "genreflow_version": __version__,
        "seed": seed,
        "clips_per_genre": clips_per_genre,
        "seconds": float(seconds),
        "sample_rate": sample_rate,
        "format": "WAV PCM_16 mono",
        "genres": list(GENRES),
        "n_clips": len(paths),
    }
    write_text(out / "README.md", _readme(info))
    write_json(out / "demo.json", info)
    log.debug("demo dataset: %d clips in %.1f s", len(paths), time.monotonic() - start)
    return paths


def write_multilabel_demo_dataset(
    *,
    out: Path,
    clips_per_genre: int,
    seconds: float,
    seed: int,
    sample_rate: int = 22050,
    show_progress: bool = True,
) -> list[Path]:
    """Write the multi-label demo dataset: clips, ``labels.csv``, ``README.md``, ``demo.json``.

    ``clips_per_genre`` clips have each genre as their primary (first) label; about
    :data:`MIX_FRACTION` of them mix in a second genre. ``labels.csv`` has the columns
    ``path,label,labels`` (paths relative to ``out``; ``labels`` ``;``-separated, the primary
    first) for ``genreflow manifest --csv``. Same seed, same files; clip ``i`` of a genre does
    not depend on ``clips_per_genre``. ``demo.json`` is written last. A folder that is neither
    empty nor an earlier multi-label demo dataset is refused; clips beyond ``clips_per_genre``
    of an earlier run are removed.

    Returns
    -------
    list of Path
        The clip paths, genre by genre, in index order.
    """
    from genreflow import __version__
    from genreflow.core.atomic import write_json, write_text

    _check_count(clips_per_genre, most=PARTNER_INDEX_BASE // len(GENRES))
    out = Path(out)

    def make(genre: str, index: int) -> tuple[np.ndarray, tuple[str, ...], Path]:
        samples, labels = synthesize_multilabel_clip(
            genre=genre, index=index, seed=seed, seconds=seconds, sample_rate=sample_rate
        )
        return samples, labels, multilabel_clip_path(out, genre=genre, index=index)

    written = _write_clips(
        out,
        make=make,
        generator=MULTILABEL_GENERATOR,
        pattern=_MULTILABEL_CLIP_NAME,
        clips_per_genre=clips_per_genre,
        seconds=seconds,
        sample_rate=sample_rate,
        show_progress=show_progress,
    )
    rows = [
        (path.relative_to(out).as_posix(), labels[0], ";".join(labels)) for path, labels in written
    ]
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(("path", "label", "labels"))
    writer.writerows(rows)
    write_text(out / "labels.csv", table.getvalue())
    label_counts = {g: sum(g in r[2].split(";") for r in rows) for g in GENRES}
    info = {
        "generator": MULTILABEL_GENERATOR,
        "generator_version": MULTILABEL_GENERATOR_VERSION,
        "clip_generator_version": GENERATOR_VERSION,
        "genreflow_version": __version__,
        "multilabel": True,
        "seed": seed,
        "clips_per_genre": clips_per_genre,
        "seconds": float(seconds),
        "sample_rate": sample_rate,
        "format": "WAV PCM_16 mono",
        "genres": list(GENRES),
        "mix_fraction": MIX_FRACTION,
        "n_clips": len(rows),
        "n_mixed": sum(";" in r[2] for r in rows),
        "label_counts": label_counts,
        "labels_csv": "labels.csv",
    }
    write_text(out / "README.md", _multilabel_readme(info))
    write_json(out / "demo.json", info)
    return [path for path, _ in written]


def _write_clips(
    out: Path,
    *,
    make: Callable[[str, int], tuple[np.ndarray, tuple[str, ...], Path]],
    generator: str,
    pattern: re.Pattern,
    clips_per_genre: int,
    seconds: float,
    sample_rate: int,
    show_progress: bool,
) -> list[tuple[Path, tuple[str, ...]]]:
    """Make ``out`` ready for ``generator``'s clips, then write each ``make(genre, index)``.

    Returns ``(path, labels)`` per clip, genre by genre, in index order.
    """
    # Loaded here, not at import: synthesising clips (all most importers want) needs numpy only.
    import soundfile as sf

    from genreflow.core.atomic import atomic_path
    from genreflow.core.progress import progress

    check_positive(seconds=seconds, sample_rate=sample_rate)
    _check_writable(out, generator=generator)
    (out / "demo.json").unlink(missing_ok=True)  # the folder is incomplete until the end
    _remove_surplus(out, clips_per_genre, pattern=pattern)

    jobs = [(genre, index) for genre in GENRES for index in range(clips_per_genre)]
    written = []
    for genre, index in progress(jobs, total=len(jobs), desc="demo-data", enabled=show_progress):
        samples, labels, path = make(genre, index)
        pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype(np.int16)
        with atomic_path(path) as tmp:
            sf.write(tmp, pcm, sample_rate, subtype="PCM_16", format="WAV")
        written.append((path, labels))
    return written


def _check_count(clips_per_genre: int, *, most: int | None = None) -> None:
    """Refuse a ``clips_per_genre`` that is not an integer in ``[1, most]``."""
    if (
        isinstance(clips_per_genre, bool)
        or not isinstance(clips_per_genre, int)
        or clips_per_genre < 1
        or (most is not None and clips_per_genre > most)
    ):
        if most is None:
            raise ConfigError(f"clips_per_genre must be an integer >= 1, got {clips_per_genre!r}")
        raise ConfigError(
            f"clips_per_genre must be an integer in [1, {most}] for the multi-label demo, "
            f"got {clips_per_genre!r}"
        )


def _check_writable(out: Path, *, generator: str) -> None:
    """Refuse a path that is a file, or a non-empty folder not written by ``generator``."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a directory")
    if not out.is_dir() or not any(out.iterdir()):
        return
    record = out / "demo.json"
    if not record.exists():
        raise DatasetError(
            f"{out}: folder is not empty and holds no demo.json; refusing to write demo clips "
            "over files the demo generator did not make (choose an empty or new folder)"
        )
    try:
        made_by = json.loads(record.read_text(encoding="utf-8")).get("generator")
    except (OSError, ValueError, AttributeError):
        made_by = None
    if made_by not in (None, generator):
        raise DatasetError(
            f"{out}: holds a dataset made by {made_by}, not {generator}; "
            "choose an empty or new folder"
        )


def _remove_surplus(out: Path, clips_per_genre: int, *, pattern: re.Pattern = _CLIP_NAME) -> None:
    """Delete this generator's clips numbered ``clips_per_genre`` and up (a smaller rerun)."""
    for genre in GENRES:
        folder = out / genre
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            match = pattern.match(path.name)
            if match and match["genre"] == genre and int(match["index"]) >= clips_per_genre:
                log.info("removing %s (beyond --clips-per-genre %d)", path, clips_per_genre)
                path.unlink()


def _readme(info: dict) -> str:
    genres = ", ".join(info["genres"])
    return (
        "# genreflow synthetic demo dataset\n\n"
        "Synthetic music made by `genreflow demo-data` (module `genreflow.demo`): no recordings,\n"
        "free to share. GTZAN layout: `<genre>/<genre>.NNNNN.wav`, "
        f"{info['sample_rate']} Hz mono 16-bit PCM.\n\n"
        f"- genres: {genres}\n"
        f"- clips per genre: {info['clips_per_genre']}\n"
        f"- seconds per clip: {info['seconds']}\n"
        f"- seed: {info['seed']}\n"
        f"- generator version: {info['generator_version']} (genreflow {info['genreflow_version']})\n\n"
        "The same seed and generator version give bit-identical files. Regenerate with:\n\n"
        f"    genreflow demo-data --out DIR --clips-per-genre {info['clips_per_genre']} "
        f"--seconds {info['seconds']} --seed {info['seed']}\n\n"
        "What each genre sounds like: docs/demo-dataset.md in the genreflow repository.\n"
    )


def _multilabel_readme(info: dict) -> str:
    genres = ", ".join(info["genres"])
    return (
        "# genreflow synthetic multi-label demo dataset\n\n"
        "Synthetic music made by `genreflow demo-data --multilabel` (module `genreflow.demo`):\n"
        "no recordings, free to share. Files `<genre>/<genre>-ml.NNNNN.wav`, "
        f"{info['sample_rate']} Hz mono 16-bit PCM. `<genre>` is the clip's first label; about\n"
        f"{info['mix_fraction']:.0%} of the clips mix in a second genre at equal loudness.\n"
        "`labels.csv` (`path,label,labels`, labels `;`-separated) lists every clip's labels:\n\n"
        "    genreflow manifest --csv DIR/labels.csv --out manifest.csv\n\n"
        f"- genres: {genres}\n"
        f"- clips per genre (as first label): {info['clips_per_genre']}, "
        f"{info['n_mixed']} of {info['n_clips']} clips mixed\n"
        f"- seconds per clip: {info['seconds']}\n"
        f"- seed: {info['seed']}\n"
        f"- generator version: {info['generator_version']} "
        f"(clips: {info['clip_generator_version']}, genreflow {info['genreflow_version']})\n\n"
        "The same seed and generator version give bit-identical files. Regenerate with:\n\n"
        f"    genreflow demo-data --multilabel --out DIR --clips-per-genre "
        f"{info['clips_per_genre']} --seconds {info['seconds']} --seed {info['seed']}\n"
    )
