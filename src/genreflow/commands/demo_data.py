"""``genreflow demo-data``: write the synthetic demo dataset in GTZAN layout."""

from __future__ import annotations

import argparse

HELP = "write the synthetic demo dataset (GTZAN layout, 10 genres)"
DESCRIPTION = (
    "Synthesise deterministic demo music for GTZAN's ten genres and write it as "
    "DIR/<genre>/<genre>.NNNNN.wav (22050 Hz mono 16-bit PCM), plus DIR/README.md and "
    "DIR/demo.json recording how it was made. The same seed gives bit-identical files; clip i "
    "is the same whatever --clips-per-genre is. Values not given on the command line come from "
    "data.demo in --config (built-in defaults: 20 clips per genre, 10 s, seed 0). With "
    "--multilabel: a multi-label dataset instead, DIR/<genre>/<genre>-ml.NNNNN.wav where about "
    "two clips in three mix a second genre in, and DIR/labels.csv (path,label,labels) for "
    "`genreflow manifest --csv`."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from genreflow.commands._common import add_config_arguments

    parser.add_argument("--out", metavar="DIR", required=True, help="dataset folder to write")
    # SUPPRESS: an option left out falls back to data.demo in the config.
    parser.add_argument(
        "--clips-per-genre",
        metavar="N",
        type=int,
        default=argparse.SUPPRESS,
        help="clips per genre (default: data.demo.clips_per_genre, 20)",
    )
    parser.add_argument(
        "--seconds",
        metavar="S",
        type=float,
        default=argparse.SUPPRESS,
        help="length of each clip in seconds (default: data.demo.seconds, 10)",
    )
    parser.add_argument(
        "--seed",
        metavar="K",
        type=int,
        default=argparse.SUPPRESS,
        help="random seed; same seed, same files (default: data.demo.seed, 0)",
    )
    parser.add_argument(
        "--multilabel",
        action="store_true",
        help="write the multi-label demo (clips mixing two genres, plus labels.csv)",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar or progress lines"
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from genreflow.commands._common import config_from_args
    from genreflow.core.config import validate_config
    from genreflow.demo import GENRES, write_demo_dataset, write_multilabel_demo_dataset

    cfg = config_from_args(args)
    demo = dict(cfg["data"]["demo"])
    for key in ("clips_per_genre", "seconds", "seed"):
        if hasattr(args, key):
            demo[key] = getattr(args, key)
    # Command-line values obey the same rules as config values (and name the key).
    cfg["data"]["demo"] = demo
    validate_config(cfg, source="command line")

    start = time.monotonic()
    writer = write_multilabel_demo_dataset if args.multilabel else write_demo_dataset
    paths = writer(
        out=Path(args.out),
        clips_per_genre=demo["clips_per_genre"],
        seconds=demo["seconds"],
        seed=demo["seed"],
        show_progress=not args.no_progress,
    )
    elapsed = time.monotonic() - start
    kind = "multi-label clips" if args.multilabel else "clips"
    extra = f", labels in {Path(args.out) / 'labels.csv'}" if args.multilabel else ""
    print(
        f"demo-data: {len(paths)} {kind} ({demo['clips_per_genre']} per genre x {len(GENRES)} "
        f"genres) of {demo['seconds']:g} s, seed {demo['seed']}, in {Path(args.out)}{extra} "
        f"({elapsed:.1f} s)"
    )
    return 0
