"""Test-split evaluation: CNN metrics, a nearest-centroid baseline and a confusion plot.

The metric functions are plain numpy (no TensorFlow), so they can be checked by hand:
:func:`confusion_matrix`, :func:`precision_recall_f1`, :func:`macro_f1`, :func:`accuracy`
(multi-label ones: :mod:`genreflow.metrics.multilabel`); a model's segment and clip probabilities over
a feature set come from :mod:`genreflow.prediction.segment_scores`. :func:`evaluate_model`
loads TensorFlow (through :class:`genreflow.prediction.predictor.Predictor`) only when it runs.

A multi-label model (``"multilabel": true`` in ``genreflow.json``) is scored per label at its
stored thresholds (F1, average precision, micro/macro averages), beside a label-prior baseline;
``confusion.png`` then holds a per-label F1 / average-precision bar chart instead of a
confusion matrix (there is no single predicted label to cross with the true one).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from genreflow.core.errors import DatasetError, ModelError
from genreflow.prediction.segment_scores import clip_average, segment_probabilities
from genreflow.training.dataset import (
    ClipTable,
    FeatureSet,
    clip_table,
    iter_segment_chunks,
    open_features,
)

BASELINE_METHOD = "nearest centroid, euclidean, on per-clip mean log-mel spectra standardised with train statistics"

MULTILABEL_BASELINE_METHOD = (
    "label priors: every clip scores each label with its rate in the train split; "
    "thresholds tuned on the valid split like the model's"
)


# --------------------------------------------------------------------------- metrics (numpy)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, *, n_labels: int) -> np.ndarray:
    """Counts of (true, predicted) label pairs.

    Parameters
    ----------
    y_true, y_pred : np.ndarray, shape (n,), int
        Label indices in ``[0, n_labels)``.
    n_labels : int

    Returns
    -------
    np.ndarray, shape (n_labels, n_labels), int64
        Rows are true labels, columns predicted labels.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} differ in shape")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= n_labels):
            raise ValueError(f"{name} has label indices outside [0, {n_labels})")
    counts = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    return counts


def accuracy(confusion: np.ndarray) -> float:
    """Fraction on the diagonal of a confusion matrix (0 when it is empty)."""
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else 0.0


