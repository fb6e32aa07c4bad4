"""Arguments shared by several sub-commands."""

from __future__ import annotations

import argparse

import yaml


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="YAML",
        default=None,
        help="config file (default: built-in defaults; see config/config.yaml)",
    )
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        dest="overrides",
        help="override one config key, e.g. --set train.epochs=3 (YAML value; repeatable)",
    )


def config_from_args(args: argparse.Namespace) -> dict:
    """The validated config named by ``--config`` with ``--set`` overrides applied."""
    from genreflow.core.config import load_config
    from genreflow.core.errors import ConfigError

    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=3")
        overrides[key.strip()] = yaml.safe_load(value)
    return load_config(args.config, overrides=overrides)


def add_inference_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        metavar="N",
        type=int,
        default=None,
        help="TensorFlow intra-op threads (none given: TensorFlow's choice, one per core)",
    )


def setup_inference_threads(threads: int | None) -> None:
    """Apply ``--threads`` (if given) before TensorFlow starts, then quieten it.

    Must run before anything imports TensorFlow: thread pools cannot change afterwards.
    """
    from genreflow.core.errors import ConfigError
    from genreflow.core.threads import keep_freed_memory, quiet_tensorflow, start_tensorflow

    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads must be >= 1, got {threads}")
        start_tensorflow(intra_op=threads, inter_op=1)
    quiet_tensorflow()
    keep_freed_memory()
