"""Multi-label metrics and decision thresholds, in plain numpy.

A multi-label model scores every label independently (sigmoid outputs); a clip gets every
label whose probability reaches that label's threshold. The thresholds are tuned on the
validation split, one per label, to maximise that label's F1 (:func:`tune_thresholds`).

Conventions (the same as the single-label metrics in :mod:`genreflow.metrics.single_label`):

- ``y_true`` is a multi-hot matrix, shape ``(n_clips, n_labels)``, 1 where the clip has the
  label; ``y_pred`` the same for the predicted labels; ``scores`` are probabilities.
- A ratio with a zero denominator is 0 (precision of a never-predicted label, ...).
- Averages over labels (macro-F1, mAP) use only the labels present in ``y_true``
  (support > 0): a label without positives has no defined recall or average precision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = [
    "DEFAULT_THRESHOLD",
    "average_precision",
    "hamming_loss",
    "macro_f1",
    "mean_average_precision",
    "micro_f1",
    "multi_hot",
    "multilabel_report",
    "over_threshold",
    "per_label_scores",
    "subset_accuracy",
    "thresholds_array",
    "tune_thresholds",
]

#: Threshold of a label that has no positive clip to tune on.
DEFAULT_THRESHOLD = 0.5


def multi_hot(label_sets: Sequence[Sequence[str]], *, labels: Sequence[str]) -> np.ndarray:
    """Multi-hot targets of some label sets.

    Parameters
    ----------
    label_sets : sequence of sequences of str, length n_clips
        Each clip's labels; every name must be in ``labels``.
    labels : sequence of str, length n_labels
        The column order.

    Returns
    -------
    np.ndarray, shape (n_clips, n_labels), float32
        1 where the clip has the label, else 0.
    """
    position = {name: i for i, name in enumerate(labels)}
    targets = np.zeros((len(label_sets), len(labels)), dtype=np.float32)
    for row, names in enumerate(label_sets):
        targets[row, [position[name] for name in names]] = 1.0
    return targets


def _as_bool(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 2:
        raise ValueError(f"{name} must have shape (n_clips, n_labels), got {y.shape}")
    return y.astype(bool)


def _check_pair(y_true: np.ndarray, other: np.ndarray, name: str) -> None:
    if y_true.shape != np.shape(other):
        raise ValueError(f"y_true {y_true.shape} and {name} {np.shape(other)} differ in shape")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_label_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and support of every label.

    Parameters
    ----------
    y_true, y_pred : np.ndarray, shape (n_clips, n_labels)
        Multi-hot (0/1 or bool).

    Returns
    -------
    dict
        ``precision``, ``recall``, ``f1`` (float64) and ``support`` (int64, positives in
        ``y_true``), each of shape (n_labels,).
    """
    t = _as_bool(y_true, "y_true")
    p = _as_bool(y_pred, "y_pred")
    _check_pair(t, p, "y_pred")
    tp = (t & p).sum(axis=0)
    predicted = p.sum(axis=0)
    support = t.sum(axis=0)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (predicted + actual): 0 when both are empty.
    f1 = _ratio(2 * tp, predicted + support)
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support.astype(np.int64),
    }


def micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 of all (clip, label) decisions pooled: ``2 TP / (2 TP + FP + FN)`` over every label."""
    t = _as_bool(y_true, "y_true")
    p = _as_bool(y_pred, "y_pred")
    _check_pair(t, p, "y_pred")
    denominator = int(t.sum() + p.sum())
    return 2.0 * int((t & p).sum()) / denominator if denominator else 0.0


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Unweighted mean F1 over the labels present in ``y_true`` (0 when none is)."""
    scores = per_label_scores(y_true, y_pred)
    present = scores["support"] > 0
    return float(scores["f1"][present].mean()) if present.any() else 0.0


def subset_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of clips whose predicted label set is exactly the true one."""
    t = _as_bool(y_true, "y_true")
    p = _as_bool(y_pred, "y_pred")
    _check_pair(t, p, "y_pred")
    return float(np.all(t == p, axis=1).mean()) if len(t) else 0.0


def hamming_loss(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of (clip, label) decisions that are wrong."""
    t = _as_bool(y_true, "y_true")
    p = _as_bool(y_pred, "y_pred")
    _check_pair(t, p, "y_pred")
    return float((t != p).mean()) if t.size else 0.0


def _label_average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """AP of one label: ``sum_k (R_k - R_{k-1}) P_k`` over the distinct scores, highest first.

    Clips with equal scores are one step (all in or all out), so the value does not depend on
    the order of ties. ``nan`` when there is no positive.
    """
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    s = score[order]
    hits = positive[order].astype(np.int64)
    # The last index of each run of equal scores closes a step.
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    tp = np.cumsum(hits)[ends]
    n_predicted = ends + 1
    precision = tp / n_predicted
    recall_gain = np.diff(np.r_[0, tp]) / n_pos
    return float(np.sum(recall_gain * precision))


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Average precision of every label (the area under its step precision-recall curve).

    Parameters
    ----------
    y_true : np.ndarray, shape (n_clips, n_labels)
        Multi-hot.
    scores : np.ndarray, shape (n_clips, n_labels)
        Probabilities (any monotone score works).

    Returns
    -------
    np.ndarray, shape (n_labels,), float64
        ``nan`` for a label with no positive clip.
    """
    t = _as_bool(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64)
    _check_pair(t, s, "scores")
    return np.array([_label_average_precision(t[:, j], s[:, j]) for j in range(t.shape[1])])


def mean_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean of :func:`average_precision` over the labels with positives (0 when none has)."""
    ap = average_precision(y_true, scores)
    present = ~np.isnan(ap)
    return float(ap[present].mean()) if present.any() else 0.0


