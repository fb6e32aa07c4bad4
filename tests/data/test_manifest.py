"""genreflow manifest: discovery, CSV input, splits and the manifest files, on real file trees."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genreflow.cli import main
from genreflow.core.config import config_hash, load_config
from genreflow.core.errors import ConfigError, DatasetError
from genreflow.data.manifest import (
    MANIFEST_COLUMNS,
    Clip,
    discover,
    read_csv,
    read_manifest,
    write_manifest,
)
from genreflow.data.splits import (
    GTZAN_GENRES,
    assign_splits,
    gtzan_filtered_table,
    looks_like_gtzan,
    split_sizes,
    stratified_split,
)

FRACTIONS = {"train": 0.7, "valid": 0.15, "test": 0.15}
LISTS = Path(__file__).resolve().parents[2] / "src/genreflow/data/gtzan_splits"


def write_wav(path: Path, *, seconds: float = 0.1, sr: int = 8000, freq: float = 440.0) -> Path:
    """A real (short) sine WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32), sr)
    return path


def make_label_tree(root: Path, counts: dict[str, int], *, ext: str = ".wav") -> Path:
    """``root/<label>/<label>.<5 digits><ext>`` real audio files."""
    for label, n in counts.items():
        for i in range(n):
            write_wav(root / label / f"{label}.{i:05d}{ext}", freq=200.0 + 10 * i)
    return root


def make_fake_gtzan(root: Path, *, sub: str = "genres", ext: str = ".au") -> Path:
    """All 1000 GTZAN file names (empty files: the manifest does not decode)."""
    for genre in GTZAN_GENRES:
        folder = root / sub / genre
        folder.mkdir(parents=True)
        for i in range(100):
            (folder / f"{genre}.{i:05d}{ext}").touch()
    return root


def run_cli(*argv: str) -> int:
    return main(["manifest", *argv])


def load_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def fake_clips(counts: dict[str, int], *, group_size: int = 0) -> list[Clip]:
    """Clip records (no files) for pure split-logic tests; ``group_size`` > 0 groups them."""
    clips = []
    for label, n in counts.items():
        for i in range(n):
            group = f"{label}-artist{i // group_size}" if group_size else ""
            clips.append(Clip(f"{label}.{i:05d}", f"/x/{label}/{i}.wav", label, (label,), group))
    return clips


# --- discovery ------------------------------------------------------------------------------


def test_discover_folder_per_label_tree(tmp_path):
    root = make_label_tree(tmp_path / "data", {"jazz": 3, "rock": 2})
    write_wav(root / "rock" / "live" / "concert.FLAC")  # nested and upper-case extension
    clips, skipped = discover(root=root)
    assert [c.clip_id for c in clips] == [
        "concert",
        "jazz.00000",
        "jazz.00001",
        "jazz.00002",
        "rock.00000",
        "rock.00001",
    ]
    assert {c.clip_id: c.label for c in clips}["concert"] == "rock"
    assert all(Path(c.path).is_absolute() and Path(c.path).is_file() for c in clips)
    assert all(c.labels == (c.label,) and c.group == "" and c.split == "" for c in clips)
    assert skipped == []


@pytest.mark.parametrize("sub", ["genres", "genres_original"])
def test_discover_finds_gtzan_subfolder(tmp_path, sub):
    make_label_tree(tmp_path / sub, {"blues": 2, "metal": 2})
    (tmp_path / "features_30_sec.csv").write_text("x\n")  # Kaggle copy: beside genres_original
    clips, skipped = discover(root=tmp_path)
    assert {c.label for c in clips} == {"blues", "metal"}
    assert all(f"/{sub}/" in c.path for c in clips)
    assert skipped == []


