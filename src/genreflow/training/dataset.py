"""Training and evaluation inputs read from a feature directory: clip tables and band statistics.

The shards stay on disk, memory-mapped, and are read in chunks, so memory does not grow with
the number of clips. The ``tf.data`` pipeline that samples segments from these tables for
training lives in :mod:`genreflow.training.pipeline`.

Nothing here imports TensorFlow: the band statistics and clip tables are numpy only (the
classical baseline, evaluation and the tests use them without TensorFlow).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from genreflow.core.errors import DatasetError
from genreflow.spectrograms.clips import ClipTable, clip_table, is_multilabel, iter_segment_chunks
from genreflow.spectrograms.shards import FeatureSet, open_features

__all__ = [
    "TrainingData",
    "balanced_class_weights",
    "band_statistics",
    "read_training_data",
]


def band_statistics(features: FeatureSet, clips: ClipTable) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of every mel band over all segments and frames of ``clips``.

    Streams over the shards in chunks (float64 running sums), so memory stays flat.

    Returns
    -------
    mean, std : np.ndarray, shape (n_mels,), float32
        ``std`` is floored at 1e-3 dB so that a constant band cannot divide by zero.
    """
    if len(clips) == 0:
        raise DatasetError(f"{features.path}: no clips to compute band statistics from")
    total = np.zeros(features.n_mels, dtype=np.float64)
    squares = np.zeros(features.n_mels, dtype=np.float64)
    count = 0
    for _, chunk in iter_segment_chunks(features, clips):
        values = chunk.astype(np.float64)
        total += values.sum(axis=(0, 2))
        squares += np.square(values).sum(axis=(0, 2))
        count += values.shape[0] * values.shape[2]
    mean = total / count
    var = np.maximum(squares / count - mean**2, 0.0)
    return mean.astype(np.float32), np.maximum(np.sqrt(var), 1e-3).astype(np.float32)


def balanced_class_weights(clips: ClipTable, *, n_labels: int) -> np.ndarray:
    """Loss weights that make every label weigh alike: ``n_clips / (n_present * count)``.

    Returns
    -------
    np.ndarray, shape (n_labels,), float32
        Mean 1 over the clips (each clip draws the same number of segments); 0 for labels
        without clips.
    """
    counts = np.bincount(clips.labels, minlength=n_labels).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_labels)
    weights[present] = len(clips) / (present.sum() * counts[present])
    return weights.astype(np.float32)


# --------------------------------------------------------------------------- training inputs


@dataclass(frozen=True)
class TrainingData:
    """What a training run reads from its feature directory.

    Attributes
    ----------
    features : FeatureSet
    labels : list of str
        The model's labels, in output order.
    multilabel : bool
    train_clips, valid_clips : ClipTable
    mean, std : np.ndarray, shape (n_mels,), float32
        Band statistics of the train split (the model's input standardisation).
    """

    features: FeatureSet
    labels: list[str]
    multilabel: bool
    train_clips: ClipTable
    valid_clips: ClipTable
    mean: np.ndarray
    std: np.ndarray

    @property
    def validated(self) -> bool:
        """There is a valid split (it chooses the exported epoch and the early stop)."""
        return len(self.valid_clips) > 0


def read_training_data(
    features_dir: str | os.PathLike, *, tcfg: Mapping[str, Any], band_stats: bool = True
) -> TrainingData:
    """Open ``features_dir`` and read the train and valid clip tables and band statistics.

    Parameters
    ----------
    features_dir : path-like
        Output of ``genreflow spectrograms``.
    tcfg : mapping
        The ``train`` configuration section (``export`` decides whether a valid split is needed).
    band_stats : bool
        Compute the train split's band statistics (a pass over its shards); False gives mean 0
        and std 1: a pretrained backbone normalises its own input.

    Raises
    ------
    DatasetError
        No train clips, or no valid clips where the run needs them.
    """
    features = open_features(features_dir, verify=True)
    labels = features.labels
    multilabel = is_multilabel(features)
    train_clips = clip_table(features, split="train", labels=labels, multilabel=multilabel)
    valid_clips = clip_table(features, split="valid", labels=labels, multilabel=multilabel)
    if len(train_clips) == 0:
        raise DatasetError(f"{features.path}: no 'train' clips; training needs a train split")
    # The valid split chooses the exported epoch (train.export: best), the early stop and the
    # multi-label thresholds; a single-label model that exports its last epoch can do without.
    if len(valid_clips) == 0 and (tcfg["export"] == "best" or multilabel):
        raise DatasetError(
            f"{features.path}: no 'valid' clips; training needs train and valid splits "
            + (
                "(multi-label thresholds are tuned on valid)"
                if multilabel
                else "(or set train.export: last to train without one)"
            )
        )
    if band_stats:
        mean, std = band_statistics(features, train_clips)
    else:
        mean = np.zeros(features.n_mels, np.float32)
        std = np.ones(features.n_mels, np.float32)
    return TrainingData(
        features=features,
        labels=labels,
        multilabel=multilabel,
        train_clips=train_clips,
        valid_clips=valid_clips,
        mean=mean,
        std=std,
    )
