"""Training and evaluation inputs streamed from a feature directory.

The shards stay on disk, memory-mapped; rows are read one segment at a time, so memory does
not grow with the number of clips. The pipeline is the usual Keras audio one::

    rows read from the shards (Python generator, seeded per epoch)
      -> map(standardise each mel band, SpecAugment masks, add a channel axis)
      -> batch -> prefetch(AUTOTUNE)

Each training epoch draws ``segments_per_clip`` segments from every training clip, in an
order shuffled by ``numpy.random.default_rng([seed, epoch])``: the same seed gives the same
epochs, also after a resumed run. SpecAugment draws its masks with stateless random ops
seeded per example, so it is reproducible too.

Nothing here imports TensorFlow at module level: the band statistics and clip tables are
numpy only (the nearest-centroid baseline and the tests use them without TensorFlow).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from genreflow.core.errors import DatasetError
from genreflow.spectrograms.shards import FeatureSet, open_features

__all__ = [
    "ClipTable",
    "FeatureSet",
    "SegmentSampler",
    "balanced_class_weights",
    "band_statistics",
    "clip_table",
    "is_multilabel",
    "iter_segment_chunks",
    "make_dataset",
    "open_features",
    "spec_augment_masks",
]

#: Rows read at a time when scanning shards for statistics.
_CHUNK_ROWS = 256

#: Modulus of :meth:`SegmentSampler.digest` (a Mersenne prime; sums stay exact in float64).
_DIGEST_PRIME = 2**31 - 1


def _example_key(clip: int, within: int) -> int:
    """One example's share of :meth:`SegmentSampler.digest`."""
    return (int(clip) * 1_000_003 + int(within)) % _DIGEST_PRIME * 2_654_435_761 % _DIGEST_PRIME


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


# --------------------------------------------------------------------------- segment sampling


