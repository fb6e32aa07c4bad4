"""The report's model sections: training curves and test-set quality beside the baselines.

Each section turns its part of the summary dict into blocks of :mod:`genreflow.report.render`;
:func:`~genreflow.report.document.report_blocks` puts the sections in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genreflow.report.render import Block, Heading, Image, Notes, Table
from genreflow.report.text import format_percent, format_score


def curves_section(
    summary: Mapping[str, Any], plots: Mapping[str, str], notes: list[str]
) -> list[Block]:
    """Final and best values of each training history, and the curves' figure."""
    blocks: list[Block] = [Heading("Training curves")]
    rows = []
    for c in summary["training_curves"]:
        final, best = c["final"], c["best"]
        best_acc = (
            f"{best['val_accuracy']:.3f} (epoch {best['val_accuracy_epoch']})"
            if "val_accuracy" in best
            else "n/a"
        )
        rows.append(
            (
                c["path"],
                str(c["epochs"]),
                *(
                    f"{final[k]:.3f}" if k in final else "n/a"
                    for k in ("loss", "val_loss", "accuracy", "val_accuracy")
                ),
                best_acc,
            )
        )
    if rows:
        blocks.append(
            Table(
                (
                    "history",
                    "epochs",
                    "final loss",
                    "final val loss",
                    "final accuracy",
                    "final val accuracy",
                    "best val accuracy",
                ),
                tuple(rows),
            )
        )
    if "training_curves" in plots:
        shown = summary.get("training_curves_shown")
        blocks.append(
            Image(
                plots["training_curves"],
                "training curves",
                caption="Loss and accuracy per epoch, train and validation"
                + (f" ({shown})" if shown else "")
                + "; seconds of each epoch of every training run.",
            )
        )
    if notes:
        blocks.append(Notes(tuple(notes)))
    return blocks


def quality_section(
    summary: Mapping[str, Any], plots: Mapping[str, str], notes: list[str]
) -> list[Block]:
    """Test-set scores of each model beside its baselines, per class, and the confusion matrix."""
    blocks: list[Block] = [Heading("Model quality (test set)")]
    single = [q for q in summary["quality"] if not q.get("multilabel")]
    multi = [q for q in summary["quality"] if q.get("multilabel")]
    rows = []
    for q in single:
        methods = (
            (q.get("model_name", "CNN"), q),
            ("MFCC + SVM baseline", q.get("classical") or {}),
            (f"{q.get('model_name', 'CNN')} + SVM ensemble", q.get("ensemble") or {}),
            ("nearest-centroid baseline", q.get("baseline") or {}),
        )
        for name, scores in methods:
            if scores is not q and scores.get("clip_accuracy") is None:
                continue
            rows.append(
                (
                    q["path"],
                    name,
                    format_percent(scores.get("clip_accuracy")),
                    format_percent(scores.get("segment_accuracy")),
                    format_score(scores.get("macro_f1")),
                )
            )
    if rows:
        blocks.append(
            Table(
                ("metrics", "method", "clip accuracy", "segment accuracy", "macro-F1"),
                tuple(rows),
                caption="The model beside the baselines on the same test clips. Nearest centroid: "
                + (single[0].get("baseline_method") or "nearest centroid on mean spectra")
                + ".",
            )
        )
        verdicts = [f"{q['path']}: {q['verdict']}." for q in single if q.get("verdict")]
        if verdicts:
            blocks.append(Notes(tuple(verdicts)))
    if multi:
        blocks += _multilabel_quality_tables(multi)
    if summary["quality"] and not summary["quality"][0].get("multilabel"):
        first = summary["quality"][0]
        if first["per_class"]:
            keys = ("precision", "recall", "f1")
            header = ("precision", "recall", "F1")
            blocks.append(_per_label_table(first, keys=keys, header=header, caption="Per class"))
    if "confusion" in plots:
        blocks.append(
            Image(
                plots["confusion"],
                "confusion matrix",
                caption=f"Confusion matrix of {summary.get('confusion_shown')} (rows: true "
                "label, row-normalised colour, clip counts in the cells) and the test scores "
                "of the CNN beside the baseline.",
            )
        )
    if notes:
        blocks.append(Notes(tuple(notes)))
    return blocks


def _multilabel_quality_tables(quality: list[Mapping[str, Any]]) -> list[Block]:
    """Multi-label metrics: micro/macro-F1 and mAP beside the label-prior baseline, per label."""
    rows = []
    for q in quality:
        base = q.get("baseline") or {}
        rows.append(
            (
                q["path"],
                format_score(q.get("micro_f1")),
                format_score(q.get("macro_f1")),
                format_score(q.get("mAP")),
                format_percent(q.get("subset_accuracy")),
                format_score(base.get("micro_f1")),
                format_score(base.get("macro_f1")),
                format_score(base.get("mAP")),
            )
        )
    blocks: list[Block] = [
        Table(
            (
                "multi-label metrics",
                "micro-F1",
                "macro-F1",
                "mAP",
                "subset accuracy",
                "baseline micro-F1",
                "baseline macro-F1",
                "baseline mAP",
            ),
            tuple(rows),
            caption="Multi-label CNN (labels over their tuned thresholds) beside the baseline: "
            + (quality[0].get("baseline_method") or "label priors from the train split"),
        )
    ]
    first = quality[0]
    if first["per_class"]:
        keys = ("precision", "recall", "f1", "average_precision", "threshold")
        header = ("precision", "recall", "F1", "AP", "threshold")
        blocks.append(_per_label_table(first, keys=keys, header=header, caption="Per label"))
    return blocks


def _per_label_table(
    entry: Mapping[str, Any], *, keys: tuple[str, ...], header: tuple[str, ...], caption: str
) -> Table:
    """One row per label: ``keys`` with three decimals (``n/a`` when absent), then the support."""
    rows = tuple(
        (
            label,
            *(f"{v[k]:.3f}" if k in v else "n/a" for k in keys),
            f"{v['support']:.0f}" if "support" in v else "n/a",
        )
        for label, v in entry["per_class"].items()
    )
    return Table(("label", *header, "support"), rows, caption=f"{caption}: {entry['path']}")
