"""Clip tables: which rows of a feature directory's shards belong to which clip, and per-clip averages.

Training, prediction, evaluation, the classical baseline and the backbone embeddings all read
segments clip by clip through these tables (numpy only, no TensorFlow).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from genreflow.core.errors import DatasetError
from genreflow.spectrograms.shards import FeatureSet

__all__ = ["ClipTable", "clip_average", "clip_table", "is_multilabel", "iter_segment_chunks"]


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
