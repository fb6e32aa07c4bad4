"""``genreflow manifest``: list a dataset's clips with labels and train/valid/test splits."""

from __future__ import annotations

import argparse

from genreflow.commands._common import add_config_arguments, config_from_args

HELP = "list a dataset's clips, labels and train/valid/test splits (manifest.csv)"
DESCRIPTION = (
    "Find the audio clips of a dataset (GTZAN layout DIR/genres/<label>/, DIR/genres_original/"
    "<label>/, any DIR/<label>/ tree, or a CSV with path,label[,group][,labels][,split]), assign "
    "train/valid/test splits (split.method: auto, stratified, gtzan-filtered, column) and write "
    "manifest.csv plus manifest.json (split method, seed, counts, what was skipped and why)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="dataset folder; if not given, config data.root",
    )
    parser.add_argument(
        "--csv",
        metavar="FILE",
        default=None,
        help="dataset CSV used instead of folder discovery (relative paths in it are relative "
        "to its folder); if not given, config data.csv",
    )
    parser.add_argument(
        "--out",
        metavar="CSV",
        required=True,
        default=argparse.SUPPRESS,
        help="manifest to write; the sidecar is the same name with .json",
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from genreflow.core.config import config_hash
    from genreflow.data.manifest import make_manifest

    cfg = config_from_args(args)
    make_manifest(
        out=args.out,
        split=cfg["split"],
        config_hash=config_hash(cfg, ("split",)),
        data=args.data or cfg["data"]["root"] or None,
        csv_file=args.csv or cfg["data"]["csv"] or None,
    )
    return 0