def test_discover_reports_what_it_skips(tmp_path):
    root = make_label_tree(tmp_path, {"jazz": 3, "pop": 3})
    (root / "jazz" / "cover.jpg").write_bytes(b"\xff\xd8")
    write_wav(root / "pop" / "again" / "jazz.00001.wav")  # same stem as a jazz clip
    (root / "README.md").write_text("hello\n")
    (root / "empty_genre").mkdir()
    (root / "pop" / ".DS_Store").write_bytes(b"x")
    (root / "jazz" / "gone.wav").symlink_to(root / "nowhere.wav")

    clips, skipped = discover(root=root)
    kinds = {(Path(s.item.split(": ")[-1]).name, s.kind) for s in skipped}
    assert kinds == {
        ("cover.jpg", "unknown-extension"),
        ("jazz.00001.wav", "duplicate-id"),
        ("README.md", "outside-label-folder"),
        ("empty_genre", "empty-label"),
        (".DS_Store", "hidden"),
        ("gone.wav", "missing"),
    }
    # the first in sorted path order wins: jazz/jazz.00001.wav before pop/again/jazz.00001.wav
    kept = {c.clip_id: c.path for c in clips}["jazz.00001"]
    assert kept.endswith("jazz/jazz.00001.wav")
    assert len(clips) == 6
    duplicate = next(s for s in skipped if s.kind == "duplicate-id")
    assert "jazz.00001" in duplicate.reason and kept in duplicate.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without read permission")
def test_discover_reports_unreadable_file(tmp_path):
    root = make_label_tree(tmp_path, {"jazz": 2})
    locked = write_wav(root / "jazz" / "locked.wav")
    locked.chmod(0)
    try:
        clips, skipped = discover(root=root)
    finally:
        locked.chmod(0o644)
    assert [s.kind for s in skipped] == ["unreadable"]
    assert "locked" not in {c.clip_id for c in clips}


def test_discover_missing_or_empty_dataset_raises(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        discover(root=tmp_path / "nope")
    (tmp_path / "blues").mkdir()
    (tmp_path / "blues" / "notes.txt").write_text("no audio\n")
    with pytest.raises(DatasetError, match="no usable audio files"):
        discover(root=tmp_path)


# --- stratified splits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "fractions", "expected"),
    [
        (20, FRACTIONS, {"train": 14, "valid": 3, "test": 3}),
        (3, FRACTIONS, {"train": 1, "valid": 1, "test": 1}),
        (5, FRACTIONS, {"train": 3, "valid": 1, "test": 1}),
        (10, {"train": 0.8, "valid": 0.2, "test": 0.0}, {"train": 8, "valid": 2, "test": 0}),
        (2, FRACTIONS, {"train": 2, "valid": 0, "test": 0}),  # < 3 clips: no minimum
        (7, {"train": 0.6, "valid": 0.2, "test": 0.2}, {"train": 4, "valid": 2, "test": 1}),
    ],
)
def test_split_sizes(n, fractions, expected):
    assert split_sizes(n, fractions) == expected


def test_stratified_every_label_in_every_split_with_right_proportions(tmp_path):
    root = make_label_tree(tmp_path, {"blues": 20, "jazz": 13, "rock": 3, "pop": 40})
    clips, _ = discover(root=root)
    result = assign_splits(clips, method="stratified", fractions=FRACTIONS, seed=1)
    assert result.method == "stratified" and not result.group_aware
    assert len(result.clips) == len(clips)
    per_label = Counter((c.label, c.split) for c in result.clips)
    totals = Counter(c.label for c in clips)
    for label, total in totals.items():
        for split, fraction in FRACTIONS.items():
            got = per_label[(label, split)]
            assert got >= 1, (label, split)
            if total >= 10:  # 3 clips: 1/1/1 by the at-least-one rule, not 2.1/0.45/0.45
                assert abs(got - fraction * total) <= 1, (label, split, got)


def test_stratified_is_deterministic_and_seed_dependent():
    clips = fake_clips({"a": 30, "b": 25, "c": 12})
    first = stratified_split(clips, fractions=FRACTIONS, seed=7)
    again = stratified_split(list(reversed(clips)), fractions=FRACTIONS, seed=7)
    other = stratified_split(clips, fractions=FRACTIONS, seed=8)
    assert first == again
    assert {c.clip_id: c.split for c in first} != {c.clip_id: c.split for c in other}
    # another seed moves clips around but keeps the per-label counts
    assert Counter((c.label, c.split) for c in first) == Counter((c.label, c.split) for c in other)


