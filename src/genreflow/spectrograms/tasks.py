"""The work rank 0 scatters in the spectrogram stage: paths and metadata, never audio."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ClipTask:
    """One clip as scattered to a rank: metadata only, never audio."""

    pos: int  # position in the manifest (orders the index)
    clip_id: str
    path: str
    label: str
    labels: tuple[str, ...]
    group: str
    split: str
    size: int
    preview: bool


@dataclass(frozen=True)
class Share:
    """What rank 0 scatters to one rank: the rest of its share and how to journal it."""

    tasks: list[ClipTask]  # the share's clips not yet in complete shards, in share order
    done: int  # clips at the start of the share already in complete shards
    first_shard: int  # number of the first shard to write
    inputs: dict[str, str]  # the run's key (see genreflow.spectrograms.journal.run_inputs)
