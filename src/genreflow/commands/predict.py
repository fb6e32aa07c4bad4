"""``genreflow predict``: the genre of audio files, with a trained model directory."""

from __future__ import annotations

import argparse

from genreflow.commands._common import add_inference_threads_argument, setup_inference_threads

HELP = "predict the genre of audio files with a trained model"
DESCRIPTION = (
    "Decode each FILE (wav, au, flac, ogg, mp3; any rate or channel count), cut it into the "
    "model's segments and average the segment probabilities. Prints the top-k genres per file, "
    "or one JSON document with --json. A multi-label model also gives every genre whose "
    "probability reaches its threshold (tuned on the valid split, stored in genreflow.json): "
    "the 'labels' line, or 'labels' in the JSON. A file that cannot be read, or that the model's "
    "training would have skipped (shorter than audio.min_seconds, or silent: quieter than "
    "audio.silence_dbfs, both from the model's genreflow.json), gets a one-line error on stderr; "
    "the others are still predicted, and the exit status is 1. With --allow-unusable, silent and "
    "too-short files are predicted anyway and flagged 'unusable' with the reason."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_DIR", help="model directory from `genreflow train`")
    parser.add_argument("files", metavar="FILE", nargs="+", help="audio files")
    parser.add_argument("--top-k", metavar="K", type=int, default=3, help="genres shown per file")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--allow-unusable",
        action="store_true",
        help="predict silent or too-short files anyway, flagged 'unusable' with the reason, "
        "instead of reporting them as errors",
    )
    add_inference_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from genreflow.core.errors import AudioError, ConfigError

    if args.top_k < 1:
        raise ConfigError(f"--top-k must be >= 1, got {args.top_k}")
    setup_inference_threads(args.threads)

    from genreflow.prediction.predictor import Predictor

    predictor = Predictor(args.model)
    results, failed = [], 0
    for path in args.files:
        try:
            prediction = predictor.predict_file(path, allow_unusable=args.allow_unusable)
        except AudioError as exc:
            failed += 1
            print(f"genreflow predict: error: {exc}", file=sys.stderr, flush=True)
            if args.json:
                results.append({"file": path, "error": exc.reason})
            continue
        if args.json:
            results.append(prediction.to_dict(top_k=args.top_k))
        else:
            print(format_prediction(prediction, top_k=args.top_k), flush=True)
    if args.json:
        print(json.dumps({"model": args.model, "predictions": results}, indent=2))
    return 1 if failed else 0


def format_prediction(prediction, *, top_k: int) -> str:
    """``FILE  (duration, segments[, padding note])`` then ``rank  genre  probability`` lines.

    ``unusable:`` (a clip predicted despite being silent or too short) and ``note:`` (from the
    decoder) lines come first; a multi-label prediction then has a ``labels:`` line: the genres
    over their thresholds.
    """
    summary = f"{prediction.duration:.1f} s, {len(prediction.offsets)} segment(s)"
    if prediction.short:
        summary += ", shorter than one segment: zero-padded"
    lines = [f"{prediction.source}  ({summary})"]
    if prediction.unusable:
        lines.append(f"  unusable: {prediction.unusable}; predicted anyway (--allow-unusable)")
    lines += [f"  note: {note}" for note in prediction.notes]
    if prediction.multilabel:
        over = ", ".join(prediction.predicted_labels) or "none over its threshold"
        lines.append(f"  labels: {over}")
    for rank, (label, probability) in enumerate(prediction.top(top_k), start=1):
        lines.append(f"  {rank:>2}  {label:<14} {probability:6.1%}")
    return "\n".join(lines)
