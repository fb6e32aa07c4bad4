"""Embeddings: every train/valid segment of a feature directory through a frozen backbone, once.

The head on a pretrained backbone (:mod:`genreflow.training.head`) trains on these in seconds,
instead of running the backbone again every epoch. ``genreflow embed`` writes an embedding
directory (docs/formats.md, "Embeddings")::

    embeddings.npz   clip_ids (n_clips,), row_start/row_stop (n_clips,) into the rows below,
                     tags (n_segments, 50), penultimate (n_segments, 200), float32
    timings.json     stage "embed": threads, segments, seconds, seconds per 30-s clip
                     (written last: the completion marker)

This module imports TensorFlow; set thread settings (``genreflow.core.threads``) before importing it.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from genreflow.core.atomic import atomic_path, write_json
from genreflow.core.errors import StageError
from genreflow.core.progress import progress
from genreflow.spectrograms.clips import ClipTable, clip_table, is_multilabel, iter_segment_chunks
from genreflow.spectrograms.shards import FeatureSet

__all__ = ["EMBEDDING_OUTPUTS", "Embeddings", "embed_clips", "read_embeddings", "write_embeddings"]

EMBEDDINGS_FILE = "embeddings.npz"
TIMINGS_FILE = "timings.json"
#: Backbone outputs kept per segment, and what ``train.head.embedding`` picks from them.
EMBEDDING_OUTPUTS = ("tags", "penultimate")
HEAD_INPUTS = {
    "tags": ("tags",),
    "penultimate": ("penultimate",),
    "tags_penultimate": ("tags", "penultimate"),
}
#: Segments per backbone call: ~60 MB of activations per 32 segments of 187 frames.
_BATCH = 32


@dataclass(frozen=True)
class Embeddings:
    """Backbone outputs of the segments of some clips.

    Attributes
    ----------
    backbone : str
    clip_ids : list of str, length n_clips
    row_start, row_stop : np.ndarray, shape (n_clips,)
        Clip ``i``'s segments are rows ``row_start[i]:row_stop[i]`` of every output.
    outputs : dict of np.ndarray
        ``{"tags": (n_segments, 50), "penultimate": (n_segments, 200)}``, float32.
    """

    backbone: str
    clip_ids: list[str]
    row_start: np.ndarray
    row_stop: np.ndarray
    outputs: dict[str, np.ndarray]

    def rows(self, clips: ClipTable, *, embedding: str) -> tuple[np.ndarray, np.ndarray]:
        """Head inputs of the segments of ``clips`` and each segment's clip position.

        Returns
        -------
        x : np.ndarray, shape (segments of clips, width of ``embedding``)
        segment_clip : np.ndarray, shape (segments of clips,)

        Raises
        ------
        StageError
            A clip of ``clips`` has no embeddings (they were made from other features).
        """
        where = {clip: i for i, clip in enumerate(self.clip_ids)}
        missing = [c for c in clips.clip_ids if c not in where]
        if missing:
            raise StageError(
                f"embeddings have no rows for {len(missing)} clip(s) such as '{missing[0]}': "
                "were they made from another feature directory?"
            )
        picks = [
            np.arange(self.row_start[where[c]], self.row_stop[where[c]]) for c in clips.clip_ids
        ]
        rows = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
        x = np.concatenate([self.outputs[name][rows] for name in HEAD_INPUTS[embedding]], axis=1)
        segment_clip = np.repeat(np.arange(len(picks)), [len(p) for p in picks])
        return x, segment_clip


def embed_clips(
    backbone_model, features: FeatureSet, clips: ClipTable, *, name: str, show_progress: bool = True
) -> Embeddings:
    """Run ``backbone_model`` (:func:`genreflow.backbones.musicnn.build_backbone`) over every
    segment of ``clips``, in chunks read from the shards."""
    import tensorflow as tf

    forward = tf.function(
        lambda x: backbone_model(x, training=False),
        input_signature=[tf.TensorSpec((None, features.n_mels, None, 1), tf.float32)],
    )
    outputs: dict[str, list[np.ndarray]] = {k: [] for k in EMBEDDING_OUTPUTS}
    chunks = iter_segment_chunks(features, clips, chunk_rows=_BATCH * 8)
    total = int(clips.n_segments.sum())
    for _, segments in progress(chunks, desc=f"embed ({total} segments)", enabled=show_progress):
        for first in range(0, len(segments), _BATCH):
            batch = segments[first : first + _BATCH, :, :, None]
            result = forward(tf.constant(batch))
            for key in EMBEDDING_OUTPUTS:
                outputs[key].append(result[key].numpy())
    stops = np.cumsum(clips.n_segments)
    return Embeddings(
        backbone=name,
        clip_ids=list(clips.clip_ids),
        row_start=stops - clips.n_segments,
        row_stop=stops,
        outputs={
            k: np.concatenate(v) if v else np.zeros((0, 0), np.float32) for k, v in outputs.items()
        },
    )


def head_clips(features: FeatureSet) -> ClipTable:
    """The clips a head trains and validates on: train and valid splits, in index order."""
    labels = features.labels
    multilabel = is_multilabel(features)
    tables = [
        clip_table(features, split=s, labels=labels, multilabel=multilabel)
        for s in ("train", "valid")
    ]
    return ClipTable(
        clip_ids=[c for t in tables for c in t.clip_ids],
        labels=np.concatenate([t.labels for t in tables]),
        shards=[s for t in tables for s in t.shards],
        row_start=np.concatenate([t.row_start for t in tables]),
        row_stop=np.concatenate([t.row_stop for t in tables]),
        targets=np.concatenate([t.targets for t in tables]),
        multilabel=multilabel,
    )


def write_embeddings(
    out_dir: str | os.PathLike, embeddings: Embeddings, *, timings: Mapping[str, Any]
) -> None:
    """``embeddings.npz``, then ``timings.json`` (the marker), each atomically."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / TIMINGS_FILE).unlink(missing_ok=True)
    with atomic_path(out / EMBEDDINGS_FILE) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            clip_ids=np.array(embeddings.clip_ids, dtype=str),
            row_start=embeddings.row_start,
            row_stop=embeddings.row_stop,
            **embeddings.outputs,
        )
    write_json(out / TIMINGS_FILE, {**timings, "backbone": embeddings.backbone})


