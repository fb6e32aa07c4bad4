"""The tf.data pipeline that feeds training: per-epoch segment sampling, augmentation, batching.

The shards stay on disk, memory-mapped; rows are read one segment at a time, so memory does
not grow with the number of clips. The pipeline is the usual Keras audio one::

    rows read from the shards (Python generator, seeded per epoch)
      -> map(standardise each mel band, SpecAugment masks, add a channel axis)
      -> batch -> prefetch(AUTOTUNE)

Each training epoch draws ``segments_per_clip`` segments from every training clip, in an
order shuffled by ``numpy.random.default_rng([seed, epoch])``: the same seed gives the same
epochs, also after a resumed run. SpecAugment draws its masks with stateless random ops
seeded per example, so it is reproducible too (:mod:`genreflow.training.augment`).
:func:`training_pipelines` puts together a training run's samplers and datasets. TensorFlow
is imported inside the functions that build graphs: the sampler is numpy only.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from genreflow.spectrograms.clips import ClipTable
from genreflow.spectrograms.shards import FeatureSet
from genreflow.training.augment import mix_batch, mixup_share, spec_augment_masks
from genreflow.training.dataset import TrainingData, balanced_class_weights
from genreflow.training.distributed import WorkerGroup, allreduce_seconds, build_for_distribution

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

__all__ = [
    "SegmentSampler",
    "TrainingPipelines",
    "make_dataset",
    "training_pipelines",
    "training_samplers",
]

#: Modulus of :meth:`SegmentSampler.digest` (a Mersenne prime; sums stay exact in float64).
_DIGEST_PRIME = 2**31 - 1


def _example_key(clip: int, within: int) -> int:
    """One example's share of :meth:`SegmentSampler.digest`."""
    return (int(clip) * 1_000_003 + int(within)) % _DIGEST_PRIME * 2_654_435_761 % _DIGEST_PRIME


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
        return (*out, mixup_share(seed, alpha=mixup)) if mixup else out

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
        dataset = dataset.map(mix_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


# --------------------------------------------------------------------------- training runs


@dataclass
class TrainingPipelines:
    """The samplers and datasets of a training run, and what distributing it costs per step.

    Attributes
    ----------
    train_sampler, valid_sampler : SegmentSampler
        This worker's samplers (the training loop sets the train sampler's epoch).
    train, valid : tf.data.Dataset or distributed dataset
        ``valid`` is None without a valid split.
    allreduce : float
        Seconds one gradient all-reduce takes (0 for a single worker).
    gradient_values : int
        Trainable values of the model (the size of one all-reduce).
    """

    train_sampler: SegmentSampler
    valid_sampler: SegmentSampler
    train: Any
    valid: Any
    allreduce: float
    gradient_values: int


def training_samplers(
    tcfg: Mapping[str, Any], *, data: TrainingData, group: WorkerGroup
) -> tuple[SegmentSampler, SegmentSampler]:
    """This worker's train and valid samplers (train draws ``segments_per_clip``, shuffled)."""
    seed = int(tcfg["seed"])
    shard = (group.index, group.count)
    train = SegmentSampler(
        features=data.features,
        clips=data.train_clips,
        segments_per_clip=int(tcfg["segments_per_clip"]),
        seed=seed,
        shuffle=True,
        shard=shard,
    )
    valid = SegmentSampler(
        features=data.features,
        clips=data.valid_clips,
        segments_per_clip=None,
        seed=seed,
        shuffle=False,
        shard=shard,
    )
    return train, valid


def train_input(
    tcfg: Mapping[str, Any], *, data: TrainingData, sampler: SegmentSampler, batch_size: int
):
    """The training split's pipeline with every augmentation ``tcfg`` asks for.

    Also what ``benchmarks/bench_training.py`` iterates alone to time the input pipeline
    without the model.
    """
    class_weights = (
        balanced_class_weights(data.train_clips, n_labels=len(data.labels))
        if tcfg["class_balance"] and not data.multilabel
        else None
    )
    return make_dataset(
        sampler,
        mean=data.mean,
        std=data.std,
        batch_size=batch_size,
        spec_augment=tcfg["spec_augment"],
        crop_frames=round(float(tcfg["crop_fraction"]) * data.features.n_frames),
        gain_db=float(tcfg["gain_db"]),
        one_hot=None if data.multilabel else len(data.labels),
        mixup=float(tcfg["mixup"]),
        class_weights=class_weights,
    )


def training_pipelines(
    tcfg: Mapping[str, Any],
    *,
    data: TrainingData,
    group: WorkerGroup,
    batch: Mapping[str, Any],
    model: keras.Model,
    strategy: tf.distribute.Strategy | None,
) -> TrainingPipelines:
    """The train and valid datasets (distributed over the workers when there is a strategy)."""
    train_sampler, valid_sampler = training_samplers(tcfg, data=data, group=group)
    batch_size = batch["per_worker"]
    one_hot = None if data.multilabel else len(data.labels)
    mean, std = data.mean, data.std

    def train_data(context=None):
        return train_input(tcfg, data=data, sampler=train_sampler, batch_size=batch_size)

    def valid_data(context=None):
        return make_dataset(
            valid_sampler, mean=mean, std=std, batch_size=batch_size, one_hot=one_hot
        )

    validated = data.validated
    allreduce = 0.0
    gradient_values = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    if strategy is None:
        train_ds, valid_ds = train_data(), valid_data() if validated else None
    else:
        # Each worker's pipeline reads only its shard of the plan (the samplers above), so the
        # datasets come from functions, one per worker, with no automatic re-sharding.
        train_ds = strategy.distribute_datasets_from_function(train_data)
        valid_ds = strategy.distribute_datasets_from_function(valid_data) if validated else None
        build_for_distribution(model, input_spec=train_data().element_spec)
        allreduce = allreduce_seconds(strategy, n_values=gradient_values)
    return TrainingPipelines(
        train_sampler=train_sampler,
        valid_sampler=valid_sampler,
        train=train_ds,
        valid=valid_ds,
        allreduce=allreduce,
        gradient_values=gradient_values,
    )
