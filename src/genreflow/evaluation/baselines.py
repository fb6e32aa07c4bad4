"""The baselines every evaluation reports beside the CNN.

A nearest-centroid classifier on clip-mean spectra (the floor), the MFCC + SVM baseline of
:mod:`genreflow.classical` and its average with the CNN (the bar to beat), and the
label-prior baseline of a multi-label model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from genreflow.metrics.single_label import classification_report
from genreflow.spectrograms.clips import ClipTable, clip_table, iter_segment_chunks
from genreflow.spectrograms.shards import FeatureSet

BASELINE_METHOD = "nearest centroid, euclidean, on per-clip mean log-mel spectra standardised with train statistics"

MULTILABEL_BASELINE_METHOD = (
    "label priors: every clip scores each label with its rate in the train split; "
    "thresholds tuned on the valid split like the model's"
)


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


def nearest_centroid_scores(
    *, features: FeatureSet, test: ClipTable, train: ClipTable, labels: Sequence[str]
) -> dict:
    """The nearest-centroid baseline's record: method, clip accuracy, macro-F1, confusion.

    Scores are None when there are no train clips.
    """
    baseline: dict = {"method": BASELINE_METHOD}
    if not len(train):
        baseline.update(clip_accuracy=None, macro_f1=None, confusion=None)
        return baseline
    predicted = nearest_centroid(
        clip_mean_spectra(features, train),
        train.labels,
        clip_mean_spectra(features, test),
        n_labels=len(labels),
    )
    report = classification_report(test.labels, predicted, labels=labels)
    baseline.update(
        clip_accuracy=report["accuracy"],
        macro_f1=report["macro_f1"],
        confusion=report["confusion"],
    )
    return baseline


def classical_scores(
    *, features: FeatureSet, test: ClipTable, labels: Sequence[str], cnn_clip_probs: np.ndarray
) -> tuple[dict, dict]:
    """The MFCC + SVM baseline (:mod:`genreflow.classical`) and its average with the CNN.

    The baseline learns from the train and valid clips (it has no epochs to choose, so it uses
    every clip the CNN used for training or model selection) and scores ``test``.

    Returns
    -------
    classical, ensemble : dict
        Each ``{"method", "clip_accuracy", "macro_f1", "confusion", "seconds"}``; scores are
        None when there are no train clips.
    """
    from genreflow.classical import MfccSvm, ensemble_probabilities

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


def verdict(
    cnn_accuracy: float, classical_accuracy: float | None, *, model: str = "the CNN"
) -> str | None:
    """One sentence comparing the model's clip accuracy with the classical baseline's."""
    if classical_accuracy is None:
        return None
    gap = 100 * (cnn_accuracy - classical_accuracy)
    if gap < 0:
        return (
            f"{model} LOSES to the classical MFCC + SVM baseline by {-gap:.1f} points of clip "
            "accuracy"
        )
    return f"{model} beats the classical MFCC + SVM baseline by {gap:.1f} points of clip accuracy"
