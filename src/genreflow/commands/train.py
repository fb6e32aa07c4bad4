"""``genreflow train``: train the genre CNN on a feature directory."""

from __future__ import annotations

import argparse

from genreflow.commands._common import add_config_arguments, config_from_args

HELP = "train the genre CNN on spectrogram features (model.keras + genreflow.json)"
DESCRIPTION = (
    "Train the CNN on the train split of a feature directory (from `genreflow spectrograms`), "
    "with early stopping on the valid split, and export MODEL_DIR/model.keras, genreflow.json, "
    "history.json and timings.json. A checkpoint is saved every epoch in MODEL_DIR/checkpoints/: "
    "running the same command again after an interruption continues from the last one."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", metavar="DIR", required=True, help="feature directory")
    parser.add_argument(
        "--out", metavar="MODEL_DIR", required=True, help="model directory to write"
    )
    parser.add_argument(
        "--threads",
        metavar="N",
        type=int,
        default=None,
        help="TensorFlow intra-op threads (none given: config train.production_threads)",
    )
    parser.add_argument(
        "--epochs",
        metavar="N",
        type=int,
        default=None,
        help="epochs (none given: config train.epochs)",
    )
    parser.add_argument(
        "--max-seconds",
        metavar="S",
        type=float,
        default=None,
        help="stop after this many seconds of training (none given: config train.max_seconds)",
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from genreflow.errors import ConfigError
    from genreflow.threads import configure_tensorflow, keep_freed_memory, set_thread_env

    cfg = config_from_args(args)
    for name in ("threads", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be >= 1, got {value}")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise ConfigError(f"--max-seconds must be > 0, got {args.max_seconds}")
    intra = args.threads or cfg["train"]["production_threads"]
    inter = cfg["train"]["inter_op_threads"]
    # The environment must be in place before TensorFlow (and its OpenMP/BLAS) is imported.
    set_thread_env(intra_op=intra, inter_op=inter)
    keep_freed_memory()
    threads = configure_tensorflow(intra_op=intra, inter_op=inter)

    from genreflow.train import train_model

    train_model(
        features_dir=args.features,
        out_dir=args.out,
        cfg=cfg,
        threads=threads,
        epochs=args.epochs,
        max_seconds=args.max_seconds,
    )
    return 0
