"""The classical MFCC + SVM baseline and its place in ``genreflow evaluate``'s output."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genreflow.classical import MfccSvm, segment_mfcc_statistics
from genreflow.cli import main
from genreflow.evaluation.baselines import verdict
from genreflow.evaluation.evaluate import format_summary
from genreflow.spectrograms.clips import clip_table
from genreflow.spectrograms.shards import open_features
from tests.support.tone_data import GENRES


def test_segment_statistics_are_librosa_mfcc_and_delta_statistics():
    import librosa

    rng = np.random.default_rng(0)
    segments = rng.uniform(-90, -10, size=(3, 64, 40)).astype(np.float32)
    stats = segment_mfcc_statistics(segments)
    assert stats.shape == (3, 80)
    for k, db in enumerate(segments):
        mfcc = librosa.feature.mfcc(S=db.astype(np.float64), n_mfcc=20)
        delta = librosa.feature.delta(mfcc, width=9)
        expected = np.concatenate(
            [mfcc.mean(axis=1), mfcc.std(axis=1), delta.mean(axis=1), delta.std(axis=1)]
        )
        np.testing.assert_allclose(stats[k], expected, rtol=1e-6, atol=1e-6)
    # Segments shorter than the delta window still work (a narrower odd window).
    assert segment_mfcc_statistics(segments[:, :, :5]).shape == (3, 80)


@pytest.fixture(scope="module")
def setup(tone_features, tone_model):
    return tone_features, tone_model


def test_svm_baseline_separates_tone_genres_and_scores_test_clips(setup):
    features, _ = setup
    fs = open_features(features)
    labels = fs.labels
    train = clip_table(fs, split="train", labels=labels)
    valid = clip_table(fs, split="valid", labels=labels)
    test = clip_table(fs, split="test", labels=labels)
    svm = MfccSvm(n_labels=len(labels)).fit(fs, [train, valid])
    probs = svm.clip_probabilities(fs, test)
    assert probs.shape == (len(test), len(labels))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    # Three tones an octave and more apart: the baseline gets every test clip right.
    assert np.array_equal(probs.argmax(axis=1), test.labels)
    assert svm.fit_seconds > 0


def test_evaluate_reports_the_svm_baseline_the_ensemble_and_a_verdict(setup, tmp_path, capsys):
    features, model = setup
    out = tmp_path / "eval"
    assert (
        main(["evaluate", "--model", str(model), "--features", str(features), "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    classical, ensemble = metrics["classical"], metrics["ensemble"]
    assert "RBF SVM" in classical["method"] and "mean" in ensemble["method"]
    n_test = metrics["n_clips"]
    for record in (classical, ensemble):
        assert 0.0 <= record["clip_accuracy"] <= 1.0
        assert np.sum(record["confusion"]) == n_test
        assert np.trace(record["confusion"]) / n_test == pytest.approx(record["clip_accuracy"])
    assert classical["clip_accuracy"] == 1.0  # as in the test above, through the CLI
    assert metrics["verdict"] == verdict(metrics["clip_accuracy"], classical["clip_accuracy"])
    assert "MFCC + SVM baseline" in printed and "CNN + SVM ensemble" in printed
    assert metrics["verdict"] in printed
    assert len(GENRES) == len(metrics["labels"])


def test_verdict_says_plainly_when_the_cnn_loses():
    assert verdict(0.6, 0.7) == (
        "the CNN LOSES to the classical MFCC + SVM baseline by 10.0 points of clip accuracy"
    )
    assert verdict(0.8, 0.7).startswith("the CNN beats") and verdict(0.8, None) is None
    base = {"clip_accuracy": 0.5, "macro_f1": 0.4}
    metrics = {
        "split": "test",
        "n_clips": 10,
        "n_segments": 30,
        "segment_accuracy": 0.5,
        "clip_accuracy": 0.6,
        "macro_f1": 0.55,
        "baseline": base,
        "classical": {"clip_accuracy": 0.7, "macro_f1": 0.65},
        "ensemble": {"clip_accuracy": 0.75, "macro_f1": 0.7},
        "verdict": verdict(0.6, 0.7),
        "per_class": {},
    }
    text = format_summary(metrics)
    assert "LOSES" in text and " 70.0%" in text and " 75.0%" in text


def test_an_ensemble_model_stores_the_baseline_and_predict_averages_both(setup, tmp_path):
    from genreflow.classical import load_baseline, segment_mfcc_statistics
    from genreflow.prediction.predictor import Predictor
    from tests.support.tone_data import train_args

    features, _ = setup
    model = tmp_path / "model"
    assert main(train_args(features, model, "--epochs", "1", "--set", "train.ensemble=true")) == 0
    info = json.loads((model / "genreflow.json").read_text())
    assert info["ensemble"]["file"] == "classical.joblib" and info["ensemble"]["weight"] == 0.5
    svm = load_baseline(model / "classical.joblib")

    fs = open_features(features)
    test = clip_table(fs, split="test", labels=fs.labels)
    row = next(r for r in fs.rows(split="test") if r.clip_id == test.clip_ids[0])
    predictor = Predictor(model)
    prediction = predictor.predict_file(row.path)
    segments = fs.shard(test.shards[0])[test.row_start[0] : test.row_stop[0]]
    cnn = predictor.predict_segments(segments).mean(axis=0)
    classical = svm.segment_probabilities(segment_mfcc_statistics(segments)).mean(axis=0)
    np.testing.assert_allclose(prediction.probabilities, (cnn + classical) / 2, atol=2e-3)
    assert prediction.label == fs.labels[test.labels[0]]  # the baseline is sure of tones
    # A model without the ensemble answers with the CNN alone.
    plain = Predictor(setup[1])
    assert plain.baseline is None

    (model / "classical.joblib").write_bytes(b"not a pickle")
    from genreflow.core.errors import ModelError

    with pytest.raises(ModelError, match="ensemble"):
        Predictor(model).predict_file(row.path)
