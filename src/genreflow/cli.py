"""The ``genreflow`` command line.

Every sub-command lives in ``genreflow/commands/<name>.py`` and exposes ``HELP``,
``add_arguments(parser)`` and ``run(args) -> int``. Those modules import only the standard
library at the top, so ``genreflow --help`` stays instant; a command imports its stage
(numpy, librosa, TensorFlow...) inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys

from genreflow import __version__, commands
from genreflow.core.errors import GenreflowError

#: Order in ``--help``; commands not listed here follow alphabetically.
ORDER = [
    "demo_data",
    "manifest",
    "spectrograms",
    "embed",
    "train",
    "choose",
    "evaluate",
    "predict",
    "report",
    "serve",
    "stream",
]


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, but not the empty ones (``None``, ``[]``, ``False``) that say nothing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if default is None or default is False or default == [] or default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def _command_modules() -> list[str]:
    found = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    return sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genreflow",
        description="Music genre classification as an HPC workflow: "
        "audio -> log-mel spectrograms (MPI) -> pretrained backbone + head, or a CNN trained "
        "from scratch (TensorFlow) -> genre.",
    )
    parser.add_argument("--version", action="version", version=f"genreflow {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _command_modules():
        module = importlib.import_module(f"genreflow.commands.{name}")
        cmd = sub.add_parser(
            name.replace("_", "-"),
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=_HelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args._run(args) or 0)
    except GenreflowError as exc:
        print(f"genreflow {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genreflow {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
