"""The report's numbers as one JSON-able dict (``summary.json``).

``build_summary`` groups the runs into sweeps and computes speed-ups, efficiencies, Amdahl
fits, load balance and model quality, with one entry per file read (per-rank seconds,
training history, metrics, benchmark, head); the Markdown/HTML report, the plots'
annotations and :func:`~genreflow.report.text.summary_lines` (printed by ``make demo``) all
read this one dict, so they cannot disagree.
"""

from __future__ import annotations

import datetime as _dt
import os
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

from genreflow.report.records import BenchmarkFile, Collected, History, Metrics, SpectrogramRun
from genreflow.report.text import format_seconds, plural

#: The descended project's published figures: quoted for context, never measured here.
REFERENCE = {
    "source": "the project genreflow descends from (its own write-up; not measured here)",
    "rows": [
        {
            "stage": "spectrograms",
            "task": "log-mel spectrograms of GTZAN",
            "baseline_seconds": 162.0,
            "best_seconds": 26.0,
            "speedup": 6.16,
            "how": "ipyparallel engines",
        },
        {
            "stage": "train",
            "task": "CNN training on GTZAN",
            "baseline_seconds": 6102.0,
            "best_seconds": 707.0,
            "speedup": 8.6,
            "how": "TensorFlow thread tuning",
        },
    ],
    "validation_accuracy": 0.645,
    "dataset": "GTZAN",
}


def build_summary(collected: Collected, *, environment: Mapping[str, Any] | None = None) -> dict:
    """All the report's numbers, from what :func:`~genreflow.report.collect.collect` read.

    Parameters
    ----------
    collected : genreflow.report.records.Collected
    environment : mapping, optional
        From :func:`~genreflow.report.environment.collect_environment`.

    Returns
    -------
    dict
        ``stages`` (one entry per sweep: points, baseline, best, speed-up, efficiency, fit),
        ``load_balance``, ``training_curves``, ``quality``, ``benchmarks``, ``reference``,
        ``environment``, ``config_hashes`` and ``notes`` (per section).
    """
    notes: dict[str, list[str]] = {
        "spectrograms": [],
        "load_balance": [],
        "train": [],
        "training_curves": [],
        "quality": [],
        "benchmarks": [],
        "files": list(collected.notes),
    }
    stages = []
    overlapped = _overlapping_runs(collected, notes)
    spectrograms = _timed(
        collected,
        [r for r in collected.spectrograms if r.path not in overlapped],
        lambda r: r.compute_seconds,
        notes["spectrograms"],
    )
    if spectrograms:
        strong = [r for r in spectrograms if r.scaling == "strong"]
        for runs in _groups(strong, key=lambda r: (r.config_hash, r.files)):
            stages.append(_spectrogram_sweep(collected, runs, notes["spectrograms"]))
        weak = [r for r in spectrograms if r.scaling == "weak"]
        for runs in _groups(weak, key=lambda r: (r.config_hash, r.clips_per_rank)):
            stages.append(_weak_sweep(collected, runs, notes["spectrograms"]))
    elif not collected.spectrograms:
        notes["spectrograms"].append(
            "no spectrogram timings found (no timings.json with stage 'spectrograms')"
        )
    train = _timed(
        collected,
        # The production model is not a timing point: it may share its node with other jobs.
        [r for r in collected.train if r.path not in overlapped and r.role == "sweep"],
        lambda r: r.epoch_seconds,
        notes["train"],
    )
    embed = _timed(
        collected,
        [r for r in collected.embed if r.path not in overlapped],
        lambda r: r.seconds,
        notes["train"],
    )
    for runs in _groups(embed, key=lambda r: (r.config_hash, r.segments)):
        stages.append(_embed_sweep(collected, runs, notes["train"]))
    single = [r for r in train if r.workers == 1]
    if single:
        for runs in _groups(single, key=lambda r: (r.config_hash, r.samples_per_epoch)):
            stages.append(_train_sweep(collected, runs, notes["train"]))
    for runs in _groups([r for r in train if r.workers > 1], key=lambda r: r.config_hash):
        stages.append(_workers_sweep(collected, runs, single, notes["train"]))
    if not collected.train and not collected.heads:
        notes["train"].append("no training timings found (no timings.json with stage 'train')")

    load_balance = [
        _load_balance_entry(collected, run) for run in collected.spectrograms if run.ranks
    ]
    if not load_balance:
        notes["load_balance"].append(
            "no per-rank timings found (spectrogram timings.json without ranks[])"
        )
    curves = [_curves_entry(collected, h) for h in collected.histories]
    if not curves:
        notes["training_curves"].append("no training history found (no history.json)")
    quality = [_quality_entry(collected, m) for m in collected.metrics]
    if not quality:
        notes["quality"].append("no evaluation metrics found (no metrics.json)")
    benchmarks = [_benchmark_entry(collected, b) for b in collected.benchmarks]
    if not benchmarks:
        notes["benchmarks"].append("no Snakemake benchmark files found")
    return {
        "generated": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "results": str(collected.results),
        "stages": stages,
        "load_balance": load_balance,
        "training_curves": curves,
        "quality": quality,
        "benchmarks": benchmarks,
        "heads": [_head_entry(h) for h in collected.heads],
        "production": [
            {k: c.get(k) for k in ("stage", "axis", "chosen", "text", "path")}
            for c in collected.choices
        ],
        "reference": REFERENCE,
        "environment": dict(environment or {}),
        "config_hashes": {k: sorted(set(v)) for k, v in sorted(collected.config_hashes.items())},
        "notes": notes,
    }


