"""genreflow train: the tf.data pipeline, the exported model directory, resume and threads.

Everything runs for real: WAV files -> ``genreflow spectrograms`` -> ``genreflow train`` with
TensorFlow, on the tiny tone data of ``support/tone_data.py`` (session fixtures in ``conftest.py``).
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from genreflow.cli import main
from genreflow.core.config import config_hash, load_config
from tests.support.tone_data import (
    GENRES,
    TIMEOUT,
    TRAIN_SETTINGS,
    genreflow_subprocess,
    make_features,
    read_json,
    train_args,
)


@pytest.fixture(scope="module")
def features(tone_features) -> Path:
    return tone_features


@pytest.fixture(scope="module")
def trained(tone_model) -> Path:
    return tone_model


# --------------------------------------------------------------------------- pipeline


def test_sampler_draws_each_clip_reproducibly(features):
    from genreflow.spectrograms.clips import clip_table
    from genreflow.spectrograms.shards import open_features
    from genreflow.training.pipeline import SegmentSampler

    fs = open_features(features)
    clips = clip_table(fs, split="train", labels=fs.labels)
    assert len(clips) == 4 * len(GENRES)

    def sampler(seed):
        return SegmentSampler(
            features=fs, clips=clips, segments_per_clip=3, seed=seed, shuffle=True
        )

    plan = sampler(7).plan(0)
    assert plan.shape == (len(clips) * 3, 2)
    # Every clip drawn segments_per_clip times, rows inside the clip, distinct while it has enough.
    assert np.array_equal(np.bincount(plan[:, 0]), np.full(len(clips), 3))
    assert (plan[:, 1] >= 0).all() and (plan[:, 1] < clips.n_segments[plan[:, 0]]).all()
    for clip in range(len(clips)):
        drawn = plan[plan[:, 0] == clip, 1]
        assert len(set(drawn)) == min(3, clips.n_segments[clip])
    assert np.array_equal(sampler(7).plan(0), plan)  # same seed and epoch: same draw
    assert not np.array_equal(sampler(7).plan(1), plan)  # a new epoch, a new draw
    assert not np.array_equal(sampler(8).plan(0), plan)


def test_band_statistics_match_in_memory_computation(features):
    from genreflow.spectrograms.clips import clip_table
    from genreflow.spectrograms.shards import open_features
    from genreflow.training.dataset import band_statistics

    fs = open_features(features)
    clips = clip_table(fs, split="train", labels=fs.labels)
    mean, std = band_statistics(fs, clips)
    rows = np.concatenate(
        [
            fs.shard(s)[a:b]
            for s, a, b in zip(clips.shards, clips.row_start, clips.row_stop, strict=True)
        ]
    ).astype(np.float64)
    assert mean.shape == std.shape == (fs.n_mels,)
    np.testing.assert_allclose(mean, rows.mean(axis=(0, 2)), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(std, rows.std(axis=(0, 2)), rtol=1e-4, atol=1e-3)


def test_dataset_standardises_masks_and_repeats_epochs(features):
    from genreflow.spectrograms.clips import clip_table
    from genreflow.spectrograms.shards import open_features
    from genreflow.training.dataset import band_statistics
    from genreflow.training.pipeline import SegmentSampler, make_dataset

    fs = open_features(features)
    clips = clip_table(fs, split="train", labels=fs.labels)
    mean, std = band_statistics(fs, clips)
    sampler = SegmentSampler(features=fs, clips=clips, segments_per_clip=2, seed=3, shuffle=True)
    plain = make_dataset(sampler, mean=mean, std=std, batch_size=5)
    masked = make_dataset(
        sampler,
        mean=mean,
        std=std,
        batch_size=5,
        spec_augment={
            "enabled": True,
            "time_masks": 2,
            "time_width": 20,
            "freq_masks": 2,
            "freq_width": 6,
        },
    )
    x, y = (
        np.concatenate(parts)
        for parts in zip(*[(a.numpy(), b.numpy()) for a, b in plain], strict=True)
    )
    assert x.shape == (len(sampler), fs.n_mels, fs.n_frames, 1) and x.dtype == np.float32
    # The first example is the plan's first row, standardised with the train statistics.
    clip, within = sampler.plan(0)[0]
    raw = fs.shard(clips.shards[clip])[clips.row_start[clip] + within].astype(np.float32)
    np.testing.assert_allclose(x[0, ..., 0], (raw - mean[:, None]) / std[:, None], atol=1e-3)
    assert np.array_equal(y, clips.labels[sampler.plan(0)[:, 0]])
    # SpecAugment zeroes whole frame and band ranges, the same way every time for one epoch.
    m1 = np.concatenate([a.numpy() for a, _ in masked])
    m2 = np.concatenate([a.numpy() for a, _ in masked])
    assert np.array_equal(m1, m2)
    zeroed = (m1 == 0) & (x != 0)
    assert zeroed.any()
    assert np.array_equal(m1[~zeroed], x[~zeroed])
    # Random crops are windows of the whole standardised segments, at varying offsets.
    cropped = make_dataset(sampler, mean=mean, std=std, batch_size=5, crop_frames=40)
    c = np.concatenate([a.numpy() for a, _ in cropped])
    assert c.shape == (len(sampler), fs.n_mels, 40, 1)
    starts = []
    for k in range(len(c)):
        hits = [
            s
            for s in range(fs.n_frames - 40 + 1)
            if np.allclose(c[k, ..., 0], x[k, :, s : s + 40, 0], atol=1e-5)
        ]
        assert hits, k
        starts.append(hits[0])
    assert len(set(starts)) > 3
    sampler.epoch = 1
    assert not np.array_equal(np.concatenate([a.numpy() for a, _ in masked]), m1)


# --------------------------------------------------------------------------- the model directory


def test_train_exports_a_complete_model_directory(trained, features):
    import keras

    info = read_json(trained / "genreflow.json")
    marker = read_json(features / "features.json")
    assert info["labels"] == sorted(GENRES) == marker["labels"]
    assert info["audio"] == marker["audio"] and info["mel"] == marker["mel"]
    assert len(info["norm"]["mean"]) == len(info["norm"]["std"]) == 32
    assert all(s > 0 for s in info["norm"]["std"])
    assert info["multilabel"] is False and info["thresholds"] is None
    assert info["features_hash"] == marker["config_hash"]
    # --set values are YAML, so "8" is the int 8, as here.
    cfg = load_config(
        None, overrides={k: yaml.safe_load(v) for k, v in (s.split("=") for s in TRAIN_SETTINGS)}
    )
    assert info["config_hash"] == config_hash(cfg, ("train",))
    assert info["segment_frames"] == marker["n_frames"]

    history = read_json(trained / "history.json")
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    for entry in history["epochs"]:
        assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(entry)
    best = min(history["epochs"], key=lambda e: e["val_loss"])
    assert history["best_epoch"] == info["best_epoch"] == best["epoch"]
    assert history["stopped"] == "epochs"

    timings = read_json(trained / "timings.json")
    assert timings["stage"] == "train" and timings["device"] == "CPU"
    # In this process TensorFlow may already be running (earlier tests, in whatever order), so
    # the pools in force stay as they were and are recorded as such, never the request; the
    # subprocess test checks a fresh process.
    import tensorflow as tf

    assert timings["threads"]["requested"] == {"intra_op": 2, "inter_op": 2}  # inter: auto
    in_force = tf.config.threading.get_intra_op_parallelism_threads()
    assert timings["threads"]["intra_op"] == in_force and timings["host"]
    assert [e["epoch"] for e in timings["epochs"]] == [1, 2]
    for e in timings["epochs"]:
        assert e["samples"] == 4 * len(GENRES) * 2
        assert e["samples_per_second"] == pytest.approx(e["samples"] / e["train_seconds"], rel=0.01)
    assert timings["samples_per_second"] > 0 and timings["total_seconds"] > 0

    model = keras.models.load_model(trained / "model.keras", compile=False)
    assert model.input_shape == (None, 32, None, 1)
    probs = model(np.zeros((2, 32, 50, 1), np.float32), training=False).numpy()
    assert probs.shape == (2, len(GENRES))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # The exported weights are the best epoch's checkpoint, not the last epoch's.
    best_ckpt = keras.models.load_model(trained / "checkpoints" / "best.keras", compile=False)
    for a, b in zip(model.get_weights(), best_ckpt.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not list(trained.glob(".*tmp*"))  # atomic writes left no temporaries


def test_rerun_with_more_epochs_trains_only_the_new_ones(trained, features, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained, model)
    before = read_json(trained / "history.json")["epochs"]
    capsys.readouterr()
    assert main(train_args(features, model, "--epochs", "3")) == 0
    out = capsys.readouterr().out
    assert "resuming after epoch 2" in out
    assert "Epoch 3/3" in out and "Epoch 1/3" not in out and "Epoch 2/3" not in out
    history = read_json(model / "history.json")
    assert [e["epoch"] for e in history["epochs"]] == [1, 2, 3]
    assert history["epochs"][:2] == before  # the first two epochs are the original run's
    timings = read_json(model / "timings.json")
    assert timings["resumed_from"] == 2
    assert [e["warmup"] for e in timings["epochs"]] == [True, False, True]
    assert sorted(p.name for p in (model / "checkpoints").glob("epoch-*")) == ["epoch-0003.keras"]


def test_checkpoints_of_other_features_or_settings_are_not_resumed(
    trained, features, tmp_path, capsys
):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(trained, model)
    # The same settings, but features made again (a new features.json): start over.
    remade = tmp_path / "features"
    shutil.copytree(features, remade)
    marker = read_json(remade / "features.json")
    marker["created"] = "2000-01-01T00:00:00+00:00"
    (remade / "features.json").write_text(json.dumps(marker))
    capsys.readouterr()
    assert main(train_args(remade, model, "--epochs", "1")) == 0
    out = capsys.readouterr().out
    assert "training from scratch" in out and "resuming" not in out
    assert [e["epoch"] for e in read_json(model / "history.json")["epochs"]] == [1]
    # Other weight-shaping settings (a learning rate) on the original features: start over too.
    assert (
        main(train_args(features, model, "--epochs", "1", "--set", "train.learning_rate=0.01")) == 0
    )
    assert "training from scratch" in capsys.readouterr().out
    assert read_json(model / "timings.json")["resumed_from"] == 0


def test_same_seed_same_training(trained, features, tmp_path):
    # Epoch 1 again, in a new directory: the same seed gives the same draw, masks, initial
    # weights and dropout, hence the same losses (up to float rounding across thread timing).
    assert main(train_args(features, tmp_path / "again", "--epochs", "1")) == 0
    first = read_json(trained / "history.json")["epochs"][0]
    again = read_json(tmp_path / "again" / "history.json")["epochs"][0]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert again[key] == pytest.approx(first[key], rel=1e-4, abs=1e-6), key
    other = tmp_path / "other-seed"
    assert main(train_args(features, other, "--epochs", "1", "--set", "train.seed=1")) == 0
    assert read_json(other / "history.json")["epochs"][0]["loss"] != pytest.approx(first["loss"])


def test_max_seconds_stops_early_and_stays_resumable(features, tmp_path, capsys):
    model = tmp_path / "model"
    assert main(train_args(features, model, "--epochs", "5", "--max-seconds", "0.001")) == 0
    assert "max_seconds" in capsys.readouterr().out
    history = read_json(model / "history.json")
    assert history["stopped"] == "max_seconds"
    assert len(history["epochs"]) == 1 and history["epochs"][0]["complete"] is False
    assert read_json(model / "timings.json")["epochs"][0]["samples"] == 8  # one batch
    state = read_json(model / "checkpoints" / "state.json")
    assert state["epochs_done"] == 1 and state["stopped"] is None  # a rerun would go on


def test_missing_splits_and_folders_are_clear_errors(tmp_path, capsys):
    features = make_features(tmp_path / "no-valid", splits=("train", "train", "test"))
    assert main(train_args(features, tmp_path / "m1")) == 2
    err = capsys.readouterr().err
    assert "no 'valid' clips" in err and str(features) in err
    assert main(train_args(tmp_path / "nowhere", tmp_path / "m2")) == 2
    assert "nowhere" in capsys.readouterr().err
    assert not (tmp_path / "m1" / "model.keras").exists()


@pytest.mark.slow
def test_killed_run_resumes_after_last_checkpoint_with_its_threads(features, tmp_path):
    """A training process killed mid-run continues from its checkpoint; --threads reaches TF."""
    model = tmp_path / "model"
    state_file = model / "checkpoints" / "state.json"
    proc = genreflow_subprocess(*train_args(features, model, "--epochs", "200", "--threads", "1"))
    try:
        deadline = time.monotonic() + TIMEOUT
        while not state_file.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = read_json(state_file)["epochs_done"]
    assert 1 <= done < 200
    assert not (model / "model.keras").exists()  # it never got to export

    rerun = genreflow_subprocess(
        *train_args(features, model, "--epochs", str(done + 1), "--threads", "1")
    )
    out, err = rerun.communicate(timeout=TIMEOUT)
    assert rerun.returncode == 0, err
    assert f"resuming after epoch {done}" in out
    assert f"Epoch {done + 1}/{done + 1}" in out and f"Epoch {done}/" not in out
    history = read_json(model / "history.json")
    assert [e["epoch"] for e in history["epochs"]] == list(range(1, done + 2))
    timings = read_json(model / "timings.json")
    assert timings["resumed_from"] == done
    assert [e["warmup"] for e in timings["epochs"]][done] is True  # the rerun's only epoch
    # Thread settings as read back from TensorFlow, and the matching environment.
    assert timings["threads"]["intra_op"] == 1
    assert timings["threads"]["inter_op"] == 1
    assert timings["threads"]["env"]["OMP_NUM_THREADS"] == "1"
    assert timings["threads"]["env"]["TF_NUM_INTRAOP_THREADS"] == "1"
    # What the libraries have in force, and the one core a 1-thread run is bound to.
    assert timings["threads"]["blas"] == 1
    assert len(timings["threads"]["cpus"]) == 1
    assert timings["role"] == "production" and timings["start_time"] < timings["end_time"]
