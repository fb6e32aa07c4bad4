"""A model's outputs over a feature set: every segment's probabilities, and each clip's.

Training (threshold tuning at export), evaluation and the classical baseline all score stored
segments this way; :class:`genreflow.prediction.predictor.Predictor` scores one clip's.
"""

from __future__ import annotations

import numpy as np

from genreflow.spectrograms.clips import ClipTable, clip_average, iter_segment_chunks
from genreflow.spectrograms.shards import FeatureSet


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
