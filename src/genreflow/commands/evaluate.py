"""``genreflow evaluate``: test-split metrics of a trained model, beside a simple baseline."""

from __future__ import annotations

import argparse

HELP = "evaluate a model on the test split (metrics.json, confusion.png)"
DESCRIPTION = (
    "Score a model directory on the test split of a feature directory: segment- and clip-level "
    "accuracy (a clip is the average of its segments' probabilities), macro-F1, per-genre "
    "precision/recall/F1 and the confusion matrix, beside a nearest-centroid baseline on mean "
    "spectra. Writes metrics.json and confusion.png to --out (default: the model directory)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", metavar="MODEL_DIR", required=True, help="model directory")
    parser.add_argument("--features", metavar="DIR", required=True, help="feature directory")
    parser.add_argument(
        "--out", metavar="EVAL_DIR", default=None, help="output folder (none given: MODEL_DIR)"
    )
    parser.add_argument(
        "--split", default="test", choices=("train", "valid", "test"), help="split to evaluate"
    )
    parser.add_argument(
        "--threads",
        metavar="N",
        type=int,
        default=None,
        help="TensorFlow intra-op threads (none given: TensorFlow's choice, one per core)",
    )


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from genreflow.errors import ConfigError
    from genreflow.threads import (
        configure_tensorflow,
        keep_freed_memory,
        quiet_tensorflow,
        set_thread_env,
    )

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {args.threads}")
        set_thread_env(intra_op=args.threads, inter_op=1)
        configure_tensorflow(intra_op=args.threads, inter_op=1)
    quiet_tensorflow()
    keep_freed_memory()

    from genreflow.evaluate import evaluate_model, format_summary

    metrics = evaluate_model(
        model_dir=args.model, features_dir=args.features, out_dir=args.out, split=args.split
    )
    out = Path(args.out or args.model)
    print(format_summary(metrics))
    print(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}")
    return 0
