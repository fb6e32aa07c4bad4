"""``genreflow train``: train the genre CNN on a feature directory."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

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
    from genreflow.core.threads import keep_freed_memory, start_tensorflow

    cfg = config_from_args(args)
    for name in ("threads", "epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name} must be >= 1, got {value}")
    if args.max_seconds is not None and args.max_seconds <= 0:
        raise ConfigError(f"--max-seconds must be > 0, got {args.max_seconds}")
    if cfg["train"]["model"]["backbone"] != "none":
        return _train_head(args, cfg=cfg)
    requested = parse_workers(args.workers)
    if requested is not None and requested > 1 and not os.environ.get("TF_CONFIG"):
        from genreflow.training.distributed import detect_workers

        if detect_workers(requested=None).source == "single":
            from genreflow.training.launch import run_local_workers

            return run_local_workers(worker_command(args), count=requested)
    from genreflow.training.distributed import detect_workers

    group = detect_workers(requested=requested)
    intra = production_threads(args, cfg)
    inter = cfg["train"]["inter_op_threads"]
    inter = intra if inter == "auto" else int(inter)
    # The environment must be in place before TensorFlow (and its OpenMP/BLAS) is imported.
    keep_freed_memory()
    with restored_affinity():
        threads = start_tensorflow(intra_op=intra, inter_op=inter, bind=cfg["train"]["bind_cores"])
        _train(args, cfg=cfg, group=group, threads=threads)
    return 0


def _train_head(args: argparse.Namespace, *, cfg) -> int:
    """A head on the pretrained backbone: one process, seconds after embedding."""
    from genreflow.core.threads import keep_freed_memory, quiet_tensorflow, start_tensorflow

    if parse_workers(args.workers) not in (None, 1):
        print("train: a backbone's head is fitted in one process (--workers ignored)", flush=True)
    intra = production_threads(args, cfg)
    keep_freed_memory()
    with restored_affinity():
        threads = start_tensorflow(intra_op=intra, inter_op=1, bind=cfg["train"]["bind_cores"])
        quiet_tensorflow()
        from genreflow.training.head import train_head

        train_head(
            features_dir=args.features,
            out_dir=args.out,
            cfg=cfg,
            threads=threads,
            embeddings_dir=args.embeddings,
        )
    return 0


def _train(args: argparse.Namespace, *, cfg, group, threads) -> None:
    """The worker group's strategy, then training (threads and cores already set)."""
    from genreflow.training.distributed import build_strategy

    # The strategy right after the thread settings: it starts TensorFlow's runtime.
    strategy, group = build_strategy(group, port_base=cfg["train"]["port_base"])

    from genreflow.training.fit import train_model

    train_model(
        features_dir=args.features,
        out_dir=args.out,
        cfg=cfg,
        threads=threads,
        epochs=args.epochs,
        max_seconds=args.max_seconds,
        workers=group,
        strategy=strategy,
        role="sweep" if args.sweep_point else "production",
    )


def production_threads(args: argparse.Namespace, cfg) -> int:
    """``--threads``, else the count of ``--threads-from``, else ``train.production_threads``."""

    if args.threads:
        return args.threads
    if args.threads_from:
        from genreflow.report.production import read_choice

        return int(read_choice(args.threads_from)["chosen"])
    value = cfg["train"]["production_threads"]
    if value == "auto":
        # The workflow passes the sweep's choice; run by hand, take every CPU we may use.
        from genreflow.core.threads import usable_cpus

        count = usable_cpus()
        print(
            f"train: train.production_threads is auto and no sweep choice was given "
            f"(--threads-from): using the {count} CPU(s) this process may run on",
            flush=True,
        )
        return count
    return int(value)


@contextlib.contextmanager
def restored_affinity():
    """Give the calling thread its CPU affinity back afterwards (``train.bind_cores`` binds
    it): a caller that trains in-process (tests, notebooks) keeps all of its cores."""
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    original = os.sched_getaffinity(0)
    try:
        yield
    finally:
        os.sched_setaffinity(0, original)


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


def worker_command(args: argparse.Namespace) -> list[str]:
    """The command line each local worker runs: this one, rebuilt from ``args``."""
    command = [sys.executable, "-m", "genreflow", "train"]
    command += ["--features", args.features, "--out", args.out, "--workers", args.workers]
    for option in ("threads", "threads_from", "epochs", "max_seconds"):
        value = getattr(args, option)
        if value is not None:
            command += [f"--{option.replace('_', '-')}", str(value)]
    if args.sweep_point:
        command.append("--sweep-point")
    if args.config:
        command += ["--config", str(args.config)]
    for setting in args.overrides:
        command += ["--set", setting]
    return command