def _overlapping_runs(collected, notes: Mapping[str, list[str]]) -> set:
    """Paths of the timed runs that ran at the same time as another on one host.

    Such a run shared its cores with the other, so its time says nothing about its own
    setting: it is left out of the sweeps, with a note naming both runs.
    """
    spans = []
    for run in collected.spectrograms:
        spans.append(("spectrograms", run, set(run.hosts)))
    for run in collected.train:
        spans.append(("train", run, {run.host} if run.host else set()))
    for run in collected.embed:
        spans.append(("train", run, {run.host} if run.host else set()))
    spans = [s for s in spans if s[1].start_time is not None and s[1].end_time is not None]
    spans.sort(key=lambda s: s[1].start_time)
    overlapped: set = set()
    for i, (section, run, hosts) in enumerate(spans):
        for other_section, other, other_hosts in spans[i + 1 :]:
            if other.start_time >= run.end_time:
                break
            shared = hosts & other_hosts
            if not shared:
                continue
            overlapped.update((run.path, other.path))
            seconds = min(run.end_time, other.end_time) - other.start_time
            for where, this, that in ((section, run, other), (other_section, other, run)):
                notes[where].append(
                    f"{collected.relative(this.path)} ran at the same time as "
                    f"{collected.relative(that.path)} on {', '.join(sorted(shared))} "
                    f"({seconds:.1f} s together): they shared cores, so it is left out of "
                    "the speed-ups and fits"
                )
    return overlapped


def _timed(collected, runs: Sequence, seconds, notes: list[str]) -> list:
    """The runs with a positive time; a note for each one left out."""
    kept = []
    for run in runs:
        if seconds(run) > 0:
            kept.append(run)
        else:
            notes.append(f"{collected.relative(run.path)}: no positive time to scale, left out")
    return kept


def _groups(runs: Sequence, *, key) -> list[list]:
    """Runs of one sweep share a workload (config hash and size); sorted by folder."""
    grouped: dict[Any, list] = {}
    for run in runs:
        grouped.setdefault(key(run), []).append(run)
    return sorted(grouped.values(), key=lambda rs: str(rs[0].path))


def _common_folder(collected, runs: Iterable) -> str:
    folders = [PurePosixPath(collected.relative(r.path.parent)) for r in runs]
    common = os.path.commonpath([str(f) for f in folders]) if folders else ""
    return common if common and common != "." else "(results root)"


def _cores(runs: Sequence) -> tuple[int | None, str | None]:
    known = Counter((r.cores, r.cores_source) for r in runs if r.cores)
    return known.most_common(1)[0][0] if known else (None, None)


