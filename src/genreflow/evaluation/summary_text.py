"""``metrics.json`` as a short plain-text table, for the terminal and the job log."""

from __future__ import annotations


def format_summary(metrics: dict) -> str:
    """A short plain-text table: CNN vs baseline, then per-genre scores."""
    if metrics.get("multilabel"):
        return format_multilabel_summary(metrics)
    base = metrics["baseline"]

    def pct(value):
        return f"{value:7.1%}" if value is not None else "    n/a"

    def num(value):
        return f"{value:7.3f}" if value is not None else "    n/a"

    lines = [
        f"{metrics['split']} split: {metrics['n_clips']} clips, {metrics['n_segments']} segments",
        f"{'':24} {'segment acc':>11} {'clip acc':>8} {'macro-F1':>8}",
        f"{metrics.get('model_name', 'CNN'):24} {pct(metrics['segment_accuracy']):>11} {pct(metrics['clip_accuracy']):>8} "
        f"{num(metrics['macro_f1']):>8}",
        f"{'nearest-centroid baseline':24} {'':>11} {pct(base['clip_accuracy']):>8} "
        f"{num(base['macro_f1']):>8}",
    ]
    ensemble = f"{metrics.get('model_name', 'CNN')} + SVM ensemble"
    for name, key in (("MFCC + SVM baseline", "classical"), (ensemble, "ensemble")):
        if metrics.get(key):
            row = metrics[key]
            lines.append(
                f"{name:24} {'':>11} {pct(row['clip_accuracy']):>8} {num(row['macro_f1']):>8}"
            )
    if metrics.get("verdict"):
        lines.append(metrics["verdict"])
    lines += [
        "",
        f"{'genre':12} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>7}",
    ]
    for name, s in metrics["per_class"].items():
        lines.append(
            f"{name:12} {s['precision']:9.3f} {s['recall']:7.3f} {s['f1']:6.3f} {s['support']:7d}"
        )
    return "\n".join(lines)


def format_multilabel_summary(metrics: dict) -> str:
    """A short plain-text table for a multi-label model: CNN vs prior baseline, then per label."""
    base = metrics["baseline"]

    def num(value):
        return f"{value:8.3f}" if value is not None else "     n/a"

    lines = [
        f"{metrics['split']} split (multi-label): {metrics['n_clips']} clips, "
        f"{metrics['n_segments']} segments",
        f"{'':24} {'micro-F1':>8} {'macro-F1':>8} {'mAP':>8} {'subset acc':>10}",
        f"{'CNN':24} {num(metrics['micro_f1'])} {num(metrics['macro_f1'])} "
        f"{num(metrics['mAP'])} {metrics['subset_accuracy']:10.1%}",
        f"{'label-prior baseline':24} {num(base.get('micro_f1'))} {num(base.get('macro_f1'))} "
        f"{num(base.get('mAP'))}",
        "",
        f"{'label':12} {'precision':>9} {'recall':>7} {'F1':>6} {'AP':>6} {'thresh':>6} "
        f"{'support':>7}",
    ]
    for name, s in metrics["per_label"].items():
        ap = s["average_precision"]
        lines.append(
            f"{name:12} {s['precision']:9.3f} {s['recall']:7.3f} {s['f1']:6.3f} "
            f"{ap if ap is not None else float('nan'):6.3f} {s['threshold']:6.3f} {s['support']:7d}"
        )
    return "\n".join(lines)
