"""Parse one timing, history, metrics or benchmark file into its record.

Each reader takes one file (or its already loaded JSON) and returns the matching record of
:mod:`genreflow.report.records`, or raises :class:`~genreflow.report.records.UnusableFile`
with the reason it cannot be used; finding the files is :mod:`genreflow.report.collect`'s job.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genreflow.report.records import (
    BENCHMARK_HEADER,
    BenchmarkFile,
    EmbedRun,
    EpochTiming,
    History,
    Metrics,
    RankTiming,
    SpectrogramRun,
    TrainRun,
    UnusableFile,
)

#: Keys under which a stage may record the core count of its host(s).
_CORE_KEYS = ("physical_cores", "cpu_count", "cores", "n_cores", "host_cores", "cpus")

_COUNT_IN_PATH = re.compile(r"(ranks?|threads?)[_=-]?(\d+)", re.IGNORECASE)


def load_json(path: Path) -> Any:
    """The parsed JSON of ``path``; :class:`UnusableFile` when it cannot be read or parsed."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise UnusableFile(f"not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UnusableFile(f"cannot read it ({exc})") from None


def _number(value: Any) -> float | None:
    """A finite float, or None for anything else (bools, strings, NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number == int(number) else None


def _recorded_cores(
    data: Mapping[str, Any], hosts: tuple[str, ...], local_host: str | None, local_cores: int | None
) -> tuple[int | None, str | None]:
    """Core count of the hosts a run used: recorded in the file, else this machine's."""
    for key in _CORE_KEYS:
        value = data.get(key)
        if isinstance(value, dict):
            counts = [_count(value.get(h)) for h in sorted(set(hosts))] if hosts else []
            if counts and all(c for c in counts):
                return sum(counts), f"recorded ({key})"
        elif _count(value):
            return _count(value), f"recorded ({key})"
    if local_cores and hosts and local_host and all(_same_host(h, local_host) for h in hosts):
        return local_cores, "this machine"
    return None, None


def _same_host(a: str, b: str) -> bool:
    return a.split(".")[0].lower() == b.split(".")[0].lower()


def read_spectrogram_timings(
    path: Path,
    *,
    data: Mapping[str, Any],
    local_host: str | None = None,
    local_cores: int | None = None,
) -> SpectrogramRun:
    """Parse a spectrogram-stage ``timings.json`` (see docs/formats.md)."""
    n_ranks = _count(data.get("n_ranks"))
    wall = _number(data.get("wall_seconds"))
    if not n_ranks or n_ranks < 1 or wall is None or wall < 0:
        raise UnusableFile("spectrogram timings need n_ranks >= 1 and wall_seconds >= 0")
    resumed = _count(data.get("resumed_clips"))
    if resumed:
        # Its time covers only the clips after the interruption: no measure of the stage.
        raise UnusableFile(
            f"a resumed run ({resumed} clips were converted by an earlier, interrupted run); "
            "run `genreflow spectrograms --fresh` (or delete the folder) to time the whole stage"
        )
    startup = _number(data.get("startup_seconds"))
    ranks = []
    for item in data.get("ranks") or []:
        if not isinstance(item, dict) or not isinstance(item.get("seconds"), dict):
            continue
        seconds = {
            k: v for k, v in ((k, _number(v)) for k, v in item["seconds"].items()) if v is not None
        }
        rank = _count(item.get("rank"))
        ranks.append(
            RankTiming(
                rank=rank if rank is not None else len(ranks),
                host=item.get("host") if isinstance(item.get("host"), str) else None,
                files=_count(item.get("files")),
                segments=_count(item.get("segments")),
                seconds=seconds,
            )
        )
    ranks.sort(key=lambda r: r.rank)
    hosts = data.get("hosts")
    if isinstance(hosts, list) and all(isinstance(h, str) for h in hosts):
        hosts = tuple(hosts)
    else:
        hosts = tuple(r.host for r in ranks if r.host)
    cores, cores_source = _recorded_cores(data, hosts, local_host, local_cores)
    return SpectrogramRun(
        path=path,
        n_ranks=n_ranks,
        wall_seconds=wall,
        startup_seconds=max(startup, 0.0) if startup is not None else 0.0,
        hosts=hosts,
        threads_per_rank=_count(data.get("threads_per_rank")),
        files=_count(data.get("files")),
        segments=_count(data.get("segments")),
        config_hash=data.get("config_hash") if isinstance(data.get("config_hash"), str) else None,
        launcher=data.get("launcher") if isinstance(data.get("launcher"), str) else None,
        ranks=tuple(ranks),
        cores=cores,
        cores_source=cores_source,
        work_seconds=_number(data.get("work_seconds")) if "start_time" in data else None,
        start_time=_number(data.get("start_time")),
        end_time=_number(data.get("end_time")),
        blas_threads=tuple(
            n for n in (_count(v) for v in data.get("blas_threads") or []) if n is not None
        ),
        scaling="weak" if data.get("scaling") == "weak" else "strong",
        clips_per_rank=_count(data.get("clips_per_rank")),
    )