class SegmentSampler:
    """Python generator source for ``tf.data``: the segments of one epoch, read from the shards.

    Call it (no arguments) to get one epoch's generator; set :attr:`epoch` before each epoch
    (the training loop does it in a callback) so that every epoch has its own, reproducible
    draw. Each yielded item is ``(segment float16 (n_mels, n_frames), target, seed int64[2])``,
    ``target`` the label index (int) or, for a multi-label ``clips`` table, the multi-hot
    vector (float32 (n_labels,)); the seed drives that example's SpecAugment masks.

    Parameters
    ----------
    features : FeatureSet
    clips : ClipTable
    segments_per_clip : int or None
        Segments drawn per clip each epoch (without replacement while the clip has enough,
        then with); ``None`` yields every segment of every clip once, in order (evaluation).
    seed : int
    shuffle : bool
        Shuffle the draw (training) or keep clip order (validation).
    shard : (index, count)
        Data-parallel training: this worker's part of every epoch (see :meth:`plan`).
    """

    def __init__(
        self,
        *,
        features: FeatureSet,
        clips: ClipTable,
        segments_per_clip: int | None,
        seed: int,
        shuffle: bool,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        self.features = features
        self.clips = clips
        self.segments_per_clip = segments_per_clip
        self.seed = int(seed)
        self.shuffle = shuffle
        self.shard_index, self.shard_count = int(shard[0]), int(shard[1])
        if not 0 <= self.shard_index < self.shard_count:
            raise ValueError(f"shard {shard}: need 0 <= index < count")
        self.epoch = 0
        #: Examples the last epoch's generator yielded, and their :meth:`digest`.
        self.yielded = 0
        self.yielded_digest = 0

    def _full_length(self) -> int:
        if self.segments_per_clip is None:
            return int(self.clips.n_segments.sum())
        return len(self.clips) * self.segments_per_clip

    def _own(self, n: int) -> slice:
        # Data-parallel workers: every worker plans the whole epoch alike and takes items
        # index, index + count, ...; the last n % count items are left out so that all workers
        # take the same number of steps.
        return slice(self.shard_index, n - n % self.shard_count, self.shard_count)

    def __len__(self) -> int:
        """Examples per epoch (of this shard)."""
        full = self._full_length()
        return len(range(full)[self._own(full)])

    def whole_plan(self, epoch: int) -> np.ndarray:
        """The epoch's examples of all shards as ``(clip position, row within the clip)``, shape (n, 2)."""
        clips = self.clips
        if self.segments_per_clip is None:
            position = clips.segment_clip()
            within = np.arange(len(position)) - np.repeat(
                np.cumsum(clips.n_segments) - clips.n_segments, clips.n_segments
            )
            return np.stack([position, within], axis=1)
        rng = np.random.default_rng([self.seed, epoch])
        n = self.segments_per_clip
        pairs = np.empty((len(clips) * n, 2), dtype=np.int64)
        for i, k in enumerate(clips.n_segments):
            draw = rng.permutation(k)[:n]
            if len(draw) < n:
                draw = np.concatenate([draw, rng.integers(0, k, n - len(draw))])
            pairs[i * n : (i + 1) * n, 0] = i
            pairs[i * n : (i + 1) * n, 1] = draw
        if self.shuffle:
            pairs = pairs[rng.permutation(len(pairs))]
        return pairs

    def plan(self, epoch: int) -> np.ndarray:
        """This shard's examples of the epoch as ``(clip position, row within the clip)``, shape (n, 2)."""
        pairs = self.whole_plan(epoch)
        return pairs[self._own(len(pairs))]

    @staticmethod
    def digest(pairs: np.ndarray) -> int:
        """Order-free checksum of some ``(clip position, row)`` pairs (sums of shards add up)."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return sum(_example_key(clip, within) for clip, within in pairs)

    def __call__(self) -> Iterator[tuple[np.ndarray, np.int64 | np.ndarray, np.ndarray]]:
        epoch = self.epoch
        whole = self.whole_plan(epoch)
        seeds = np.random.default_rng([self.seed, epoch, 1]).integers(
            0, 2**31 - 1, size=(len(whole), 2), dtype=np.int64
        )
        # An example keeps its SpecAugment seed whichever worker trains on it.
        own = self._own(len(whole))
        pairs, seeds = whole[own], seeds[own]
        clips = self.clips
        targets = clips.targets if clips.multilabel else clips.labels
        self.yielded, self.yielded_digest = 0, 0
        for (clip, within), seed in zip(pairs, seeds, strict=True):
            row = clips.row_start[clip] + within
            segment = self.features.read_rows(clips.shards[clip], row, row + 1)[0]
            self.yielded += 1
            self.yielded_digest += _example_key(clip, within)
            yield segment, targets[clip], seed


# --------------------------------------------------------------------------- tf.data


def make_dataset(
    sampler: SegmentSampler,
    *,
    mean: np.ndarray,
    std: np.ndarray,
    batch_size: int,
    spec_augment: Mapping[str, Any] | None = None,
    crop_frames: int | None = None,
    gain_db: float = 0.0,
    one_hot: int | None = None,
    mixup: float = 0.0,
    class_weights: np.ndarray | None = None,
):
    """The ``tf.data`` pipeline over ``sampler``: read -> standardise (+ augment) -> batch -> prefetch.

    Parameters
    ----------
    sampler : SegmentSampler
    mean, std : np.ndarray, shape (n_mels,)
        Per-band statistics of the training split.
    batch_size : int
    spec_augment : mapping or None
        ``train.spec_augment`` (``enabled``, ``time_masks``, ``time_width``, ``freq_masks``,
        ``freq_width``); ``None`` or disabled = no masking (validation, evaluation).
    crop_frames : int or None
        Train on a random window of this many frames of each segment (a random time shift;
        the fully convolutional model still scores whole segments). ``None`` = whole segments.
    gain_db : float
        Shift each example by a random gain, uniform in ``[-gain_db, gain_db]`` dB, before
        standardising, so that the recording level is not a cue. 0 = off.
    one_hot : int or None
        Single-label targets as one-hot float32 vectors of this length (soft targets for
        label smoothing and mixup) instead of label indices.
    mixup : float
        Mixup's Beta(alpha, alpha) parameter (0 = off; needs one-hot or multi-hot targets):
        each example is blended with another of its batch, ``lam * a + (1 - lam) * b`` for
        inputs and targets, ``lam >= 0.5`` so that the example stays mostly itself.
    class_weights : np.ndarray, shape (n_labels,), or None
        Single-label data: each example's loss weight is its label's entry (blended like the
        targets under mixup), so that every genre counts alike however many clips it has.
        Batches are then ``(x, y, weight float32 (b,))``.

    Returns
    -------
    tf.data.Dataset
        Batches ``(x float32 (b, n_mels, frames, 1), y)``, ``frames`` = ``crop_frames`` or the
        segment length; ``y`` is int64 ``(b,)`` label indices, or float32 ``(b, n_labels)``
        one-hot (``one_hot``) or multi-hot targets (a multi-label clip table).
    """
    import tensorflow as tf

    n_mels, n_frames = sampler.features.n_mels, sampler.features.n_frames
    clips = sampler.clips
    target_spec = (
        tf.TensorSpec((clips.targets.shape[1],), tf.float32)
        if clips.multilabel
        else tf.TensorSpec((), tf.int64)
    )
    mean_t = tf.constant(np.asarray(mean, np.float32)[:, None])
    std_t = tf.constant(np.asarray(std, np.float32)[:, None])
    augment = dict(spec_augment) if spec_augment and spec_augment.get("enabled") else None
    crop = crop_frames if crop_frames and crop_frames < n_frames else None
    if mixup and not (one_hot or clips.multilabel):
        raise ValueError("mixup needs one-hot (one_hot=n_labels) or multi-hot targets")
    weights_t = (
        tf.constant(np.asarray(class_weights, np.float32))
        if class_weights is not None and not clips.multilabel
        else None
    )

    def prepare(segment, label, seed):
        x = tf.cast(segment, tf.float32)
        if gain_db:
            x += tf.random.stateless_uniform(
                [],
                seed=tf.random.experimental.stateless_fold_in(seed, 2),
                minval=-gain_db,
                maxval=gain_db,
            )
        x = (x - mean_t) / std_t
        if crop:
            start = tf.random.stateless_uniform(
                [],
                seed=tf.random.experimental.stateless_fold_in(seed, 1),
                minval=0,
                maxval=n_frames - crop + 1,
                dtype=tf.int32,
            )
            x = x[:, start : start + crop]
        if augment:
            x = spec_augment_masks(
                x, seed=seed, **{k: v for k, v in augment.items() if k != "enabled"}
            )
        weight = tf.gather(weights_t, label) if weights_t is not None else None
        if one_hot and not clips.multilabel:
            label = tf.one_hot(label, one_hot, dtype=tf.float32)
        out = (x[..., tf.newaxis], label)
        if weight is not None:
            out += (weight,)
        return (*out, mixup_share(seed)) if mixup else out

    def mixup_share(seed):
        # One draw per example from its own seed: reproducible whatever the batch composition.
        # Drawn here, per example, rather than by a map over the batch (~20 % of an epoch).
        gammas = [
            tf.random.stateless_gamma(
                [], seed=tf.random.experimental.stateless_fold_in(seed, 3 + k), alpha=mixup
            )
            for k in range(2)
        ]
        lam = gammas[0] / (gammas[0] + gammas[1] + 1e-12)
        return tf.maximum(lam, 1.0 - lam)

    def mix(x, y, *rest):
        *weight, lam = rest
        partner = tf.reverse(tf.range(tf.shape(x)[0]), [0])
        x = lam[:, None, None, None] * x + (1.0 - lam[:, None, None, None]) * tf.gather(x, partner)
        y = lam[:, None] * y + (1.0 - lam[:, None]) * tf.gather(y, partner)
        if weight:
            return x, y, lam * weight[0] + (1.0 - lam) * tf.gather(weight[0], partner)
        return x, y

    dataset = tf.data.Dataset.from_generator(
        sampler,
        output_signature=(
            tf.TensorSpec((n_mels, n_frames), tf.float16),
            target_spec,
            tf.TensorSpec((2,), tf.int64),
        ),
    )
    # The generator's length is known: telling tf.data lets Keras show steps per epoch.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(sampler)))
    dataset = dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
    if mixup:
        dataset = dataset.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def spec_augment_masks(
    x,
    *,
    seed,
    time_masks: int,
    time_width: int,
    freq_masks: int,
    freq_width: int,
):
    """SpecAugment: zero ``time_masks`` random frame ranges and ``freq_masks`` band ranges.

    Widths are uniform in ``[0, width]``. Applied after standardisation, so zero is the band
    mean. Random draws come from stateless ops seeded by ``seed`` (int64 ``(2,)``).

    Parameters
    ----------
    x : tf.Tensor, shape (n_mels, n_frames), float32

    Returns
    -------
    tf.Tensor, same shape
    """
    import tensorflow as tf

    n_mels, n_frames = tf.shape(x)[0], tf.shape(x)[1]
    seeds = tf.random.experimental.stateless_split(seed, num=2 * (time_masks + freq_masks) + 1)

    def band(length, count, width, offset):
        positions = tf.range(length)
        masked = tf.zeros([length], tf.bool)
        for i in range(count):
            w = tf.random.stateless_uniform(
                [], seed=seeds[offset + 2 * i], minval=0, maxval=width + 1, dtype=tf.int32
            )
            w = tf.minimum(w, length)
            start = tf.random.stateless_uniform(
                [], seed=seeds[offset + 2 * i + 1], minval=0, maxval=length - w + 1, dtype=tf.int32
            )
            masked = masked | ((positions >= start) & (positions < start + w))
        return masked

    frames = band(n_frames, time_masks, time_width, 0)
    mels = band(n_mels, freq_masks, freq_width, 2 * time_masks)
    keep = ~(mels[:, tf.newaxis] | frames[tf.newaxis, :])
    return tf.where(keep, x, tf.zeros_like(x))
