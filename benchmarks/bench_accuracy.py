"""Model quality on real music: every method on the same clips, by cross-validation or on new artists.

Usage::

    .venv/bin/python benchmarks/bench_accuracy.py DATA_DIR                       # 5 folds, seed 0
    .venv/bin/python benchmarks/bench_accuracy.py DATA_DIR --test-data OTHER_DIR  # train all, test other
    .venv/bin/python benchmarks/bench_accuracy.py DATA_DIR --config config/config.yaml --set train.head.c=0.1

Two protocols. By default the clips of ``DATA_DIR`` (found by ``genreflow manifest``'s
discovery) are split into ``--folds`` stratified folds (scikit-learn's ``StratifiedKFold``,
shuffled with ``--seed``); every fold is the test split once and the other clips train. With
``--test-data DIR`` every clip of ``DATA_DIR`` trains and every clip of ``DIR`` is the test:
the honest question when ``DIR`` holds other artists ("does it recognise the genre of music
it has never heard?"), which random folds cannot ask (one artist's clips land on both sides).
``DATA_DIR`` may also be a CSV (``path,label[,group]``, as ``genreflow manifest --csv`` reads):
``--grouped`` then cuts the folds so that no group (artist, album) is on both sides.

Every fold runs the package's own stages in this process, once per model (``--models``):
manifest -> spectrograms (one rank) -> ``train`` -> ``evaluate``, each model with its own front
end. ``backbone``: the config's pretrained backbone (musicnn-msd when the config says none)
with its logistic-regression head. ``cnn``: the from-scratch CNN (``train.model.backbone:
none``) on its own front end (the schema's audio/mel defaults unless the config already uses
the CNN); its evaluation also scores the nearest-centroid and MFCC + SVM baselines and the CNN +
SVM ensemble. Every method is scored on the same test clips.

Prints one row per fold and method, then the mean ± sd (sample standard deviation over folds)
of clip accuracy, per-genre mean accuracy (the mean of each genre's recall: unbalanced test
sets cannot hide a genre the model never gets), macro-F1 and training seconds, and writes JSON
(``--json``, default ``benchmarks/out/accuracy.json``).
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

#: Rows of each model run: (row name, key in metrics.json or None for the model itself).
MODEL_METHODS = {
    "backbone": (("musicnn + head", None),),
    "cnn": (
        ("CNN", None),
        ("MFCC + SVM", "classical"),
        ("CNN + SVM ensemble", "ensemble"),
        ("nearest centroid", "baseline"),
    ),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "data",
        metavar="DATA_DIR",
        help="folder-per-genre dataset (or GTZAN layout), or a CSV as for `genreflow manifest "
        "--csv` (path,label[,group])",
    )
    parser.add_argument(
        "--test-data",
        metavar="DIR",
        default=None,
        help="train on all of DATA_DIR and test on the clips of DIR (e.g. other artists) "
        "instead of cross-validation",
    )
    parser.add_argument(
        "--models",
        default="backbone,cnn",
        help="comma-separated models to run per fold: backbone (pretrained backbone + head), "
        "cnn (from-scratch CNN and the baselines its evaluation scores)",
    )
    parser.add_argument("--folds", type=int, default=5, help="number of folds")
    parser.add_argument(
        "--grouped",
        action="store_true",
        help="grouped folds: no `group` (artist, album; from a CSV's group column) on both "
        "sides of a fold (StratifiedGroupKFold)",
    )
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


def model_configs(cfg: dict, models: list[str]) -> dict[str, dict]:
    """The config of each model run: the backbone with its front end, the CNN with its own."""
    import copy

    from genreflow.backbones.musicnn import PATCH_FRAMES
    from genreflow.core.config import BACKBONE_FRONT_ENDS, validate_config

    out = {}
    backbone = cfg["train"]["model"]["backbone"]
    if "backbone" in models:
        bb = copy.deepcopy(cfg)
        if backbone == "none":
            bb["train"]["model"]["backbone"] = "musicnn-msd"
            for dotted, value in BACKBONE_FRONT_ENDS["musicnn-msd"].items():
                section, key = dotted.split(".")
                bb[section][key] = value
            # musicnn's patch: PATCH_FRAMES hops of the front end (187 x 256 / 16000 = 2.992 s)
            bb["audio"]["segment_seconds"] = (
                PATCH_FRAMES * bb["mel"]["hop_length"] / bb["audio"]["sample_rate"]
            )
        out["backbone"] = validate_config(bb, source="backbone model config")
    if "cnn" in models:
        cnn = copy.deepcopy(cfg)
        cnn["train"]["model"]["backbone"] = "none"
        if backbone != "none":  # the CNN's own front end: the schema's defaults
            defaults = validate_config({})
            cnn["audio"], cnn["mel"] = defaults["audio"], defaults["mel"]
        out["cnn"] = validate_config(cnn, source="CNN model config")
    unknown = set(models) - set(MODEL_METHODS)
    if unknown:
        raise SystemExit(
            f"bench_accuracy: unknown --models {sorted(unknown)}; known: backbone, cnn"
        )
    return out


def genre_mean_accuracy(confusion) -> float | None:
    """Mean over genres present in the test clips of each genre's recall (rows: true genre)."""
    if not confusion:
        return None
    recalls = [row[i] / sum(row) for i, row in enumerate(confusion) if sum(row) > 0]
    return sum(recalls) / len(recalls) if recalls else None