def _hosts_text(hosts: Iterable[str]) -> str:
    unique = sorted(set(hosts))
    if not unique:
        return "host unknown"
    shown = ", ".join(unique[:3]) + (f", +{len(unique) - 3}" if len(unique) > 3 else "")
    return f"{plural(len(unique), 'node')} ({shown})"


def _spectrogram_sweep(collected, runs: Sequence, notes: list[str]) -> dict:
    from genreflow.report.scaling import scaling

    cores, cores_source = _cores(runs)
    result = scaling(
        counts=[r.n_ranks for r in runs], times=[r.compute_seconds for r in runs], cores=cores
    )
    group = _common_folder(collected, runs)
    points = []
    for p in result.points:
        at = [r for r in runs if r.n_ranks == p.count]
        threads = {r.threads_per_rank for r in at if r.threads_per_rank}
        hosts = [h for r in at for h in r.hosts]
        blas = sorted({n for r in at for n in r.blas_threads})
        if blas and threads and set(blas) != threads:
            notes.append(
                f"{group}: {plural(p.count, 'rank')} ran with {'/'.join(map(str, blas))} BLAS "
                f"thread(s) per rank, not the {'/'.join(map(str, sorted(threads)))} that "
                "preprocess.threads_per_rank asked for"
            )
        points.append(
            {
                **_point_dict(p),
                "wall_seconds": statistics.median(r.wall_seconds for r in at),
                "startup_seconds": statistics.median(r.startup_seconds for r in at),
                "fixed_seconds": statistics.median(r.fixed_seconds for r in at),
                "blas_threads": blas,
                "hosts": sorted(set(hosts)),
                "config": (
                    f"{plural(p.count, 'rank')}"
                    + (f" x {plural(min(threads), 'thread')}" if len(threads) == 1 else "")
                    + f", {_hosts_text(hosts)}"
                ),
                "runs_paths": [collected.relative(r.path) for r in at],
            }
        )
    first = runs[0]
    task = "log-mel spectrograms"
    if first.files is not None:
        task += f" of {plural(first.files, 'clip')}"
    if first.segments is not None:
        task += f" ({plural(first.segments, 'segment')})"
    if first.files:
        _break_even(points, files=first.files)
    return _sweep_entry(
        stage="spectrograms",
        axis="ranks",
        metric="work seconds: from the scatter to the last rank's last shard (start-up, "
        "previews and output writing apart; median over repeats)",
        group=group,
        task=task,
        result=result,
        points=points,
        cores=cores,
        cores_source=cores_source,
        notes=notes,
    )


def _break_even(points: list[dict], *, files: int) -> None:
    """Add ``break_even_clips_per_rank`` to each point: the work size at which it pays off.

    With ``w_n`` the measured work seconds per clip and ``c_n`` the fixed seconds (start-up,
    previews, outputs) at ``n`` ranks, ``n`` ranks beat the baseline on wall time from
    ``C = (c_n - c_1) / (w_1 - w_n)`` clips on: ``C / n`` per rank. ``None``: never at these
    per-clip rates (``w_n >= w_1``); 0: at any size.
    """
    base = points[0]
    w1, c1 = base["seconds"] / files, base["fixed_seconds"]
    for p in points:
        wn, cn = p["seconds"] / files, p["fixed_seconds"]
        if p is base or wn >= w1:
            p["break_even_clips_per_rank"] = None
        else:
            clips = max(cn - c1, 0.0) / (w1 - wn)
            p["break_even_clips_per_rank"] = round(clips / p["count"], 1)


