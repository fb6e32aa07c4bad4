"""The spectrogram stage resumes after a kill, with the same bytes as an uninterrupted run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from genreflow.spectrograms.logmel import FeatureExtractor
from genreflow.spectrograms.mpi import World
from genreflow.spectrograms.shards import open_features
from genreflow.spectrograms.stage import run_spectrograms
from tests.support.spectrogram_runs import (
    RESUME_SETTINGS,
    TIMEOUT,
    config,
    make_long_dataset,
    needs_mpi,
    output_files,
    resume_cmd,
    run_cmd,
    slow,
)

JOURNAL_DIR = "journal"  # docs/formats.md: journal/part-<rank>-<k>.json


def descendants(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc): mpiexec puts its proxies and ranks in
    sessions of their own, so killing mpiexec's process group would miss them."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the launcher, its proxies and ranks at once (as a SLURM time limit would)."""
    pids = descendants(proc.pid)
    for pid in reversed(pids):  # ranks first: nothing may write after the shards are counted
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.time() + 30
    while any(Path(f"/proc/{p}").exists() and not _zombie(p) for p in pids):
        assert time.time() < deadline, "ranks survived SIGKILL"
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


@pytest.fixture(scope="module")
def long_dataset(tmp_path_factory):
    return make_long_dataset(tmp_path_factory.mktemp("long"), per_genre=8)


@slow
@needs_mpi
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to find the ranks")
def test_killed_run_resumes_to_identical_outputs(long_dataset, tmp_path):
    manifest, clips = long_dataset
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    reference = run_cmd(resume_cmd(manifest, whole))
    assert reference.returncode == 0, reference.stderr
    expected = output_files(whole)
    n_shards = len(list(whole.glob("part-*.npy")))
    assert n_shards >= 5  # several shards per rank

    # The same run, slowed down (0.1 s per clip) and SIGKILLed once half the shards are done.
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["GENREFLOW_FAULT_INJECT"] = "delay=0.1"
    log = tmp_path / "killed.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            resume_cmd(manifest, killed),
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        deadline = time.time() + TIMEOUT
        try:
            while len(list(killed.glob("part-*.npy"))) < n_shards // 2:
                assert proc.poll() is None, log.read_text()
                assert time.time() < deadline, "no shards appeared"
                time.sleep(0.02)
        finally:
            kill_tree(proc)
    assert not (killed / "features.json").exists()
    left = {p.name for p in killed.glob("part-*.npy")}
    assert 0 < len(left) < n_shards, left

    rerun = run_cmd(resume_cmd(manifest, killed))
    assert rerun.returncode == 0, rerun.stderr
    timings = json.loads((killed / "timings.json").read_text())
    resumed = timings.get("resumed_clips", 0)
    assert 0 < resumed < len(clips), rerun.stderr
    assert rerun.stderr.count("resuming the earlier run") == 1, rerun.stderr
    assert resumed == sum(r["resumed_clips"] for r in timings["ranks"])
    assert timings["files"] == len(clips) - resumed  # this run converted only the rest
    assert f"{len(clips)} files" in rerun.stdout and f"({resumed} resumed" in rerun.stdout
    # Byte for byte the uninterrupted run: shards, index, bad files, notes, previews, journals.
    got = output_files(killed)
    assert sorted(got) == sorted(expected)
    for name, data in expected.items():
        assert got[name] == data, name
    assert b"empty.wav" in got["bad_files.csv"] and b"junk.wav" in got["bad_files.csv"]
    assert len(open_features(killed)) == len(clips) - 2
    journals = sorted(name for name in got if name.startswith(f"{JOURNAL_DIR}/"))
    assert journals == sorted(f"{JOURNAL_DIR}/{n[:-4]}.json" for n in got if n.startswith("part-"))

    # Everything done: a third run converts nothing and changes nothing.
    again = run_cmd(resume_cmd(manifest, killed))
    assert again.returncode == 0, again.stderr
    assert json.loads((killed / "timings.json").read_text())["files"] == 0
    assert output_files(killed) == expected


def in_process(manifest: Path, out: Path, **overrides) -> object:
    cfg = config(**{**RESUME_SETTINGS, **overrides})
    return run_spectrograms(manifest=manifest, out=out, cfg=cfg, world=World())