def read_embed_timings(
    path: Path,
    *,
    data: Mapping[str, Any],
    local_host: str | None = None,
    local_cores: int | None = None,
) -> EmbedRun:
    """Parse an embedding-stage ``timings.json`` (``genreflow embed``; docs/formats.md)."""
    threads = data.get("threads") if isinstance(data.get("threads"), dict) else {}
    intra = _count(threads.get("intra_op"))
    seconds = _number((data.get("seconds") or {}).get("embed"))
    if not intra or intra < 1 or seconds is None or seconds <= 0:
        raise UnusableFile("embedding timings need threads.intra_op >= 1 and seconds.embed > 0")
    host = data.get("host") if isinstance(data.get("host"), str) else None
    cores, cores_source = _recorded_cores(data, (host,) if host else (), local_host, local_cores)
    cpus = threads.get("cpus")
    return EmbedRun(
        path=path,
        intra_op=intra,
        host=host,
        device=data.get("device") if isinstance(data.get("device"), str) else None,
        seconds=seconds,
        segments=_count(data.get("segments")) or 0,
        clips=_count(data.get("clips")) or 0,
        segments_per_second=_number(data.get("segments_per_second")),
        seconds_per_30s_clip=_number(data.get("seconds_per_30s_clip")),
        config_hash=data.get("features_hash")
        if isinstance(data.get("features_hash"), str)
        else None,
        cores=cores,
        cores_source=cores_source,
        bound_cpus=len(cpus) if isinstance(cpus, list) and cpus else None,
        start_time=_number(data.get("start_time")),
        end_time=_number(data.get("end_time")),
    )


