"""The report's speed sections: scaling sweeps with their Amdahl fits, load balance, benchmarks.

Each section turns its part of the summary dict into blocks of :mod:`genreflow.report.render`;
:func:`~genreflow.report.document.report_blocks` puts the sections in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genreflow.report.records import RANK_PHASES
from genreflow.report.render import Block, Heading, Image, Notes, Paragraph, Table
from genreflow.report.text import (
    format_fraction_fit,
    format_percent,
    format_seconds,
    format_speedup,
)


def _fit_text(s: Mapping[str, Any]) -> str:
    """The sentence stating a sweep's Amdahl fit and what it implies."""
    fit = s["fit"]
    unit = s["axis"][:-1]
    text = (
        f"Amdahl fit T(n) = T1 (f + (1 - f)/n) by least squares over {fit['points']} runs at "
        f"{fit['counts']} {unit} counts: serial fraction {format_fraction_fit(fit)}"
    )
    if fit["serial_fraction_se"] is not None:
        text += " (standard error from the fit's covariance)"
    if fit["max_speedup"] is not None:
        text += f", so at most {format_speedup(fit['max_speedup'])} however many {unit}s"
    text += f"; fitted 1-{unit} time {format_seconds(fit['t1_seconds'])}."
    if fit["note"]:
        text += f" Note: {fit['note']}."
    return text


def sweep_section(
    summary: Mapping[str, Any], stage: str, plots: Mapping[str, str], notes: list[str]
) -> list[Block]:
    """One stage's sweeps (``spectrograms``, ``train`` or ``train_workers``): table, fit, figure."""
    sweeps = [s for s in summary["stages"] if s["stage"] == stage]
    if stage == "spectrograms":
        blocks: list[Block] = [Heading("Spectrograms: scaling with MPI ranks")]
        header = (
            "ranks",
            "runs",
            "wall",
            "fixed (start-up, previews, outputs)",
            "work",
            "speed-up",
            "efficiency",
            "per core",
            "BLAS threads per rank",
            "pays off from (clips per rank)",
            "hosts",
        )
    elif stage == "spectrograms_weak":
        blocks = [Heading("Spectrograms: weak scaling (fixed work per rank)")]
        header = ("ranks", "runs", "clips", "wall", "work", "efficiency", "throughput ratio")
    elif stage == "embed":
        blocks = [Heading("Embedding: the pretrained backbone's forward pass vs threads")]
        header = (
            "threads",
            "runs",
            "seconds",
            "segments / s",
            "s per 30-s clip",
            "speed-up",
            "efficiency",
            "per core",
            "configuration",
        )
    elif stage == "train_workers":
        blocks = [Heading("Training: scaling with data-parallel workers")]
        header = (
            "workers",
            "runs",
            "samples / s",
            "all-reduce share",
            "speed-up",
            "efficiency",
            "per core",
            "configuration",
        )
    else:
        blocks = [Heading("Training: scaling with threads")]
        header = (
            "threads",
            "runs",
            "s / epoch (steps)",
            "per-epoch costs (left out)",
            "samples / s",
            "speed-up",
            "efficiency",
            "per core",
            "configuration",
        )
    for s in sweeps:
        rows = []
        for p in s["points"]:
            count = str(p["count"]) + (" (oversubscribed)" if p["oversubscribed"] else "")
            ratios = (
                format_speedup(p["speedup"]),
                format_percent(p["efficiency"]),
                format_percent(p["core_efficiency"]),
            )
            if stage == "spectrograms":
                even = p.get("break_even_clips_per_rank")
                rows.append(
                    (
                        count,
                        str(p["runs"]),
                        format_seconds(p["wall_seconds"]),
                        format_seconds(p["fixed_seconds"]),
                        format_seconds(p["seconds"]),
                        *ratios,
                        "/".join(map(str, p.get("blas_threads") or [])) or "not recorded",
                        "-"
                        if p["count"] == s["baseline"]["count"]
                        else "never at these rates"
                        if even is None
                        else f"{even:g}",
                        ", ".join(p["hosts"]) or "unknown",
                    )
                )
            elif stage == "spectrograms_weak":
                rows.append(
                    (
                        count,
                        str(p["runs"]),
                        f"{p['clips']:g}",
                        format_seconds(p["wall_seconds"]),
                        format_seconds(p["seconds"]),
                        format_percent(p["efficiency"]),
                        format_speedup(p["speedup"]),
                    )
                )
            elif stage == "embed":
                rate, per_clip = p["samples_per_second"], p["seconds_per_30s_clip"]
                rows.append(
                    (
                        count,
                        str(p["runs"]),
                        format_seconds(p["seconds"]),
                        f"{rate:.1f}" if rate is not None else "n/a",
                        format_seconds(per_clip) if per_clip is not None else "n/a",
                        *ratios,
                        p["config"],
                    )
                )
            elif stage == "train_workers":
                share = p["allreduce_fraction"]
                rows.append(
                    (
                        count,
                        str(p["runs"]),
                        f"{p['samples_per_second']:.1f}",
                        format_percent(share) if share is not None else "n/a",
                        *ratios,
                        p["config"],
                    )
                )
            else:
                rate = p["samples_per_second"]
                rows.append(
                    (
                        count,
                        str(p["runs"]),
                        format_seconds(p["seconds"]),
                        format_percent(p.get("epoch_overhead")),
                        f"{rate:.1f}" if rate is not None else "n/a",
                        *ratios,
                        p["config"],
                    )
                )
        cores = f"; {s['cores']} physical cores ({s['cores_source']})" if s["cores"] else ""
        blocks.append(
            Table(header, tuple(rows), caption=f"{s['group']}: {s['task']}; {s['metric']}{cores}")
        )
        if s["fit"]["serial_fraction"] is not None:  # else the notes say why there is none
            blocks.append(Paragraph(_fit_text(s)))
    key = {
        "spectrograms": "scaling_ranks",
        "spectrograms_weak": "",
        "train_workers": "scaling_workers",
        "embed": "scaling_embed",
    }.get(stage, "scaling_threads")
    if key in plots:
        what = (
            "wall time split into the work and the fixed costs (start-up, previews, outputs)"
            if stage == "spectrograms"
            else "throughput"
        )
        blocks.append(
            Image(
                plots[key],
                f"{stage} scaling",
                caption="Speed-up with the ideal line and the Amdahl fit; parallel efficiency "
                f"and efficiency per physical core (hollow points: more {sweeps[0]['axis']} "
                f"than cores); {what}.",
            )
        )
    if notes:
        blocks.append(Notes(tuple(notes)))
    return blocks