def read_embeddings(path: str | os.PathLike) -> Embeddings:
    """An embedding directory written by ``genreflow embed`` (the one reader of the format).

    Raises
    ------
    StageError
        The directory is incomplete (no ``timings.json`` marker) or unreadable.
    """
    import json

    folder = Path(path)
    marker = folder / TIMINGS_FILE
    if not marker.is_file():
        raise StageError(f"{folder}: no {TIMINGS_FILE}: not a finished `genreflow embed` output")
    try:
        info = json.loads(marker.read_text(encoding="utf-8"))
        with np.load(folder / EMBEDDINGS_FILE) as npz:
            return Embeddings(
                backbone=str(info["backbone"]),
                clip_ids=[str(c) for c in npz["clip_ids"]],
                row_start=npz["row_start"],
                row_stop=npz["row_stop"],
                outputs={k: npz[k] for k in EMBEDDING_OUTPUTS},
            )
    except (OSError, ValueError, KeyError) as exc:
        raise StageError(f"{folder}: unreadable embeddings: {exc}") from None


def check_front_end(features: FeatureSet, *, backbone: str) -> None:
    """Raise :class:`StageError` unless ``features`` were made with ``backbone``'s front end."""
    from genreflow.core.config import BACKBONE_FRONT_ENDS, front_end_mismatch

    if backbone not in BACKBONE_FRONT_ENDS:
        raise StageError(f"unknown backbone '{backbone}' (known: {', '.join(BACKBONE_FRONT_ENDS)})")
    mismatch = front_end_mismatch(backbone, audio=features.info["audio"], mel=features.info["mel"])
    if mismatch is not None:
        dotted, value, wanted = mismatch
        raise StageError(
            f"{features.path}: features made with {dotted} = {value!r}, but backbone "
            f"{backbone} needs {wanted!r}: run the spectrogram stage with its front end"
        )


def segments_per_clip(features: FeatureSet, *, seconds: float = 30.0) -> int:
    """Segments a clip of ``seconds`` is cut into with these features' grid."""
    from genreflow.spectrograms.logmel import FeatureExtractor

    extractor = FeatureExtractor(audio=features.info["audio"], mel=features.info["mel"])
    frames = extractor.logmel.n_frames(int(seconds * extractor.sample_rate))
    return len(extractor.grid.starts(frames))


def embed_features(
    features: FeatureSet,
    *,
    out_dir: str | os.PathLike,
    backbone: str,
    threads: Mapping[str, Any],
    show_progress: bool = True,
) -> dict:
    """Embed the train and valid clips of ``features`` and write the embedding directory.

    Returns
    -------
    dict
        The ``timings.json`` record.
    """
    from genreflow.core.device import describe_device

    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0, wall0 = time.perf_counter(), time.time()
    check_front_end(features, backbone=backbone)
    from genreflow.backbones.musicnn import build_backbone

    model = build_backbone()
    t_model = time.perf_counter()
    clips = head_clips(features)
    embeddings = embed_clips(model, features, clips, name=backbone, show_progress=show_progress)
    t_embed = time.perf_counter()
    segments = int(clips.n_segments.sum())
    per_segment = (t_embed - t_model) / max(segments, 1)
    per_clip = segments_per_clip(features)
    timings = {
        "stage": "embed",
        "started": started_at,
        "host": socket.gethostname(),
        **describe_device(),
        "threads": dict(threads),
        "features_hash": features.info.get("config_hash"),
        "clips": len(clips),
        "segments": segments,
        "seconds": {
            "load_backbone": round(t_model - t0, 4),
            "embed": round(t_embed - t_model, 4),
        },
        "segments_per_second": round(segments / max(t_embed - t_model, 1e-9), 2),
        "segments_per_30s_clip": per_clip,
        "seconds_per_30s_clip": round(per_segment * per_clip, 4),
        "start_time": round(wall0, 3),
    }
    timings["total_seconds"] = round(time.perf_counter() - t0, 4)
    timings["end_time"] = round(wall0 + timings["total_seconds"], 3)
    write_embeddings(out_dir, embeddings, timings=timings)
    print(
        f"embed: {segments} segments of {len(clips)} clips in {t_embed - t_model:.1f} s "
        f"({timings['segments_per_second']:.0f} segments/s; {timings['seconds_per_30s_clip']:.2f} s "
        f"per 30-s clip of {per_clip} segments) -> {out_dir}",
        flush=True,
    )
    return timings
