"""One ``summary.json`` entry per file read: load balance, training curves, quality, benchmarks.

Each function turns one record of :mod:`genreflow.report.records` into the JSON-able dict
that :func:`~genreflow.report.summary.build_summary` lists; grouping runs into sweeps is
:mod:`genreflow.report.summary`'s job.
"""

from __future__ import annotations

import statistics

from genreflow.report.records import BenchmarkFile, Collected, History, Metrics, SpectrogramRun


def load_balance_entry(collected: Collected, run: SpectrogramRun) -> dict:
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


def curves_entry(collected: Collected, history: History) -> dict:
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


def quality_entry(collected: Collected, metrics: Metrics) -> dict:
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


def benchmark_entry(collected: Collected, bench: BenchmarkFile) -> dict:
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