def read_train_timings(
    path: Path,
    *,
    data: Mapping[str, Any],
    local_host: str | None = None,
    local_cores: int | None = None,
) -> TrainRun:
    """Parse a training-stage ``timings.json`` (see docs/formats.md)."""
    threads = data.get("threads")
    if isinstance(threads, dict):
        intra, inter = _count(threads.get("intra_op")), _count(threads.get("inter_op"))
    else:
        intra, inter = _count(threads), _count(data.get("inter_op_threads"))
    if intra is None:
        intra = _count(data.get("intra_op_threads"))
    if not intra or intra < 1:
        raise UnusableFile(
            "training timings need threads.intra_op >= 1 "
            "(0 means TensorFlow's default, which has no place on a thread axis)"
        )
    epochs = []
    for i, item in enumerate(data.get("epochs") or []):
        if not isinstance(item, dict) or _number(item.get("seconds")) is None:
            continue
        epoch = _count(item.get("epoch"))
        epochs.append(
            EpochTiming(
                epoch=epoch if epoch is not None else i,
                seconds=_number(item["seconds"]),
                samples=_count(item.get("samples")),
                samples_per_second=_number(item.get("samples_per_second")),
                warmup=item.get("warmup") is True,
                train_seconds=_number(item.get("train_seconds")),
            )
        )
    if not epochs:
        raise UnusableFile("training timings without any epochs[].seconds")
    host = data.get("host") if isinstance(data.get("host"), str) else None
    hosts = (host,) if host else ()
    if isinstance(data.get("hosts"), list):
        hosts = tuple(h for h in data["hosts"] if isinstance(h, str)) or hosts
    cores, cores_source = _recorded_cores(data, hosts, local_host, local_cores)
    config_hash = next(
        (data[k] for k in ("features_hash", "config_hash") if isinstance(data.get(k), str)), None
    )
    if config_hash is None:  # the model's genreflow.json beside it names its features
        meta_path = path.parent / "genreflow.json"
        try:
            meta = load_json(meta_path) if meta_path.is_file() else None
        except UnusableFile:
            meta = None
        if isinstance(meta, dict) and isinstance(meta.get("features_hash"), str):
            config_hash = meta["features_hash"]
    return TrainRun(
        path=path,
        intra_op=intra,
        inter_op=inter,
        device=data.get("device") if isinstance(data.get("device"), str) else None,
        host=host,
        epochs=tuple(epochs),
        total_seconds=_number(data.get("total_seconds")),
        samples_per_second=_number(data.get("samples_per_second")),
        workers=_worker_count(data.get("workers")) or max(len(set(hosts)), 1),
        allreduce_fraction=_number((data.get("workers") or {}).get("allreduce_fraction"))
        if isinstance(data.get("workers"), dict)
        else None,
        config_hash=config_hash,
        cores=cores,
        cores_source=cores_source,
        start_time=_number(data.get("start_time")),
        end_time=_number(data.get("end_time")),
        bound_cpus=len(threads["cpus"])
        if isinstance(threads, dict) and isinstance(threads.get("cpus"), list)
        else None,
        role="production" if data.get("role") == "production" else "sweep",
        cpu_seconds=_number(data.get("cpu_seconds")),
    )


def _worker_count(value: Any) -> int | None:
    # Data-parallel runs record {"count": N, ...}; older files a bare number.
    if isinstance(value, dict):
        return _count(value.get("count"))
    return _count(value)


def read_history(path: Path) -> History:
    """Parse a ``history.json``.

    Accepted: per-epoch objects (``{"epochs": [{"epoch": 1, "loss": ...}, ...], ...}`` as
    ``genreflow train`` writes, or a bare list of them) and Keras' ``{"loss": [...], ...}``.
    """
    data = load_json(path)
    curves: dict[str, list[float]] = {}
    if isinstance(data, dict):
        for key in ("epochs", "history"):
            if isinstance(data.get(key), list | dict):
                data = data[key]
                break
    if isinstance(data, dict):
        for key, values in data.items():
            if isinstance(values, list):
                numbers = [_number(v) for v in values]
                if numbers and all(v is not None for v in numbers):
                    curves[key] = numbers
    elif isinstance(data, list):
        for item in data:
            if isinstance(item, dict):
                for key, value in item.items():
                    if key != "epoch" and _number(value) is not None:
                        curves.setdefault(key, []).append(_number(value))
    if not curves:
        raise UnusableFile("no per-epoch numeric series (loss, accuracy, ...)")
    return History(path=path, curves={k: tuple(v) for k, v in curves.items()})