def test_grouped_split_keeps_groups_together_and_is_roughly_stratified():
    clips = fake_clips({"a": 60, "b": 45, "c": 30}, group_size=3)
    # a few ungrouped clips and an artist spanning two labels
    clips += [Clip(f"solo{i}", f"/x/solo{i}.wav", "a", ("a",)) for i in range(6)]
    clips += [
        Clip("cross1", "/x/cross1.wav", "a", ("a",), "crossover"),
        Clip("cross2", "/x/cross2.wav", "b", ("b",), "crossover"),
    ]
    result = assign_splits(clips, method="stratified", fractions=FRACTIONS, seed=3)
    assert result.group_aware
    assert len(result.clips) == len(clips)
    splits_of_group: dict[str, set[str]] = {}
    for clip in result.clips:
        if clip.group:
            splits_of_group.setdefault(clip.group, set()).add(clip.split)
    assert all(len(s) == 1 for s in splits_of_group.values())
    per_label = Counter((c.label, c.split) for c in result.clips)
    totals = Counter(c.label for c in clips)
    for label, total in totals.items():
        for split, fraction in FRACTIONS.items():
            assert per_label[(label, split)] >= 1
            assert abs(per_label[(label, split)] - fraction * total) <= 4  # groups of 3
    assert (
        result.clips
        == assign_splits(
            list(reversed(clips)), method="stratified", fractions=FRACTIONS, seed=3
        ).clips
    )


def test_grouped_split_big_groups_do_not_flood_small_splits():
    # label with groups 10, 10, 5, 5: putting a 10-group in valid/test would overshoot badly
    sizes = [10, 10, 5, 5]
    clips = [
        Clip(f"x{g}-{i}", f"/x/{g}/{i}.wav", "x", ("x",), f"g{g}")
        for g, size in enumerate(sizes)
        for i in range(size)
    ]
    result = assign_splits(clips, method="stratified", fractions=FRACTIONS, seed=0)
    counts = Counter(c.split for c in result.clips)
    assert counts == {"train": 20, "valid": 5, "test": 5}


def test_bad_fractions_or_method_raise_config_error():
    clips = fake_clips({"a": 5})
    with pytest.raises(ConfigError, match="split.fractions"):
        assign_splits(clips, method="stratified", fractions={"train": 0.5, "valid": 0.1}, seed=0)
    with pytest.raises(ConfigError, match="split.fractions"):
        assign_splits(
            clips, method="stratified", fractions={"train": 0.5, "valid": 0.1, "test": 0.1}, seed=0
        )
    with pytest.raises(ConfigError, match="split.method"):
        assign_splits(clips, method="random", fractions=FRACTIONS, seed=0)


# --- GTZAN fault-filtered split ---------------------------------------------------------------


def test_gtzan_lists_are_the_published_sizes():
    table = gtzan_filtered_table()
    assert len(table) == 930
    assert Counter(table.values()) == {"train": 443, "valid": 197, "test": 290}
    assert table["blues.00012"] == "test" and table["blues.00000"] == "valid"


@pytest.mark.parametrize(("sub", "ext"), [("genres", ".au"), ("genres_original", ".wav")])
def test_gtzan_filtered_on_fake_gtzan_tree(tmp_path, sub, ext):
    root = make_fake_gtzan(tmp_path / "gtzan", sub=sub, ext=ext)
    out = tmp_path / "out" / "manifest.csv"
    assert (
        run_cli("--data", str(root), "--out", str(out), "--set", "split.method=gtzan-filtered") == 0
    )
    rows = load_rows(out)
    assert Counter(r["split"] for r in rows) == {"train": 443, "valid": 197, "test": 290}
    assert all(r["path"].endswith(ext) for r in rows)
    # every row agrees with the shipped lists, matched on the clip id
    listed = {}
    for split in ("train", "valid", "test"):
        for line in (LISTS / f"{split}_filtered.txt").read_text().split():
            listed[Path(line).stem] = split
    assert {r["clip_id"]: r["split"] for r in rows} == listed

    info = json.loads(out.with_suffix(".json").read_text())
    assert info["method"] == "gtzan-filtered"
    left_out = [s for s in info["skipped"] if s["kind"] == "not-in-split-lists"]
    assert len(left_out) == 70 == info["n_skipped"]
    assert {Path(s["item"]).stem for s in left_out} == {
        f"{g}.{i:05d}" for g in GTZAN_GENRES for i in range(100)
    } - set(listed)