def _weak_sweep(collected, runs: Sequence, notes: list[str]) -> dict:
    """Weak scaling: every rank count converts ``clips_per_rank`` clips per rank.

    Efficiency is ``T(n0) / T(n)`` (ideal: 1, the time stays flat as work and ranks grow),
    i.e. the strong-scaling ratio of the same times; ``speedup`` is the throughput ratio,
    ``efficiency x n / n0``.
    """
    from genreflow.report.scaling import scaling

    cores, cores_source = _cores(runs)
    result = scaling(
        counts=[r.n_ranks for r in runs], times=[r.compute_seconds for r in runs], cores=cores
    )
    n0 = result.baseline.count
    t0 = result.baseline.seconds
    points = []
    for p in result.points:
        at = [r for r in runs if r.n_ranks == p.count]
        grown = p.count / n0  # work grows with the ranks
        points.append(
            {
                "count": p.count,
                "seconds": p.seconds,
                "runs": p.runs,
                "speedup": p.speedup * grown,
                "efficiency": p.speedup,
                "core_efficiency": p.core_efficiency * grown
                if p.core_efficiency is not None
                else None,
                "oversubscribed": p.oversubscribed,
                "clips": statistics.median(r.files or 0 for r in at),
                "wall_seconds": statistics.median(r.wall_seconds for r in at),
                "fixed_seconds": statistics.median(r.fixed_seconds for r in at),
                "hosts": sorted({h for r in at for h in r.hosts}),
                "config": f"{plural(p.count, 'rank')} x {runs[0].clips_per_rank} clips",
                "runs_paths": [collected.relative(r.path) for r in at],
            }
        )
    above = [p["count"] for p in points if p["efficiency"] > 1.05]
    if above:
        notes.append(
            f"{_common_folder(collected, runs)}: weak-scaling efficiency above 100 % at "
            f"{', '.join(map(str, above))} ranks: {format_seconds(t0)} of work per run is "
            "within this machine's noise; a larger preprocess.weak_scaling measures it better"
        )
    return _entry(
        stage="spectrograms_weak",
        axis="ranks",
        metric="work seconds with the work per rank fixed (efficiency = T(1) / T(n))",
        group=_common_folder(collected, runs),
        task=f"log-mel spectrograms of {runs[0].clips_per_rank} clips per rank",
        cores=cores,
        cores_source=cores_source,
        points=points,
        base=points[0],
        best=max(points, key=lambda p: (p["speedup"], -p["count"])),
        fit={"serial_fraction": None, "serial_fraction_se": None, "note": "weak scaling"},
        fit_curve={"intercept": None, "slope": None},
    )


def _entry(*, points: list[dict], base: dict, best: dict, **fields) -> dict:
    """A sweep's summary entry: its fields, points, baseline and best point, the best point's
    ratios, and the fastest and most core-efficient settings."""
    return {
        **fields,
        "points": points,
        "baseline": base,
        "best": best,
        "speedup": best["speedup"],
        "efficiency": best["efficiency"],
        "core_efficiency": best["core_efficiency"],
        **_choices(points),
    }


def _choices(points: Sequence[dict]) -> dict:
    """The fastest setting of a sweep, and its most core-efficient parallel one.

    The baseline is 100 % efficient by definition, so the most core-efficient setting is
    looked for among the others (the baseline when it is the only one); ties go to fewer
    workers.
    """
    fastest = max(points, key=lambda p: (p["speedup"], -p["count"]))

    def per_core(p: dict) -> float:
        value = p["core_efficiency"] if p["core_efficiency"] is not None else p["efficiency"]
        return round(value, 3)

    parallel = [p for p in points if p["count"] != points[0]["count"]] or list(points)
    efficient = max(parallel, key=lambda p: (per_core(p), -p["count"]))
    return {
        "fastest": fastest["count"],
        "most_efficient": efficient["count"],
        "most_efficient_per_core": per_core(efficient),
    }


def _train_sweep(collected, runs: Sequence, notes: list[str]) -> dict:
    from genreflow.report.scaling import scaling

    cores, cores_source = _cores(runs)
    result = scaling(
        counts=[r.intra_op for r in runs], times=[r.epoch_seconds for r in runs], cores=cores
    )
    group = _common_folder(collected, runs)
    points = []
    for p in result.points:
        at = [r for r in runs if r.intra_op == p.count]
        throughputs = [r.throughput for r in at if r.throughput]
        overheads = [r.overhead_fraction for r in at if r.overhead_fraction is not None]
        shares = [r.cpu_share for r in at if r.cpu_share is not None]
        points.append(
            {
                **_point_dict(p),
                "samples_per_second": statistics.median(throughputs) if throughputs else None,
                "epochs": sum(len(r.epochs) for r in at),
                "epoch_overhead": statistics.median(overheads) if overheads else None,
                "cpu_share": statistics.median(shares) if shares else None,
                "bound_cpus": sorted({r.bound_cpus for r in at if r.bound_cpus}),
                "hosts": sorted({r.host for r in at if r.host}),
                "config": _threads_config(
                    p.count, at, inter={r.inter_op for r in at if r.inter_op}
                ),
                "runs_paths": [collected.relative(r.path) for r in at],
            }
        )
    samples = runs[0].samples_per_epoch
    task = "one training epoch" + (f" ({samples} samples)" if samples else "")
    return _sweep_entry(
        stage="train",
        axis="threads",
        metric="seconds per epoch of training steps (median over the epochs after the first, "
        "then over repeats; validation, callbacks and checkpoints apart)",
        group=group,
        task=task,
        result=result,
        points=points,
        cores=cores,
        cores_source=cores_source,
        notes=notes,
    )


