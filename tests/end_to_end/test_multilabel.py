"""Multi-label genres end to end: demo-data --multilabel -> manifest --csv -> spectrograms ->
train -> evaluate -> predict, plus serve, stream and report on the same model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genreflow.cli import main
from genreflow.demo import (
    GENRES,
)
from genreflow.metrics.multilabel import (
    hamming_loss,
    macro_f1,
    mean_average_precision,
    micro_f1,
    multi_hot,
    over_threshold,
    subset_accuracy,
    thresholds_array,
)

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
