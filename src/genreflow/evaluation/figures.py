"""The evaluation's figures (confusion matrix, per-label scores), drawn with matplotlib's
object API like the report's (no pyplot global state, safe in threads and servers)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from genreflow.core.atomic import atomic_path


def plot_confusion(
    confusion: np.ndarray, *, labels: Sequence[str], path: str | os.PathLike, title: str
) -> None:
    """Write a labelled confusion-matrix image (counts in every cell) to ``path`` atomically."""
    confusion = np.asarray(confusion)
    n = len(labels)
    size = max(4.0, 0.55 * n + 2.0)
    fig = Figure(figsize=(size + 1.0, size), dpi=110)
    ax = fig.add_subplot()
    image = ax.imshow(confusion, cmap="Blues", vmin=0)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="clips")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted genre")
    ax.set_ylabel("true genre")
    ax.set_title(title)
    threshold = confusion.max() / 2 if confusion.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(
                j,
                i,
                str(int(confusion[i, j])),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if confusion[i, j] > threshold else "black",
            )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)


def plot_label_scores(
    per_label: dict, *, path: str | os.PathLike, title: str, baseline_ap: dict | None = None
) -> None:
    """Write a bar chart of each label's F1 and average precision to ``path`` atomically.

    Parameters
    ----------
    per_label : dict
        ``{label: {"f1", "average_precision", "support", ...}}`` (``metrics.json``'s
        ``per_label``); a label without positives has no AP bar.
    baseline_ap : dict or None
        ``{label: AP}`` of the baseline, drawn as a tick over each AP bar.
    """
    names = list(per_label)
    y = np.arange(len(names))
    f1 = [per_label[n]["f1"] for n in names]
    ap = [per_label[n]["average_precision"] or 0.0 for n in names]
    fig = Figure(figsize=(7.0, max(3.0, 0.45 * len(names) + 1.5)), dpi=110)
    ax = fig.add_subplot()
    ax.barh(y - 0.2, f1, height=0.4, label="F1 (at the stored threshold)", color="#3b75af")
    ax.barh(y + 0.2, ap, height=0.4, label="average precision", color="#ef8636")
    if baseline_ap:
        base = [baseline_ap.get(n) for n in names]
        shown = [(i, b) for i, b in enumerate(base) if b is not None]
        if shown:
            ax.scatter(
                [b for _, b in shown],
                [i + 0.2 for i, _ in shown],
                marker="|",
                s=200,
                color="black",
                label="baseline AP (label prior)",
            )
    ax.set_yticks(y, [f"{n} ({per_label[n]['support']})" for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("score (label support in parentheses)")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=3, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
