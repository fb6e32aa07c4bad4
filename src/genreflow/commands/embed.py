"""``genreflow embed``: every train/valid segment through the pretrained backbone, once."""

from __future__ import annotations

import argparse

from genreflow.commands._common import add_config_arguments, config_from_args

HELP = "embed the segments of a feature directory with the pretrained backbone"
DESCRIPTION = (
    "Run the backbone of train.model.backbone (musicnn-msd: the pretrained musicnn tagger "
    "shipped in the package) over every train and valid segment of a feature directory made "
    "with its front end, and write OUT/embeddings.npz and OUT/timings.json (written last). "
    "`genreflow train --embeddings OUT` then fits the head on them in seconds."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", metavar="DIR", required=True, help="feature directory")
    parser.add_argument("--out", metavar="DIR", required=True, help="embedding directory to write")
    parser.add_argument(
        "--threads",
        metavar="N",
        type=int,
        default=None,
        help="TensorFlow intra-op threads (none given: every CPU this process may use); with "
        "train.bind_cores the process is bound to N cores",
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from genreflow.core.errors import ConfigError
    from genreflow.core.threads import (
        keep_freed_memory,
        quiet_tensorflow,
        start_tensorflow,
        usable_cpus,
    )

    cfg = config_from_args(args)
    backbone = cfg["train"]["model"]["backbone"]
    if backbone == "none":
        raise ConfigError(
            "key 'train.model.backbone' has value \"none\"; allowed for `genreflow embed`: "
            'one of "musicnn-msd" (the from-scratch CNN has no backbone to embed with)'
        )
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, got {args.threads}")
    threads = args.threads or usable_cpus()
    keep_freed_memory()
    settings = start_tensorflow(intra_op=threads, inter_op=1, bind=cfg["train"]["bind_cores"])
    quiet_tensorflow()

    from genreflow.backbones.embed import embed_features
    from genreflow.spectrograms.shards import open_features

    embed_features(
        open_features(args.features, verify=True),
        out_dir=args.out,
        backbone=backbone,
        threads=settings,
    )
    return 0
