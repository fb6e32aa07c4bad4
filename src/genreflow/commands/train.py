"""``genreflow train``: train the genre CNN on a feature directory."""

from __future__ import annotations

import argparse

from genreflow.commands._common import add_config_arguments, config_from_args

HELP = "train the genre classifier on spectrogram features (model.keras + genreflow.json)"
DESCRIPTION = (
    "Train the CNN on the train split of a feature directory (from `genreflow spectrograms`) "
    "for train.epochs epochs (early stopping on the valid split only with train.patience set) "
    "and export MODEL_DIR/model.keras (the last epoch, or with train.export: best the epoch "
    "of lowest validation loss), genreflow.json, history.json and timings.json. Shards are "
    "checked against their SHA-256 first. A checkpoint is saved every epoch in "
    "MODEL_DIR/checkpoints/: "
    "running the same command again after an interruption continues from the last one. "
    "With train.model.backbone set (musicnn-msd), the pretrained backbone embeds the train "
    "segments (or --embeddings gives them, from `genreflow embed`) and a logistic-regression "
    "head is fitted on top in seconds; the exported model holds both."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--features", metavar="DIR", required=True, help="feature directory")
    parser.add_argument(
        "--out", metavar="MODEL_DIR", required=True, help="model directory to write"
    )
    threads = parser.add_mutually_exclusive_group()
    threads.add_argument(
        "--threads",
        metavar="N",
        type=int,
        default=None,
        help="TensorFlow intra-op threads (none given: config train.production_threads); with "
        "train.bind_cores the process is bound to N cores",
    )
    threads.add_argument(
        "--threads-from",
        metavar="FILE",
        default=None,
        help="take the thread count from a sweep's production.json (`genreflow choose`)",
    )
    parser.add_argument(
        "--sweep-point",
        action="store_true",
        help="this run is a timing point of the thread or workers sweep (recorded as such in "
        "timings.json; the report leaves production runs out of its speed-ups)",
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
    parser.add_argument(
        "--workers",
        metavar="auto|N",
        default="auto",
        help="data-parallel workers (docs/distributed.md): auto = as many as the environment "
        "has (TF_CONFIG, or the tasks of an `srun` step; else 1); N > 1 without either starts "
        "N local workers on 127.0.0.1",
    )
    parser.add_argument(
        "--embeddings",
        metavar="DIR",
        default=None,
        help="with train.model.backbone: the `genreflow embed` output of these features "
        "(none given: embed here)",
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from genreflow.core.errors import ConfigError

    cfg = config_from_args(args)
    for name in ("threads", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be >= 1, got {value}")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise ConfigError(f"--max-seconds must be > 0, got {args.max_seconds}")
    workers = parse_workers(args.workers)
    threads = args.threads
    if args.threads_from:
        from genreflow.report.production import read_choice

        threads = int(read_choice(args.threads_from)["chosen"])

    from genreflow.training.launch import train

    return train(
        features_dir=args.features,
        out_dir=args.out,
        cfg=cfg,
        threads=threads,
        threads_from=args.threads_from,
        epochs=args.epochs,
        max_seconds=args.max_seconds,
        workers=workers,
        embeddings_dir=args.embeddings,
        role="sweep" if args.sweep_point else "production",
        config_file=args.config,
        overrides=args.overrides,
    )


def parse_workers(value: str) -> int | None:
    """``--workers``: ``auto`` -> None, else a count >= 1."""
    from genreflow.core.errors import ConfigError

    if value == "auto":
        return None
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise ConfigError(f"--workers must be 'auto' or an integer >= 1, got '{value}'")
    return count
