"""The training recipe's parts: time pooling, gain and mixup augmentation, one-hot targets, export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genreflow.cli import main
from tests.support.tone_data import GENRES, make_features, train_args


@pytest.fixture(scope="module")
def features(tone_features):
    return tone_features


def _sampler(features, **kwargs):
    from genreflow.spectrograms.clips import clip_table
    from genreflow.spectrograms.shards import open_features
    from genreflow.training.dataset import band_statistics
    from genreflow.training.pipeline import SegmentSampler

    fs = open_features(features)
    clips = clip_table(fs, split="train", labels=fs.labels)
    mean, std = band_statistics(fs, clips)
    sampler = SegmentSampler(features=fs, clips=clips, segments_per_clip=2, seed=5, shuffle=True)
    return fs, clips, sampler, mean, std


def _collect(dataset):
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_time_pooling_model_keeps_frequency_and_takes_any_length(tmp_path):
    import keras

    from genreflow.training.model import build_model

    model = build_model(n_mels=64, n_labels=5, pooling="time", filters=(8, 16, 24))
    # 64 bands -> stride 2 and two 2x2 pools -> 8 frequency bins x 24 channels to the classifier.
    assert model.get_layer("time_pool").output.shape[-1] == 8 * 24
    for frames in (40, 129, 300):
        probs = model(np.zeros((2, 64, frames, 1), np.float32), training=False).numpy()
        assert probs.shape == (2, 5)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path, compile=False)
    x = np.random.default_rng(0).standard_normal((3, 64, 77, 1)).astype(np.float32)
    np.testing.assert_allclose(again(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="pooling"):
        build_model(n_mels=64, n_labels=5, pooling="max")


def test_gain_shifts_whole_examples_and_one_hot_matches_labels(features):
    from genreflow.training.pipeline import make_dataset

    fs, clips, sampler, mean, std = _sampler(features)
    plain_x, plain_y = _collect(make_dataset(sampler, mean=mean, std=std, batch_size=4))
    gained_x, onehot_y = _collect(
        make_dataset(sampler, mean=mean, std=std, batch_size=4, gain_db=6.0, one_hot=len(GENRES))
    )
    np.testing.assert_array_equal(onehot_y, np.eye(len(GENRES), dtype=np.float32)[plain_y])
    # A gain of g dB adds g / std to every band of the standardised example.
    shift = (gained_x - plain_x)[..., 0] * std[None, :, None]
    per_example = shift.reshape(len(shift), -1)
    np.testing.assert_allclose(per_example - per_example[:, :1], 0.0, atol=2e-3)
    gains = per_example[:, 0]
    assert (np.abs(gains) <= 6.0 + 1e-3).all() and np.ptp(gains) > 1.0


def test_mixup_blends_pairs_and_keeps_each_example_mostly_itself(features):
    from genreflow.training.pipeline import make_dataset

    fs, clips, sampler, mean, std = _sampler(features)
    n = len(GENRES)
    plain_x, plain_y = _collect(make_dataset(sampler, mean=mean, std=std, batch_size=6, one_hot=n))
    mixed = make_dataset(sampler, mean=mean, std=std, batch_size=6, one_hot=n, mixup=0.4)
    mixed_x, mixed_y = _collect(mixed)
    again_x, _ = _collect(mixed)
    np.testing.assert_array_equal(mixed_x, again_x)  # seeded per example: the same every time
    np.testing.assert_allclose(mixed_y.sum(axis=1), 1.0, rtol=1e-6)
    assert mixed_y.max(axis=1).min() >= 0.5 - 1e-6 and (mixed_y.max(axis=1) < 1.0).any()
    # Example k of a batch is lam * itself + (1 - lam) * its mirror in the batch.
    for start in range(0, len(plain_x) - len(plain_x) % 6, 6):
        xb, yb = plain_x[start : start + 6], plain_y[start : start + 6]
        for k in range(6):
            own = yb[k].argmax()
            if yb[5 - k].argmax() == own:
                continue  # same label: the target does not tell lam
            lam = mixed_y[start + k, own]
            expected = lam * xb[k] + (1 - lam) * xb[5 - k]
            np.testing.assert_allclose(mixed_x[start + k], expected, atol=1e-4)
    with pytest.raises(ValueError, match="mixup"):
        make_dataset(sampler, mean=mean, std=std, batch_size=6, mixup=0.4)


def test_export_last_takes_the_final_epoch_and_augmentations_train(features, tmp_path):
    import keras

    model = tmp_path / "model"
    extra = (
        "--epochs", "3",
        "--set", "train.export=last",
        "--set", "train.mixup=0.3",
        "--set", "train.gain_db=6",
        "--set", "train.label_smoothing=0.1",
        "--set", "train.warmup_epochs=2",
        "--set", "train.model.pooling=time",
    )  # fmt: skip
    assert main([*train_args(features, model), *extra]) == 0  # after the shared settings
    info = json.loads((model / "genreflow.json").read_text())
    history = json.loads((model / "history.json").read_text())
    assert info["best_epoch"] == history["best_epoch"] == 3
    exported = keras.models.load_model(model / "model.keras", compile=False)
    last = keras.models.load_model(model / "checkpoints" / "epoch-0003.keras", compile=False)
    for a, b in zip(exported.get_weights(), last.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # Two warm-up epochs: half the peak rate after the first, the peak after the second.
    rates = [e["learning_rate"] for e in history["epochs"]]
    assert rates[1] == pytest.approx(0.002, rel=1e-3) and rates[0] == pytest.approx(0.001, rel=1e-3)
    assert rates[2] < rates[1]
    assert exported.get_layer("time_pool") is not None


def test_a_last_epoch_export_trains_without_a_valid_split(tmp_path, capsys):
    features = make_features(tmp_path / "no-valid", splits=("train", "train", "train", "test"))
    model = tmp_path / "model"
    # train_args ends with the shared test settings (train.export=best): later --set wins.
    assert main(train_args(features, model, "--epochs", "2")) == 2
    assert "no 'valid' clips" in capsys.readouterr().err
    assert main([*train_args(features, model, "--epochs", "2"), "--set", "train.export=last"]) == 0
    assert "last epoch 2: loss" in capsys.readouterr().out
    history = json.loads((model / "history.json").read_text())
    assert history["best_epoch"] == 2 and history["stopped"] == "epochs"
    assert all("val_loss" not in e for e in history["epochs"])


def test_class_weights_make_every_genre_weigh_alike(features):
    from genreflow.spectrograms.clips import ClipTable
    from genreflow.training.dataset import balanced_class_weights
    from genreflow.training.pipeline import make_dataset

    labels = np.array([0, 0, 0, 1, 2, 2])
    table = ClipTable(
        clip_ids=[str(i) for i in range(6)],
        labels=labels,
        shards=[""] * 6,
        row_start=np.zeros(6, np.int64),
        row_stop=np.ones(6, np.int64),
        targets=np.eye(4, dtype=np.float32)[labels],
    )
    weights = balanced_class_weights(table, n_labels=4)
    np.testing.assert_allclose(weights, [6 / 9, 6 / 3, 6 / 6, 0.0], rtol=1e-6)
    assert weights[labels].mean() == pytest.approx(1.0)  # the loss keeps its scale
    np.testing.assert_allclose(np.bincount(labels, weights[labels])[:3], 2.0, rtol=1e-6)

    fs, clips, sampler, mean, std = _sampler(features)
    given = np.array([0.5, 1.0, 2.0], np.float32)
    plain_x, plain_y = _collect(make_dataset(sampler, mean=mean, std=std, batch_size=4))
    batches = list(make_dataset(sampler, mean=mean, std=std, batch_size=4, class_weights=given))
    assert all(len(b) == 3 for b in batches)
    w = np.concatenate([b[2].numpy() for b in batches])
    np.testing.assert_array_equal(w, given[plain_y])
    # Under mixup the weight is blended with the partner's like the target.
    n = len(GENRES)
    for _, y, wb in make_dataset(
        sampler, mean=mean, std=std, batch_size=4, class_weights=given, one_hot=n, mixup=0.4
    ):
        np.testing.assert_allclose(wb.numpy(), y.numpy() @ given, rtol=1e-5)
