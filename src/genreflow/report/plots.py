"""The report's figures, drawn with matplotlib's object API (Agg, no pyplot global state).

Every function draws one PNG from the summary dict (and, where it needs the raw series, the
collected files), writes it atomically and returns its path.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from genreflow.core.atomic import atomic_path
from genreflow.report.records import RANK_PHASES, STARTUP_PHASES

DPI = 110
#: Colours of the per-rank phases in the load-balance bars (others get the default cycle).
PHASE_COLOURS = {
    "import": "#bbbbbb",
    "warmup": "#dddddd",
    "setup": "#999999",
    "decode": "#4c72b0",
    "resample": "#55a868",
    "mel": "#c44e52",
    "write": "#8172b2",
    "previews": "#64b5cd",
    "other": "#ccb974",
}


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def _count_axis(ax, counts: Sequence[int], label: str) -> None:
    counts = sorted(set(counts))
    if counts and counts[-1] / counts[0] >= 4:
        ax.set_xscale("log", base=2)
    ax.set_xticks(counts)
    ax.set_xticklabels([str(c) for c in counts])
    ax.minorticks_off()
    ax.set_xlabel(label)
    ax.grid(True, alpha=0.3)


def _scaling_panels(ax_speed, ax_eff, sweeps: Sequence[Mapping[str, Any]], label: str) -> None:
    """Speed-up (measured, ideal, Amdahl fit) and efficiency (parallel, per core) panels."""
    all_counts: list[int] = []
    for i, sweep in enumerate(sweeps):
        colour = f"C{i}"
        points = sweep["points"]
        counts = np.array([p["count"] for p in points], dtype=float)
        all_counts += [p["count"] for p in points]
        n0 = counts[0]
        name = sweep["group"] if len(sweeps) > 1 else "measured"
        speed = np.array([p["speedup"] for p in points])
        over = np.array([bool(p["oversubscribed"]) for p in points])
        ax_speed.plot(counts, speed, "-", color=colour, alpha=0.6)
        ax_speed.plot(counts[~over], speed[~over], "o", color=colour, label=name)
        if over.any():
            ax_speed.plot(
                counts[over],
                speed[over],
                "o",
                mfc="white",
                mec=colour,
                mew=1.5,
                label=f"{name}: more {label} than cores",
            )
        fit = sweep["fit"]
        curve = sweep["fit_curve"]
        if fit.get("serial_fraction") is not None:
            dense = np.geomspace(counts[0], counts[-1], 64)
            model = (curve["intercept"] + curve["slope"] / n0) / (
                curve["intercept"] + curve["slope"] / dense
            )
            se = fit.get("serial_fraction_se")
            text = f"f = {fit['serial_fraction']:.3f}" + (f" ± {se:.3f}" if se is not None else "")
            ax_speed.plot(dense, model, "--", color=colour, label=f"Amdahl fit, {text}")
        eff = np.array([p["efficiency"] for p in points])
        ax_eff.plot(counts, 100 * eff, "o-", color=colour, label=f"{name}: parallel")
        core_eff = [p["core_efficiency"] for p in points]
        if all(c is not None for c in core_eff):
            ax_eff.plot(
                counts, 100 * np.array(core_eff), "s:", color=colour, label=f"{name}: per core"
            )
    lo, hi = min(all_counts), max(all_counts)
    ideal = np.geomspace(lo, hi, 64)  # dense: the axis may be logarithmic
    ax_speed.plot(ideal, ideal / lo, "k-", lw=0.8, alpha=0.5, label="ideal")
    cores = {s["cores"] for s in sweeps if s.get("cores")}
    if len(cores) == 1 and lo < min(cores) < hi:
        for ax in (ax_speed, ax_eff):
            ax.axvline(min(cores), color="grey", ls=":", lw=1, label=f"{min(cores)} cores")
    ax_speed.set_ylabel(f"speed-up vs {lo} {label[:-1] if lo == 1 else label}")
    ax_speed.set_title("speed-up")
    ax_speed.legend(fontsize=7)
    ax_eff.axhline(100, color="k", lw=0.8, alpha=0.5)
    ax_eff.set_ylabel("efficiency (%)")
    ax_eff.set_ylim(bottom=0)
    ax_eff.set_title("parallel efficiency")
    ax_eff.legend(fontsize=7)
    _count_axis(ax_speed, all_counts, label)
    _count_axis(ax_eff, all_counts, label)


def plot_rank_scaling(*, sweeps: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Spectrogram stage vs MPI ranks: speed-up, efficiency, and work/fixed seconds."""
    fig = Figure(layout="constrained", figsize=(13, 4))
    ax_speed, ax_eff, ax_time = fig.subplots(1, 3)
    _scaling_panels(ax_speed, ax_eff, sweeps, "ranks")
    width = 0.8 / len(sweeps)
    labels: list[str] = []
    for i, sweep in enumerate(sweeps):
        points = sweep["points"]
        x = np.arange(len(points)) + (i - (len(sweeps) - 1) / 2) * width
        work = [p["seconds"] for p in points]
        fixed = [p["fixed_seconds"] for p in points]
        tag = f"{sweep['group']}: " if len(sweeps) > 1 else ""
        ax_time.bar(x, work, width, color=f"C{i}", label=f"{tag}work")
        ax_time.bar(
            x,
            fixed,
            width,
            bottom=work,
            color=f"C{i}",
            alpha=0.35,
            hatch="//",
            label=f"{tag}fixed: start-up, previews, outputs",
        )
        if len(points) > len(labels):
            labels = [str(p["count"]) for p in points]
    ax_time.set_xticks(np.arange(len(labels)))
    ax_time.set_xticklabels(labels)
    ax_time.set_xlabel("ranks")
    ax_time.set_ylabel("seconds (median)")
    ax_time.set_title("wall time = work + fixed costs")
    ax_time.legend(fontsize=7)
    ax_time.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def plot_thread_scaling(
    *,
    sweeps: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    axis: str = "threads",
    rate_label: str = "training samples / s (median)",
) -> Path:
    """Training vs intra-op threads (or data-parallel ``axis="workers"``): speed-up, efficiency, samples/s."""
    fig = Figure(layout="constrained", figsize=(13, 4))
    ax_speed, ax_eff, ax_rate = fig.subplots(1, 3)
    _scaling_panels(ax_speed, ax_eff, sweeps, axis)
    width = 0.8 / len(sweeps)
    labels: list[str] = []
    for i, sweep in enumerate(sweeps):
        points = sweep["points"]
        x = np.arange(len(points)) + (i - (len(sweeps) - 1) / 2) * width
        rate = [p["samples_per_second"] or 0.0 for p in points]
        ax_rate.bar(x, rate, width, color=f"C{i}", label=sweep["group"])
        for xi, r in zip(x, rate, strict=True):
            ax_rate.annotate(f"{r:.0f}", (xi, r), ha="center", va="bottom", fontsize=7)
        if len(points) > len(labels):
            labels = [str(p["count"]) for p in points]
    ax_rate.set_xticks(np.arange(len(labels)))
    ax_rate.set_xticklabels(labels)
    ax_rate.set_xlabel(axis)
    ax_rate.set_ylabel(rate_label)
    ax_rate.set_title("throughput")
    if len(sweeps) > 1:
        ax_rate.legend(fontsize=7)
    ax_rate.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def plot_load_balance(*, entry: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Stacked per-rank seconds of one spectrogram run, one segment per phase.

    Phases are drawn in pipeline order (:data:`~genreflow.report.records.RANK_PHASES`, then any
    others); ``other`` is what ``total`` has beyond the named phases.
    """
    ranks = entry["per_rank"]
    named = {k for r in ranks for k in r["seconds"] if k != "total"}
    phases = [p for p in RANK_PHASES if p in named] + sorted(named - set(RANK_PHASES))
    fig = Figure(layout="constrained", figsize=(max(6, 0.6 * len(ranks) + 3), 4))
    ax = fig.subplots()
    x = np.arange(len(ranks))
    bottom = np.zeros(len(ranks))
    for i, phase in enumerate([*phases, "other"]):
        if phase == "other":
            values = np.array(
                [
                    max(
                        r["seconds"].get("total", 0.0)
                        - sum(r["seconds"].get(p, 0.0) for p in phases),
                        0.0,
                    )
                    for r in ranks
                ]
            )
        else:
            values = np.array([r["seconds"].get(phase, 0.0) for r in ranks])
        if values.any():
            colour = PHASE_COLOURS.get(phase, f"C{i % 10}")
            hatch = "//" if phase in STARTUP_PHASES else None
            ax.bar(x, values, 0.7, bottom=bottom, color=colour, hatch=hatch, label=phase)
            bottom += values
    ax.set_xticks(x)
    ax.set_xticklabels([str(r["rank"]) for r in ranks])
    ax.set_xlabel("rank")
    ax.set_ylabel("seconds")
    imbalance = entry.get("imbalance")
    title = f"{entry['n_ranks']} ranks: {entry['path']}"
    if imbalance is not None:
        title += f"\nimbalance max/mean of total = {imbalance:.2f}"
        if entry.get("work_imbalance") is not None:
            title += f", of work (hatched start-up left out) = {entry['work_imbalance']:.2f}"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def plot_training_curves(
    *,
    history: Mapping[str, Sequence[float]] | None,
    history_label: str = "",
    epoch_seconds: Mapping[str, Sequence[float]] | None = None,
    path: str | os.PathLike,
) -> Path:
    """Loss and accuracy per epoch (train and validation), and seconds per epoch per run.

    Parameters
    ----------
    history : mapping of str to sequence, optional
        Keras-style curves: ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy``.
    epoch_seconds : mapping of str to sequence, optional
        ``{run label: seconds of each epoch}``.
    """
    panels = []
    if history:
        panels += ["loss", "accuracy"]
    if epoch_seconds:
        panels.append("epoch")
    fig = Figure(layout="constrained", figsize=(4.4 * len(panels), 4))
    if history and history_label:
        # One run's path spans the figure; per-panel titles would overlap their neighbours.
        fig.suptitle(f"training history: {history_label}", fontsize=9)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "epoch":
            for label, seconds in epoch_seconds.items():
                ax.plot(np.arange(1, len(seconds) + 1), seconds, "o-", ms=3, label=label)
            ax.set_ylabel("seconds per epoch")
            ax.set_title("epoch time")
            ax.set_ylim(bottom=0)
        else:
            for key, style, name in ((panel, "-", "train"), (f"val_{panel}", "--", "validation")):
                if key in history:
                    values = history[key]
                    epochs = np.arange(1, len(values) + 1)
                    ax.plot(epochs, values, style, marker="o", ms=3, label=name)
            ax.set_ylabel(panel)
            ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_confusion(
    *,
    confusion: Sequence[Sequence[float]],
    labels: Sequence[str],
    scores: Mapping[str, Mapping[str, float | None]],
    title: str = "",
    path: str | os.PathLike,
) -> Path:
    """Row-normalised confusion matrix heatmap, with model and baseline scores beside it.

    Parameters
    ----------
    confusion : array-like, shape (n_labels, n_labels)
        Counts; rows are true labels, columns predicted.
    scores : mapping
        ``{"CNN": {"clip accuracy": 0.7, "macro-F1": 0.68}, "baseline": {...}}``.
    """
    matrix = np.asarray(confusion, dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    counts = bool(np.all(matrix == np.round(matrix)))
    n = len(labels)
    fig = Figure(layout="constrained", figsize=(max(6.5, 0.55 * n + 5.5), max(4.2, 0.45 * n + 1.8)))
    grid = fig.add_gridspec(1, 2, width_ratios=[max(n, 3), 2.2])
    ax = fig.add_subplot(grid[0])
    image = ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(np.arange(n))
    ax.set_yticks(np.arange(n))
    ax.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticklabels(labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion (row-normalised; numbers are clip counts)", fontsize=9)
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                colour = "white" if normalised[i, j] > 0.5 else "black"
                text = f"{matrix[i, j]:.0f}" if counts else f"{matrix[i, j]:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax_scores = fig.add_subplot(grid[1])
    metric_names = sorted({m for s in scores.values() for m, v in s.items() if v is not None})
    width = 0.8 / max(len(scores), 1)
    for i, (model, values) in enumerate(scores.items()):
        x = np.arange(len(metric_names)) + (i - (len(scores) - 1) / 2) * width
        heights = [values.get(m) or 0.0 for m in metric_names]
        ax_scores.bar(x, heights, width, label=model, color=f"C{i}")
        for xi, h in zip(x, heights, strict=True):
            ax_scores.annotate(f"{h:.2f}", (xi, h), ha="center", va="bottom", fontsize=7)
    ax_scores.set_xticks(np.arange(len(metric_names)))
    ax_scores.set_xticklabels(metric_names, fontsize=8)
    ax_scores.set_ylim(0, 1.05)
    ax_scores.set_title("test scores", fontsize=9)
    ax_scores.legend(fontsize=7)
    ax_scores.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def plot_placeholder(*, title: str, message: str, path: str | os.PathLike) -> Path:
    """A figure that says why there is no data (so a workflow's declared output exists)."""
    fig = Figure(layout="constrained", figsize=(6, 2.5))
    ax = fig.subplots()
    ax.axis("off")
    ax.set_title(title)
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True, fontsize=9)
    return _save(fig, path)