def run_fold(clips, *, fold_dir: Path, configs: dict[str, dict], threads: dict) -> dict:
    """manifest -> spectrograms -> train -> evaluate for one fold and every model."""
    from genreflow.data.manifest import write_manifest

    if fold_dir.exists():
        shutil.rmtree(fold_dir)  # always fresh: no resumed checkpoints
    fold_dir.mkdir(parents=True)
    manifest = fold_dir / "manifest.csv"
    write_manifest(manifest, clips, info={"method": "cross-validation fold"})
    row = {
        "n_train": sum(c.split == "train" for c in clips),
        "n_valid": sum(c.split == "valid" for c in clips),
        "n_test": sum(c.split == "test" for c in clips),
    }
    for model, cfg in configs.items():
        row.update(
            run_model(model, manifest=manifest, work=fold_dir / model, cfg=cfg, threads=threads)
        )
    return row


def run_model(model: str, *, manifest: Path, work: Path, cfg: dict, threads: dict) -> dict:
    from genreflow.evaluation.evaluate import evaluate_model
    from genreflow.spectrograms.stage import run_spectrograms

    t0 = time.perf_counter()
    run_spectrograms(manifest=manifest, out=work / "features", cfg=cfg)
    t1 = time.perf_counter()
    extra = {}
    if model == "backbone":
        from genreflow.training.head import train_head

        train_head(features_dir=work / "features", out_dir=work / "model", cfg=cfg, threads=threads)
    else:
        from genreflow.training.fit import train_model

        result = train_model(
            features_dir=work / "features",
            out_dir=work / "model",
            cfg=cfg,
            threads=threads,
            verbose=0,
        )
        extra = {"best_epoch": result.best_epoch, "epochs_done": result.epochs_done}
    t2 = time.perf_counter()
    metrics = evaluate_model(model_dir=work / "model", features_dir=work / "features")
    t3 = time.perf_counter()
    row = {
        f"{model}_spectrogram_seconds": round(t1 - t0, 2),
        f"{model}_evaluate_seconds": round(t3 - t2, 2),
        **{f"{model}_{k}": v for k, v in extra.items()},
    }
    for name, key in MODEL_METHODS[model]:
        scores = metrics if key is None else metrics.get(key) or {}
        seconds = t2 - t1 if key is None else scores.get("seconds")
        row[name] = {
            "clip_accuracy": scores.get("clip_accuracy"),
            "genre_mean_accuracy": genre_mean_accuracy(scores.get("confusion")),
            "macro_f1": scores.get("macro_f1"),
            "train_seconds": round(seconds, 2) if seconds is not None else None,
        }
    return row


def mean_sd(values) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


METRICS = ("clip_accuracy", "genre_mean_accuracy", "macro_f1", "train_seconds")


def summarise(rows: list[dict], methods: list[str]) -> dict:
    out = {}
    for name in methods:
        out[name] = {}
        for metric in METRICS:
            m, sd = mean_sd([r[name][metric] for r in rows])
            out[name][metric] = {"mean": m, "sd": sd}
    return out


