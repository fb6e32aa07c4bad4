"""A full disk: spectrograms, training checkpoints and the model export on a small tmpfs.

Each case fills a real file system (``mount -t tmpfs -o size=...``, root only) while the stage
writes there, then checks the three promises: one line naming the file and "no space left"
(no traceback), no output that looks finished, and, once space is freed, a rerun that resumes
from what was finished.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.spectrogram_runs import (
    TIMEOUT,
    make_long_dataset,
    needs_mpi,
    output_files,
    resume_cmd,
    slow,
    start_slowed,
)
from tests.support.tone_data import genreflow_subprocess, read_json, train_args

pytestmark = slow


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs at ``tmp_path / "disk"``; :func:`fill` makes it full."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (root only): {made.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; delete it to free the space again."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:
        block = b"\0" * (1 << 20)
        with contextlib.suppress(OSError):
            while True:
                fh.write(block)
        with contextlib.suppress(OSError):
            while True:  # the last, partial MiB
                fh.write(b"\0" * 4096)
    assert shutil.disk_usage(disk).free < 8192
    return filler


def temporary_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*tmp-*"))


def check_one_line(stderr: str, path_part: str) -> None:
    lines = [line for line in stderr.splitlines() if "no space left on device" in line]
    assert len(lines) >= 1, stderr
    assert path_part in lines[0], lines[0]
    assert "Traceback" not in stderr, stderr


# --------------------------------------------------------------------------- spectrograms


@needs_mpi
@pytest.mark.parametrize("ranks", [1, 2])
def test_spectrograms_on_a_full_disk_stop_cleanly_and_resume(ranks, small_disk, tmp_path):
    manifest, clips = make_long_dataset(tmp_path / "data", per_genre=8)
    reference = tmp_path / "reference"
    done = subprocess.run(
        resume_cmd(manifest, reference, ranks=ranks), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    out = small_disk / "features"
    proc = start_slowed(resume_cmd(manifest, out, ranks=ranks), delay=0.1)
    deadline = time.monotonic() + TIMEOUT
    while not list((out / "journal").glob("part-*.json")):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no shard was finished"
        time.sleep(0.02)
    filler = fill(small_disk)
    _, err = proc.communicate(timeout=TIMEOUT)

    assert proc.returncode != 0
    check_one_line(err, str(out))
    if ranks > 1:
        assert f"/{ranks} on " in err and "aborting all ranks" in err
    assert not (out / "features.json").exists()
    assert temporary_files(out) == []
    kept = sorted(p.name for p in out.glob("part-*.npy"))
    assert kept, "the shards finished before the disk filled up are kept"

    filler.unlink()
    rerun = subprocess.run(
        resume_cmd(manifest, out, ranks=ranks), capture_output=True, text=True, check=False
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming the earlier run" in rerun.stderr
    assert read_json(out / "timings.json")["resumed_clips"] > 0
    assert output_files(out) == output_files(reference)


# --------------------------------------------------------------------------- training


def test_training_checkpoints_on_a_full_disk_stop_cleanly_and_resume(tone_features, small_disk):
    model = small_disk / "model"
    state_file = model / "checkpoints" / "state.json"
    proc = genreflow_subprocess(*train_args(tone_features, model, "--epochs", "200"))
    try:
        deadline = time.monotonic() + TIMEOUT
        while not state_file.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        filler = fill(small_disk)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2
    check_one_line(err, str(model / "checkpoints"))
    assert not (model / "genreflow.json").exists() and not (model / "model.keras").exists()
    assert temporary_files(model) == []
    # The last checkpoint that was written is intact and still the one state.json names.
    state = read_json(state_file)
    assert (model / "checkpoints" / state["checkpoint"]).is_file()
    done = state["epochs_done"]

    filler.unlink()
    rerun = genreflow_subprocess(*train_args(tone_features, model, "--epochs", str(done + 1)))
    out, err = rerun.communicate(timeout=TIMEOUT)
    assert rerun.returncode == 0, err
    assert f"resuming after epoch {done}" in out
    assert read_json(model / "genreflow.json")["labels"]


def test_export_on_a_full_disk_leaves_no_model_and_resumes(tone_model, tone_features, small_disk):
    """The checkpoints of a finished 2-epoch run: the rerun only exports, onto a full disk."""
    model = small_disk / "model"
    shutil.copytree(tone_model / "checkpoints", model / "checkpoints")
    filler = fill(small_disk)
    full = genreflow_subprocess(*train_args(tone_features, model, "--epochs", "2"))
    out, err = full.communicate(timeout=TIMEOUT)
    assert full.returncode == 2, err
    assert "exporting" in out
    check_one_line(err, str(model))
    assert not (model / "genreflow.json").exists()
    assert temporary_files(model) == []
    assert read_json(model / "checkpoints" / "state.json")["epochs_done"] == 2

    filler.unlink()
    rerun = genreflow_subprocess(*train_args(tone_features, model, "--epochs", "2"))
    out, err = rerun.communicate(timeout=TIMEOUT)
    assert rerun.returncode == 0, err
    exported, original = (read_json(m / "genreflow.json") for m in (model, tone_model))
    assert exported.pop("created") and original.pop("created")
    assert exported == original
    assert read_json(model / "history.json") == read_json(tone_model / "history.json")
