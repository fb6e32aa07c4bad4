"""A model's outputs over a feature set: every segment's probabilities, and each clip's.

Training (threshold tuning at export), evaluation and the classical baseline all score stored
segments this way; :class:`genreflow.prediction.predictor.Predictor` scores one clip's.
"""

from __future__ import annotations

import numpy as np

from genreflow.training.dataset import ClipTable, FeatureSet, iter_segment_chunks


def segment_probabilities(predictor, *, features: FeatureSet, clips: ClipTable) -> np.ndarray:
    """Model outputs for every segment of ``clips``, in clip order.

    Parameters
    ----------
    predictor : genreflow.prediction.predictor.Predictor
    features : FeatureSet
    clips : ClipTable

    Returns
    -------
    np.ndarray, shape (total segments, n_labels), float32
        Row order of ``clips.segment_clip()``.
    """
    chunks = [
        predictor.predict_segments(chunk) for _, chunk in iter_segment_chunks(features, clips)
    ]
    if not chunks:
        return np.zeros((0, len(predictor.labels)), dtype=np.float32)
    return np.concatenate(chunks)


def clip_probabilities(predictor, *, features: FeatureSet, clips: ClipTable) -> np.ndarray:
    """Clip probabilities of ``clips``: the mean of each clip's segment probabilities.

    Returns
    -------
    np.ndarray, shape (n_clips, n_labels), float64
    """
    segment_probs = segment_probabilities(predictor, features=features, clips=clips)
    return clip_average(segment_probs, clips.segment_clip(), n_clips=len(clips))


def clip_average(
    segment_values: np.ndarray, segment_clip: np.ndarray, *, n_clips: int
) -> np.ndarray:
    """Average rows of ``segment_values`` per clip.

    Parameters
    ----------
    segment_values : np.ndarray, shape (n_segments, d)
    segment_clip : np.ndarray, shape (n_segments,), int
        The clip (``0..n_clips-1``) each segment belongs to; every clip must have a segment.
    n_clips : int

    Returns
    -------
    np.ndarray, shape (n_clips, d)
    """
    segment_values = np.asarray(segment_values, dtype=np.float64)
    sums = np.zeros((n_clips, segment_values.shape[1]), dtype=np.float64)
    np.add.at(sums, np.asarray(segment_clip), segment_values)
    counts = np.bincount(segment_clip, minlength=n_clips)
    if (counts == 0).any():
        raise ValueError("every clip needs at least one segment")
    return sums / counts[:, None]
