"""Single-label metrics from predicted and true label indices, in plain numpy.

Checked by hand in the tests: :func:`confusion_matrix`, :func:`precision_recall_f1`,
:func:`macro_f1`, :func:`accuracy`, and :func:`classification_report` that gathers them
(the multi-label counterparts: :mod:`genreflow.metrics.multilabel`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
