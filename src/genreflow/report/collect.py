"""Find the timing, history, metrics and benchmark files under a results tree and read them.

Nothing here relies on the workflow's folder layout: files are found by name anywhere below
the results folder and classified by content (a ``timings.json`` by its ``"stage"`` field, or
by its keys when the field is missing). A file that cannot be used is skipped with a note that
names it and says why; the rest of the report goes on. Parsing each file is
:mod:`genreflow.report.readers`' job.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from genreflow.report.production import read_choice
from genreflow.report.readers import (
    load_json,
    read_benchmark,
    read_embed_timings,
    read_history,
    read_metrics,
    read_spectrogram_timings,
    read_train_timings,
)
from genreflow.report.records import Collected, UnusableFile

_BENCHMARK_SUFFIXES = (".tsv", ".txt", ".jsonl", ".benchmark")
_SKIP_DIRS = {"checkpoints", "__pycache__", "previews"}
#: Folders of a dataset's results whose sub-folders are named by configuration hashes.
_CONFIG_KEYED_DIRS = {"features", "embeddings", "models"}
_HASH_KEYS = ("config_hash", "features_hash", "model_config_hash")


def collect(
    *,
    results: str | os.PathLike,
    exclude: str | os.PathLike | None = None,
    local_host: str | None = None,
    local_cores: int | None = None,
    only: Sequence[str] | None = None,
) -> Collected:
    """Read every timing, history, metrics and benchmark file below ``results``.

    Parameters
    ----------
    results : path-like
        The results folder (searched recursively; hidden folders are skipped).
    exclude : path-like, optional
        A folder not to search (the report's own output folder when it lies inside).
    local_host, local_cores : optional
        This machine's host name and physical core count: used as the core count of runs
        that ran here and did not record their own.
    only : sequence of str, optional
        Folders (relative to ``results``) that hold the current configuration's runs, e.g.
        ``features/<fhash>``: files in other folders of ``features/``, ``embeddings/`` and
        ``models/`` (earlier configurations) are left out, with one note naming them.

    Returns
    -------
    Collected
        Runs sorted by path; ``notes`` lists the files skipped and why.
    """
    root = Path(results).resolve()
    out = Collected(results=root)
    skip = Path(exclude).resolve() if exclude is not None else None
    prefixes = [Path(p).as_posix().strip("/") + "/" for p in only] if only is not None else None
    other_configs: set[str] = set()
    for path in sorted(_walk(root, skip)):
        name = path.name
        relative = out.relative(path)
        if (
            prefixes is not None
            and relative.split("/", 1)[0] in _CONFIG_KEYED_DIRS
            and not any(relative.startswith(p) for p in prefixes)
        ):
            other_configs.add("/".join(relative.split("/", 2)[:2]))
            continue
        try:
            if name == "timings.json" or name.endswith("_timings.json"):
                _read_timings(path, out, local_host=local_host, local_cores=local_cores)
            elif name == "production.json":
                choice = read_choice(path)
                if isinstance(choice.get("text"), str):
                    out.choices.append({**choice, "path": out.relative(path)})
            elif name == "history.json" or name.endswith("_history.json"):
                if not _is_head_history(path):  # a head has no epochs: its timings say it
                    out.histories.append(read_history(path))
            elif name == "metrics.json" or name.endswith("_metrics.json"):
                out.metrics.append(read_metrics(path))
                _record_hashes(out, path, load_json(path), "evaluation")
            elif path.suffix in _BENCHMARK_SUFFIXES:
                bench = read_benchmark(path, where=out.relative(path))
                if bench is not None:
                    out.benchmarks.append(bench)
        except UnusableFile as exc:
            out.notes.append(f"skipped {out.relative(path)}: {exc}")
    if other_configs:
        out.notes.append(
            f"left out the runs of other configurations in this folder "
            f"({', '.join(sorted(other_configs))}): the report covers the current config; "
            "`genreflow report` without --only includes every run"
        )
    return out


def _walk(root: Path, skip: Path | None) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and d not in _SKIP_DIRS and (here / d).resolve() != skip
        )
        for name in filenames:
            if not name.startswith("."):
                yield here / name


def _is_head_history(path: Path) -> bool:
    try:
        data = load_json(path)
    except UnusableFile:
        return False
    return isinstance(data, dict) and "head" in data and not data.get("epochs")


def _infer_stage(data: Mapping[str, Any]) -> str | None:
    stage = data.get("stage")
    if isinstance(stage, str) and stage:
        return stage
    if "n_ranks" in data:
        return "spectrograms"
    if "threads" in data or "epochs" in data:
        return "train"
    return None


def _read_timings(
    path: Path, out: Collected, *, local_host: str | None, local_cores: int | None
) -> None:
    data = load_json(path)
    if not isinstance(data, dict):
        raise UnusableFile(f"expected a JSON object, found {type(data).__name__}")
    stage = _infer_stage(data)
    if stage in ("spectrograms", "preprocess", "features"):
        run = read_spectrogram_timings(
            path, data=data, local_host=local_host, local_cores=local_cores
        )
        out.spectrograms.append(run)
        _record_hashes(out, path, data, "features")
    elif stage in ("train", "training"):
        run = read_train_timings(path, data=data, local_host=local_host, local_cores=local_cores)
        out.train.append(run)
        _record_hashes(out, path, data, "model")
    elif stage == "embed":
        out.embed.append(
            read_embed_timings(path, data=data, local_host=local_host, local_cores=local_cores)
        )
        _record_hashes(out, path, data, "embeddings")
    elif stage == "head":
        out.heads.append({**data, "path": out.relative(path)})
        _record_hashes(out, path, data, "model")
    elif stage is None:
        raise UnusableFile(
            "no 'stage' field and neither n_ranks (spectrograms) nor threads/epochs (train)"
        )
    else:
        raise UnusableFile(f"stage {stage!r} has no speed-up section in this report")


def _record_hashes(out: Collected, path: Path, data: Mapping[str, Any], kind: str) -> None:
    """Note the config hashes of a run: its own, and those of a sibling features/model file."""
    found: dict[str, str] = {}
    for key in _HASH_KEYS:
        if isinstance(data.get(key), str):
            found[key] = data[key]
    sibling = path.parent / ("features.json" if kind == "features" else "genreflow.json")
    if kind != "evaluation" and sibling.is_file():
        try:
            meta = load_json(sibling)
        except UnusableFile:
            meta = None
        if isinstance(meta, dict):
            for key in _HASH_KEYS:
                if isinstance(meta.get(key), str):
                    found.setdefault(key, meta[key])
    where = out.relative(path.parent)
    for key, value in found.items():
        label = f"{kind} {key}: {value}"
        out.config_hashes.setdefault(label, []).append(where)