def interrupt(out: Path, *, keep_shards: int) -> None:
    """Leave ``out`` as a one-rank run killed after ``keep_shards`` shards would leave it."""
    (out / "features.json").unlink()
    for name in ("index.csv", "bad_files.csv", "notes.csv", "timings.json"):
        (out / name).unlink(missing_ok=True)
    for shard in sorted(out.glob("part-0-*.npy")):
        k = int(shard.stem.split("-")[2])
        if k >= keep_shards:
            shard.unlink()
            (out / JOURNAL_DIR / f"part-0-{k}.json").unlink(missing_ok=True)
    (out / JOURNAL_DIR).mkdir(exist_ok=True)
    (out / ".part-0-9.tmp-abcd.npy").write_bytes(b"half a shard")  # the one being written
    (out / JOURNAL_DIR / f"part-0-{keep_shards}.json").write_text('{"form')  # unreadable


def test_resume_keeps_complete_shards_and_decode_notes(long_dataset, tmp_path, monkeypatch):
    manifest, clips = long_dataset
    real_load = FeatureExtractor.load

    def load_with_notes(self, path, **kwargs):
        audio = real_load(self, path, **kwargs)
        if Path(path).stem.endswith(("1", "4")):
            audio.notes = [f"estimated length of {Path(path).name}", "second note"]
        return audio

    monkeypatch.setattr(FeatureExtractor, "load", load_with_notes)
    out = tmp_path / "f"
    full = in_process(manifest, out)
    assert full.resumed == 0
    expected = output_files(out)
    notes = expected["notes.csv"].decode().splitlines()
    assert notes[0] == "path,rank,note" and len(notes) == 1 + 2 * 6
    assert notes[1].endswith(",0,estimated length of g0.00001.wav")
    assert notes[2].endswith(",0,second note")
    assert len([k for k in expected if k.startswith("part-")]) >= 4

    interrupt(out, keep_shards=2)
    calls = []

    def counting_load(self, path, **kwargs):
        calls.append(path)
        return load_with_notes(self, path, **kwargs)

    monkeypatch.setattr(FeatureExtractor, "load", counting_load)
    again = in_process(manifest, out)
    # Each clip not in a kept shard is decoded once to convert it, and once more by rank 0
    # if it is a preview clip (previews are drawn at the end of a run, the missing ones again).
    assert 0 < again.resumed < len(clips) and len(set(calls)) == len(clips) - again.resumed
    redrawn = len(calls) - len(set(calls))
    assert 0 < redrawn <= len(list((out / "previews").glob("*.png")))
    assert (again.files, again.good, again.bad) == (full.files, full.good, full.bad)
    assert again.segments == full.segments
    assert output_files(out) == expected  # notes of resumed clips come from the journals
    timings = json.loads((out / "timings.json").read_text())
    assert timings["resumed_clips"] == again.resumed and timings["files"] == len(set(calls))
    assert timings["ranks"][0]["resumed_shards"] == ["part-0-0.npy", "part-0-1.npy"]


@pytest.mark.parametrize("change", ["config", "shard_mb", "manifest", "fresh"])
def test_changed_inputs_start_over(long_dataset, tmp_path, change, capsys):
    manifest, clips = long_dataset
    out = tmp_path / "f"
    in_process(manifest, out)
    interrupt(out, keep_shards=2)
    overrides, kwargs = {}, {}
    why = "audio, mel, preprocess.shard_mb or preprocess.previews_per_genre changed"
    if change == "config":
        overrides = {"mel.fmin": 20.0}
    elif change == "shard_mb":
        overrides = {"preprocess.shard_mb": 2}
    elif change == "manifest":
        manifest = tmp_path / "manifest.csv"
        manifest.write_text(long_dataset[0].read_text().replace(",valid\n", ",test\n", 1))
        why = "the manifest changed"
    else:
        kwargs = {"fresh": True}
        why = "--fresh: not resuming"
    capsys.readouterr()
    cfg = config(**{**RESUME_SETTINGS, **overrides})
    summary = run_spectrograms(manifest=manifest, out=out, cfg=cfg, world=World(), **kwargs)
    err = capsys.readouterr().err
    assert summary.resumed == 0 and summary.files == len(clips)
    assert err.count("genreflow spectrograms: ") == 1 and why in err, err
    assert "converting every clip" in err
    assert json.loads((out / "timings.json").read_text())["resumed_clips"] == 0
    # Nothing of the earlier run is left: every shard and journal is this run's.
    journals = sorted(p.stem for p in (out / JOURNAL_DIR).glob("*.json"))
    assert journals == sorted(p.stem for p in out.glob("part-*.npy"))
    assert not list(out.glob(".*"))


