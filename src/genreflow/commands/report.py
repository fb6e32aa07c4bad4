"""``genreflow report``: speed-ups, scaling fits, load balance and model quality as md + html."""

from __future__ import annotations

import argparse

HELP = "write the speed-up report (report.md, self-contained report.html, PNGs, summary.json)"
DESCRIPTION = (
    "Read every timings.json (spectrograms, training), history.json, metrics.json and Snakemake "
    "benchmark file under a results folder, and write REPORT_DIR/report.md, a self-contained "
    "REPORT_DIR/report.html (figures embedded), the PNG figures, summary.json and "
    "summary_table.csv: speed-up and efficiency against rank and thread counts with an "
    "Amdahl's-law fit, per-rank load balance, training curves, test accuracy beside the "
    "baseline, and the software environment. Missing inputs give a note, not an error."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        metavar="DIR",
        required=True,
        help="results folder to search (recursively) for timing, metrics and benchmark files",
    )
    parser.add_argument(
        "--out",
        metavar="REPORT_DIR",
        required=True,
        help="folder for the report (created; may lie inside --results)",
    )
    parser.add_argument(
        "--only",
        metavar="FOLDER",
        nargs="+",
        default=None,
        help="the current configuration's folders under --results (features/<fhash>, "
        "embeddings/..., models/<fhash>-<thash>): runs of other configurations in features/, "
        "embeddings/ and models/ are left out (the workflow passes its own)",
    )
    parser.add_argument("--title", default="genreflow speed-up report", help="report title")


def run(args: argparse.Namespace) -> int:
    from genreflow.report import build_report, summary_lines

    summary = build_report(results=args.results, out=args.out, title=args.title, only=args.only)
    for line in summary_lines(summary):
        print(line)
    print(f"report: {summary['files']['html']} (and report.md, summary.json beside it)")
    return 0
