"""Make the whole report: read a results tree, compute, draw, and write md/html/json/csv."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from genreflow.core.atomic import write_json, write_text
from genreflow.core.errors import StageError
from genreflow.report.collect import collect
from genreflow.report.document import PLOT_FILES, report_blocks
from genreflow.report.render import to_html, to_markdown
from genreflow.report.summary import build_summary

TITLE = "genreflow speed-up report"
#: Largest number of training runs drawn in the epoch-time panel.
MAX_EPOCH_SERIES = 8

#: The notes section that explains a missing figure.
PLACEHOLDER_SECTIONS = {
    "scaling_ranks": "spectrograms",
    "scaling_threads": "train",
    "scaling_workers": "train",
    "scaling_embed": "train",
    "load_balance": "load_balance",
    "training_curves": "training_curves",
    "confusion": "quality",
}

#: Columns of ``summary_table.csv`` (the summary table for Snakemake's report).
TABLE_COLUMNS = (
    "stage",
    "group",
    "task",
    "baseline_count",
    "baseline_seconds",
    "best_count",
    "best_seconds",
    "speedup",
    "efficiency",
    "core_efficiency",
    "serial_fraction",
    "serial_fraction_se",
    "baseline_config",
    "best_config",
)


def build_report(
    *,
    results: str | os.PathLike,
    out: str | os.PathLike,
    title: str = TITLE,
    environment: Mapping[str, Any] | None = None,
    only: Sequence[str] | None = None,
) -> dict:
    """Write ``report.md``, ``report.html``, ``summary.json``, ``summary_table.csv`` and PNGs.

    Parameters
    ----------
    results : path-like
        The workflow's results folder (searched recursively).
    out : path-like
        Report folder (created; may lie inside ``results``, it is not searched).
    title : str
        Report title.
    environment : mapping, optional
        Environment facts; default :func:`~genreflow.report.environment.collect_environment`.
    only : sequence of str, optional
        The current configuration's folders (:func:`~genreflow.report.collect.collect`).

    Returns
    -------
    dict
        The summary (as written to ``summary.json``), with ``files`` naming what was written.

    Raises
    ------
    StageError
        ``results`` is not an existing folder.
    """
    from genreflow.report import environment as env_module

    results = Path(results)
    if not results.exists():
        raise StageError(f"--results {results}: no such folder")
    if not results.is_dir():
        raise StageError(f"--results {results}: not a folder")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if environment is None:
        environment = env_module.collect_environment()
    collected = collect(
        results=results,
        exclude=out,
        local_host=environment.get("host") or env_module.hostname(),
        local_cores=environment.get("physical_cores") or env_module.physical_cores(),
        only=only,
    )
    summary = build_summary(collected, environment=environment)
    plots = _draw(summary, collected, out)
    blocks = report_blocks(summary, plots=plots)
    write_text(out / "report.md", to_markdown(blocks, title=title))
    write_text(out / "report.html", to_html(blocks, title=title, image_dir=out))
    write_text(out / "summary_table.csv", _table_csv(summary))
    summary["files"] = {
        "folder": str(out.resolve()),
        "markdown": str((out / "report.md").resolve()),
        "html": str((out / "report.html").resolve()),
        "summary": str((out / "summary.json").resolve()),
        "table": str((out / "summary_table.csv").resolve()),
        "plots": {key: str((out / name).resolve()) for key, name in plots.items()},
        "placeholders": sorted(set(PLOT_FILES) - set(plots)),
    }
    write_json(out / "summary.json", summary)
    return summary


def _draw(summary: dict, collected, out: Path) -> dict[str, str]:
    """Draw every figure the data allows; record which run each one shows."""
    from genreflow.report import plots as draw

    drawn: dict[str, str] = {}
    # A figure left over from an earlier report must not outlive the data behind it.
    for name in PLOT_FILES.values():
        (out / name).unlink(missing_ok=True)
    ranks = [s for s in summary["stages"] if s["stage"] == "spectrograms"]
    if ranks:
        draw.plot_rank_scaling(sweeps=ranks, path=out / PLOT_FILES["scaling_ranks"])
        drawn["scaling_ranks"] = PLOT_FILES["scaling_ranks"]
    threads = [s for s in summary["stages"] if s["stage"] == "train"]
    if threads:
        draw.plot_thread_scaling(sweeps=threads, path=out / PLOT_FILES["scaling_threads"])
        drawn["scaling_threads"] = PLOT_FILES["scaling_threads"]
    embed = [s for s in summary["stages"] if s["stage"] == "embed"]
    if embed:
        draw.plot_thread_scaling(
            sweeps=embed,
            path=out / PLOT_FILES["scaling_embed"],
            rate_label="segments embedded / s (median)",
        )
        drawn["scaling_embed"] = PLOT_FILES["scaling_embed"]
    workers = [s for s in summary["stages"] if s["stage"] == "train_workers"]
    if workers:
        draw.plot_thread_scaling(
            sweeps=workers, path=out / PLOT_FILES["scaling_workers"], axis="workers"
        )
        drawn["scaling_workers"] = PLOT_FILES["scaling_workers"]
    if summary["load_balance"]:
        entry = max(
            summary["load_balance"],
            key=lambda e: (e.get("scaling") != "weak", e["n_ranks"], e["path"]),
        )
        draw.plot_load_balance(entry=entry, path=out / PLOT_FILES["load_balance"])
        drawn["load_balance"] = PLOT_FILES["load_balance"]
        summary["load_balance_shown"] = entry["path"]
    history = max(collected.histories, key=lambda h: h.n_epochs, default=None)
    epoch_seconds = {
        f"{run.intra_op} thr: {collected.relative(run.path.parent)}": [
            e.seconds for e in run.epochs
        ]
        for run in sorted(collected.train, key=lambda r: -len(r.epochs))[:MAX_EPOCH_SERIES]
    }
    if history is not None or epoch_seconds:
        shown = collected.relative(history.path) if history is not None else None
        draw.plot_training_curves(
            history=history.curves if history is not None else None,
            history_label=shown or "",
            epoch_seconds=epoch_seconds,
            path=out / PLOT_FILES["training_curves"],
        )
        drawn["training_curves"] = PLOT_FILES["training_curves"]
        summary["training_curves_shown"] = shown
    metrics = next((m for m in collected.metrics if m.confusion is not None), None)
    if metrics is not None:
        scores = {
            "CNN": {"clip accuracy": metrics.clip_accuracy, "macro-F1": metrics.macro_f1},
        }
        for name, base in (("MFCC + SVM", metrics.classical), ("baseline", metrics.baseline)):
            if base:
                scores[name] = {
                    "clip accuracy": base.get("clip_accuracy"),
                    "macro-F1": base.get("macro_f1"),
                }
        shown = collected.relative(metrics.path)
        draw.plot_confusion(
            confusion=metrics.confusion,
            labels=metrics.labels,
            scores=scores,
            path=out / PLOT_FILES["confusion"],
        )
        drawn["confusion"] = PLOT_FILES["confusion"]
        summary["confusion_shown"] = shown
    elif collected.metrics and all(m.multilabel for m in collected.metrics):
        summary["notes"]["quality"].append(
            "multi-label metrics have no confusion matrix: per-label scores are in the table"
        )
    elif collected.metrics:
        summary["notes"]["quality"].append("no confusion matrix in the metrics: none drawn")
    # Every figure file exists even without data (a workflow may declare them as outputs);
    # the report itself shows only the real ones and gives the reason as a note.
    for key, name in PLOT_FILES.items():
        if key not in drawn:
            section = PLACEHOLDER_SECTIONS[key]
            reason = (summary["notes"][section] or [f"no data for {key}"])[0]
            draw.plot_placeholder(title=f"{key}: no data", message=reason, path=out / name)
    return drawn


def _table_csv(summary: Mapping[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    for s in summary["stages"]:
        base, best, fit = s["baseline"], s["best"], s["fit"]
        writer.writerow(
            [
                s["stage"],
                s["group"],
                s["task"],
                base["count"],
                f"{base['seconds']:.4g}",
                best["count"],
                f"{best['seconds']:.4g}",
                f"{s['speedup']:.4g}",
                f"{s['efficiency']:.4g}",
                "" if s["core_efficiency"] is None else f"{s['core_efficiency']:.4g}",
                "" if fit["serial_fraction"] is None else f"{fit['serial_fraction']:.4g}",
                "" if fit["serial_fraction_se"] is None else f"{fit['serial_fraction_se']:.2g}",
                base["config"],
                best["config"],
            ]
        )
    return buffer.getvalue()