def format_table(rows: list[dict], summary: dict, folds: list, methods: list[str]) -> str:
    def pct(v):
        return f"{100 * v:8.1f}%" if v is not None else "      n/a"

    lines = [
        f"{'method':20} {'fold':>5} {'clip acc':>9} {'genre mean':>10} {'macro-F1':>9} {'train s':>8}"
    ]
    for name in methods:
        for k, row in zip(folds, rows, strict=True):
            s = row[name]
            f1 = f"{s['macro_f1']:9.3f}" if s["macro_f1"] is not None else "      n/a"
            sec = f"{s['train_seconds']:8.1f}" if s["train_seconds"] is not None else "     n/a"
            lines.append(
                f"{name:20} {k!s:>5} {pct(s['clip_accuracy'])} {pct(s['genre_mean_accuracy'])} {f1} {sec}"
            )
    lines.append("")
    lines.append(
        f"{'method':20} {'clip accuracy':>16} {'genre mean acc.':>16} {'macro-F1':>15} {'train s':>13}"
    )
    for name in methods:
        s = summary[name]
        acc, gm, f1, sec = (s[m] for m in METRICS)
        lines.append(
            f"{name:20} {100 * acc['mean']:7.1f} ± {100 * acc['sd']:4.1f} %"
            f" {100 * gm['mean']:7.1f} ± {100 * gm['sd']:4.1f} %"
            f" {f1['mean']:7.3f} ± {f1['sd']:5.3f} {sec['mean']:6.1f} ± {sec['sd']:4.1f}"
        )
    return "\n".join(lines)


def read_clips(source: str):
    """The clips of a dataset folder (``genreflow manifest`` discovery) or of a CSV."""
    if str(source).lower().endswith(".csv"):
        from genreflow.data.manifest import read_csv

        return read_csv(path=source)
    from genreflow.data.manifest import discover

    return discover(root=source)


def new_artists_plan(clips, args) -> list:
    """Every clip of DATA_DIR trains (less --valid-per-genre per genre), every clip of
    --test-data is the test split."""
    import dataclasses

    tests, skipped = read_clips(args.test_data)
    for item in skipped:
        print(f"skipped {item.item}: {item.reason}", flush=True)
    clash = {c.clip_id for c in clips} & {c.clip_id for c in tests}
    if clash:
        raise SystemExit(f"bench_accuracy: clip ids in both folders, e.g. {sorted(clash)[0]}")
    valid_left: dict[str, int] = {}
    plan = []
    for clip in clips:
        left = valid_left.setdefault(clip.label, args.valid_per_genre)
        split = "valid" if left > 0 else "train"
        valid_left[clip.label] = left - 1
        plan.append(dataclasses.replace(clip, split=split))
    return plan + [dataclasses.replace(c, split="test") for c in tests]


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from genreflow.commands._common import config_from_args
    from genreflow.core.config import config_hash
    from genreflow.core.threads import configure_tensorflow, keep_freed_memory, set_thread_env
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

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    configs = model_configs(cfg, models)
    methods = [name for m in models for name, _ in MODEL_METHODS[m]]
    if args.valid_per_genre is None:
        args.valid_per_genre = 0 if cfg["train"]["export"] == "last" else 1
    clips, skipped = read_clips(args.data)
    for item in skipped:
        print(f"skipped {item.item}: {item.reason}", flush=True)
    if args.test_data:
        plans, chosen = [new_artists_plan(clips, args)], ["test"]
        protocol = f"train on all {len(clips)} clips of {args.data}, test on {args.test_data}"
    else:
        plans = cross_validation_folds(
            clips,
            folds=args.folds,
            seed=args.seed,
            valid_per_label=args.valid_per_genre,
            grouped=args.grouped,
        )
        chosen = args.only if args.only else list(range(args.folds))
        kind = "grouped " if args.grouped else ""
        protocol = f"{args.folds} {kind}folds (seed {args.seed}), running folds {chosen}"
    print(
        f"{len(clips)} clips, {len({c.label for c in clips})} genres, {protocol}; "
        f"models {', '.join(models)}; train threads {intra}",
        flush=True,
    )
    started = time.perf_counter()
    rows = []
    for k in chosen:
        plan = plans[0] if k == "test" else plans[k]
        row = run_fold(plan, fold_dir=args.workdir / f"fold-{k}", configs=configs, threads=threads)
        rows.append(row)
        shown = ", ".join(
            f"{name} {100 * row[name]['clip_accuracy']:.1f}%"
            for name in methods
            if row[name]["clip_accuracy"] is not None
        )
        print(f"fold {k}: {shown}", flush=True)
    summary = summarise(rows, methods)
    print()
    print(format_table(rows, summary, chosen, methods))
    record = {
        "label": args.label,
        "data": str(Path(args.data).resolve()),
        "n_clips": len(clips),
        "protocol": "test-data"
        if args.test_data
        else ("grouped " if args.grouped else "") + "cross-validation",
        "test_data": str(Path(args.test_data).resolve()) if args.test_data else None,
        "models": models,
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
