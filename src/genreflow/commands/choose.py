"""``genreflow choose``: the production setting of a stage, from its sweep's timings."""

from __future__ import annotations

import argparse

HELP = "pick the fastest setting of a rank or thread sweep for the production job"
DESCRIPTION = (
    "Read the timings.json of every run of one sweep (spectrogram rank counts, or training "
    "thread counts) and write production.json naming the fastest count, by the measure the "
    "report's speed-ups use, with the figures it was chosen from. The workflow runs this when "
    "preprocess.production_ranks or train.production_threads is auto; `genreflow train "
    "--threads-from production.json` then trains with the chosen thread count."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--timings", metavar="FILE", nargs="+", required=True, help="the sweep's timings.json files"
    )
    parser.add_argument("--out", metavar="FILE", required=True, help="production.json to write")
    parser.add_argument(
        "--link",
        metavar="PATH",
        default=None,
        help="also point this symlink at the chosen run's folder (e.g. features/H/production)",
    )


def run(args: argparse.Namespace) -> int:
    from genreflow.report.production import choose_setting, write_choice

    choice = choose_setting(timings=args.timings)
    write_choice(choice, out=args.out, link=args.link)
    print(choice["text"])
    return 0
