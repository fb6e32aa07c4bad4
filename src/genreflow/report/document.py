"""The report's layout: its sections in order, the overview, and the provenance sections.

The summary dict becomes headings, tables, figures and notes; the speed sections live in
:mod:`genreflow.report.document_speed` and the model sections in
:mod:`genreflow.report.document_quality`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genreflow.report.document_quality import curves_section, quality_section
from genreflow.report.document_speed import benchmark_section, load_balance_section, sweep_section
from genreflow.report.render import Block, Heading, Notes, Paragraph, Table
from genreflow.report.text import (
    STAGE_TITLES,
    format_fraction_fit,
    format_percent,
    format_seconds,
    format_speedup,
    head_line,
    multilabel_quality_text,
)

#: Figure file names (also the names the Snakemake report captions refer to).
PLOT_FILES = {
    "scaling_ranks": "scaling_ranks.png",
    "scaling_threads": "scaling_threads.png",
    "scaling_workers": "scaling_workers.png",
    "scaling_embed": "scaling_embed.png",
    "load_balance": "load_balance.png",
    "training_curves": "training_curves.png",
    "confusion": "confusion.png",
}


def report_blocks(summary: Mapping[str, Any], *, plots: Mapping[str, str]) -> list[Block]:
    """Lay out the report.

    Parameters
    ----------
    summary : mapping
        From :func:`~genreflow.report.summary.build_summary`.
    plots : mapping
        ``{plot key: file name}`` of the figures that were drawn (keys of :data:`PLOT_FILES`).
    """
    notes = summary["notes"]
    env = summary.get("environment") or {}
    blocks: list[Block] = [
        Paragraph(
            f"Results folder: {summary['results']}. Generated {summary['generated']}"
            + (f" on {env['host']}" if env.get("host") else "")
            + ". Baseline = the smallest worker count that was run (1 rank / 1 thread when "
            "present); best = the fastest. Times are medians over repeated runs; the Method "
            "section says exactly what is timed."
        )
    ]
    blocks += _summary_section(summary)
    blocks += sweep_section(summary, "spectrograms", plots, notes["spectrograms"])
    blocks += load_balance_section(summary, plots, notes["load_balance"])
    if any(s["stage"] == "spectrograms_weak" for s in summary["stages"]):
        blocks += sweep_section(summary, "spectrograms_weak", plots, [])
    if any(s["stage"] == "embed" for s in summary["stages"]):
        blocks += sweep_section(summary, "embed", plots, [])
    blocks += sweep_section(summary, "train", plots, notes["train"])
    if any(s["stage"] == "train_workers" for s in summary["stages"]):
        blocks += sweep_section(summary, "train_workers", plots, [])
    blocks += curves_section(summary, plots, notes["training_curves"])
    blocks += quality_section(summary, plots, notes["quality"])
    blocks += benchmark_section(summary, notes["benchmarks"])
    blocks += _environment_section(summary)
    blocks += _method_section()
    if notes["files"]:
        blocks += [Heading("Files skipped"), Notes(tuple(notes["files"]))]
    return blocks


def _summary_section(summary: Mapping[str, Any]) -> list[Block]:
    blocks: list[Block] = [Heading("Summary")]
    rows = []
    verdicts = []
    for s in summary["stages"]:
        base, best = s["baseline"], s["best"]
        efficient = next((p for p in s["points"] if p["count"] == s.get("most_efficient")), best)
        rows.append(
            (
                STAGE_TITLES.get(s["stage"], s["stage"]),
                s["task"],
                f"{format_seconds(base['seconds'])} -> {format_seconds(best['seconds'])}",
                format_speedup(s["speedup"]),
                format_percent(s["efficiency"]),
                format_percent(s["core_efficiency"]),
                format_fraction_fit(s["fit"]),
                base["config"],
                best["config"],
                efficient["config"],
            )
        )
        if s.get("verdict"):
            verdicts.append(f"{STAGE_TITLES.get(s['stage'], s['stage'])}: {s['verdict']}")
    if rows:
        blocks.append(
            Table(
                (
                    "stage",
                    "task",
                    "baseline -> best time",
                    "speed-up",
                    "efficiency",
                    "efficiency per core",
                    "Amdahl serial fraction",
                    "baseline configuration",
                    "fastest configuration",
                    "most core-efficient configuration",
                ),
                tuple(rows),
                caption="Measured here",
            )
        )
        if verdicts:
            blocks.append(Notes(tuple(verdicts)))
        for choice in summary.get("production", []):
            blocks.append(Paragraph(choice["text"] + "."))
        for head in summary.get("heads", []):
            blocks.append(Paragraph(head_line(head) + "."))
    else:
        blocks.append(Notes(("no stage timings found: nothing to compute speed-ups from",)))
    for q in summary["quality"]:
        if q.get("multilabel"):
            blocks.append(Paragraph(f"Model quality ({q['path']}): {multilabel_quality_text(q)}."))
            continue
        base = q.get("baseline") or {}
        text = (
            f"Model quality ({q['path']}): test clip accuracy {format_percent(q['clip_accuracy'])}"
            f", segment accuracy {format_percent(q['segment_accuracy'])}"
            + (f", macro-F1 {q['macro_f1']:.3f}" if q["macro_f1"] is not None else "")
        )
        if base:
            text += (
                f"; nearest-centroid baseline: clip accuracy "
                f"{format_percent(base.get('clip_accuracy'))}"
                + (f", macro-F1 {base['macro_f1']:.3f}" if "macro_f1" in base else "")
            )
        classical = q.get("classical") or {}
        if classical.get("clip_accuracy") is not None:
            text += (
                f"; MFCC + SVM baseline: clip accuracy {format_percent(classical['clip_accuracy'])}"
            )
        if q.get("verdict"):
            text += f" ({q['verdict']})"
        blocks.append(Paragraph(text + "."))
    ref = summary["reference"]
    ref_rows = [
        (
            STAGE_TITLES.get(r["stage"], r["stage"]),
            r["task"],
            f"{format_seconds(r['baseline_seconds'])} -> {format_seconds(r['best_seconds'])}",
            format_speedup(r["speedup"]),
            r["how"],
        )
        for r in ref["rows"]
    ]
    ref_rows.append(
        (
            "model quality",
            f"validation accuracy on {ref['dataset']}",
            format_percent(ref["validation_accuracy"]),
            "",
            "",
        )
    )
    blocks.append(
        Table(
            ("stage", "task", "baseline -> best", "speed-up", "how"),
            tuple(ref_rows),
            caption="For context only: the descended project's own published figures "
            "(theirs, on their hardware and data; not measured here)",
        )
    )
    return blocks


def _environment_section(summary: Mapping[str, Any]) -> list[Block]:
    env = summary.get("environment") or {}
    blocks: list[Block] = [
        Heading("Environment"),
        Paragraph(
            "The machine and software this report was made on. Runs record their own hosts "
            "(tables above); on a cluster those are the compute nodes, which may differ."
        ),
    ]
    rows = [
        ("host", env.get("host")),
        ("Python", env.get("python")),
        ("platform", env.get("platform")),
        ("CPU", env.get("cpu_model")),
        (
            "cores",
            f"{env.get('physical_cores')} physical, {env.get('logical_cpus')} logical, "
            f"{env.get('usable_cpus')} usable by this process"
            if env
            else None,
        ),
        ("MPI library", env.get("mpi_library") or "not found"),
        ("SLURM", env.get("slurm") or "not installed (sinfo not found)"),
    ]
    if env.get("slurm_job_id"):
        rows.append(("SLURM job", env["slurm_job_id"]))
    for name, version in (env.get("packages") or {}).items():
        rows.append((name, version or "not installed"))
    blocks.append(
        Table(("item", "value"), tuple((k, str(v) if v is not None else "n/a") for k, v in rows))
    )
    hashes = summary.get("config_hashes") or {}
    if hashes:
        blocks.append(
            Table(
                ("config hash", "found in"),
                tuple((k, ", ".join(v)) for k, v in hashes.items()),
                caption="Config hashes recorded by the runs",
            )
        )
    else:
        blocks.append(Notes(("no config hash found in the timing files",)))
    return blocks


def _method_section() -> list[Block]:
    return [
        Heading("Method"),
        Paragraph(
            "Spectrograms: each job's timings.json splits its wall time into start-up "
            "(launching the ranks, imports, warm-up, the plan), work (from the scatter to the "
            "last rank's last shard), previews (drawn once by rank 0) and writing the outputs. "
            "Scaling uses the work, the only part more ranks can shorten; the rest is shown "
            "beside it as fixed costs, and with them the work size at which more ranks pay off. "
            "Weak-scaling runs convert a fixed number of clips per rank and form their own sweep. "
            "Training: each sweep run's timings.json gives the seconds of every epoch's "
            "training steps; scaling uses their median over the epochs after a run's first "
            "(which includes TensorFlow's graph tracing; it is kept when it is the only one); "
            "validation, callbacks and checkpoints are per-epoch costs shown beside it. Each "
            "run records the BLAS/OpenMP and TensorFlow threads and the CPUs in force, read "
            "back from the libraries. Runs that overlapped on one host are left out, with a "
            "note. Runs of one sweep share a config hash and "
            "workload size; several runs at one count are reduced to their median."
        ),
        Paragraph(
            "Speed-up S(n) = T(n0) / T(n) with n0 the smallest count; efficiency = S(n) / (n / "
            "n0). Efficiency per core divides by the physical cores actually usable, min(n, "
            "cores) / min(n0, cores): ranks or threads beyond the core count share cores "
            "(oversubscription) and cannot speed anything up. Amdahl's law T(n) = T1 (f + (1 - "
            "f) / n) is linear in 1/n, T = a + b/n; a least-squares fit over every run gives f = "
            "a / (a + b), and its standard error follows from the fit's covariance (delta "
            "method). Two points fix the line exactly, leaving no uncertainty estimate."
        ),
        Paragraph(
            "Load imbalance = the slowest rank's total seconds over the mean over ranks (1.00 = "
            "perfect). Every rank's total runs from its process start to the end of its own "
            "share, so waiting for the plan (setup) evens totals out; the work imbalance "
            "therefore also leaves out the start-up phases (import, warm-up, setup)."
        ),
    ]
