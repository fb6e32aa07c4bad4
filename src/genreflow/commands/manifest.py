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

#: Skipped items printed one per line before pointing to manifest.json for the rest.
MAX_SKIPPED_SHOWN = 20


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
    import dataclasses
    from collections import Counter
    from pathlib import Path

    from genreflow.core.config import config_hash
    from genreflow.core.errors import DatasetError
    from genreflow.data.manifest import discover, format_counts, is_demo_dataset
    from genreflow.data.manifest_csv import read_csv, write_manifest
    from genreflow.data.splits import assign_splits

    cfg = config_from_args(args)
    data = args.data or cfg["data"]["root"] or None
    csv_file = args.csv or cfg["data"]["csv"] or None
    out = Path(args.out)
    if out.suffix.lower() != ".csv":
        raise DatasetError(f"--out {out}: the manifest file name must end in .csv")

    if csv_file:
        clips, skipped = read_csv(path=csv_file)
        source = {
            "source": "csv",
            "csv": str(Path(csv_file).expanduser().resolve()),
            "data_root": None,
        }
        beside = Path(csv_file).expanduser().resolve().parent
        if data and Path(data).expanduser().resolve() != beside:
            print(f"note: using the CSV {csv_file}; the data folder {data} is not searched")
    elif data:
        clips, skipped = discover(root=data)
        source = {
            "source": "folder",
            "csv": None,
            "data_root": str(Path(data).expanduser().resolve()),
        }
    else:
        raise DatasetError(
            "no dataset: give --data DIR or --csv FILE (or set data.root / data.csv); "
            "`genreflow demo-data` makes a synthetic one"
        )

    split_cfg = cfg["split"]
    method = split_cfg["method"]
    demo = method == "auto" and not csv_file and is_demo_dataset(data)
    if demo:  # GTZAN's names, but never GTZAN's split (however many clips per genre)
        method = "stratified"
    result = assign_splits(
        clips, method=method, fractions=split_cfg["fractions"], seed=split_cfg["seed"]
    )
    if demo:
        note = "split.method auto -> stratified: the genreflow demo dataset (demo.json)"
        result = dataclasses.replace(result, requested="auto", notes=[note, *result.notes])
    skipped = [*skipped, *result.left_out]
    warnings = [
        f"split '{name}' is empty"
        for name, fraction in split_cfg["fractions"].items()
        if fraction > 0 and not any(c.split == name for c in result.clips)
    ]
    info = {
        **source,
        "method": result.method,
        "requested_method": result.requested,
        "group_aware": result.group_aware,
        "seed": split_cfg["seed"],
        "fractions": split_cfg["fractions"],
        "split_config": split_cfg,
        "config_hash": config_hash(cfg, ("split",)),
        "notes": result.notes,
        "warnings": warnings,
    }
    sidecar = write_manifest(out, result.clips, info=info, skipped=skipped)

    for note in result.notes:
        print(f"note: {note}")
    how = result.method
    if result.method == "stratified":
        how += f"{', group-aware' if result.group_aware else ''}, seed {split_cfg['seed']}"
    print(
        f"manifest: {len(result.clips)} clips, {len({c.label for c in result.clips})} labels, "
        f"split {how} -> {out}"
    )
    print(format_counts(result.clips))
    for warning in warnings:
        print(f"warning: {warning}")
    if skipped:
        kinds = Counter(item.kind for item in skipped)
        summary = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        print(f"skipped {len(skipped)} item(s) ({summary}):")
        for item in skipped[:MAX_SKIPPED_SHOWN]:
            print(f"  {item.item}: {item.reason}")
        if len(skipped) > MAX_SKIPPED_SHOWN:
            print(f"  ... and {len(skipped) - MAX_SKIPPED_SHOWN} more (all listed in {sidecar})")
    return 0
