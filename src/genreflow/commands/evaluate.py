"""``genreflow evaluate``: test-split metrics of a trained model, beside a simple baseline."""

from __future__ import annotations

import argparse

from genreflow.commands._common import add_inference_threads_argument, setup_inference_threads

HELP = "evaluate a model on the test split (metrics.json, confusion.png)"
DESCRIPTION = (
    "Score a model directory on the test split of a feature directory: segment- and clip-level "
    "accuracy (a clip is the average of its segments' probabilities), macro-F1, per-genre "
    "precision/recall/F1 and the confusion matrix, beside two baselines fitted on the train "
    "(and valid) clips: MFCC + SVM (with the CNN + SVM ensemble) and a nearest centroid on "
    "mean spectra. Writes metrics.json and confusion.png to --out (default: the model "
    "directory). "
    "A multi-label model gets per-label precision/recall/F1/average precision at its stored "
    "thresholds, micro/macro-F1 and mAP beside a label-prior baseline, and confusion.png "
    "holds a per-label F1/AP bar chart instead of a confusion matrix."
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
    add_inference_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    setup_inference_threads(args.threads)

    from genreflow.evaluation.evaluate import evaluate_model, format_summary

    metrics = evaluate_model(
        model_dir=args.model, features_dir=args.features, out_dir=args.out, split=args.split
    )
    out = Path(args.out or args.model)
    print(format_summary(metrics))
    print(f"wrote {out / 'metrics.json'} and {out / 'confusion.png'}")
    return 0
