"""Model quality by k-fold cross-validation on any folder-per-genre dataset.

Usage::

    .venv/bin/python benchmarks/bench_accuracy.py DATA_DIR                     # 5 folds, seed 0
    .venv/bin/python benchmarks/bench_accuracy.py DATA_DIR --folds 5 --seed 1 --set train.epochs=40

The clips of ``DATA_DIR`` (found by ``genreflow manifest``'s discovery) are split into
``--folds`` stratified folds (scikit-learn's ``StratifiedKFold``, shuffled with ``--seed``).
Every fold is the test split once; the other clips are the train split, less
``--valid-per-genre`` per genre for a validation split when the config chooses the exported
epoch on it (``train.export: best``; with the default ``last`` every method trains on all the
other folds). Each fold then
runs the package's own stages with the config's defaults (or ``--config``/``--set``):
manifest -> spectrograms (one rank) -> ``train`` -> ``evaluate``. Every method is scored on
the same test clips: the CNN, the nearest-centroid and MFCC + SVM baselines and the CNN + SVM
ensemble that ``genreflow evaluate`` reports.

Prints one row per fold and the mean ± sd (sample standard deviation over folds) of clip
accuracy, macro-F1 and training seconds, and writes JSON (``--json``, default
``benchmarks/out/accuracy.json``). With few clips per genre, clips of one artist often land on
both sides of a split, so the absolute figures are optimistic; compare methods, not datasets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "accuracy.json"
DEFAULT_WORKDIR = Path(__file__).resolve().parent / "out" / "work-accuracy"

#: (row name, key in metrics.json or None for the CNN itself).
METHODS = (
    ("CNN", None),
    ("MFCC + SVM", "classical"),
    ("CNN + SVM ensemble", "ensemble"),
    ("nearest centroid", "baseline"),
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "data", metavar="DATA_DIR", help="folder-per-genre dataset (or GTZAN layout)"
    )
    parser.add_argument("--folds", type=int, default=5, help="number of folds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fold shuffle")
    parser.add_argument(
        "--valid-per-genre",
        type=int,
        default=None,
        help="validation clips per genre, taken from the train folds (default: 0 when the config "
        "exports the last epoch, train.export: last, else 1)",
    )
    parser.add_argument(
        "--only", type=int, nargs="*", default=None, help="run only these folds (0-based)"
    )
    parser.add_argument("--config", default=None, help="config file (default: built-in defaults)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="KEY=VALUE",
        help="override a config key (repeatable), as for genreflow",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="scratch folder")
    parser.add_argument("--json", type=Path, default=DEFAULT_OUT, help="where to write the results")
    parser.add_argument("--label", default="", help="a name for this run, stored in the JSON")
    return parser.parse_args(argv)


def run_fold(clips, *, fold_dir: Path, cfg: dict, threads: dict) -> dict:
    """manifest -> spectrograms -> train -> evaluate for one fold; its scores and timings."""
    from genreflow.data.manifest_csv import write_manifest
    from genreflow.evaluation.evaluate import evaluate_model
    from genreflow.spectrograms.stage import run_spectrograms
    from genreflow.training.fit import train_model

    if fold_dir.exists():
        shutil.rmtree(fold_dir)  # always fresh: no resumed checkpoints
    fold_dir.mkdir(parents=True)
    manifest = fold_dir / "manifest.csv"
    write_manifest(manifest, clips, info={"method": "cross-validation fold"})
    t0 = time.perf_counter()
    run_spectrograms(manifest=manifest, out=fold_dir / "features", cfg=cfg)
    t1 = time.perf_counter()
    result = train_model(
        features_dir=fold_dir / "features",
        out_dir=fold_dir / "model",
        cfg=cfg,
        threads=threads,
        verbose=0,
    )
    t2 = time.perf_counter()
    metrics = evaluate_model(model_dir=fold_dir / "model", features_dir=fold_dir / "features")
    t3 = time.perf_counter()
    row = {
        "n_train": sum(c.split == "train" for c in clips),
        "n_valid": sum(c.split == "valid" for c in clips),
        "n_test": sum(c.split == "test" for c in clips),
        "spectrogram_seconds": round(t1 - t0, 2),
        "evaluate_seconds": round(t3 - t2, 2),
        "best_epoch": result.best_epoch,
        "epochs_done": result.epochs_done,
        "stopped": result.stopped,
    }
    for name, key in METHODS:
        scores = metrics if key is None else metrics.get(key) or {}
        seconds = t2 - t1 if key is None else scores.get("seconds")
        row[name] = {
            "clip_accuracy": scores.get("clip_accuracy"),
            "macro_f1": scores.get("macro_f1"),
            "train_seconds": round(seconds, 2) if seconds is not None else None,
        }
    return row


def mean_sd(values) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(rows: list[dict]) -> dict:
    out = {}
    for name, _ in METHODS:
        out[name] = {}
        for metric in ("clip_accuracy", "macro_f1", "train_seconds"):
            m, sd = mean_sd([r[name][metric] for r in rows])
            out[name][metric] = {"mean": m, "sd": sd}
    return out


def format_table(rows: list[dict], summary: dict, folds: list[int]) -> str:
    lines = [f"{'method':20} {'fold':>5} {'clip acc':>9} {'macro-F1':>9} {'train s':>8}"]
    for name, _ in METHODS:
        for k, row in zip(folds, rows, strict=True):
            s = row[name]
            acc = (
                f"{100 * s['clip_accuracy']:8.1f}%"
                if s["clip_accuracy"] is not None
                else "      n/a"
            )
            f1 = f"{s['macro_f1']:9.3f}" if s["macro_f1"] is not None else "      n/a"
            sec = f"{s['train_seconds']:8.1f}" if s["train_seconds"] is not None else "     n/a"
            lines.append(f"{name:20} {k:>5} {acc} {f1} {sec}")
    lines.append("")
    lines.append(f"{'method':20} {'clip accuracy':>16} {'macro-F1':>15} {'train s':>13}")
    for name, _ in METHODS:
        s = summary[name]
        acc, f1, sec = s["clip_accuracy"], s["macro_f1"], s["train_seconds"]
        lines.append(
            f"{name:20} {100 * acc['mean']:7.1f} ± {100 * acc['sd']:4.1f} %"
            f" {f1['mean']:7.3f} ± {f1['sd']:5.3f} {sec['mean']:6.1f} ± {sec['sd']:4.1f}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from genreflow.commands._common import config_from_args
    from genreflow.core.config import config_hash
    from genreflow.core.threads import configure_tensorflow, keep_freed_memory, set_thread_env
    from genreflow.data.manifest import discover
    from genreflow.data.splits import cross_validation_folds

    cfg = config_from_args(args)  # --config and --set exactly as the genreflow commands read them
    # production_threads "auto" is the workflow's choice from its sweep: here, every core.
    intra = cfg["train"]["production_threads"]
    intra = (os.cpu_count() or 1) if intra == "auto" else int(intra)
    inter = cfg["train"]["inter_op_threads"]
    inter = intra if inter == "auto" else int(inter)
    set_thread_env(intra_op=intra, inter_op=inter)
    keep_freed_memory()
    threads = configure_tensorflow(intra_op=intra, inter_op=inter)

    if args.valid_per_genre is None:
        args.valid_per_genre = 0 if cfg["train"]["export"] == "last" else 1
    clips, skipped = discover(root=args.data)
    for item in skipped:
        print(f"skipped {item.item}: {item.reason}", flush=True)
    plans = cross_validation_folds(
        clips, folds=args.folds, seed=args.seed, valid_per_label=args.valid_per_genre
    )
    chosen = args.only if args.only else list(range(args.folds))
    print(
        f"{len(clips)} clips, {len({c.label for c in clips})} genres, {args.folds} folds "
        f"(seed {args.seed}), running folds {chosen}; train threads {intra}",
        flush=True,
    )
    started = time.perf_counter()
    rows = []
    for k in chosen:
        row = run_fold(plans[k], fold_dir=args.workdir / f"fold-{k}", cfg=cfg, threads=threads)
        rows.append(row)
        cnn, svm = row["CNN"], row["MFCC + SVM"]
        print(
            f"fold {k}: CNN {100 * cnn['clip_accuracy']:.1f}% (epoch {row['best_epoch']}/"
            f"{row['epochs_done']}, {cnn['train_seconds']:.0f} s), MFCC+SVM "
            f"{100 * svm['clip_accuracy']:.1f}%, ensemble {100 * row['CNN + SVM ensemble']['clip_accuracy']:.1f}%",
            flush=True,
        )
    summary = summarise(rows)
    print()
    print(format_table(rows, summary, chosen))
    record = {
        "label": args.label,
        "data": str(Path(args.data).resolve()),
        "n_clips": len(clips),
        "folds": args.folds,
        "seed": args.seed,
        "fold_indices": chosen,
        "valid_per_genre": args.valid_per_genre,
        "overrides": args.overrides,
        "config": cfg,
        "config_hash": config_hash(cfg),
        "per_fold": rows,
        "summary": summary,
        "total_seconds": round(time.perf_counter() - started, 1),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.json} ({record['total_seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    from genreflow.core.errors import GenreflowError

    try:
        raise SystemExit(main())
    except GenreflowError as exc:
        raise SystemExit(f"bench_accuracy: {exc}") from None