def load_balance_section(
    summary: Mapping[str, Any], plots: Mapping[str, str], notes: list[str]
) -> list[Block]:
    """How evenly each spectrogram run's ranks shared the work, and the per-rank phases."""
    blocks: list[Block] = [Heading("Spectrograms: load balance across ranks")]
    entries = summary["load_balance"]
    if entries:
        blocks.append(
            Table(
                (
                    "run",
                    "ranks",
                    "imbalance (max/mean total)",
                    "work imbalance (start-up left out)",
                    "slowest rank",
                    "slowest total",
                    "mean total",
                ),
                tuple(
                    (
                        e["path"],
                        str(e["n_ranks"]),
                        f"{e['imbalance']:.2f}" if e["imbalance"] is not None else "n/a",
                        f"{e['work_imbalance']:.2f}" if e["work_imbalance"] is not None else "n/a",
                        str(e["slowest_rank"]),
                        format_seconds(e["slowest_seconds"]),
                        format_seconds(e["mean_seconds"]),
                    )
                    for e in entries
                ),
            )
        )
    shown = summary.get("load_balance_shown")
    if "load_balance" in plots and shown:
        entry = next(e for e in entries if e["path"] == shown)
        named = {k for r in entry["per_rank"] for k in r["seconds"] if k != "total"}
        phases = (
            *(p for p in RANK_PHASES if p in named),
            *sorted(named - set(RANK_PHASES)),
            "total",
        )
        rows = tuple(
            (
                str(r["rank"]),
                r["host"] or "",
                "" if r["files"] is None else str(r["files"]),
                "" if r["segments"] is None else str(r["segments"]),
                *(format_seconds(r["seconds"].get(k)) for k in phases),
            )
            for r in entry["per_rank"]
        )
        blocks.append(
            Table(
                ("rank", "host", "files", "segments", *phases), rows, caption=f"Per rank: {shown}"
            )
        )
        blocks.append(
            Image(
                plots["load_balance"],
                "per-rank seconds",
                caption=f"Seconds per rank and phase for {shown} (the run with the most ranks).",
            )
        )
    if notes:
        blocks.append(Notes(tuple(notes)))
    return blocks


def benchmark_section(summary: Mapping[str, Any], notes: list[str]) -> list[Block]:
    """Whole-job figures of the Snakemake benchmark files."""
    blocks: list[Block] = [Heading("Snakemake benchmarks")]
    rows = tuple(
        (
            b["path"],
            b["rule"],
            f"{b['count']} {b['count_kind'][:-1] if b['count'] == 1 else b['count_kind']}"
            if b["count"] is not None
            else "",
            str(b["repeats"]),
            format_seconds(b["seconds"]),
            f"{b['max_rss_mb']:.0f}" if b["max_rss_mb"] is not None else "n/a",
            format_seconds(b["cpu_seconds"]),
            f"{b['mean_load']:.0f}" if b["mean_load"] is not None else "n/a",
        )
        for b in summary["benchmarks"]
    )
    if rows:
        blocks.append(
            Table(
                ("file", "rule", "workers", "repeats", "wall", "max RSS (MB)", "CPU", "mean load"),
                rows,
                caption="Whole-job figures from Snakemake's benchmark directive "
                "(medians over repeats; wall includes process and MPI startup)",
            )
        )
    if notes:
        blocks.append(Notes(tuple(notes)))
    return blocks