def test_touched_clip_or_other_rank_count_start_over(long_dataset, tmp_path):
    from genreflow.spectrograms.journal import recover_journals
    from genreflow.spectrograms.plan import make_plan as _plan

    manifest, clips = long_dataset
    out = tmp_path / "f"
    cfg = config(**RESUME_SETTINGS)
    in_process(manifest, out)
    interrupt(out, keep_shards=2)

    def shares_and_inputs(n_ranks):
        plan = _plan(manifest=manifest, out=tmp_path / "scratch", cfg=cfg, n_ranks=n_ranks)
        return [s.tasks for s in plan.shares], plan.shares[0].inputs

    shares, inputs = shares_and_inputs(1)
    found, why = recover_journals(out, shares=shares, inputs=inputs, n_ranks=1)
    assert why is None and len(found[0].shards) == 2 and 0 < found[0].done < len(clips)
    shares2, inputs2 = shares_and_inputs(2)
    assert inputs2 == inputs
    found, why = recover_journals(out, shares=shares2, inputs=inputs, n_ranks=2)
    assert found is None and "the earlier run had 1 rank(s), this one has 2" in why
    # A clip rewritten with the same size: its modification time gives it away.
    path = clips[-2]["path"]
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    try:
        shares, touched = shares_and_inputs(1)
        found, why = recover_journals(out, shares=shares, inputs=touched, n_ranks=1)
        assert found is None and "a clip file changed" in why
    finally:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    # A kept shard of the recorded size whose bytes changed (bit rot) ends the run there too.
    shard = out / "part-0-1.npy"
    original = shard.read_bytes()
    flipped = bytearray(original)
    flipped[-1] ^= 0x01
    shard.write_bytes(bytes(flipped))
    found, why = recover_journals(out, shares=shares, inputs=inputs, n_ranks=1)
    assert why is None and [s.name for s in found[0].shards] == ["part-0-0.npy"]
    shard.write_bytes(original)
    found, why = recover_journals(out, shares=shares, inputs=inputs, n_ranks=1)
    assert why is None and len(found[0].shards) == 2
    # A kept shard that is shorter than its journal says ends the run of journals there.
    shard.write_bytes(shard.read_bytes()[:-2])
    found, why = recover_journals(out, shares=shares, inputs=inputs, n_ranks=1)
    assert why is None and [s.name for s in found[0].shards] == ["part-0-0.npy"]


def test_shard_writer_numbers_from_first_index_and_reports_each_shard(tmp_path):
    import numpy as np

    from genreflow.spectrograms.shards import ShardWriter

    calls = []
    header, row_bytes = 128, 4 * 3 * 2
    with ShardWriter(
        directory=tmp_path,
        rank=1,
        row_shape=(4, 3),
        max_bytes=header + 2 * row_bytes,
        first_index=3,
        on_finished=lambda shard: calls.append((shard, sorted(p.name for p in tmp_path.iterdir()))),
    ) as w:
        for _ in range(3):
            w.append(np.zeros((1, 4, 3), dtype=np.float16))
    # Called after the rename: the shard is in place under its final name.
    assert [c[0][:3] for c in calls] == [
        ("part-1-3.npy", 2, header + 2 * row_bytes),
        ("part-1-4.npy", 1, header + row_bytes),
    ]
    assert "part-1-3.npy" in calls[0][1] and "part-1-4.npy" in calls[1][1]
    assert [c[0] for c in calls] == w.finished
    assert [(f.name, f.rows) for f in w.finished] == [("part-1-3.npy", 2), ("part-1-4.npy", 1)]
    assert (tmp_path / "part-1-4.npy").stat().st_size == header + row_bytes
