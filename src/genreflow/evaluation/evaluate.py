"""Test-split evaluation: CNN metrics beside baselines, ``metrics.json`` and a figure.

A model's segment and clip probabilities over a feature set come from
:mod:`genreflow.prediction.predictor`; the metrics from :mod:`genreflow.metrics`; the
baselines from :mod:`genreflow.evaluation.baselines`. :func:`evaluate_model` loads TensorFlow
(through :class:`genreflow.prediction.predictor.Predictor`) only when it runs.

A multi-label model (``"multilabel": true`` in ``genreflow.json``) is scored per label at its
stored thresholds (F1, average precision, micro/macro averages), beside a label-prior baseline;
``confusion.png`` then holds a per-label F1 / average-precision bar chart instead of a
confusion matrix (there is no single predicted label to cross with the true one).
:func:`format_summary` renders ``metrics.json`` as a short table for the terminal and job log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from genreflow.core.errors import DatasetError, ModelError
from genreflow.evaluation.baselines import (
    MULTILABEL_BASELINE_METHOD,
    classical_scores,
    nearest_centroid_scores,
    verdict,
)
from genreflow.metrics.single_label import classification_report
from genreflow.prediction.predictor import segment_probabilities
from genreflow.spectrograms.clips import ClipTable, clip_average, clip_table
from genreflow.spectrograms.shards import FeatureSet, open_features


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
    features = open_features(features_dir, verify=True)
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
    clip_probs = clip_average(segment_probs, test.segment_clip(), n_clips=len(test))
    scores = dict(
        features=features,
        test=test,
        train=train,
        clip_probs=clip_probs,
        segment_probs=segment_probs,
        labels=labels,
    )
    metrics = {
        "split": split,
        "labels": labels,
        **({"multilabel": True} if multilabel else {}),
        "n_clips": len(test),
        "n_segments": int(len(segment_probs)),
        **(
            multilabel_metrics(**scores, thresholds=predictor.thresholds)
            if multilabel
            else single_label_metrics(**scores, model_name=model_label(info))
        ),
        "model": str(model_dir),
        "model_name": model_label(info),
        "features": str(features.path),
        "features_hash": features.info["config_hash"],
        "model_config_hash": info.get("config_hash"),
        "seconds": round(time.perf_counter() - started, 3),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(out / "metrics.json", metrics)
    _draw_figure(metrics, path=out / "confusion.png")
    return metrics


def model_label(info) -> str:
    """The model's name in tables: ``CNN``, or ``<backbone> + head``."""
    backbone = info.get("backbone")
    return f"{backbone} + head" if backbone else "CNN"


def single_label_metrics(
    *,
    features: FeatureSet,
    test: ClipTable,
    train: ClipTable,
    clip_probs: np.ndarray,
    segment_probs: np.ndarray,
    labels: Sequence[str],
    model_name: str = "CNN",
) -> dict:
    """The single-label part of ``metrics.json``: segment and clip scores beside the baselines.

    Parameters
    ----------
    features : FeatureSet
        The baselines learn from its train (and valid) clips.
    test, train : ClipTable
    clip_probs : np.ndarray, shape (n_test_clips, n_labels)
    segment_probs : np.ndarray, shape (n_test_segments, n_labels)
    labels : sequence of str

    Returns
    -------
    dict
        ``segment_accuracy`` … ``verdict`` and ``clips`` (docs/formats.md, "Evaluation").
    """
    clip_pred = clip_probs.argmax(axis=1)
    segment_report = classification_report(
        test.labels[test.segment_clip()], segment_probs.argmax(axis=1), labels=labels
    )
    clip_report = classification_report(test.labels, clip_pred, labels=labels)
    classical, ensemble = classical_scores(
        features=features, test=test, labels=labels, cnn_clip_probs=clip_probs
    )
    return {
        "segment_accuracy": segment_report["accuracy"],
        "segment_macro_f1": segment_report["macro_f1"],
        "clip_accuracy": clip_report["accuracy"],
        "macro_f1": clip_report["macro_f1"],
        "per_class": clip_report["per_class"],
        "confusion": clip_report["confusion"],
        "segment_confusion": segment_report["confusion"],
        "baseline": nearest_centroid_scores(
            features=features, test=test, train=train, labels=labels
        ),
        "classical": classical,
        "ensemble": ensemble,
        "verdict": verdict(
            clip_report["accuracy"], classical.get("clip_accuracy"), model=f"the {model_name}"
        ),
        "clips": [
            {
                "clip_id": clip_id,
                "label": labels[test.labels[i]],
                "predicted": labels[clip_pred[i]],
                "probability": round(float(clip_probs[i, clip_pred[i]]), 6),
            }
            for i, clip_id in enumerate(test.clip_ids)
        ],
    }


def _draw_figure(metrics: dict, *, path: Path) -> None:
    """``confusion.png``: the clip confusion matrix, or per-label scores for a multi-label model."""
    from genreflow.evaluation import figures

    split = metrics["split"]
    if metrics.get("multilabel"):
        figures.plot_label_scores(
            metrics["per_label"],
            path=path,
            title=f"{split}: micro-F1 {metrics['micro_f1']:.3f}, macro-F1 "
            f"{metrics['macro_f1']:.3f}, mAP {metrics['mAP']:.3f}",
            baseline_ap=metrics["baseline"].get("per_label_ap"),
        )
        return
    figures.plot_confusion(
        np.asarray(metrics["confusion"]),
        labels=metrics["labels"],
        path=path,
        title=f"{split}: clip accuracy {metrics['clip_accuracy']:.1%}, macro-F1 {metrics['macro_f1']:.3f}",
    )


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


# --------------------------------------------------------------------------- as text


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
        f"{metrics.get('model_name', 'CNN'):24} {pct(metrics['segment_accuracy']):>11} {pct(metrics['clip_accuracy']):>8} "
        f"{num(metrics['macro_f1']):>8}",
        f"{'nearest-centroid baseline':24} {'':>11} {pct(base['clip_accuracy']):>8} "
        f"{num(base['macro_f1']):>8}",
    ]
    ensemble = f"{metrics.get('model_name', 'CNN')} + SVM ensemble"
    for name, key in (("MFCC + SVM baseline", "classical"), (ensemble, "ensemble")):
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
