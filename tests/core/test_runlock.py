"""One run per output folder (genreflow.core.runlock): a second run refuses at once, naming
the first; a run that was killed blocks nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genreflow.core.runlock import LOCK_FILE, output_lock
from tests.support.spectrogram_runs import TIMEOUT, make_long_dataset, resume_cmd, start_slowed
from tests.support.tone_data import genreflow_subprocess, read_json, train_args

_CONTEND = (
    "import sys\n"
    "from genreflow.core.runlock import output_lock\n"
    "with output_lock(sys.argv[1], command='second'):\n"
    "    print('locked')\n"
)


def contend(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _CONTEND, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def wait_for_holder(folder: Path, proc: subprocess.Popen) -> dict:
    deadline = time.monotonic() + TIMEOUT
    lock = folder / LOCK_FILE
    while not (lock.exists() and lock.read_text().strip()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run never took its folder"
        time.sleep(0.02)
    return json.loads(lock.read_text())


def test_a_held_folder_refuses_a_second_holder_naming_the_first(tmp_path):
    folder = tmp_path / "out"
    # Not read here: a POSIX lock belongs to the process, and closing any descriptor of the
    # file in the holding process would release it.
    with output_lock(folder, command="genreflow first"):
        second = contend(folder)
        assert second.returncode != 0 and "locked" not in second.stdout
        assert (
            f"{folder} is in use by another run (genreflow first, PID {os.getpid()} on "
            f"{socket.gethostname()}, since " in second.stderr
        )
    assert not (folder / LOCK_FILE).exists()  # released and removed
    assert contend(folder).stdout == "locked\n"


def test_a_lock_file_left_by_a_killed_run_blocks_nothing(tmp_path):
    folder = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", _CONTEND.replace("print('locked')", "input()"), str(folder)],
        stdin=subprocess.PIPE,
        text=True,
    )
    wait_for_holder(folder, holder)
    assert contend(folder).returncode != 0
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert json.loads((folder / LOCK_FILE).read_text())["pid"] == holder.pid  # left behind
    assert contend(folder).stdout == "locked\n"
    with output_lock(folder, command="third"):
        pass


@pytest.mark.slow
def test_a_second_spectrogram_run_on_the_same_out_refuses_and_a_killed_one_resumes(tmp_path):
    manifest, _ = make_long_dataset(tmp_path / "data", per_genre=6)
    out = tmp_path / "features"
    first = start_slowed(
        resume_cmd(manifest, out, ranks=None), delay=0.2, stdout=subprocess.DEVNULL
    )
    try:
        holder = wait_for_holder(out, first)
        assert holder["pid"] == first.pid and holder["command"] == "genreflow spectrograms"
        started = time.monotonic()
        second = subprocess.run(
            resume_cmd(manifest, out, ranks=None), capture_output=True, text=True, check=False
        )
        assert second.returncode == 2 and time.monotonic() - started < 60
        assert f"is in use by another run (genreflow spectrograms, PID {first.pid}" in (
            second.stderr
        )
        assert first.poll() is None  # the first run goes on, untouched
        while not list((out / "journal").glob("part-*.json")):
            assert first.poll() is None
            time.sleep(0.02)
    finally:
        first.kill()
        first.wait(timeout=30)
    rerun = subprocess.run(
        resume_cmd(manifest, out, ranks=None), capture_output=True, text=True, check=False
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "resuming the earlier run" in rerun.stderr
    assert not (out / LOCK_FILE).exists()


@pytest.mark.slow
def test_a_second_training_run_on_the_same_out_refuses_and_a_killed_one_resumes(
    tone_features, tmp_path
):
    model = tmp_path / "model"
    first = genreflow_subprocess(*train_args(tone_features, model, "--epochs", "200"))
    try:
        holder = wait_for_holder(model, first)
        assert holder["pid"] == first.pid and holder["command"] == "genreflow train"
        second = genreflow_subprocess(*train_args(tone_features, model, "--epochs", "200"))
        _, err = second.communicate(timeout=TIMEOUT)
        assert second.returncode == 2
        assert f"{model} is in use by another run (genreflow train, PID {first.pid}" in err
        assert first.poll() is None
        deadline = time.monotonic() + TIMEOUT
        while not (model / "checkpoints" / "state.json").exists():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        first.kill()
        first.communicate(timeout=30)
    done = read_json(model / "checkpoints" / "state.json")["epochs_done"]
    rerun = genreflow_subprocess(*train_args(tone_features, model, "--epochs", str(done + 1)))
    out, err = rerun.communicate(timeout=TIMEOUT)
    assert rerun.returncode == 0, err
    assert f"resuming after epoch {done}" in out
    assert not (model / LOCK_FILE).exists()