def read_metrics(path: Path) -> Metrics:
    """Parse an evaluation ``metrics.json``."""
    data = load_json(path)
    if not isinstance(data, dict):
        raise UnusableFile(f"expected a JSON object, found {type(data).__name__}")
    scores = {k: _number(data.get(k)) for k in ("clip_accuracy", "segment_accuracy", "macro_f1")}
    if all(v is None for v in scores.values()):
        raise UnusableFile("none of clip_accuracy, segment_accuracy, macro_f1")
    multilabel = data.get("multilabel") is True
    per_class = {}
    rows = data.get("per_label" if multilabel else "per_class")
    if isinstance(rows, dict):
        for label, row in rows.items():
            if isinstance(row, dict):
                per_class[str(label)] = {
                    k: _number(v) for k, v in row.items() if _number(v) is not None
                }
    confusion = None
    matrix = data.get("confusion")
    if isinstance(matrix, dict):  # {"labels": [...], "matrix": [[...]]} is accepted too
        matrix = matrix.get("matrix")
    if (
        isinstance(matrix, list)
        and matrix
        and all(isinstance(r, list) and len(r) == len(matrix) for r in matrix)
        and all(_number(v) is not None for r in matrix for v in r)
    ):
        confusion = tuple(tuple(float(v) for v in r) for r in matrix)
    labels = data.get("labels")
    if not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
        labels = list(per_class) if per_class else None
    if confusion is not None and (labels is None or len(labels) != len(confusion)):
        labels = [str(i) for i in range(len(confusion))]
    baseline, baseline_method = {}, None
    if isinstance(data.get("baseline"), dict):
        baseline = {k: _number(v) for k, v in data["baseline"].items() if _number(v) is not None}
        method = data["baseline"].get("method")
        baseline_method = method if isinstance(method, str) else None
    extra = {
        key: {k: _number(v) for k, v in data[key].items() if _number(v) is not None}
        for key in ("classical", "ensemble")
        if isinstance(data.get(key), dict)
    }
    return Metrics(
        path=path,
        **extra,
        verdict=data["verdict"] if isinstance(data.get("verdict"), str) else None,
        model_name=data["model_name"] if isinstance(data.get("model_name"), str) else "CNN",
        clip_accuracy=scores["clip_accuracy"],
        segment_accuracy=scores["segment_accuracy"],
        macro_f1=scores["macro_f1"],
        labels=tuple(labels) if labels is not None else None,
        confusion=confusion,
        per_class=per_class,
        baseline=baseline,
        baseline_method=baseline_method,
        multilabel=multilabel,
        micro_f1=_number(data.get("micro_f1")),
        mean_ap=_number(data.get("mAP")),
        subset_accuracy=_number(data.get("subset_accuracy")),
    )


def read_benchmark(path: Path, *, where: str | None = None) -> BenchmarkFile | None:
    """Parse a Snakemake benchmark file (TSV or JSON lines); None if ``path`` is not one.

    ``where`` is the path relative to the results folder, searched for ``ranks<N>`` or
    ``threads<N>`` to place the job on a scaling axis (default: the file name only).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
            if path.suffix == ".jsonl":
                if not first.lstrip().startswith("{"):
                    return None
                lines = [first, *fh]
                raw_rows = [json.loads(line) for line in lines if line.strip()]
            else:
                if tuple(first.rstrip("\r\n").split("\t")[: len(BENCHMARK_HEADER)]) != (
                    BENCHMARK_HEADER
                ):
                    return None
                fh.seek(0)
                raw_rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError):
        return None
    except json.JSONDecodeError as exc:
        raise UnusableFile(f"not valid JSON lines ({exc.msg})") from None
    if path.suffix == ".jsonl" and not all(
        isinstance(r, dict) and "s" in r and "h:m:s" in r for r in raw_rows
    ):
        return None
    rows = tuple({k: _benchmark_value(v) for k, v in r.items()} for r in raw_rows)
    if not rows or not any(isinstance(r.get("s"), float) for r in rows):
        raise UnusableFile("Snakemake benchmark file without any timed row")
    # The innermost ranks<N>/threads<N> of the path (relative to the results) names the count.
    matches = list(_COUNT_IN_PATH.finditer(where if where is not None else path.name))
    match = matches[-1] if matches else None
    rule = next((r["rule_name"] for r in rows if isinstance(r.get("rule_name"), str)), None)
    if rule is None:  # benchmarks/<rule>/ranks4.tsv names the rule by its folder
        stem_is_count = _COUNT_IN_PATH.fullmatch(path.stem) is not None
        rule = path.parent.name if stem_is_count else path.stem
    return BenchmarkFile(
        path=path,
        rule=rule,
        count_kind=("ranks" if match.group(1).lower().startswith("rank") else "threads")
        if match
        else None,
        count=int(match.group(2)) if match else None,
        rows=rows,
    )


def _benchmark_value(value: Any) -> float | str | None:
    if value is None or value in ("NA", "-", ""):
        return None
    number = _number(value)
    if number is not None:
        return number
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return number if math.isfinite(number) else None
    return str(value)
