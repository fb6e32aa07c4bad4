"""The spectrogram stage on real WAV files, with real MPI (``mpiexec -n 2`` from the venv)."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from genreflow.core.config import config_hash
from genreflow.core.errors import StageError
from genreflow.spectrograms.logmel import FeatureExtractor
from genreflow.spectrograms.mpi import World
from genreflow.spectrograms.plan import lpt_partition
from genreflow.spectrograms.shards import ShardWriter, open_features
from genreflow.spectrograms.stage import run_spectrograms
from tests.support.spectrogram_runs import (
    GENRES,
    MPIEXEC,
    SR,
    config,
    genreflow_cmd,
    make_dataset,
    needs_mpi,
    run_cmd,
    slow,
    wait_for_release,
    write_clip,
    write_manifest,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def runs(dataset, tmp_path_factory):
    """The same manifest converted by one process and by ``mpiexec -n 2``."""
    manifest, _ = dataset
    out = tmp_path_factory.mktemp("features")
    one, two = out / "one", out / "two"
    # One rank through the CLI, checking that the stage loads only what conversion needs:
    # never TensorFlow, nor librosa/scipy.signal/numba (~1.5 s of start-up per rank), nor
    # the scipy.fft/scipy.sparse packages (~0.4 s; genreflow.spectrograms.stft loads pocketfft alone).
    probe = (
        "import sys; from genreflow.cli import main; rc = main(sys.argv[1:]); "
        "heavy = ('tensorflow', 'keras', 'librosa', 'scipy', 'numba'); "
        "loaded = [m for m in sys.modules if m.split('.')[0] in heavy or m.startswith(heavy)]; "
        "assert not loaded, f'a rank imported {sorted(loaded)[:8]}'; "
        "sys.exit(rc)"
    )
    cmd = genreflow_cmd("--manifest", str(manifest), "--out", str(one))
    single = run_cmd([sys.executable, "-c", probe, *cmd[3:]])
    assert single.returncode == 0, single.stderr
    assert "numpy was imported before" not in single.stderr  # thread settings came first
    if not MPIEXEC.exists():
        return {"one": one, "two": None, "stdout_one": single.stdout, "stdout_two": ""}
    # Launchers and shells export their own thread counts (Snakemake: the job's threads):
    # preprocess.threads_per_rank must win in every rank.
    double = run_cmd(
        genreflow_cmd("--manifest", str(manifest), "--out", str(two), ranks=2),
        OMP_NUM_THREADS="8",
        OPENBLAS_NUM_THREADS="8",
    )
    assert double.returncode == 0, double.stderr
    return {"one": one, "two": two, "stdout_one": single.stdout, "stdout_two": double.stdout}


@slow
@needs_mpi
def test_two_ranks_cover_the_manifest_disjointly(runs, dataset):
    _, clips = dataset
    fs = open_features(runs["two"])
    timings = json.loads((runs["two"] / "timings.json").read_text())
    ids = [row.clip_id for row in fs.index]
    assert len(ids) == len(set(ids))
    assert ids == [c["clip_id"] for c in clips]  # manifest order, nothing lost
    assert [r["rank"] for r in timings["ranks"]] == [0, 1]
    assert timings["n_ranks"] == 2 and timings["launcher"] == "mpiexec"
    assert timings["files"] == len(clips) and timings["bad"] == 0
    # Each clip's rows are in a shard of the rank that converted it, and every rank worked.
    shards_of = {r["rank"]: set(r["shards"]) for r in timings["ranks"]}
    files_of = {r["rank"]: r["files"] for r in timings["ranks"]}
    assert all(files_of.values()) and sum(files_of.values()) == len(clips)
    for row in fs.index:
        rank = int(row.shard.split("-")[1])
        assert row.shard in shards_of[rank]
    rows_by_rank = {
        rank: sum(r.n_segments for r in fs.index if r.shard in s) for rank, s in shards_of.items()
    }
    assert sum(rows_by_rank.values()) == fs.info["n_segments"] == timings["segments"]
    assert {r["rank"]: r["segments"] for r in timings["ranks"]} == rows_by_rank
    # LPT on file sizes: the two shares differ by at most the largest file.
    sizes = [Path(c["path"]).stat().st_size for c in clips]
    bytes_in = [r["bytes_in"] for r in timings["ranks"]]
    assert abs(bytes_in[0] - bytes_in[1]) <= max(sizes)
    assert sum(bytes_in) == sum(sizes)
    for r in timings["ranks"]:
        keys = {"import", "warmup", "decode", "resample", "mel", "write", "total"}
        assert keys <= set(r["seconds"]) and r["seconds"]["total"] > 0
    # Started with OMP_NUM_THREADS=8: each rank ran, and says it ran, one BLAS thread, as
    # read back from the loaded library (threadpoolctl), not from the environment alone.
    assert timings["thread_env"]["OMP_NUM_THREADS"] == "1"
    assert timings["threads_per_rank"] == 1 and timings["blas_threads"] == [1]
    for r in timings["ranks"]:
        assert r["threads"]["blas"] == 1
        assert all(lib["threads"] == 1 for lib in r["threads"]["libraries"])
        assert "previews" not in r["seconds"]  # drawn once, by rank 0, outside the timed work
    assert 0 < timings["startup_seconds"] < timings["wall_seconds"]
    assert 0 < timings["work_seconds"] < timings["wall_seconds"]
    assert timings["previews_seconds"] > 0 and timings["finish_seconds"] >= 0
    parts = ("startup_seconds", "work_seconds", "previews_seconds", "finish_seconds")
    assert sum(timings[k] for k in parts) == pytest.approx(timings["wall_seconds"], abs=0.01)
    assert timings["start_time"] < timings["end_time"]
    assert timings["scaling"] == "strong" and timings["clips_per_rank"] is None
    assert len(list((runs["two"] / "previews").glob("*.png"))) == len(GENRES)  # 1 per genre
    assert "2 rank(s)" in runs["stdout_two"] and "12 files, 12 good, 0 bad" in runs["stdout_two"]


@slow
@needs_mpi
def test_two_ranks_equal_one_rank_bit_for_bit(runs):
    one, two = open_features(runs["one"]), open_features(runs["two"])
    assert len(one) == len(two) == 12
    rows_two = {row.clip_id: row for row in two.index}
    for row in one.index:
        other = rows_two[row.clip_id]
        a, b = one.clip_segments(row), two.clip_segments(other)
        assert a.dtype == b.dtype == np.float16 and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
        assert row.offsets == other.offsets and row.duration == other.duration
        assert (row.label, row.split) == (other.label, other.split)
    for key in ("labels", "n_segments", "config_hash", "n_frames", "n_mels", "audio", "mel"):
        assert one.info[key] == two.info[key]
    assert len(one.info["shards"]) == 1 and len(two.info["shards"]) == 2


@slow
def test_features_hold_the_extractors_segments(runs, dataset):
    fs = open_features(runs["one"])
    cfg = config()
    fx = FeatureExtractor.from_config(cfg)
    info = fs.info
    assert info["labels"] == sorted(GENRES)
    assert info["n_frames"] == fx.segment_frames == fs.n_frames and fs.n_mels == 64
    assert info["config_hash"] == config_hash(cfg, ("audio", "mel"))
    assert info["audio"] == cfg["audio"] and info["mel"] == cfg["mel"]
    for row in fs.rows(split="valid"):
        expected = fx.segments(fx.load(row.path).samples)
        got = fs.clip_segments(row)
        assert np.array_equal(got, expected.segments.astype(np.float16))
        assert np.allclose(row.offsets, expected.offsets, atol=1e-6)
        assert row.duration == pytest.approx(sf.info(row.path).duration, abs=1e-6)
    assert {r.split for r in fs.rows(split="test")} == {"test"}
    assert len(fs.rows()) == 12
    # One colour preview per genre, as tall as the mel bands.
    previews = sorted((runs["one"] / "previews").glob("*.png"))
    assert [p.name.split("__")[0] for p in previews] == sorted(GENRES)
    with Image.open(previews[0]) as img:
        assert img.mode == "RGB" and img.size[1] == 64 and img.size[0] > 129


def test_bad_files_are_listed_and_skipped(tmp_path):
    manifest, clips = make_dataset(tmp_path, per_genre=2)
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    whole = Path(clips[0]["path"]).read_bytes()
    (bad_dir / "cut.wav").write_bytes(whole[: len(whole) // 2])
    (bad_dir / "empty.wav").write_bytes(b"")
    (bad_dir / "noise.wav").write_bytes(np.random.default_rng(0).bytes(20000))
    sf.write(bad_dir / "silent.wav", np.zeros(SR * 4, dtype=np.float32), SR)
    sf.write(bad_dir / "blip.wav", np.full(int(0.2 * SR), 0.3, dtype=np.float32), SR)
    (bad_dir / "song.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(500))
    expected = {
        "cut.wav": "truncated",
        "empty.wav": "empty file",
        "noise.wav": "cannot decode",
        "silent.wav": "silent",
        "blip.wav": "too short",
        "song.m4a": "unsupported format",
    }
    bad = [
        {"clip_id": p.stem, "path": str(bad_dir / p), "label": "mid", "split": "train"}
        for p in map(Path, expected)
    ]
    manifest = write_manifest(tmp_path / "mixed.csv", clips + bad)
    out = tmp_path / "features"
    summary = run_spectrograms(
        manifest=manifest,
        out=out,
        cfg=config(**{"preprocess.max_failed_fraction": 0.6}),
        world=World(),
    )
    assert (summary.files, summary.good, summary.bad) == (12, 6, 6)
    with open(out / "bad_files.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {Path(r["path"]).name: r["reason"] for r in rows}.keys() == expected.keys()
    for r in rows:
        assert expected[Path(r["path"]).name] in r["reason"], r
        assert r["rank"] == "0"
    fs = open_features(out)
    assert [row.clip_id for row in fs.index] == [c["clip_id"] for c in clips]
    assert fs.info["n_bad"] == 6


def test_clip_shorter_than_a_segment_is_bad_when_tail_is_drop(tmp_path):
    manifest, clips = make_dataset(tmp_path, per_genre=1)
    short = tmp_path / "short.wav"
    write_clip(short, f0=440.0, seconds=2.0, seed=5)
    clips.append({"clip_id": "short", "path": str(short), "label": "mid", "split": "test"})
    manifest = write_manifest(tmp_path / "manifest.csv", clips)
    cfg = config(**{"audio.tail": "drop", "preprocess.max_failed_fraction": 0.5})
    summary = run_spectrograms(manifest=manifest, out=tmp_path / "f", cfg=cfg, world=World())
    assert (summary.good, summary.bad) == (3, 1)
    with open(tmp_path / "f" / "bad_files.csv", newline="") as fh:
        (row,) = list(csv.DictReader(fh))
    assert row["path"] == str(short) and "too short for one segment: 2.00 s" in row["reason"]
    # With tail "drop" every kept segment is whole: 3-6 s clips give 1 + (frames - 129) // 65.
    for r in open_features(tmp_path / "f").index:
        frames = 1 + round(r.duration * SR) // 512
        assert r.n_segments == 1 + (frames - 129) // 65


@slow
@needs_mpi
def test_too_many_bad_files_fail_without_marker(tmp_path):
    manifest, clips = make_dataset(tmp_path, per_genre=1)
    for i in range(3):
        junk = tmp_path / f"junk{i}.wav"
        junk.write_bytes(b"RIFF not really")
        clips.append({"clip_id": junk.stem, "path": str(junk), "label": "mid", "split": "test"})
    manifest = write_manifest(tmp_path / "manifest.csv", clips)
    out = tmp_path / "features"
    result = run_cmd(genreflow_cmd("--manifest", str(manifest), "--out", str(out), ranks=2))
    assert result.returncode != 0
    assert result.stderr.count("3 of 6 clips (50.0%) could not be used") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert not (out / "features.json").exists()
    assert (out / "timings.json").exists()
    with open(out / "bad_files.csv", newline="") as fh:
        assert sorted(Path(r["path"]).name for r in csv.DictReader(fh)) == [
            "junk0.wav",
            "junk1.wav",
            "junk2.wav",
        ]
    with pytest.raises(StageError, match="features.json"):
        open_features(out)


@slow
@needs_mpi
def test_crash_on_one_rank_aborts_all_and_rerun_completes(tmp_path, dataset):
    manifest, clips = dataset
    out = tmp_path / "features"
    cfg = config()
    run_spectrograms(manifest=manifest, out=out, cfg=cfg, world=World())
    assert (out / "features.json").exists()  # a complete earlier run ...
    crashed = run_cmd(
        genreflow_cmd("--manifest", str(manifest), "--out", str(out), ranks=2),
        GENREFLOW_FAULT_INJECT="rank1",
    )
    assert crashed.returncode != 0
    assert "rank 1/2" in crashed.stderr and "Traceback" in crashed.stderr
    assert "RuntimeError: fault injected" in crashed.stderr
    # ... whose marker the crashed run removed first: the directory no longer reads as data.
    assert not (out / "features.json").exists()
    with pytest.raises(StageError, match="did not finish"):
        open_features(out)
    # mpiexec returns on the abort; rank 0, orphaned, notices a few seconds later and holds
    # the folder until then (a rerun meanwhile is refused, naming it).
    wait_for_release(out)
    summary = run_spectrograms(manifest=manifest, out=out, cfg=cfg, world=World())
    assert summary.good == len(clips)
    assert sorted(p.name for p in out.glob(".*")) == []  # no temp files left from the crash
    assert open_features(out).info["shards"] == ["part-0-0.npy"]
    assert sorted(p.name for p in out.glob("part-*")) == ["part-0-0.npy"]


def test_stale_outputs_are_removed_at_start(tmp_path, dataset):
    manifest, clips = dataset
    out = tmp_path / "features"
    (out / "previews").mkdir(parents=True)
    stale = [
        "features.json",
        "part-3-0.npy",
        "part-0-7.npy",
        ".part-1-0.tmp-abcd.npy",
        "index.csv",
        "bad_files.csv",
        ".features.tmp-zz.json",
        "previews/oldgenre__old.png",
    ]
    for name in stale:
        (out / name).write_text("stale")
    (out / "notes.txt").write_text("mine")
    run_spectrograms(manifest=manifest, out=out, cfg=config(), world=World())
    assert not any((out / name).exists() for name in stale[1:4] + stale[6:])
    assert (out / "notes.txt").read_text() == "mine"
    fs = open_features(out)  # the marker, index and bad files are the new run's
    assert len(fs) == len(clips)
    assert (out / "bad_files.csv").read_text().strip() == "path,rank,reason"


def test_open_features_refuses_incomplete_dirs(tmp_path):
    with pytest.raises(StageError, match="does not exist"):
        open_features(tmp_path / "nowhere")
    with pytest.raises(StageError, match="no features.json"):
        open_features(tmp_path)


@slow
@needs_mpi
def test_srun_without_pmi_is_refused(tmp_path, dataset):
    manifest, _ = dataset
    out = tmp_path / "features"
    env = {"SLURM_JOB_ID": "1", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "2"}
    result = run_cmd(genreflow_cmd("--manifest", str(manifest), "--out", str(out)), **env)
    assert result.returncode == 2
    assert "srun started 2 processes but MPI reports a world of 1" in result.stderr
    assert "--mpi=pmi2" in result.stderr
    assert not out.exists()


def test_lpt_partition_balances_sizes():
    rng = np.random.default_rng(0)
    weights = rng.lognormal(mean=13, sigma=0.6, size=200).tolist()
    for n in (1, 2, 3, 4, 7):
        parts = lpt_partition(weights, n)
        assert len(parts) == n
        assert sorted(i for p in parts for i in p) == list(range(len(weights)))
        assert all(p == sorted(p) for p in parts)
        loads = [sum(weights[i] for i in p) for p in parts]
        # LPT guarantee: no share exceeds the mean by more than the largest item.
        assert max(loads) - sum(weights) / n <= max(weights)
        assert max(loads) - min(loads) <= max(weights)
    # Worked example: 7,5,4,3,1 -> {7,3} and {5,4,1}; naive round-robin would give 12 vs 8.
    assert lpt_partition([7, 5, 4, 3, 1], 2) == [[0, 3], [1, 2, 4]]
    assert lpt_partition([5, 1], 4) == [[0], [1], [], []]
    with pytest.raises(ValueError):
        lpt_partition([1.0], 0)


def test_shard_writer_rolls_over_and_finalises_valid_npy(tmp_path):
    rng = np.random.default_rng(1)
    blocks = [rng.normal(-40, 20, size=(k, 8, 5)).astype(np.float32) for k in (3, 1, 4, 2, 6)]
    header, row_bytes = 128, 8 * 5 * 2  # .npy header, then float16 rows
    limit = header + 6 * row_bytes
    with ShardWriter(directory=tmp_path, rank=2, row_shape=(8, 5), max_bytes=limit) as w:
        places = [w.append(b.astype(np.float16)) for b in blocks]
    # 3+1 rows, then 4 (would make 8 > 6), then 2 (6), then 6 rows in a shard of their own.
    assert [p[0] for p in places] == [
        "part-2-0.npy",
        "part-2-0.npy",
        "part-2-1.npy",
        "part-2-1.npy",
        "part-2-2.npy",
    ]
    assert [(f.name, f.rows) for f in w.finished] == [
        ("part-2-0.npy", 4),
        ("part-2-1.npy", 6),
        ("part-2-2.npy", 6),
    ]
    # The recorded size and digest are those of the file in place (what `sha256sum` prints).
    for f in w.finished:
        data = (tmp_path / f.name).read_bytes()
        assert f.bytes == len(data) and f.sha256 == hashlib.sha256(data).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "part-2-0.npy",
        "part-2-1.npy",
        "part-2-2.npy",
    ]
    sizes = [p.stat().st_size for p in sorted(tmp_path.iterdir())]
    assert sizes == [header + rows * row_bytes for rows in (4, 6, 6)]
    assert w.bytes_written == sum(sizes) and max(sizes) <= limit
    for block, (shard, start, stop) in zip(blocks, places, strict=True):
        data = np.load(tmp_path / shard, mmap_mode="r")
        assert data.dtype == np.float16 and data.shape[1:] == (8, 5)
        assert np.array_equal(data[start:stop], block.astype(np.float16))


def test_shard_writer_leaves_nothing_when_interrupted(tmp_path):
    with (
        pytest.raises(KeyError),
        ShardWriter(directory=tmp_path, rank=0, row_shape=(4, 3), max_bytes=1 << 20) as w,
    ):
        w.append(np.zeros((2, 4, 3), dtype=np.float16))
        raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="does not fit"):
        ShardWriter(directory=tmp_path, rank=0, row_shape=(4, 3), max_bytes=100).append(
            np.zeros((1, 3, 4))
        )


@slow
def test_weak_scaling_run_converts_clips_per_rank_spread_over_the_manifest(dataset, tmp_path):
    manifest, clips = dataset
    out = tmp_path / "weak"
    done = run_cmd(
        genreflow_cmd("--manifest", str(manifest), "--out", str(out), "--weak-clips-per-rank", "4")
    )
    assert done.returncode == 0, done.stderr
    timings = json.loads((out / "timings.json").read_text())
    assert timings["scaling"] == "weak" and timings["clips_per_rank"] == 4
    assert timings["files"] == 4
    ids = [row.clip_id for row in open_features(out).index]
    assert ids == [clips[i]["clip_id"] for i in (0, 3, 6, 9)]  # evenly spaced, in order
    assert not list((out / "previews").glob("*.png"))  # a timing subset: no previews

    too_many = run_cmd(
        genreflow_cmd(
            "--manifest", str(manifest), "--out", str(tmp_path / "x"), "--weak-clips-per-rank", "13"
        )
    )
    assert too_many.returncode != 0
    assert "weak scaling wants 13 clips, the manifest has 12" in too_many.stderr