def _threads_config(count: int, runs: Sequence, *, inter: set | None = None) -> str:
    """How a thread-sweep point ran: its threads, the cores it was bound to, device, hosts."""
    bound = {r.bound_cpus for r in runs if r.bound_cpus}
    devices = {r.device for r in runs if r.device}
    return (
        f"{plural(count, 'intra-op thread')}"
        + (f" + {min(inter)} inter-op" if inter and len(inter) == 1 else "")
        + (f" on {plural(min(bound), 'core')}" if len(bound) == 1 else "")
        + (f", {'/'.join(sorted(devices))}" if devices else "")
        + f", {_hosts_text([r.host for r in runs if r.host])}"
    )


def _embed_sweep(collected, runs: Sequence, notes: list[str]) -> dict:
    """The backbone's forward pass over the train/valid segments vs TensorFlow threads."""
    from genreflow.report.scaling import scaling

    cores, cores_source = _cores(runs)
    result = scaling(
        counts=[r.intra_op for r in runs], times=[r.seconds for r in runs], cores=cores
    )
    points = []
    for p in result.points:
        at = [r for r in runs if r.intra_op == p.count]
        rates = [r.segments_per_second for r in at if r.segments_per_second]
        per_clip = [r.seconds_per_30s_clip for r in at if r.seconds_per_30s_clip]
        points.append(
            {
                **_point_dict(p),
                "samples_per_second": statistics.median(rates) if rates else None,
                "seconds_per_30s_clip": statistics.median(per_clip) if per_clip else None,
                "hosts": sorted({r.host for r in at if r.host}),
                "config": _threads_config(p.count, at),
                "runs_paths": [collected.relative(r.path) for r in at],
            }
        )
    return _sweep_entry(
        stage="embed",
        axis="threads",
        metric="seconds of the backbone's forward passes over every segment (loading it apart)",
        group=_common_folder(collected, runs),
        task=f"embedding {runs[0].segments} segments of {runs[0].clips} clips",
        result=result,
        points=points,
        cores=cores,
        cores_source=cores_source,
        notes=notes,
    )


def _workers_sweep(collected, runs: Sequence, single: Sequence, notes: list[str]) -> dict:
    """Training throughput vs data-parallel workers, each with the same threads.

    The 1-worker point is the thread sweep's run with those threads on the same features.
    Times are seconds per training sample (1 / samples per second): with several workers an
    epoch can hold a few samples less (the plan is cut to a multiple of the workers).
    """
    from genreflow.report.scaling import scaling

    threads = {r.intra_op for r in runs}
    base = [r for r in single if r.config_hash == runs[0].config_hash and r.intra_op in threads]
    every = [r for r in [*base, *runs] if r.throughput]
    cores, cores_source = _cores(every)
    result = scaling(
        counts=[r.workers for r in every], times=[1.0 / r.throughput for r in every], cores=cores
    )
    points = []
    for p in result.points:
        at = [r for r in every if r.workers == p.count]
        shares = [r.allreduce_fraction for r in at if r.allreduce_fraction is not None]
        hosts = [r.host for r in at if r.host]
        points.append(
            {
                **_point_dict(p),
                "samples_per_second": statistics.median(r.throughput for r in at),
                "allreduce_fraction": statistics.median(shares) if shares else None,
                "epochs": sum(len(r.epochs) for r in at),
                "hosts": sorted(set(hosts)),
                "config": f"{plural(p.count, 'worker')} x "
                f"{'/'.join(str(t) for t in sorted({r.intra_op for r in at}))} thread(s)"
                + f", {_hosts_text(hosts)}",
                "runs_paths": [collected.relative(r.path) for r in at],
            }
        )
    return _sweep_entry(
        stage="train_workers",
        axis="workers",
        metric="seconds per training sample (1 / samples per second of the epochs after the "
        "first; all workers together)",
        group=_common_folder(collected, every),
        task="training, " + plural(min(threads), "thread") + " per worker",
        result=result,
        points=points,
        cores=cores,
        cores_source=cores_source,
        notes=notes,
    )


