"""genreflow.report.production and `genreflow choose`: the production setting of a stage is
its sweep's fastest point, by the measure the report's speed-ups use."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from genreflow.cli import main
from genreflow.report.production import choose_setting, read_choice
from tests.support.tone_data import TIMEOUT, genreflow_subprocess, read_json, train_args


def write_spectrogram_timings(folder: Path, *, ranks: int, work: float) -> Path:
    """A spectrogram timings.json (docs/formats.md) whose work window is ``work`` seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "timings.json"
    path.write_text(
        json.dumps(
            {
                "stage": "spectrograms",
                "n_ranks": ranks,
                "wall_seconds": work + 1.0,
                "startup_seconds": 0.5,
                "work_seconds": work,
                "start_time": 100.0 * ranks,
                "end_time": 100.0 * ranks + work + 1.0,
                "files": 40,
                "hosts": ["node01"],
            }
        )
    )
    (folder / "features.json").write_text("{}")
    return path


def test_choose_takes_the_fastest_rank_count_and_links_its_folder(tmp_path, capsys):
    features = tmp_path / "features" / "fh"
    timings = [
        write_spectrogram_timings(features / f"ranks{n}", ranks=n, work=work)
        for n, work in ((1, 2.0), (2, 1.1), (4, 1.3))
    ]
    out, link = features / "production.json", features / "production"
    args = ["choose", "--timings", *map(str, timings), "--out", str(out), "--link", str(link)]
    assert main(args) == 0
    choice = read_choice(out)
    assert choice["chosen"] == 2 and choice["axis"] == "ranks" and choice["folder"] == "ranks2"
    assert choice["measured"] == {"1": 2.0, "2": 1.1, "4": 1.3}
    assert link.is_symlink() and os.readlink(link) == "ranks2"  # relative: the tree can move
    assert link.resolve() == (features / "ranks2").resolve()
    printed = capsys.readouterr().out
    assert "production spectrograms uses 2 ranks" in printed and "1.82x" in printed

    # A new sweep that makes 4 ranks the fastest moves the link (atomically, no leftovers).
    write_spectrogram_timings(features / "ranks4", ranks=4, work=0.9)
    assert main(args) == 0
    assert read_choice(out)["chosen"] == 4 and os.readlink(link) == "ranks4"
    assert sorted(p.name for p in features.iterdir()) == [
        "production",
        "production.json",
        "ranks1",
        "ranks2",
        "ranks4",
    ]


def test_choose_refuses_what_is_not_one_sweep(tmp_path, capsys):
    spectrograms = write_spectrogram_timings(tmp_path / "ranks1", ranks=1, work=1.0)
    train = tmp_path / "threads1" / "timings.json"
    train.parent.mkdir()
    train.write_text(
        json.dumps({"stage": "train", "threads": {"intra_op": 1}, "epochs": [{"seconds": 1.0}]})
    )
    out = tmp_path / "production.json"
    assert main(["choose", "--timings", str(spectrograms), str(train), "--out", str(out)]) != 0
    assert "several stages" in capsys.readouterr().err and not out.exists()
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(Exception, match="broken.json: cannot choose"):
        choose_setting(timings=[broken])


@pytest.mark.slow
def test_training_takes_its_threads_from_the_choice(tone_features, tmp_path):
    choice = tmp_path / "production.json"
    choice.write_text(json.dumps({"stage": "train", "axis": "threads", "chosen": 1}))
    model = tmp_path / "model"
    proc = genreflow_subprocess(
        *train_args(tone_features, model, "--epochs", "1", "--threads-from", str(choice))
    )
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    timings = read_json(model / "timings.json")
    assert timings["threads"]["intra_op"] == 1 and timings["threads"]["requested"]["intra_op"] == 1
    assert len(timings["threads"]["cpus"]) == 1  # bound to one core (train.bind_cores)


def test_auto_threads_by_hand_take_every_cpu_and_give_the_caller_its_cores_back(
    tone_features, tmp_path, capsys
):
    before = os.sched_getaffinity(0)
    model = tmp_path / "m"
    args = train_args(
        tone_features, model, "--epochs", "1", "--set", "train.production_threads=auto"
    )
    assert main(args) == 0
    assert "train.production_threads is auto and no sweep choice" in capsys.readouterr().out
    timings = read_json(model / "timings.json")
    assert timings["threads"]["intra_op"] == len(before)
    assert os.sched_getaffinity(0) == before  # trained in-process: the binding is undone