def _best_threshold(positive: np.ndarray, score: np.ndarray, *, default: float) -> float:
    """The F1-maximising threshold of one label (decision: ``score >= threshold``).

    Cutting at the k-th highest distinct score ``d_k`` predicts every clip scoring ``>= d_k``;
    any threshold in ``(d_{k+1}, d_k]`` (``[0, d_last]`` for the lowest) makes the same
    decisions. Adjacent optimal cuts join into one range; the widest range wins and its middle
    is returned, the threshold farthest from flipping a validation decision.
    """
    n_pos = int(positive.sum())
    if n_pos == 0:
        return default
    order = np.argsort(-score, kind="stable")
    s = score[order]
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    distinct = s[ends]
    tp = np.cumsum(positive[order].astype(np.int64))[ends]
    # Integer arithmetic up to one correctly rounded division: equal F1 values compare equal.
    f1 = 2.0 * tp / (ends + 1 + n_pos)
    best = np.flatnonzero(f1 == f1.max())
    lower = np.r_[distinct[1:], min(0.0, float(distinct[-1]))]
    # Runs of consecutive optimal cuts: [start, stop] positions into ``distinct``.
    breaks = np.flatnonzero(np.diff(best) > 1)
    starts = np.r_[best[0], best[breaks + 1]]
    stops = np.r_[best[breaks], best[-1]]
    widths = distinct[starts] - lower[stops]
    run = int(np.argmax(widths))
    return float((distinct[starts[run]] + lower[stops[run]]) / 2.0)


def tune_thresholds(
    y_true: np.ndarray, scores: np.ndarray, *, default: float = DEFAULT_THRESHOLD
) -> np.ndarray:
    """One decision threshold per label, maximising that label's F1 on ``(y_true, scores)``.

    Parameters
    ----------
    y_true : np.ndarray, shape (n_clips, n_labels)
        Multi-hot targets (the validation split).
    scores : np.ndarray, shape (n_clips, n_labels)
        Probabilities in [0, 1].
    default : float
        Threshold of a label with no positive clip.

    Returns
    -------
    np.ndarray, shape (n_labels,), float64
        A label is predicted when its probability is ``>=`` its threshold. Among equally good
        thresholds the middle of the widest optimal range is taken.
    """
    t = _as_bool(y_true, "y_true")
    s = np.asarray(scores, dtype=np.float64)
    _check_pair(t, s, "scores")
    return np.array([_best_threshold(t[:, j], s[:, j], default=default) for j in range(t.shape[1])])


def over_threshold(
    probabilities: np.ndarray, thresholds: np.ndarray | Sequence[float]
) -> np.ndarray:
    """The multi-label decisions: ``probabilities >= thresholds`` (broadcast over clips).

    Parameters
    ----------
    probabilities : np.ndarray, shape (..., n_labels)
    thresholds : array-like, shape (n_labels,)

    Returns
    -------
    np.ndarray, same shape as ``probabilities``, bool
    """
    return np.asarray(probabilities) >= np.asarray(thresholds, dtype=np.float64)


def thresholds_array(
    thresholds: Mapping[str, float] | None, *, labels: Sequence[str]
) -> np.ndarray:
    """``genreflow.json``'s ``{label: threshold}`` as an array in ``labels`` order.

    A missing mapping or label gets :data:`DEFAULT_THRESHOLD`.
    """
    thresholds = thresholds or {}
    return np.array([float(thresholds.get(name, DEFAULT_THRESHOLD)) for name in labels])


def multilabel_report(
    y_true: np.ndarray,
    scores: np.ndarray,
    *,
    thresholds: np.ndarray | Sequence[float],
    labels: Sequence[str],
) -> dict:
    """Per-label and averaged multi-label scores, JSON-ready.

    Parameters
    ----------
    y_true : np.ndarray, shape (n_clips, n_labels)
        Multi-hot targets.
    scores : np.ndarray, shape (n_clips, n_labels)
        Probabilities.
    thresholds : array-like, shape (n_labels,)
        Decision thresholds (``scores >= thresholds``).
    labels : sequence of str, length n_labels

    Returns
    -------
    dict
        ``per_label`` (``{label: {precision, recall, f1, support, average_precision,
        threshold}}``; ``average_precision`` is None for a label without positives),
        ``micro_f1``, ``macro_f1``, ``mAP``, ``subset_accuracy``, ``hamming_loss``.
    """
    y_pred = over_threshold(scores, thresholds)
    per = per_label_scores(y_true, y_pred)
    ap = average_precision(y_true, scores)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    return {
        "per_label": {
            name: {
                "precision": float(per["precision"][j]),
                "recall": float(per["recall"][j]),
                "f1": float(per["f1"][j]),
                "support": int(per["support"][j]),
                "average_precision": None if np.isnan(ap[j]) else float(ap[j]),
                "threshold": float(thresholds[j]),
            }
            for j, name in enumerate(labels)
        },
        "micro_f1": micro_f1(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred),
        "mAP": mean_average_precision(y_true, scores),
        "subset_accuracy": subset_accuracy(y_true, y_pred),
        "hamming_loss": hamming_loss(y_true, y_pred),
    }
