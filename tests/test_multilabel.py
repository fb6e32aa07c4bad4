"""Multi-label genres: metric maths against hand-worked cases, threshold tuning, the demo, and a
real end-to-end run (demo-data --multilabel -> manifest --csv -> spectrograms -> train ->
evaluate -> predict, plus serve, stream and report on the same model).

scikit-learn is not installed: every expected value below is worked out by hand in the comments.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genreflow.cli import main
from genreflow.core.errors import ConfigError, DatasetError
from genreflow.demo import (
    GENRES,
    MIX_FRACTION,
    synthesize_clip,
    synthesize_multilabel_clip,
    write_demo_dataset,
    write_multilabel_demo_dataset,
)
from genreflow.metrics.multilabel import (
    average_precision,
    hamming_loss,
    macro_f1,
    mean_average_precision,
    micro_f1,
    multi_hot,
    multilabel_report,
    over_threshold,
    per_label_scores,
    subset_accuracy,
    thresholds_array,
    tune_thresholds,
)

# Four clips x four labels. Label 3 never occurs in the truth but is predicted once.
Y_TRUE = np.array(
    [
        [1, 0, 1, 0],
        [0, 1, 0, 0],
        [1, 1, 0, 0],
        [0, 0, 0, 0],
    ]
)
Y_PRED = np.array(
    [
        [1, 0, 0, 0],
        [0, 1, 1, 0],
        [1, 0, 0, 1],
        [0, 0, 0, 0],
    ]
)


# --------------------------------------------------------------------------- metrics by hand


def test_per_label_scores_match_hand_counts():
    scores = per_label_scores(Y_TRUE, Y_PRED)
    # label 0: TP 2 of 2 predicted, 2 true -> P 1, R 1, F1 1
    # label 1: TP 1 of 1 predicted, 2 true -> P 1, R 1/2, F1 2/3
    # label 2: TP 0 of 1 predicted, 1 true -> 0, 0, 0
    # label 3: TP 0 of 1 predicted, 0 true -> 0, 0/0 = 0, 0
    np.testing.assert_allclose(scores["precision"], [1, 1, 0, 0])
    np.testing.assert_allclose(scores["recall"], [1, 0.5, 0, 0])
    np.testing.assert_allclose(scores["f1"], [1, 2 / 3, 0, 0])
    np.testing.assert_array_equal(scores["support"], [2, 2, 1, 0])


def test_averaged_scores_match_hand_values():
    # Pooled: TP 3, true positives 5, predicted positives 5 -> 2*3 / (5 + 5).
    assert micro_f1(Y_TRUE, Y_PRED) == pytest.approx(6 / 10)
    # Labels 0-2 have support; label 3 (no positives) is left out: (1 + 2/3 + 0) / 3.
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx(5 / 9)
    # Only clip 3 (nothing true, nothing predicted) is exactly right.
    assert subset_accuracy(Y_TRUE, Y_PRED) == pytest.approx(1 / 4)
    # Wrong cells: (0,2), (1,2), (2,1), (2,3) -> 4 of 16.
    assert hamming_loss(Y_TRUE, Y_PRED) == pytest.approx(4 / 16)
    # Nothing predicted at all: every F1 is 0, not a division error.
    empty = np.zeros_like(Y_PRED)
    assert micro_f1(Y_TRUE, empty) == 0.0 and macro_f1(Y_TRUE, empty) == 0.0
    assert micro_f1(np.zeros((2, 3)), np.zeros((2, 3))) == 0.0
    with pytest.raises(ValueError, match="differ in shape"):
        micro_f1(Y_TRUE, Y_PRED[:, :3])


def test_average_precision_by_hand():
    # Ranked 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.1 (neg): recall 1/2 at precision 1, then
    # recall 1 at precision 2/3 -> AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    y = np.array([[1], [0], [1], [0]])
    assert average_precision(y, np.array([[0.9], [0.8], [0.7], [0.1]]))[0] == pytest.approx(5 / 6)
    # Tied scores are one step: {0.5, 0.5} holds 1 of 2 positives at precision 1/2, then 0.2
    # adds the other at precision 2/3 -> 1/2 * 1/2 + 1/2 * 2/3 = 7/12, whatever the tie order.
    y = np.array([[1], [0], [1]])
    s = np.array([[0.5], [0.5], [0.2]])
    assert average_precision(y, s)[0] == pytest.approx(7 / 12)
    assert average_precision(y[[1, 0, 2]], s[[1, 0, 2]])[0] == pytest.approx(7 / 12)
    # A constant score: one step with every clip, AP = the positive rate (the prior baseline).
    assert average_precision(np.array([[1], [0], [0], [0]]), np.full((4, 1), 0.3))[0] == 0.25
    # A perfect ranking scores 1.
    assert average_precision(np.array([[0], [1], [1]]), np.array([[0.1], [0.8], [0.7]]))[0] == 1


def test_map_skips_labels_without_positives():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    s = np.array([[0.9, 0.2], [0.8, 0.9], [0.7, 0.1]])
    ap = average_precision(y, s)
    # Label 0: ranks pos, neg, pos -> 1/2 * 1 + 1/2 * 2/3 = 5/6; label 1 has no positives.
    assert ap[0] == pytest.approx(5 / 6) and np.isnan(ap[1])
    assert mean_average_precision(y, s) == pytest.approx(5 / 6)


def test_report_is_json_ready_and_uses_the_thresholds():
    scores = np.array([[0.9, 0.2], [0.4, 0.6], [0.7, 0.3]])
    y = np.array([[1, 0], [0, 1], [1, 1]])
    report = multilabel_report(y, scores, thresholds=[0.5, 0.2], labels=["a", "b"])
    json.dumps(report)
    # Predicted at >= (0.5, 0.2): a for clips 0 and 2 (both right); b for all three clips,
    # since 0.2 >= 0.2: TP 2 of 3 predicted, 2 true -> P 2/3, R 1, F1 4/5; clip 0 is wrong.
    assert report["per_label"]["a"]["f1"] == 1.0
    assert report["per_label"]["b"]["f1"] == pytest.approx(4 / 5)
    assert report["subset_accuracy"] == pytest.approx(2 / 3)
    assert report["micro_f1"] == pytest.approx(2 * 4 / (5 + 4))  # TP 4, predicted 5, true 4
    assert report["per_label"]["b"]["threshold"] == 0.2
    # Label b ranked 0.6 (pos), 0.3 (pos), 0.2 (neg): AP 1, whatever the threshold.
    assert report["per_label"]["b"]["average_precision"] == 1.0


def test_prediction_records_labels_only_for_multilabel_models():
    from genreflow.prediction.records import Prediction

    def prediction(thresholds):
        return Prediction(
            labels=["a", "b", "c"],
            probabilities=np.array([0.2, 0.7, 0.6]),
            segment_probabilities=np.array([[0.2, 0.7, 0.6]]),
            offsets=np.array([0.0]),
            padded=False,
            duration=3.0,
            thresholds=thresholds,
        )

    single = prediction(None)
    assert "labels" not in single.to_dict() and single.predicted_labels == ["b"]
    multi = prediction(np.array([0.1, 0.8, 0.6]))
    # a (0.2 >= 0.1) and c (0.6 >= 0.6) pass, b (0.7 < 0.8) does not; most probable first.
    assert multi.to_dict()["labels"] == multi.predicted_labels == ["c", "a"]
    assert multi.label == "b"  # the single most probable label is still there


def test_thresholds_array_and_multi_hot():
    assert thresholds_array({"b": 0.3}, labels=["a", "b"]).tolist() == [0.5, 0.3]
    assert thresholds_array(None, labels=["a"]).tolist() == [0.5]
    np.testing.assert_array_equal(
        multi_hot([("b", "a"), ("c",), ()], labels=["a", "b", "c"]),
        [[1, 1, 0], [0, 0, 1], [0, 0, 0]],
    )
    assert over_threshold(np.array([0.5, 0.49]), [0.5, 0.5]).tolist() == [True, False]


# --------------------------------------------------------------------------- threshold tuning


def test_threshold_is_the_middle_of_the_best_range():
    # Positives at 0.8 and 0.6, negatives at 0.3 and 0.1: F1 = 1 for any t in (0.3, 0.6].
    y = np.array([[1], [1], [0], [0]])
    s = np.array([[0.8], [0.6], [0.3], [0.1]])
    assert tune_thresholds(y, s)[0] == pytest.approx(0.45)
    # 0.9 pos, 0.7 neg, 0.5 pos, 0.2 neg: cuts give F1 2/3, 1/2, 4/5, 2/3 -> (0.2, 0.5].
    y = np.array([[1], [0], [1], [0]])
    s = np.array([[0.9], [0.7], [0.5], [0.2]])
    assert tune_thresholds(y, s)[0] == pytest.approx(0.35)
    # Every clip positive: predicting all is best, any t in [0, 0.4] -> 0.2.
    assert tune_thresholds(np.ones((2, 1)), np.array([[0.4], [0.9]]))[0] == pytest.approx(0.2)


def test_equally_good_adjacent_ranges_merge():
    # Cut at 1.0: TP 1, 1 predicted, 3 positives -> 2/4. Cut at 0.6 (a tie of 1 pos + 3 neg):
    # TP 2, 5 predicted -> 4/8, the same F1. Cut at 0.3: TP 3, 10 predicted -> 6/13, worse.
    # The best range is (0.3, 1.0], so 0.65 (not the middle of (0.6, 1.0] alone, 0.8).
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 1])[:, None]
    s = np.array([1.0, 0.6, 0.6, 0.6, 0.6, 0.3, 0.3, 0.3, 0.3, 0.3])[:, None]
    assert tune_thresholds(y, s)[0] == pytest.approx(0.65)


def test_a_label_without_positives_gets_the_default():
    y = np.array([[1, 0], [0, 0]])
    s = np.array([[0.9, 0.8], [0.1, 0.2]])
    t = tune_thresholds(y, s)
    assert t[1] == 0.5 and 0.1 < t[0] <= 0.9
    assert tune_thresholds(y, s, default=0.7)[1] == 0.7


def test_tuned_thresholds_reach_the_best_f1_of_any_threshold():
    rng = np.random.default_rng(3)
    y = (rng.random((40, 5)) < 0.3).astype(int)
    s = np.round(np.clip(0.35 * y + rng.random((40, 5)) * 0.7, 0, 1), 2)  # rounding makes ties
    t = tune_thresholds(y, s)
    f1 = per_label_scores(y, over_threshold(s, t))["f1"]
    for j in range(y.shape[1]):
        # Brute force: every score value (and 0) as a threshold.
        best = max(
            per_label_scores(y[:, [j]], s[:, [j]] >= c)["f1"][0] for c in np.r_[0.0, s[:, j]]
        )
        assert f1[j] == pytest.approx(best), j


# --------------------------------------------------------------------------- demo data


def test_multilabel_demo_clips(tmp_path):
    labels = [
        synthesize_multilabel_clip(genre=g, index=i, seed=0, seconds=0.5)[1]
        for g in GENRES
        for i in range(6)
    ]
    mixed = [x for x in labels if len(x) == 2]
    assert all(x[0] != x[1] for x in mixed)
    assert 0.4 < len(mixed) / len(labels) < 0.9  # MIX_FRACTION = 2/3 of 60 clips
    assert 0 < MIX_FRACTION < 1

    # A single-genre clip is the single-label demo clip itself.
    genre, index = next((x[0], i % 6) for i, x in enumerate(labels) if len(x) == 1)
    solo, _ = synthesize_multilabel_clip(genre=genre, index=index, seed=0, seconds=0.5)
    np.testing.assert_array_equal(
        solo, synthesize_clip(genre=genre, index=index, seed=0, seconds=0.5)
    )
    # A mixed clip keeps the primary's level and carries both genres' audio.
    (genre, other), index = next((x, i % 6) for i, x in enumerate(labels) if len(x) == 2)
    mix, _ = synthesize_multilabel_clip(genre=genre, index=index, seed=0, seconds=0.5)
    primary = synthesize_clip(genre=genre, index=index, seed=0, seconds=0.5)
    rms = np.sqrt(np.mean(primary.astype(np.float64) ** 2))
    assert np.sqrt(np.mean(mix.astype(np.float64) ** 2)) == pytest.approx(rms, rel=0.02)
    assert 0.3 < np.corrcoef(mix, primary)[0, 1] < 0.95
    assert np.max(np.abs(mix)) <= 0.98 + 1e-6
    with pytest.raises(ConfigError, match="index"):
        synthesize_multilabel_clip(genre="rock", index=100_000, seed=0, seconds=0.5)


def test_multilabel_demo_dataset_is_deterministic_with_a_labels_csv(tmp_path):
    def write(out, seed):
        return write_multilabel_demo_dataset(
            out=out, clips_per_genre=2, seconds=0.5, seed=seed, show_progress=False
        )

    paths = write(tmp_path / "a", 4)
    again = write(tmp_path / "b", 4)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    other = write(tmp_path / "c", 5)
    assert [p.read_bytes() for p in paths] != [p.read_bytes() for p in other]

    rows = list(csv.DictReader(io.StringIO((tmp_path / "a" / "labels.csv").read_text())))
    assert [tmp_path / "a" / r["path"] for r in rows] == paths
    record = json.loads((tmp_path / "a" / "demo.json").read_text())
    assert record["generator"] == "genreflow.demo.multilabel" and record["multilabel"] is True
    assert record["n_clips"] == len(rows) == 2 * len(GENRES)
    assert record["n_mixed"] == sum(";" in r["labels"] for r in rows)
    for row, path in zip(rows, paths, strict=True):
        names = row["labels"].split(";")
        assert names[0] == row["label"] == path.parent.name and set(names) <= set(GENRES)
        assert sf.info(path).frames == round(0.5 * 22050)
        clip, labels = synthesize_multilabel_clip(
            genre=row["label"], index=int(path.stem[-5:]), seed=4, seconds=0.5
        )
        assert list(labels) == names
        written, _ = sf.read(path, dtype="float32")
        assert np.max(np.abs(written - clip)) <= 0.5 / 32768

    # Neither generator overwrites the other's folder.
    with pytest.raises(DatasetError, match="genreflow.demo.multilabel"):
        write_demo_dataset(
            out=tmp_path / "a", clips_per_genre=1, seconds=0.5, seed=0, show_progress=False
        )


# --------------------------------------------------------------------------- end to end

SETTINGS = ("mel.n_mels=32", "preprocess.previews_per_genre=0")
TRAIN = ("train.batch_size=8", "train.segments_per_clip=2", "train.patience=50")


def _sets(settings) -> list[str]:
    return [arg for s in settings for arg in ("--set", s)]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict[str, Path]:
    """A 2-epoch multi-label model on 30 demo clips of 3 s, evaluated on the test split."""
    root = tmp_path_factory.mktemp("multilabel")
    data, manifest = root / "data", root / "manifest.csv"
    features, model = root / "features", root / "model"
    demo = ["demo-data", "--multilabel", "--out", str(data), "--clips-per-genre", "3"]
    assert main([*demo, "--seconds", "3", "--seed", "1", "--no-progress"]) == 0
    assert main(["manifest", "--csv", str(data / "labels.csv"), "--out", str(manifest)]) == 0
    spectrograms = ["spectrograms", "--manifest", str(manifest), "--out", str(features)]
    assert main([*spectrograms, *_sets(SETTINGS)]) == 0
    train = ["train", "--features", str(features), "--out", str(model), "--epochs", "2"]
    assert main([*train, "--threads", "1", *_sets(SETTINGS + TRAIN)]) == 0
    assert main(["evaluate", "--model", str(model), "--features", str(features)]) == 0
    return {"data": data, "manifest": manifest, "features": features, "model": model}


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_features_are_multilabel_and_the_pipeline_yields_target_vectors(pipeline):
    from genreflow.spectrograms.clips import clip_table, is_multilabel
    from genreflow.spectrograms.shards import open_features
    from genreflow.training.pipeline import SegmentSampler, make_dataset

    fs = open_features(pipeline["features"])
    assert is_multilabel(fs) and fs.labels == sorted(GENRES)
    clips = clip_table(fs, split="train", labels=fs.labels, multilabel=True)
    rows = {r.clip_id: r for r in fs.rows(split="train")}
    for i, clip_id in enumerate(clips.clip_ids):
        assert {fs.labels[j] for j in np.flatnonzero(clips.targets[i])} == set(rows[clip_id].labels)
        assert fs.labels[clips.labels[i]] == rows[clip_id].label  # the first label, as before
    assert (clips.targets.sum(axis=1) >= 1).all() and (clips.targets.sum(axis=1) > 1).any()

    sampler = SegmentSampler(features=fs, clips=clips, segments_per_clip=1, seed=0, shuffle=False)
    (segment, target, _), *_ = list(sampler())
    np.testing.assert_array_equal(target, clips.targets[0])
    x, y = next(iter(make_dataset(sampler, mean=np.zeros(32), std=np.ones(32), batch_size=4)))
    assert y.dtype.name == "float32" and tuple(y.shape) == (4, len(GENRES))
    np.testing.assert_array_equal(y.numpy(), clips.targets[:4])


def test_model_directory_stores_thresholds_for_every_label(pipeline):
    info = _read(pipeline["model"] / "genreflow.json")
    assert info["multilabel"] is True
    assert set(info["thresholds"]) == set(info["labels"]) == set(GENRES)
    assert all(0.0 <= t <= 1.0 for t in info["thresholds"].values())
    history = _read(pipeline["model"] / "history.json")
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history["epochs"][0])

    import keras

    model = keras.models.load_model(pipeline["model"] / "model.keras", compile=False)
    assert model.layers[-1].activation.__name__ == "sigmoid"


def test_evaluate_reports_per_label_and_averaged_scores(pipeline):
    metrics = _read(pipeline["model"] / "metrics.json")
    labels = metrics["labels"]
    assert metrics["multilabel"] is True and "confusion" not in metrics
    thresholds = _read(pipeline["model"] / "genreflow.json")["thresholds"]
    for name in labels:
        row = metrics["per_label"][name]
        assert set(row) == {
            "precision",
            "recall",
            "f1",
            "support",
            "average_precision",
            "threshold",
        }
        assert row["threshold"] == thresholds[name]
    # Recompute the averages from the per-clip records (probabilities rounded to 1e-6).
    clips = metrics["clips"]
    y_true = multi_hot([c["labels"] for c in clips], labels=labels)
    scores = np.array([[c["probabilities"][n] for n in labels] for c in clips])
    y_pred = multi_hot([c["predicted"] for c in clips], labels=labels)
    np.testing.assert_array_equal(
        y_pred, over_threshold(scores, thresholds_array(thresholds, labels=labels))
    )
    assert metrics["micro_f1"] == pytest.approx(micro_f1(y_true, y_pred))
    assert metrics["macro_f1"] == pytest.approx(macro_f1(y_true, y_pred))
    assert metrics["mAP"] == pytest.approx(mean_average_precision(y_true, scores), abs=1e-4)
    assert metrics["subset_accuracy"] == pytest.approx(subset_accuracy(y_true, y_pred))
    assert metrics["hamming_loss"] == pytest.approx(hamming_loss(y_true, y_pred))
    # The prior baseline's mAP is each label's positive rate in the test split, averaged.
    base = metrics["baseline"]
    present = y_true.sum(axis=0) > 0
    assert base["mAP"] == pytest.approx(y_true.mean(axis=0)[present].mean())
    assert {"micro_f1", "macro_f1", "priors"} <= set(base)
    assert (pipeline["model"] / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_returns_the_labels_over_their_thresholds(pipeline, capsys):
    info = _read(pipeline["model"] / "genreflow.json")
    files = sorted(pipeline["data"].rglob("*.wav"))[::7]
    capsys.readouterr()
    assert main(["predict", "--json", str(pipeline["model"]), *map(str, files)]) == 0
    predictions = json.loads(capsys.readouterr().out)["predictions"]
    assert len(predictions) == len(files)
    for p in predictions:
        probs = p["probabilities"]
        expected = sorted(
            (n for n in info["labels"] if probs[n] >= info["thresholds"][n]),
            key=lambda n: -probs[n],
        )
        assert p["labels"] == expected, p["file"]
        assert len(p["top"]) == 3 and p["label"] == p["top"][0]["label"]

    assert main(["predict", str(pipeline["model"]), str(files[0])]) == 0
    table = capsys.readouterr().out
    shown = ", ".join(predictions[0]["labels"]) or "none over its threshold"
    assert f"labels: {shown}" in table


def _over(labels: list[str], probabilities, thresholds) -> list[str]:
    """The labels whose probability reaches their threshold, most probable first."""
    pairs = [(p, n) for n, p, t in zip(labels, probabilities, thresholds, strict=True) if p >= t]
    return [n for _, n in sorted(pairs, key=lambda pair: -pair[0])]


# starlette's TestClient warns that it will move from httpx to another package; it still works.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_serve_and_stream_answer_with_the_labels_over_threshold(pipeline, tmp_path):
    from starlette.testclient import TestClient

    from genreflow.core.config import load_config
    from genreflow.prediction.predictor import Predictor
    from genreflow.prediction.stream import StreamClassifier
    from genreflow.serve import ServeLimits, create_app

    predictor = Predictor(pipeline["model"])
    labels, thresholds = predictor.labels, predictor.thresholds
    path = sorted(pipeline["data"].rglob("*.wav"))[0]
    (tmp_path / "uploads").mkdir()
    limits = ServeLimits.from_config(load_config())
    app = create_app(predictor=predictor, limits=limits, temp_dir=tmp_path / "uploads")
    with TestClient(app) as client:
        response = client.post("/predict", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 200, response.text
    body = response.json()
    probabilities = [body["probabilities"][n] for n in labels]
    assert body["labels"] == _over(labels, probabilities, thresholds)
    assert body["labels"] == predictor.predict_file(path).predicted_labels

    samples, _ = sf.read(path, dtype="float32")
    classifier = StreamClassifier(predictor, hop_seconds=1.0, smoothing=0.5)
    # Two copies: 6 s of audio, a 3 s window every second -> four windows.
    results = classifier.push(np.concatenate([samples, samples])) + classifier.finish()
    assert len(results) == 4
    for result in results:
        decision = _over(labels, result.smoothed, thresholds)
        assert result.to_dict()["smoothed"]["labels"] == decision
        shown = result.to_line().split("| smoothed: ", 1)[1]
        named = [f"{n} {result.smoothed[labels.index(n)]:4.0%}" for n in decision]
        assert shown.startswith(", ".join(named) or "(none)"), shown


def test_report_shows_multilabel_quality(pipeline, tmp_path):
    from genreflow.report import build_report, summary_lines

    summary = build_report(results=pipeline["model"], out=tmp_path / "report", environment={})
    (quality,) = summary["quality"]
    metrics = _read(pipeline["model"] / "metrics.json")
    assert quality["multilabel"] is True
    assert quality["micro_f1"] == pytest.approx(metrics["micro_f1"])
    assert quality["mAP"] == pytest.approx(metrics["mAP"])
    assert quality["baseline"]["mAP"] == pytest.approx(metrics["baseline"]["mAP"])
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert f"mAP {metrics['mAP']:.3f}" in markdown and "micro-F1" in markdown
    assert any("multi-label test micro-F1" in line for line in summary_lines(summary))