def _point_dict(p) -> dict:
    return {
        "count": p.count,
        "seconds": p.seconds,
        "runs": p.runs,
        "speedup": p.speedup,
        "efficiency": p.efficiency,
        "core_efficiency": p.core_efficiency,
        "oversubscribed": p.oversubscribed,
    }


def _sweep_entry(
    *, stage, axis, metric, group, task, result, points, cores, cores_source, notes: list[str]
) -> dict:
    """One sweep's summary entry; its caveats are added to ``notes`` (the axis names the unit)."""
    base = next(p for p in points if p["count"] == result.baseline.count)
    best = next(p for p in points if p["count"] == result.best.count)
    entry = _entry(
        stage=stage,
        axis=axis,
        metric=metric,
        group=group,
        task=task,
        cores=cores,
        cores_source=cores_source,
        points=points,
        base=base,
        best=best,
        fit=result.fit.as_dict(),
        fit_curve={"intercept": result.fit.intercept, "slope": result.fit.slope},
    )
    if len(points) > 1 and best["count"] == base["count"]:
        entry["verdict"] = (
            f"more {axis} were slower: overhead dominates at this size"
            + _break_even_text(points, axis=axis)
        )
    _sweep_notes(entry, notes, unit=axis)
    return entry


def _break_even_text(points: Sequence[dict], *, axis: str) -> str:
    sizes = [
        f"{plural(p['count'], axis[:-1])} from {p['break_even_clips_per_rank']:g} clips per rank"
        for p in points
        if p.get("break_even_clips_per_rank") is not None
    ]
    return f" (measured break-even: {'; '.join(sizes)})" if sizes else ""


def _sweep_notes(entry: dict, notes: list[str], *, unit: str) -> None:
    where = f"{entry['group']}: "
    counts = [p["count"] for p in entry["points"]]
    if len(counts) == 1:
        notes.append(f"{where}only {unit} = {counts[0]} was run: no speed-up to measure")
    if entry["baseline"]["count"] != 1:
        notes.append(
            f"{where}no 1-{unit[:-1]} run: speed-ups are relative to "
            f"{entry['baseline']['count']} {unit}"
        )
    if entry["fit"]["serial_fraction"] is None:
        notes.append(f"{where}Amdahl fit: {entry['fit']['note']}")
    superlinear = [
        p for p in entry["points"] if p["efficiency"] is not None and p["efficiency"] > 1.05
    ]
    if superlinear and not entry["stage"].endswith("_weak"):
        shown = ", ".join(f"{p['count']} ({p['efficiency']:.0%})" for p in superlinear)
        share = entry["baseline"].get("cpu_share")
        # Below ~90 % the run's own CPU time says it lost its cores to another load.
        evidence = (
            f"; it had {share:.0%} of the CPU time its cores could give, so another load took "
            "the rest"
            if share is not None and share < 0.9
            else ""
        )
        notes.append(
            f"{where}efficiency above 100 % at {unit} {shown}: more {unit} cannot do more than "
            f"their share, so the {entry['baseline']['count']}-{unit[:-1]} baseline ran slow "
            f"(another load on its core of a shared machine, or a cold cache){evidence}: repeat "
            "the sweep before trusting this speed-up"
        )
    if entry["cores"] is None:
        notes.append(
            f"{where}the hosts' core count is unknown (not recorded in the timings, and the "
            "runs were not on this machine): efficiency per core not computed"
        )
    else:
        over = [p["count"] for p in entry["points"] if p["oversubscribed"]]
        if over:
            notes.append(
                f"{where}{unit} {', '.join(map(str, over))} exceed the {entry['cores']} "
                f"physical cores ({entry['cores_source']}): those {unit} share cores, so "
                "compare them by efficiency per core"
            )


