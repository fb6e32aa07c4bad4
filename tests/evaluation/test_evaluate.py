"""genreflow evaluate: numpy metrics against hand-computed values, then a real model end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from genreflow.cli import main
from genreflow.core.errors import ModelError
from genreflow.evaluation.baselines import nearest_centroid
from genreflow.evaluation.evaluate import evaluate_model
from genreflow.metrics.single_label import (
    accuracy,
    classification_report,
    confusion_matrix,
    macro_f1,
    precision_recall_f1,
)
from genreflow.spectrograms.clips import clip_average
from tests.support.tone_data import GENRES

# A fixed prediction set over three labels (0 = a, 1 = b, 2 = c), ten items.
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 1, 2, 1, 1, 0, 2, 2, 1])
# Counted by hand: row = true label, column = predicted.
CONFUSION = np.array(
    [
        [2, 1, 1],
        [1, 2, 0],
        [0, 1, 2],
    ]
)


def test_confusion_matrix_matches_hand_count():
    cm = confusion_matrix(Y_TRUE, Y_PRED, n_labels=3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, CONFUSION)
    assert accuracy(cm) == pytest.approx(6 / 10)
    # A label that never occurs still gets its row and column.
    np.testing.assert_array_equal(
        confusion_matrix([0, 0], [0, 2], n_labels=4),
        [[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]],
    )
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 3], [0, 0], n_labels=3)


def test_precision_recall_f1_and_macro_f1_match_hand_values():
    scores = precision_recall_f1(CONFUSION)
    # precision = diagonal / column sum; recall = diagonal / row sum.
    np.testing.assert_allclose(scores["precision"], [2 / 3, 2 / 4, 2 / 3])
    np.testing.assert_allclose(scores["recall"], [2 / 4, 2 / 3, 2 / 3])
    f1_a = 2 * (2 / 3) * (1 / 2) / (2 / 3 + 1 / 2)  # 4/7
    f1_b = f1_a
    f1_c = 2 / 3
    np.testing.assert_allclose(scores["f1"], [f1_a, f1_b, f1_c])
    np.testing.assert_array_equal(scores["support"], [4, 3, 3])
    assert macro_f1(CONFUSION) == pytest.approx((f1_a + f1_b + f1_c) / 3)


def test_metrics_with_a_never_predicted_label():
    cm = confusion_matrix([0, 1, 2, 2], [0, 0, 0, 0], n_labels=3)
    scores = precision_recall_f1(cm)
    np.testing.assert_allclose(scores["precision"], [1 / 4, 0, 0])  # 0/0 counts as 0
    np.testing.assert_allclose(scores["recall"], [1, 0, 0])
    np.testing.assert_allclose(scores["f1"], [0.4, 0, 0])
    assert macro_f1(cm) == pytest.approx(0.4 / 3)
    # Labels absent from the true labels do not count towards macro-F1.
    assert macro_f1(confusion_matrix([0, 0], [0, 0], n_labels=3)) == 1.0


def test_classification_report_is_json_ready():
    report = classification_report(Y_TRUE, Y_PRED, labels=["a", "b", "c"])
    json.dumps(report)
    assert report["confusion"] == CONFUSION.tolist()
    assert report["accuracy"] == pytest.approx(0.6)
    assert report["per_class"]["c"] == {
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(2 / 3),
        "support": 3,
    }


def test_clip_average_and_clip_vote():
    # Clip 0 has three segments, clip 1 two; clip 0's majority segment label is 1, but the
    # averaged probabilities say 0.
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.45, 0.55], [0.2, 0.8], [0.3, 0.7]])
    clips = np.array([0, 0, 0, 1, 1])
    avg = clip_average(probs, clips, n_clips=2)
    np.testing.assert_allclose(avg, [[1.75 / 3, 1.25 / 3], [0.25, 0.75]])
    assert avg.argmax(axis=1).tolist() == [0, 1]
    with pytest.raises(ValueError, match="at least one segment"):
        clip_average(probs, clips, n_clips=3)


def test_nearest_centroid_uses_standardised_distances():
    # Dimension 0 separates the labels; dimension 1 is large-scale noise that would dominate
    # raw euclidean distances.
    rng = np.random.default_rng(0)
    train_y = np.repeat([0, 1], 20)
    train_x = np.stack([train_y + 0.1 * rng.standard_normal(40), 1000 * rng.standard_normal(40)], 1)
    test_y = np.repeat([0, 1], 10)
    test_x = np.stack([test_y + 0.1 * rng.standard_normal(20), 1000 * rng.standard_normal(20)], 1)
    pred = nearest_centroid(train_x, train_y, test_x, n_labels=3)
    assert (pred == test_y).mean() >= 0.9
    assert 2 not in pred  # no training rows for label 2: never predicted


# --------------------------------------------------------------------------- a real model


@pytest.fixture(scope="module")
def setup(tone_features, tone_model):
    return tone_features, tone_model


def test_evaluate_writes_metrics_consistent_with_the_model(setup, tmp_path, capsys):
    from genreflow.prediction.predictor import Predictor
    from genreflow.spectrograms.clips import clip_table
    from genreflow.spectrograms.shards import open_features

    features, model = setup
    out = tmp_path / "eval"
    assert (
        main(["evaluate", "--model", str(model), "--features", str(features), "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "nearest-centroid baseline" in printed and "CNN" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    labels = sorted(GENRES)
    assert metrics["labels"] == labels and metrics["split"] == "test"

    # Recompute the clip predictions independently: segments -> Predictor -> mean per clip.
    fs = open_features(features)
    test = clip_table(fs, split="test", labels=labels)
    predictor = Predictor(model)
    expected = []
    segment_hits = segments = 0
    for i in range(len(test)):
        seg = fs.shard(test.shards[i])[test.row_start[i] : test.row_stop[i]]
        probs = predictor.predict_segments(seg)
        expected.append(int(probs.mean(axis=0).argmax()))
        segment_hits += int((probs.argmax(axis=1) == test.labels[i]).sum())
        segments += len(seg)
    cm = confusion_matrix(test.labels, np.array(expected), n_labels=len(labels))
    assert metrics["confusion"] == cm.tolist()
    assert metrics["n_clips"] == len(test) == np.sum(cm)
    assert metrics["n_segments"] == segments
    assert metrics["clip_accuracy"] == pytest.approx(accuracy(cm))
    assert metrics["segment_accuracy"] == pytest.approx(segment_hits / segments)
    assert metrics["macro_f1"] == pytest.approx(macro_f1(cm))
    assert [c["predicted"] for c in metrics["clips"]] == [labels[i] for i in expected]
    for name, scores in metrics["per_class"].items():
        assert set(scores) == {"precision", "recall", "f1", "support"}
        assert scores["support"] == int(np.sum(test.labels == labels.index(name)))
    base = metrics["baseline"]
    assert 0.0 <= base["clip_accuracy"] <= 1.0 and "nearest centroid" in base["method"]
    assert np.sum(base["confusion"]) == len(test)
    assert not (model / "metrics.json").exists()  # --out was honoured

    with Image.open(out / "confusion.png") as image:
        assert image.format == "PNG" and image.size[0] > 200 and image.size[1] > 200


def test_evaluate_defaults_to_the_model_directory(setup):
    features, model = setup
    metrics = evaluate_model(model_dir=model, features_dir=features)
    assert (model / "metrics.json").is_file() and (model / "confusion.png").is_file()
    assert json.loads((model / "metrics.json").read_text())["confusion"] == metrics["confusion"]


def test_evaluate_refuses_features_made_with_other_settings(setup, tmp_path, capsys):
    import shutil

    features, model = setup
    other = tmp_path / "features"
    shutil.copytree(features, other)
    marker = json.loads((other / "features.json").read_text())
    marker["config_hash"] = "0" * 16
    (other / "features.json").write_text(json.dumps(marker))
    with pytest.raises(ModelError, match="other audio/mel settings"):
        evaluate_model(model_dir=model, features_dir=other, out_dir=tmp_path / "eval")
    assert main(["evaluate", "--model", str(tmp_path / "none"), "--features", str(features)]) == 2
    assert "model directory not found" in capsys.readouterr().err