def test_auto_picks_gtzan_for_full_gtzan_and_stratified_for_demo_like_tree(tmp_path):
    full = make_fake_gtzan(tmp_path / "gtzan")
    clips, _ = discover(root=full)
    assert looks_like_gtzan(clips)
    result = assign_splits(clips, method="auto", fractions=FRACTIONS, seed=42)
    assert result.method == "gtzan-filtered" and result.requested == "auto"
    assert len(result.clips) == 930 and len(result.left_out) == 70

    # the demo dataset: GTZAN genres and names, but only a few clips per genre
    demo = make_label_tree(tmp_path / "demo", dict.fromkeys(GTZAN_GENRES, 3))
    out = tmp_path / "demo_manifest.csv"
    assert run_cli("--data", str(demo), "--out", str(out)) == 0
    rows = load_rows(out)
    assert len(rows) == 30
    assert Counter((r["label"], r["split"]) for r in rows) == {
        (g, s): 1 for g in GTZAN_GENRES for s in ("train", "valid", "test")
    }
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["method"] == "stratified" and info["requested_method"] == "auto"
    assert info["skipped"] == []


def test_auto_is_stratified_for_a_big_demo_dataset(tmp_path):
    # 60 demo clips per genre cover most of the GTZAN lists; only demo.json tells them apart
    for genre in GTZAN_GENRES:
        (tmp_path / genre).mkdir()
        for i in range(60):
            (tmp_path / genre / f"{genre}.{i:05d}.wav").touch()
    clips, _ = discover(root=tmp_path)
    assert looks_like_gtzan(clips)
    (tmp_path / "demo.json").write_text(json.dumps({"generator": "genreflow.demo"}))
    out = tmp_path / "m.csv"
    assert run_cli("--data", str(tmp_path), "--out", str(out)) == 0
    info = json.loads(out.with_suffix(".json").read_text())
    assert (info["method"], info["requested_method"]) == ("stratified", "auto")
    assert "demo dataset" in info["notes"][0]
    assert len(load_rows(out)) == 600
    assert [s["kind"] for s in info["skipped"]] == ["outside-label-folder"]  # demo.json itself
    # an explicit method is obeyed
    assert (
        run_cli("--data", str(tmp_path), "--out", str(out), "--set", "split.method=gtzan-filtered")
        == 0
    )
    assert json.loads(out.with_suffix(".json").read_text())["method"] == "gtzan-filtered"


def test_auto_is_stratified_for_gtzan_subset(tmp_path):
    # half the genres of GTZAN is not GTZAN: no fault-filtered split
    for genre in GTZAN_GENRES[:5]:
        (tmp_path / genre).mkdir()
        for i in range(100):
            (tmp_path / genre / f"{genre}.{i:05d}.wav").touch()
    clips, _ = discover(root=tmp_path)
    assert not looks_like_gtzan(clips)
    assert assign_splits(clips, method="auto", fractions=FRACTIONS, seed=0).method == "stratified"


def test_gtzan_filtered_without_gtzan_clips_raises(tmp_path):
    clips, _ = discover(root=make_label_tree(tmp_path, {"a": 3}))
    with pytest.raises(DatasetError, match="none of the 3 clips"):
        assign_splits(clips, method="gtzan-filtered", fractions=FRACTIONS, seed=0)


# --- CSV input --------------------------------------------------------------------------------


def write_dataset_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_csv_with_relative_paths_groups_and_labels(tmp_path, monkeypatch):
    audio = tmp_path / "set" / "audio"
    rows = []
    for i in range(24):
        write_wav(audio / f"t{i:02d}.ogg")
        label = ["funk", "soul", "jazz"][i % 3]
        rows.append(
            {
                "path": f"audio/t{i:02d}.ogg",
                "label": label,
                "group": f"artist{i // 2}",
                "labels": f"{label};groove" if i % 4 == 0 else "",
            }
        )
    table = write_dataset_csv(tmp_path / "set" / "data.csv", rows)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(
        elsewhere
    )  # relative paths are relative to the CSV, not to the working folder
    out = tmp_path / "m.csv"
    assert run_cli("--csv", str(table), "--out", str(out), "--set", "split.seed=5") == 0

    manifest = read_manifest(out)
    assert len(manifest) == 24
    by_id = {c.clip_id: c for c in manifest}
    assert by_id["t00"].path == str(audio / "t00.ogg")
    assert by_id["t00"].labels == ("funk", "groove") and by_id["t00"].label == "funk"
    assert by_id["t01"].labels == ("soul",)
    assert by_id["t03"].group == "artist1"
    groups: dict[str, set[str]] = {}
    for clip in manifest:
        groups.setdefault(clip.group, set()).add(clip.split)
    assert all(len(s) == 1 for s in groups.values())
    info = json.loads(out.with_suffix(".json").read_text())
    assert info["group_aware"] is True and info["source"] == "csv" and info["seed"] == 5
    assert info["csv"] == str(table)


