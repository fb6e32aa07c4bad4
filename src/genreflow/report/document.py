"""The report document: the summary dict laid out as headings, tables, figures and notes.

:func:`report_blocks` turns :func:`~genreflow.report.summary.build_summary`'s dict into the
blocks of :mod:`genreflow.report.render`, section by section in the order the reader meets
them: overview, speed (scaling sweeps, load balance), model (training curves, test quality),
benchmarks, then provenance (environment, method, skipped files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from genreflow.report.records import RANK_PHASES
from genreflow.report.render import Block, Heading, Image, Notes, Paragraph, Table
from genreflow.report.text import (
    STAGE_TITLES,
    format_fraction_fit,
    format_percent,
    format_score,
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
    blocks += _sweep_section(
        summary, stage="spectrograms", plots=plots, notes=notes["spectrograms"]
    )
    blocks += _load_balance_section(summary, plots=plots, notes=notes["load_balance"])
    if any(s["stage"] == "spectrograms_weak" for s in summary["stages"]):
        blocks += _sweep_section(summary, stage="spectrograms_weak", plots=plots, notes=[])
    if any(s["stage"] == "embed" for s in summary["stages"]):
        blocks += _sweep_section(summary, stage="embed", plots=plots, notes=[])
    blocks += _sweep_section(summary, stage="train", plots=plots, notes=notes["train"])
    if any(s["stage"] == "train_workers" for s in summary["stages"]):
        blocks += _sweep_section(summary, stage="train_workers", plots=plots, notes=[])
    blocks += _curves_section(summary, plots=plots, notes=notes["training_curves"])
    blocks += _quality_section(summary, plots=plots, notes=notes["quality"])
    blocks += _benchmark_section(summary, notes=notes["benchmarks"])
    blocks += _environment_section(summary)
    blocks += _method_section()
    if notes["files"]:
        blocks += [Heading("Files skipped"), Notes(tuple(notes["files"]))]
    return blocks


def _summary_section(summary: Mapping[str, Any]) -> list[Block]:
    """Each sweep's baseline -> best, model quality, and the published figures for context."""
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


def _sweep_section(
    summary: Mapping[str, Any], *, stage: str, plots: Mapping[str, str], notes: list[str]
) -> list[Block]:
    """One stage's sweeps (a ``stages[].stage`` value): table, Amdahl fit, figure, notes."""
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


def _load_balance_section(
    summary: Mapping[str, Any], *, plots: Mapping[str, str], notes: list[str]
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


def _benchmark_section(summary: Mapping[str, Any], *, notes: list[str]) -> list[Block]:
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


def _curves_section(
    summary: Mapping[str, Any], *, plots: Mapping[str, str], notes: list[str]
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


def _quality_section(
    summary: Mapping[str, Any], *, plots: Mapping[str, str], notes: list[str]
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


def _environment_section(summary: Mapping[str, Any]) -> list[Block]:
    """The machine and software the report was made on, and the runs' config hashes."""
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
    """What is timed, and how speed-up, efficiency, the Amdahl fit and imbalance follow."""
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