def _load_balance_entry(collected: Collected, run: SpectrogramRun) -> dict:
    """Per-rank seconds of one spectrogram run and how evenly its ranks shared the work."""
    totals = [r.total for r in run.ranks]
    works = [r.work for r in run.ranks]
    mean_total = statistics.fmean(totals) if totals else 0.0
    mean_work = statistics.fmean(works) if works else 0.0
    slowest = max(run.ranks, key=lambda r: r.total)
    return {
        "path": collected.relative(run.path),
        "n_ranks": run.n_ranks,
        "scaling": run.scaling,
        "ranks_recorded": len(run.ranks),
        "imbalance": max(totals) / mean_total if mean_total > 0 else None,
        "work_imbalance": max(works) / mean_work if mean_work > 0 else None,
        "slowest_rank": slowest.rank,
        "slowest_seconds": slowest.total,
        "mean_seconds": mean_total,
        "per_rank": [
            {
                "rank": r.rank,
                "host": r.host,
                "files": r.files,
                "segments": r.segments,
                "seconds": dict(r.seconds),
            }
            for r in run.ranks
        ],
    }


def _curves_entry(collected: Collected, history: History) -> dict:
    """The final and best values of one training history."""
    final = {k: v[-1] for k, v in history.curves.items() if v}
    best = {}
    if "val_accuracy" in history.curves:
        values = history.curves["val_accuracy"]
        best["val_accuracy"] = max(values)
        best["val_accuracy_epoch"] = values.index(max(values)) + 1
    if "val_loss" in history.curves:
        values = history.curves["val_loss"]
        best["val_loss"] = min(values)
        best["val_loss_epoch"] = values.index(min(values)) + 1
    return {
        "path": collected.relative(history.path),
        "epochs": history.n_epochs,
        "final": final,
        "best": best,
    }


def _quality_entry(collected: Collected, metrics: Metrics) -> dict:
    """The test scores of one evaluation, beside its baselines."""
    return {
        "path": collected.relative(metrics.path),
        "clip_accuracy": metrics.clip_accuracy,
        "segment_accuracy": metrics.segment_accuracy,
        "macro_f1": metrics.macro_f1,
        "baseline": dict(metrics.baseline),
        "baseline_method": metrics.baseline_method,
        "classical": dict(metrics.classical),
        "ensemble": dict(metrics.ensemble),
        "verdict": metrics.verdict,
        "model_name": metrics.model_name,
        "labels": list(metrics.labels) if metrics.labels else None,
        "per_class": {k: dict(v) for k, v in metrics.per_class.items()},
        "has_confusion": metrics.confusion is not None,
        "multilabel": metrics.multilabel,
        "micro_f1": metrics.micro_f1,
        "mAP": metrics.mean_ap,
        "subset_accuracy": metrics.subset_accuracy,
    }


def _benchmark_entry(collected: Collected, bench: BenchmarkFile) -> dict:
    """The medians over repeats of one Snakemake benchmark file."""
    return {
        "path": collected.relative(bench.path),
        "rule": bench.rule,
        "count_kind": bench.count_kind,
        "count": bench.count,
        "repeats": len(bench.rows),
        "seconds": bench.median("s"),
        "max_rss_mb": bench.median("max_rss"),
        "cpu_seconds": bench.median("cpu_time"),
        "mean_load": bench.median("mean_load"),
    }


def _head_entry(data: Mapping[str, Any]) -> dict:
    """One head fitted on a backbone's embeddings: its data and seconds."""
    seconds = data.get("seconds") if isinstance(data.get("seconds"), dict) else {}
    return {
        "path": data["path"],
        "backbone": data.get("backbone"),
        "train_clips": data.get("train_clips"),
        "train_segments": data.get("train_segments"),
        "fit_seconds": seconds.get("fit"),
        "embed_seconds": seconds.get("embed"),
        "total_seconds": data.get("total_seconds"),
        "embeddings": data.get("embeddings"),
    }