def test_csv_reports_missing_file_empty_label_and_duplicates(tmp_path, capsys):
    write_wav(tmp_path / "a" / "one.wav")
    write_wav(tmp_path / "b" / "one.flac")
    write_wav(tmp_path / "two.wav")
    write_wav(tmp_path / "three.wav")
    (tmp_path / "folder.wav").mkdir()
    table = write_dataset_csv(
        tmp_path / "list.csv",
        [
            {"path": "b/one.flac", "label": "x"},  # duplicate clip id 'one' ...
            {"path": "a/one.wav", "label": "x"},  # ... a/ wins: first in sorted path order
            {"path": "two.wav", "label": ""},  # empty label
            {"path": "three.wav", "label": "y"},
            {"path": "missing.wav", "label": "y"},
            {"path": "notes.txt", "label": "y"},
            {"path": "folder.wav", "label": "y"},
            {"path": "", "label": "y"},
        ],
    )
    clips, skipped = read_csv(path=table)
    assert [c.clip_id for c in clips] == ["one", "three"]
    assert clips[0].path == str(tmp_path / "a" / "one.wav")
    assert Counter(s.kind for s in skipped) == {
        "duplicate-id": 1,
        "empty-label": 1,
        "missing": 1,
        "unknown-extension": 1,
        "not-a-file": 1,
        "empty-path": 1,
    }
    missing = next(s for s in skipped if s.kind == "missing")
    assert missing.item.startswith(f"{table}:6") and "missing.wav" in missing.item

    out = tmp_path / "out.csv"
    assert run_cli("--csv", str(table), "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "skipped 6 item(s)" in printed
    for text in (
        "duplicate clip id 'one'",
        "empty label",
        "file does not exist",
        "unknown extension",
    ):
        assert text in printed
    info = json.loads(out.with_suffix(".json").read_text())
    assert sorted(s["kind"] for s in info["skipped"]) == sorted(s.kind for s in skipped)


def test_csv_header_is_case_insensitive_with_bom_extra_columns_and_clip_ids(tmp_path):
    write_wav(tmp_path / "x.mp3.wav")
    write_wav(tmp_path / "y.wav")
    table = tmp_path / "excel.csv"
    table.write_text(
        "Path,LABEL,Clip_ID,comment\n"
        f"{tmp_path / 'x.mp3.wav'},rock;pop,track-1,first\n"
        "\n"
        "y.wav, jazz ,,second\n",
        encoding="utf-8-sig",
    )
    clips, skipped = read_csv(path=table)
    assert skipped == []
    assert [(c.clip_id, c.label, c.labels) for c in clips] == [
        ("track-1", "rock", ("rock", "pop")),
        ("y", "jazz", ("jazz",)),
    ]


def test_csv_split_column(tmp_path):
    rows = []
    for i, split in enumerate(["train", "train", "Validation", "test", "val", "TEST"]):
        rows.append({"path": str(write_wav(tmp_path / f"c{i}.wav")), "label": "x", "split": split})
    table = write_dataset_csv(tmp_path / "d.csv", rows)
    out = tmp_path / "m.csv"
    assert run_cli("--csv", str(table), "--out", str(out), "--set", "split.method=column") == 0
    assert [c.split for c in sorted(read_manifest(out), key=lambda c: c.clip_id)] == [
        "train",
        "train",
        "valid",
        "test",
        "valid",
        "test",
    ]
    # auto does not use the column but says how to
    clips, _ = read_csv(path=table)
    result = assign_splits(clips, method="auto", fractions=FRACTIONS, seed=0)
    assert result.method == "stratified"
    assert any("split.method=column" in note for note in result.notes)

    rows[1]["split"] = "holdout"
    write_dataset_csv(table, rows)
    clips, _ = read_csv(path=table)
    with pytest.raises(DatasetError, match="'holdout'; allowed: train"):
        assign_splits(clips, method="column", fractions=FRACTIONS, seed=0)


def test_column_method_needs_split_values(tmp_path):
    clips, _ = discover(root=make_label_tree(tmp_path, {"a": 3}))
    with pytest.raises(DatasetError, match="needs a dataset CSV with a 'split' column"):
        assign_splits(clips, method="column", fractions=FRACTIONS, seed=0)


def test_csv_without_required_columns_is_a_one_line_error(tmp_path, capsys):
    table = tmp_path / "bad.csv"
    table.write_text("file,genre\nx.wav,rock\n")
    with pytest.raises(DatasetError, match="missing required column\\(s\\) path, label"):
        read_csv(path=table)
    assert run_cli("--csv", str(table), "--out", str(tmp_path / "m.csv")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.csv" in err and "path, label" in err
    assert not (tmp_path / "m.csv").exists()


# --- the CLI and the manifest files ------------------------------------------------------------


def test_cli_writes_manifest_and_sidecar(tmp_path, capsys):
    root = make_label_tree(tmp_path / "data", {"blues": 10, "jazz": 10})
    out = tmp_path / "res" / "manifest.csv"
    assert run_cli("--data", str(root), "--out", str(out), "--set", "split.seed=3") == 0
    printed = capsys.readouterr().out
    assert "20 clips, 2 labels, split stratified, seed 3" in printed
    assert "blues" in printed and "total" in printed

    with open(out, newline="") as fh:
        header = next(csv.reader(fh))
    assert tuple(header) == MANIFEST_COLUMNS
    clips = read_manifest(out)
    assert {c.clip_id for c in clips} == {
        f"{g}.{i:05d}" for g in ("blues", "jazz") for i in range(10)
    }
    assert all(Path(c.path).is_absolute() and Path(c.path).exists() for c in clips)

    info = json.loads((out.parent / "manifest.json").read_text())
    cfg = load_config(overrides={"split.seed": 3})
    assert info["config_hash"] == config_hash(cfg, ("split",))
    assert info["config_hash"] != config_hash(load_config(), ("split",))
    assert info["seed"] == 3 and info["method"] == "stratified"
    assert info["data_root"] == str(root)
    # 10 clips at 0.7/0.15/0.15: 7 + 1.5 + 1.5, the odd one goes to valid (largest remainder)
    assert info["counts"] == {
        "train": {"blues": 7, "jazz": 7},
        "valid": {"blues": 2, "jazz": 2},
        "test": {"blues": 1, "jazz": 1},
    }
    # atomic writes leave no temporary files behind
    assert sorted(p.name for p in out.parent.iterdir()) == ["manifest.csv", "manifest.json"]

    # same seed, same manifest; the data root from the config works like --data
    again = tmp_path / "again.csv"
    assert run_cli("--out", str(again), "--set", f"data.root={root}", "--set", "split.seed=3") == 0
    assert out.read_text() == again.read_text()


@pytest.mark.parametrize(
    "argv",
    [
        ["--data", "/definitely/not/here"],
        [],
    ],
)
def test_cli_bad_data_is_exit_2_with_one_line(tmp_path, capsys, argv):
    assert run_cli(*argv, "--out", str(tmp_path / "m.csv")) == 2
    err = capsys.readouterr().err
    assert err.startswith("genreflow manifest: error: ")
    assert err.count("\n") == 1
    if argv:
        assert "/definitely/not/here does not exist" in err
    else:
        assert "--data" in err


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["manifest", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--data", "--csv", "--out", "--config", "--set"):
        assert option in text


def test_read_manifest_validates(tmp_path):
    good = [
        Clip("a", "/abs/a.wav", "x", ("x",), "", "train"),
        Clip("b", "/abs/b.wav", "y", ("y", "z"), "g1", "test"),
    ]
    path = tmp_path / "m.csv"
    write_manifest(path, good, info={})
    assert sorted(read_manifest(path), key=lambda c: c.clip_id) == good

    def broken(**change) -> Path:
        bad = tmp_path / "bad.csv"
        write_manifest(bad, good, info={})
        rows = load_rows(bad)
        rows[1].update(change)
        write_dataset_csv(bad, rows)
        return bad

    cases = {
        "duplicate clip_id 'a'": {"clip_id": "a"},
        "is not absolute": {"path": "rel/b.wav"},
        "split 'dev' is not one of": {"split": "dev"},
        "empty label": {"label": ""},
        "is not among labels": {"label": "w"},
    }
    for message, change in cases.items():
        with pytest.raises(DatasetError, match=message):
            read_manifest(broken(**change))

    (tmp_path / "cols.csv").write_text("clip_id,path,label\na,/a.wav,x\n")
    with pytest.raises(DatasetError, match="missing column\\(s\\) labels, group, split"):
        read_manifest(tmp_path / "cols.csv")
    (tmp_path / "empty.csv").write_text(",".join(MANIFEST_COLUMNS) + "\n")
    with pytest.raises(DatasetError, match="has no clips"):
        read_manifest(tmp_path / "empty.csv")
    with pytest.raises(DatasetError, match="does not exist"):
        read_manifest(tmp_path / "nope.csv")


def test_write_manifest_refuses_clips_without_split(tmp_path):
    clip = Clip("a", "/abs/a.wav", "x", ("x",))
    with pytest.raises(DatasetError, match="no valid split"):
        write_manifest(tmp_path / "m.csv", [clip], info={})
    with pytest.raises(DatasetError, match="must end in .csv"):
        write_manifest(tmp_path / "m.txt", [dataclasses.replace(clip, split="train")], info={})
    assert list(tmp_path.iterdir()) == []


def test_cross_validation_folds_test_every_clip_once_and_stratify():
    from genreflow.data.manifest import Clip
    from genreflow.data.splits import cross_validation_folds

    counts = {"a": 10, "b": 6, "c": 5}
    clips = [
        Clip(f"{label}.{i}", f"/x/{label}.{i}.wav", label, (label,))
        for label, n in counts.items()
        for i in range(n)
    ]
    plans = cross_validation_folds(clips, folds=5, seed=3, valid_per_label=1)
    assert len(plans) == 5
    tested = [c.clip_id for plan in plans for c in plan if c.split == "test"]
    assert sorted(tested) == sorted(c.clip_id for c in clips)  # each clip is tested exactly once
    for plan in plans:
        assert [c.clip_id for c in plan] == [c.clip_id for c in clips]
        for label, n in counts.items():
            mine = [c for c in plan if c.label == label]
            test = sum(c.split == "test" for c in mine)
            assert test in (n // 5, -(-n // 5))  # stratified: each fold gets its share
            assert sum(c.split == "valid" for c in mine) == 1
            assert sum(c.split == "train" for c in mine) == n - test - 1
    # Seeded: the same folds again; another seed, other folds.
    again = cross_validation_folds(clips, folds=5, seed=3, valid_per_label=1)
    assert [[c.split for c in p] for p in again] == [[c.split for c in p] for p in plans]
    other = cross_validation_folds(clips, folds=5, seed=4, valid_per_label=1)
    assert [[c.split for c in p] for p in other] != [[c.split for c in p] for p in plans]
    assert all(c.split != "valid" for c in cross_validation_folds(clips, folds=5, seed=3)[0])
    with pytest.raises(DatasetError, match="'c' has 5 clips, fewer than 6 folds"):
        cross_validation_folds(clips, folds=6, seed=0)


def test_grouped_cross_validation_keeps_every_artist_on_one_side():
    from genreflow.data.manifest import Clip
    from genreflow.data.splits import cross_validation_folds

    # 3 genres x 4 artists x 3 clips: an artist's clips share a group
    clips = [
        Clip(f"{g}.{a}.{i}", f"/x/{g}.{a}.{i}.wav", g, (g,), group=f"{g}-artist{a}")
        for g in ("a", "b", "c")
        for a in range(4)
        for i in range(3)
    ]
    plans = cross_validation_folds(clips, folds=4, seed=0, grouped=True)
    tested = sorted(c.clip_id for plan in plans for c in plan if c.split == "test")
    assert tested == sorted(c.clip_id for c in clips)
    for plan in plans:
        test_groups = {c.group for c in plan if c.split == "test"}
        train_groups = {c.group for c in plan if c.split == "train"}
        assert test_groups and not test_groups & train_groups
    # Ungrouped folds of the same clips do split artists.
    plain = cross_validation_folds(clips, folds=4, seed=0)
    assert any(
        {c.group for c in p if c.split == "test"} & {c.group for c in p if c.split == "train"}
        for p in plain
    )
    with pytest.raises(DatasetError, match="3 groups, fewer than 4 folds"):
        cross_validation_folds(
            [dataclasses.replace(c, group=c.label) for c in clips], folds=4, seed=0, grouped=True
        )
