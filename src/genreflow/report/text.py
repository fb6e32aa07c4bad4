"""Turn the report's numbers into short text: formatted figures and the terminal summary.

The Markdown/HTML document and ``genreflow report``'s terminal lines (``summary_lines``, printed
by ``make demo``) share these formatters, so a figure reads the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Display titles of the summary's ``stages[].stage`` values.
STAGE_TITLES = {
    "spectrograms": "spectrograms",
    "spectrograms_weak": "spectrograms, weak scaling",
    "train": "training",
    "train_workers": "training (data-parallel workers)",
    "embed": "embedding (pretrained backbone)",
}


def head_line(head: Mapping[str, Any]) -> str:
    """One head on a backbone in a line: what it was fitted on, and how long that took."""
    text = f"head on {head.get('backbone')} ({head['path']})"
    if head.get("fit_seconds") is not None:
        text += (
            f": fitted on {head.get('train_segments')} segments of {head.get('train_clips')} "
            f"clips in {format_seconds(head['fit_seconds'])}"
        )
    if head.get("total_seconds") is not None:
        text += f", {format_seconds(head['total_seconds'])} in all"
        if head.get("embeddings"):
            text += " (embeddings from the embedding job)"
        elif head.get("embed_seconds") is not None:
            text += f" (of which embedding {format_seconds(head['embed_seconds'])})"
    return text


def plural(n: int, word: str) -> str:
    """``1 rank``, ``4 ranks``: ``n`` with ``word``, plural when ``n`` is not 1."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def format_seconds(seconds: float | None) -> str:
    """``12.3 s`` with precision that suits the magnitude; ``n/a`` for None."""
    if seconds is None:
        return "n/a"
    if seconds >= 100:
        return f"{seconds:.0f} s"
    if seconds >= 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.2f} s"


def format_percent(fraction: float | None) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.1f}%"


def format_speedup(speedup: float | None) -> str:
    return "n/a" if speedup is None else f"{speedup:.2f}x"


def format_score(value: float | None) -> str:
    """A 0..1 score with three decimals; ``n/a`` for None."""
    return "n/a" if value is None else f"{value:.3f}"


def multilabel_quality_text(q: Mapping[str, Any]) -> str:
    """``multi-label test micro-F1 .., macro-F1 .., mAP .. (label-prior baseline: ...)``."""
    text = (
        f"multi-label test micro-F1 {format_score(q.get('micro_f1'))}, "
        f"macro-F1 {format_score(q.get('macro_f1'))}, mAP {format_score(q.get('mAP'))}"
    )
    base = q.get("baseline") or {}
    if base.get("mAP") is not None:
        text += (
            f" (label-prior baseline: micro-F1 {format_score(base.get('micro_f1'))}, "
            f"macro-F1 {format_score(base.get('macro_f1'))}, mAP {format_score(base['mAP'])})"
        )
    return text


def format_fraction_fit(fit: Mapping[str, Any]) -> str:
    """``f = 0.081 ± 0.012`` (or the reason there is no value)."""
    f = fit.get("serial_fraction")
    if f is None:
        return "no fit"
    se = fit.get("serial_fraction_se")
    return f"f = {f:.3f} ± {se:.3f}" if se is not None else f"f = {f:.3f} (no uncertainty)"


def stage_line(stage: Mapping[str, Any]) -> str:
    """One sweep in a line: every point's time and speed-up, the fastest and the most
    core-efficient setting, the Amdahl fit where it describes the data, and the verdict."""
    unit = stage["axis"][:-1]
    title = STAGE_TITLES.get(stage["stage"], stage["stage"])
    weak = stage["stage"].endswith("_weak")
    shown = []
    for p in stage["points"]:
        figures = [] if weak else [format_speedup(p["speedup"])]
        if p["count"] != stage["baseline"]["count"]:
            figures.append(f"efficiency {format_percent(p['efficiency'])}")
            if not weak and p["efficiency"] is not None and p["efficiency"] > 1.05:
                figures.append("above 100 %: a slow baseline run, see the notes")
        if p.get("oversubscribed"):
            figures.append("more than the cores")
        text = f"{plural(p['count'], unit)} {format_seconds(p['seconds'])}"
        shown.append(text + (f" ({', '.join(figures)})" if figures else ""))
    text = f"{title}: {', '.join(shown)}"
    if len(stage["points"]) > 1 and "fastest" in stage and not weak:
        text += f"; fastest {plural(stage['fastest'], unit)}"
        if stage.get("most_efficient") != stage["fastest"]:
            text += (
                f", most core-efficient {plural(stage['most_efficient'], unit)} "
                f"({format_percent(stage.get('most_efficient_per_core'))} per core)"
            )
    if stage["fit"].get("serial_fraction") is not None:
        text += f"; Amdahl {format_fraction_fit(stage['fit'])}"
    if stage.get("verdict"):
        text += f"; {stage['verdict']}"
    return text + f" [{stage['task']}]"


def summary_lines(summary: Mapping[str, Any]) -> list[str]:
    """A few lines for a terminal: model quality, each sweep's speed-up, the report's notes.

    Parameters
    ----------
    summary : mapping
        The dict of :func:`~genreflow.report.summary.build_summary` (as read back from ``summary.json``).

    Returns
    -------
    list of str
    """
    lines = []
    for q in summary.get("quality", []):
        if q.get("multilabel"):
            lines.append(f"model ({q['path']}): {multilabel_quality_text(q)}")
            continue
        text = f"model ({q['path']}): test clip accuracy {format_percent(q.get('clip_accuracy'))}"
        if q.get("macro_f1") is not None:
            text += f", macro-F1 {q['macro_f1']:.3f}"
        base = q.get("baseline") or {}
        if base.get("clip_accuracy") is not None:
            text += f" (nearest-centroid baseline {format_percent(base['clip_accuracy'])})"
        lines.append(text)
        ensemble_name = f"{q.get('model_name', 'CNN')} + SVM ensemble"
        for name, key in (("MFCC + SVM baseline", "classical"), (ensemble_name, "ensemble")):
            row = q.get(key) or {}
            if row.get("clip_accuracy") is not None:
                lines.append(
                    f"  {name}: clip accuracy {format_percent(row['clip_accuracy'])}"
                    f", macro-F1 {format_score(row.get('macro_f1'))}"
                )
        if q.get("verdict"):
            lines.append(f"  {q['verdict']}")
    for stage in summary.get("stages", []):
        lines.append(stage_line(stage))
    for head in summary.get("heads", []):
        lines.append(head_line(head))
    for choice in summary.get("production", []):
        lines.append(choice["text"])
    if not summary.get("stages"):
        lines.append("no stage timings found: no speed-ups to report")
    notes = [n for section in summary.get("notes", {}).values() for n in section]
    if notes:
        lines.append(f"{plural(len(notes), 'note')} in the report, e.g. {notes[0]}")
    return lines
