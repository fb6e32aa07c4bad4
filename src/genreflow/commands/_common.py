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
    from genreflow.config import load_config
    from genreflow.errors import ConfigError

    overrides = {}
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. train.epochs=3")
        overrides[key.strip()] = yaml.safe_load(value)
    return load_config(args.config, overrides=overrides)