def precision_recall_f1(confusion: np.ndarray) -> dict[str, np.ndarray]:
    """Per-label precision, recall, F1 and support from a confusion matrix.

    A ratio with a zero denominator (a label never predicted, or absent) is 0.

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (float arrays) and ``support`` (int array), each of
        shape (n_labels,).
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros_like(tp), where=denominator > 0
    )
    return {"precision": precision, "recall": recall, "f1": f1, "support": actual.astype(np.int64)}


def macro_f1(confusion: np.ndarray) -> float:
    """Unweighted mean F1 over the labels that occur in the true labels (support > 0)."""
    scores = precision_recall_f1(confusion)
    present = scores["support"] > 0
    return float(scores["f1"][present].mean()) if present.any() else 0.0


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, *, labels: Sequence[str]) -> dict:
    """Accuracy, macro-F1, per-label scores and the confusion matrix, JSON-ready."""
    cm = confusion_matrix(y_true, y_pred, n_labels=len(labels))
    scores = precision_recall_f1(cm)
    return {
        "accuracy": accuracy(cm),
        "macro_f1": macro_f1(cm),
        "per_class": {
            name: {
                "precision": float(scores["precision"][i]),
                "recall": float(scores["recall"][i]),
                "f1": float(scores["f1"][i]),
                "support": int(scores["support"][i]),
            }
            for i, name in enumerate(labels)
        },
        "confusion": cm.tolist(),
    }


# --------------------------------------------------------------------------- baseline


def clip_mean_spectra(features: FeatureSet, clips: ClipTable) -> np.ndarray:
    """Per clip, the mean log-mel spectrum over its segments and frames.

    Returns
    -------
    np.ndarray, shape (n_clips, n_mels), float64
    """
    sums = np.zeros((len(clips), features.n_mels), dtype=np.float64)
    for positions, chunk in iter_segment_chunks(features, clips):
        np.add.at(sums, positions, chunk.astype(np.float64).mean(axis=2))
    return sums / np.maximum(clips.n_segments, 1)[:, None]


def nearest_centroid(
    train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, *, n_labels: int
) -> np.ndarray:
    """Predict each test row's label as that of the closest class centroid.

    Dimensions are standardised with the training rows' mean and standard deviation; distance
    is euclidean. A label without training rows is never predicted.

    Parameters
    ----------
    train_x : np.ndarray, shape (n_train, d)
    train_y : np.ndarray, shape (n_train,), int
    test_x : np.ndarray, shape (n_test, d)
    n_labels : int

    Returns
    -------
    np.ndarray, shape (n_test,), int
    """
    mean = train_x.mean(axis=0)
    std = np.maximum(train_x.std(axis=0), 1e-9)
    train_z = (train_x - mean) / std
    test_z = (test_x - mean) / std
    centroids = np.full((n_labels, train_x.shape[1]), np.inf)
    for label in range(n_labels):
        rows = train_z[train_y == label]
        if len(rows):
            centroids[label] = rows.mean(axis=0)
    distances = np.linalg.norm(test_z[:, None, :] - centroids[None, :, :], axis=2)
    distances[~np.isfinite(distances)] = np.inf
    return np.argmin(distances, axis=1)


# --------------------------------------------------------------------------- evaluation


def evaluate_model(
    *,
    model_dir: str | os.PathLike,
    features_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    split: str = "test",
    batch_size: int = 64,
) -> dict:
    """Evaluate a model directory on one split of a feature directory.

    Writes ``metrics.json`` and ``confusion.png`` to ``out_dir`` (default ``model_dir``).

    Returns
    -------
    dict
        The ``metrics.json`` record (docs/formats.md, "Evaluation").

    Raises
    ------
    ModelError
        The features were made with other audio/mel settings than the model's.
    DatasetError
        No clips in ``split`` (or none in train, for the baseline).
    """
    from genreflow.core.atomic import write_json
    from genreflow.prediction.predictor import Predictor, read_model_info

    started = time.perf_counter()
    model_dir = Path(model_dir)
    out = Path(out_dir) if out_dir is not None else model_dir
    features = open_features(features_dir)
    info = read_model_info(model_dir)
    if info["features_hash"] != features.info["config_hash"]:
        raise ModelError(
            f"{model_dir} was trained on features with config_hash {info['features_hash']}, but "
            f"{features.path} has {features.info['config_hash']} (other audio/mel settings)"
        )
    labels = list(info["labels"])
    multilabel = bool(info.get("multilabel"))
    test = clip_table(features, split=split, labels=labels, multilabel=multilabel)
    train = clip_table(features, split="train", labels=labels, multilabel=multilabel)
    if len(test) == 0:
        raise DatasetError(f"{features.path}: no '{split}' clips to evaluate")

    predictor = Predictor(model_dir, batch_size=batch_size)
    segment_probs = segment_probabilities(predictor, features=features, clips=test)
    segment_clip = test.segment_clip()
    clip_probs = clip_average(segment_probs, segment_clip, n_clips=len(test))
    if multilabel:
        metrics = {
            "split": split,
            "labels": labels,
            "multilabel": True,
            "n_clips": len(test),
            "n_segments": int(len(segment_clip)),
            **multilabel_metrics(
                features=features,
                test=test,
                train=train,
                clip_probs=clip_probs,
                segment_probs=segment_probs,
                thresholds=predictor.thresholds,
                labels=labels,
            ),
            "model": str(model_dir),
            "features": str(features.path),
            "features_hash": features.info["config_hash"],
            "model_config_hash": info.get("config_hash"),
            "seconds": round(time.perf_counter() - started, 3),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        write_json(out / "metrics.json", metrics)
        baseline_ap = metrics["baseline"].get("per_label_ap")
        from genreflow.evaluation import figures

        figures.plot_label_scores(
            metrics["per_label"],
            path=out / "confusion.png",
            title=f"{split}: micro-F1 {metrics['micro_f1']:.3f}, macro-F1 "
            f"{metrics['macro_f1']:.3f}, mAP {metrics['mAP']:.3f}",
            baseline_ap=baseline_ap,
        )
        return metrics
    clip_pred = clip_probs.argmax(axis=1)
    segment_report = classification_report(
        test.labels[segment_clip], segment_probs.argmax(axis=1), labels=labels
    )
    clip_report = classification_report(test.labels, clip_pred, labels=labels)

    baseline: dict = {"method": BASELINE_METHOD}
    if len(train):
        base_pred = nearest_centroid(
            clip_mean_spectra(features, train),
            train.labels,
            clip_mean_spectra(features, test),
            n_labels=len(labels),
        )
        base_report = classification_report(test.labels, base_pred, labels=labels)
        baseline.update(
            clip_accuracy=base_report["accuracy"],
            macro_f1=base_report["macro_f1"],
            confusion=base_report["confusion"],
        )
    else:
        baseline.update(clip_accuracy=None, macro_f1=None, confusion=None)
    classical, ensemble = classical_scores(
        features=features, test=test, labels=labels, cnn_clip_probs=clip_probs
    )

    metrics = {
        "split": split,
        "labels": labels,
        "n_clips": len(test),
        "n_segments": int(len(segment_clip)),
        "segment_accuracy": segment_report["accuracy"],
        "segment_macro_f1": segment_report["macro_f1"],
        "clip_accuracy": clip_report["accuracy"],
        "macro_f1": clip_report["macro_f1"],
        "per_class": clip_report["per_class"],
        "confusion": clip_report["confusion"],
        "segment_confusion": segment_report["confusion"],
        "baseline": baseline,
        "classical": classical,
        "ensemble": ensemble,
        "verdict": verdict(clip_report["accuracy"], classical.get("clip_accuracy")),
        "clips": [
            {
                "clip_id": clip_id,
                "label": labels[test.labels[i]],
                "predicted": labels[clip_pred[i]],
                "probability": round(float(clip_probs[i, clip_pred[i]]), 6),
            }
            for i, clip_id in enumerate(test.clip_ids)
        ],
        "model": str(model_dir),
        "features": str(features.path),
        "features_hash": features.info["config_hash"],
        "model_config_hash": info.get("config_hash"),
        "seconds": round(time.perf_counter() - started, 3),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(out / "metrics.json", metrics)
    from genreflow.evaluation import figures

    figures.plot_confusion(
        np.asarray(metrics["confusion"]),
        labels=labels,
        path=out / "confusion.png",
        title=f"{split}: clip accuracy {metrics['clip_accuracy']:.1%}, macro-F1 {metrics['macro_f1']:.3f}",
    )
    return metrics


def classical_scores(
    *, features: FeatureSet, test: ClipTable, labels: Sequence[str], cnn_clip_probs: np.ndarray
) -> tuple[dict, dict]:
    """The MFCC + SVM baseline (:mod:`genreflow.training.classical`) and its average with the CNN.

    The baseline learns from the train and valid clips (it has no epochs to choose, so it uses
    every clip the CNN used for training or model selection) and scores ``test``.

    Returns
    -------
    classical, ensemble : dict
        Each ``{"method", "clip_accuracy", "macro_f1", "confusion", "seconds"}``; scores are
        None when there are no train clips.
    """
    from genreflow.training.classical import MfccSvm, ensemble_probabilities

    empty = {"clip_accuracy": None, "macro_f1": None, "confusion": None, "seconds": None}
    classical = {"method": MfccSvm.method, **empty}
    ensemble = {
        "method": "mean of the CNN's and the MFCC + SVM baseline's clip probabilities",
        **empty,
    }
    fitted = [clip_table(features, split=name, labels=labels) for name in ("train", "valid")]
    if not len(fitted[0]):
        return classical, ensemble
    started = time.perf_counter()
    svm = MfccSvm(n_labels=len(labels)).fit(features, fitted)
    svm_probs = svm.clip_probabilities(features, test)
    seconds = round(time.perf_counter() - started, 3)
    both = ensemble_probabilities(cnn_clip_probs, svm_probs)
    for record, probs in ((classical, svm_probs), (ensemble, both)):
        report = classification_report(test.labels, probs.argmax(axis=1), labels=labels)
        record.update(
            clip_accuracy=report["accuracy"],
            macro_f1=report["macro_f1"],
            confusion=report["confusion"],
            seconds=seconds,
        )
    return classical, ensemble


def verdict(cnn_accuracy: float, classical_accuracy: float | None) -> str | None:
    """One sentence comparing the CNN's clip accuracy with the classical baseline's."""
    if classical_accuracy is None:
        return None
    gap = 100 * (cnn_accuracy - classical_accuracy)
    if gap < 0:
        return (
            f"the CNN LOSES to the classical MFCC + SVM baseline by {-gap:.1f} points of clip "
            "accuracy"
        )
    return f"the CNN beats the classical MFCC + SVM baseline by {gap:.1f} points of clip accuracy"


def multilabel_metrics(
    *,
    features: FeatureSet,
    test: ClipTable,
    train: ClipTable,
    clip_probs: np.ndarray,
    segment_probs: np.ndarray,
    thresholds: np.ndarray,
    labels: Sequence[str],
) -> dict:
    """The multi-label part of ``metrics.json``: scores at ``thresholds`` and the prior baseline.

    Parameters
    ----------
    features : FeatureSet
        Its valid split tunes the baseline's thresholds.
    test, train : ClipTable
        Multi-label clip tables (``targets`` hold every label).
    clip_probs : np.ndarray, shape (n_test_clips, n_labels)
    segment_probs : np.ndarray, shape (n_test_segments, n_labels)
    thresholds : np.ndarray, shape (n_labels,)
        The model's stored thresholds.
    labels : sequence of str

    Returns
    -------
    dict
        ``per_label``, ``micro_f1``, ``macro_f1``, ``mAP``, ``subset_accuracy``,
        ``hamming_loss``, ``segment_mAP``, ``baseline`` and ``clips``.
    """
    from genreflow.metrics.multilabel import (
        mean_average_precision,
        multilabel_report,
        over_threshold,
        tune_thresholds,
    )

    report = multilabel_report(test.targets, clip_probs, thresholds=thresholds, labels=labels)
    segment_map = mean_average_precision(test.targets[test.segment_clip()], segment_probs)

    baseline: dict = {"method": MULTILABEL_BASELINE_METHOD}
    if len(train):
        priors = train.targets.astype(np.float64).mean(axis=0)
        valid = clip_table(features, split="valid", labels=labels, multilabel=True)
        base_thresholds = tune_thresholds(valid.targets, np.tile(priors, (len(valid), 1)))
        base = multilabel_report(
            test.targets, np.tile(priors, (len(test), 1)), thresholds=base_thresholds, labels=labels
        )
        baseline.update(
            mAP=base["mAP"],
            micro_f1=base["micro_f1"],
            macro_f1=base["macro_f1"],
            subset_accuracy=base["subset_accuracy"],
            hamming_loss=base["hamming_loss"],
            priors={name: float(p) for name, p in zip(labels, priors, strict=True)},
            per_label_ap={name: v["average_precision"] for name, v in base["per_label"].items()},
        )
    else:
        baseline.update(mAP=None, micro_f1=None, macro_f1=None, priors=None, per_label_ap=None)

    predicted = over_threshold(clip_probs, thresholds)
    clips = []
    for i, clip_id in enumerate(test.clip_ids):
        order = np.argsort(-clip_probs[i], kind="stable")
        clips.append(
            {
                "clip_id": clip_id,
                "labels": [labels[j] for j in np.flatnonzero(test.targets[i])],
                "predicted": [labels[j] for j in order if predicted[i, j]],
                "probabilities": {
                    name: round(float(p), 6) for name, p in zip(labels, clip_probs[i], strict=True)
                },
            }
        )
    return {**report, "segment_mAP": segment_map, "baseline": baseline, "clips": clips}


def format_summary(metrics: dict) -> str:
    """A short plain-text table: CNN vs baseline, then per-genre scores."""
    if metrics.get("multilabel"):
        return format_multilabel_summary(metrics)
    base = metrics["baseline"]

    def pct(value):
        return f"{value:7.1%}" if value is not None else "    n/a"

    def num(value):
        return f"{value:7.3f}" if value is not None else "    n/a"

    lines = [
        f"{metrics['split']} split: {metrics['n_clips']} clips, {metrics['n_segments']} segments",
        f"{'':24} {'segment acc':>11} {'clip acc':>8} {'macro-F1':>8}",
        f"{'CNN':24} {pct(metrics['segment_accuracy']):>11} {pct(metrics['clip_accuracy']):>8} "
        f"{num(metrics['macro_f1']):>8}",
        f"{'nearest-centroid baseline':24} {'':>11} {pct(base['clip_accuracy']):>8} "
        f"{num(base['macro_f1']):>8}",
    ]
    for name, key in (("MFCC + SVM baseline", "classical"), ("CNN + SVM ensemble", "ensemble")):
        if metrics.get(key):
            row = metrics[key]
            lines.append(
                f"{name:24} {'':>11} {pct(row['clip_accuracy']):>8} {num(row['macro_f1']):>8}"
            )
    if metrics.get("verdict"):
        lines.append(metrics["verdict"])
    lines += [
        "",
        f"{'genre':12} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>7}",
    ]
    for name, s in metrics["per_class"].items():
        lines.append(
            f"{name:12} {s['precision']:9.3f} {s['recall']:7.3f} {s['f1']:6.3f} {s['support']:7d}"
        )
    return "\n".join(lines)


def format_multilabel_summary(metrics: dict) -> str:
    """A short plain-text table for a multi-label model: CNN vs prior baseline, then per label."""
    base = metrics["baseline"]

    def num(value):
        return f"{value:8.3f}" if value is not None else "     n/a"

    lines = [
        f"{metrics['split']} split (multi-label): {metrics['n_clips']} clips, "
        f"{metrics['n_segments']} segments",
        f"{'':24} {'micro-F1':>8} {'macro-F1':>8} {'mAP':>8} {'subset acc':>10}",
        f"{'CNN':24} {num(metrics['micro_f1'])} {num(metrics['macro_f1'])} "
        f"{num(metrics['mAP'])} {metrics['subset_accuracy']:10.1%}",
        f"{'label-prior baseline':24} {num(base.get('micro_f1'))} {num(base.get('macro_f1'))} "
        f"{num(base.get('mAP'))}",
        "",
        f"{'label':12} {'precision':>9} {'recall':>7} {'F1':>6} {'AP':>6} {'thresh':>6} "
        f"{'support':>7}",
    ]
    for name, s in metrics["per_label"].items():
        ap = s["average_precision"]
        lines.append(
            f"{name:12} {s['precision']:9.3f} {s['recall']:7.3f} {s['f1']:6.3f} "
            f"{ap if ap is not None else float('nan'):6.3f} {s['threshold']:6.3f} {s['support']:7d}"
        )
    return "\n".join(lines)
