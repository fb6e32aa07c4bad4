"""Training and evaluation inputs read from a feature directory: clip tables and band statistics.

The shards stay on disk, memory-mapped, and are read in chunks, so memory does not grow with
the number of clips. The ``tf.data`` pipeline that samples segments from these tables for
training lives in :mod:`genreflow.training.pipeline`.

Nothing here imports TensorFlow: the band statistics and clip tables are numpy only (the
classical baseline, evaluation and the tests use them without TensorFlow).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genreflow.core.errors import DatasetError
from genreflow.spectrograms.shards import FeatureSet, open_features

__all__ = [
    "ClipTable",
    "FeatureSet",
    "TrainingData",
    "balanced_class_weights",
    "band_statistics",
    "clip_table",
    "is_multilabel",
    "iter_segment_chunks",
    "open_features",
    "read_training_data",
]

# --------------------------------------------------------------------------- clip tables


@dataclass(frozen=True)
class ClipTable:
    """The segments of some clips: clip ``i`` is rows ``row_start[i]:row_stop[i]`` of ``shards[i]``.

    Attributes
    ----------
    clip_ids : list of str, length n_clips
    labels : np.ndarray, shape (n_clips,), int
        Index into the label list (of the first label, for multi-label clips).
    shards : list of str, length n_clips
    row_start, row_stop : np.ndarray, shape (n_clips,), int
    targets : np.ndarray, shape (n_clips, n_labels), float32
        Multi-hot: every label of the clip (multi-label), or one-hot of ``labels``.
    multilabel : bool
        Training and evaluation use ``targets`` (sigmoid outputs) instead of ``labels``.
    """

    clip_ids: list[str]
    labels: np.ndarray
    shards: list[str]
    row_start: np.ndarray
    row_stop: np.ndarray
    targets: np.ndarray
    multilabel: bool = False

    def __len__(self) -> int:
        return len(self.clip_ids)

    @property
    def n_segments(self) -> np.ndarray:
        """Segments per clip, shape (n_clips,)."""
        return self.row_stop - self.row_start

    def segment_clip(self) -> np.ndarray:
        """For every segment (in clip order), the position of its clip; shape (total segments,)."""
        return np.repeat(np.arange(len(self)), self.n_segments)


def is_multilabel(features: FeatureSet) -> bool:
    """True when some clip of ``features`` has more than one label (then the model is multi-label)."""
    return any(len(r.labels) > 1 for r in features.index)


def clip_table(
    features: FeatureSet, *, split: str, labels: Sequence[str], multilabel: bool = False
) -> ClipTable:
    """The clips of ``split`` with label indices from ``labels`` (the model's order).

    Parameters
    ----------
    features : FeatureSet
    split : str
    labels : sequence of str
        The model's labels, in output order.
    multilabel : bool
        ``targets`` hold every label of a clip (else only its first label, one-hot).

    Raises
    ------
    DatasetError
        A clip whose label (any of its labels, when ``multilabel``) is not in ``labels``.
    """
    from genreflow.metrics.multilabel import multi_hot

    position = {name: i for i, name in enumerate(labels)}
    rows = features.rows(split=split)
    used = {name for r in rows for name in r.labels} if multilabel else {r.label for r in rows}
    unknown = sorted(used - set(position))
    if unknown:
        raise DatasetError(
            f"{features.path}: split '{split}' has labels the model does not know: {', '.join(unknown)}"
        )
    rows = [r for r in rows if r.row_stop > r.row_start]
    return ClipTable(
        clip_ids=[r.clip_id for r in rows],
        labels=np.array([position[r.label] for r in rows], dtype=np.int64),
        shards=[r.shard for r in rows],
        row_start=np.array([r.row_start for r in rows], dtype=np.int64),
        row_stop=np.array([r.row_stop for r in rows], dtype=np.int64),
        targets=multi_hot([r.labels if multilabel else (r.label,) for r in rows], labels=labels),
        multilabel=multilabel,
    )


#: Rows read at a time when scanning shards for statistics.
_CHUNK_ROWS = 256


def iter_segment_chunks(
    features: FeatureSet, clips: ClipTable, *, chunk_rows: int = _CHUNK_ROWS
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(clip_positions, segments)`` chunks of all segments of ``clips``, in clip order.

    ``segments`` has shape ``(m, n_mels, n_frames)`` float32; a chunk closes after the clip
    that brings it to ``chunk_rows`` rows, so ``m`` is about that (whole clips, never split).
    ``clip_positions`` has shape ``(m,)``: each row's index into ``clips``.
    """
    pending: list[tuple[int, np.ndarray]] = []
    size = 0
    for i in range(len(clips)):
        block = features.read_rows(clips.shards[i], clips.row_start[i], clips.row_stop[i])
        pending.append((i, block))
        size += len(block)
        if size >= chunk_rows:
            yield _join(pending)
            pending, size = [], 0
    if pending:
        yield _join(pending)


def _join(pending: list[tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    positions = np.concatenate([np.full(len(b), i, dtype=np.int64) for i, b in pending])
    segments = np.concatenate([np.asarray(b, dtype=np.float32) for _, b in pending])
    return positions, segments


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


def read_training_data(features_dir: str | os.PathLike, *, tcfg: Mapping[str, Any]) -> TrainingData:
    """Open ``features_dir`` and read the train and valid clip tables and band statistics.

    Parameters
    ----------
    features_dir : path-like
        Output of ``genreflow spectrograms``.
    tcfg : mapping
        The ``train`` configuration section (``export`` decides whether a valid split is needed).

    Raises
    ------
    DatasetError
        No train clips, or no valid clips where the run needs them.
    """
    features = open_features(features_dir)
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
    mean, std = band_statistics(features, train_clips)
    return TrainingData(
        features=features,
        labels=labels,
        multilabel=multilabel,
        train_clips=train_clips,
        valid_clips=valid_clips,
        mean=mean,
        std=std,
    )
