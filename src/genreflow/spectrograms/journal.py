"""A rank's work and its resume journal in the spectrogram stage.

Rank 0 scatters each rank a :class:`Share`: the :class:`ClipTask` records (paths and metadata,
never audio) it still has to convert. Each time a rank has renamed a finished shard into place
it writes ``journal/part-<rank>-<k>.json`` (atomically): the share positions the shard covers,
all that the final outputs need about them (index rows, failures, decode notes), the key of the
run's inputs (:func:`run_inputs`) and the rank count. On a rerun, rank 0 keeps per rank the
longest run of journals that check out (:func:`recover_journals`) and scatters only the rest;
see :mod:`genreflow.spectrograms.stage`, "Resuming". Format: ``docs/formats.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from genreflow import __version__
from genreflow.core.atomic import write_text
from genreflow.spectrograms.previews import PREVIEWS, preview_name
from genreflow.spectrograms.shards import (
    IndexRow,
    ShardFile,
    file_sha256,
    parse_shard_name,
    shard_name,
)


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


#: Sub-folder of the feature directory holding one resume journal per finished shard.
JOURNAL_DIR = "journal"
#: Version of the journal format; journals of another version start the run over.
#: 2: ``shard_sha256`` (a kept shard must still have the bytes it was written with).
JOURNAL_FORMAT = 2

_JOURNAL_NAME = re.compile(r"part-(\d+)-(\d+)\.json")
#: Why a journal's key does not match this run, by field.
_KEY_CHANGES = {
    "manifest_sha256": "the manifest changed",
    "clips_sha256": "a clip file changed (size or modification time)",
    "config_hash": "audio, mel, preprocess.shard_mb or preprocess.previews_per_genre changed",
    "genreflow_version": "the genreflow version changed",
}


@dataclass
class Recovered:
    """Rank 0: what the kept journals of one rank hold (its share's first ``done`` clips)."""

    rank: int
    done: int = 0
    shards: list[ShardFile] = field(default_factory=list)
    journals: list[str] = field(default_factory=list)
    previews: list[str] = field(default_factory=list)
    index: list[tuple[int, IndexRow]] = field(default_factory=list)
    failures: list[tuple[int, str, str]] = field(default_factory=list)  # (pos, path, reason)
    notes: list[tuple[int, str, str]] = field(default_factory=list)  # (pos, path, note)
    segments: int = 0

    @property
    def bad(self) -> int:
        return len(self.failures)


def run_inputs(
    *, manifest_bytes: bytes, cfg: Mapping[str, Any], stats: Sequence[tuple[int, int]]
) -> dict[str, str]:
    """The key of a run's inputs: what decides the partition and every byte of the outputs.

    The manifest's bytes, each clip's size and modification time, the config that shapes
    shards and previews (``audio``, ``mel``, ``preprocess.shard_mb`` and
    ``preprocess.previews_per_genre``) and the genreflow version. The rank count is checked
    separately.
    """
    from genreflow.core.config import config_hash

    clips = "".join(f"{size} {mtime}\n" for size, mtime in stats).encode("ascii")
    shaping = {
        "audio": cfg["audio"],
        "mel": cfg["mel"],
        "shard_mb": cfg["preprocess"]["shard_mb"],
        "previews_per_genre": cfg["preprocess"]["previews_per_genre"],
    }
    return {
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        "clips_sha256": hashlib.sha256(clips).hexdigest(),
        "config_hash": config_hash(shaping),
        "genreflow_version": __version__,
    }


def journal_name(rank: int, k: int) -> str:
    """File name (in ``journal/``) of the journal of shard ``part-<rank>-<k>.npy``."""
    return f"part-{rank}-{k}.json"


def has_journals(out: Path) -> bool:
    folder = out / JOURNAL_DIR
    return folder.is_dir() and any(folder.glob("part-*.json"))


def recover_journals(
    out: str | os.PathLike,
    *,
    shares: Sequence[Sequence[ClipTask]],
    inputs: Mapping[str, str],
    n_ranks: int,
) -> tuple[list[Recovered] | None, str | None]:
    """Rank 0: what an interrupted earlier run in ``out`` finished, per rank.

    For each rank, the longest run of journals ``part-<rank>-0 .. k`` that check out: the
    journal reads, its shard is there with the recorded size and SHA-256, it continues the
    share where the previous one stopped.

    Returns
    -------
    (recovered, None)
        One :class:`Recovered` per rank (``done == 0`` where nothing can be kept).
    (None, why)
        A journal is of another format, other inputs or another rank count: start over.
    """
    out = Path(out)
    journals: dict[tuple[int, int], Any] = {}
    folder = out / JOURNAL_DIR
    for file in sorted(folder.glob("part-*.json")) if folder.is_dir() else []:
        match = _JOURNAL_NAME.fullmatch(file.name)
        if not match:
            continue
        try:
            record = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # unreadable: ends its rank's run of journals below
        why = _key_mismatch(record, inputs=inputs, n_ranks=n_ranks)
        if why:
            return None, f"{JOURNAL_DIR}/{file.name}: {why}"
        journals[int(match[1]), int(match[2])] = record
    recovered = []
    for rank, share in enumerate(shares):
        rec = Recovered(rank=rank)
        k = 0
        while (rank, k) in journals:
            try:
                if not _take_journal(journals[rank, k], rec, share=share, out=out, k=k):
                    break
            except (KeyError, TypeError, ValueError, AttributeError):
                break
            k += 1
        recovered.append(rec)
    return recovered, None


def _key_mismatch(record: Any, *, inputs: Mapping[str, str], n_ranks: int) -> str | None:
    """Why ``record`` cannot be resumed by this run (``None``: it can, as far as the key goes)."""
    if not isinstance(record, dict) or record.get("format") != JOURNAL_FORMAT:
        found = record.get("format") if isinstance(record, dict) else None
        return f"journal format {found!r}, this genreflow writes format {JOURNAL_FORMAT}"
    if record.get("n_ranks") != n_ranks:
        return f"the earlier run had {record.get('n_ranks')} rank(s), this one has {n_ranks}"
    theirs = record.get("inputs")
    theirs = theirs if isinstance(theirs, dict) else {}
    for key, change in _KEY_CHANGES.items():
        if theirs.get(key) != inputs.get(key):
            return change
    return None


def _take_journal(
    record: dict, rec: Recovered, *, share: Sequence[ClipTask], out: Path, k: int
) -> bool:
    """Add journal ``k`` of ``rec.rank`` to ``rec`` if it checks out; ``False`` if it does not."""
    rank = rec.rank
    name = shard_name(rank, k)
    if record["rank"] != rank or record["shard"] != name or record["share_start"] != rec.done:
        return False
    try:
        # A shard whose bytes changed since (bit rot, a partial copy) is converted again.
        size = (out / name).stat().st_size
        if size != record["shard_bytes"] or file_sha256(out / name) != record["shard_sha256"]:
            return False
    except OSError:
        return False
    positions = [int(p) for p in record["positions"]]
    tasks = share[rec.done : rec.done + len(positions)]
    if not positions or [t.pos for t in tasks] != positions:
        return False
    by_pos = {t.pos: t for t in tasks}
    index = []
    for pos, row in record["index"]:
        row = IndexRow(**{**row, "labels": tuple(row["labels"]), "offsets": tuple(row["offsets"])})
        if pos not in by_pos or row.shard != name:
            return False
        index.append((int(pos), row))
    if sum(row.n_segments for _, row in index) != record["shard_rows"]:
        return False
    # Rank 0 draws previews at the end of a run: those already there are kept, the rest drawn.
    wanted = [
        preview_name(by_pos[pos].label, by_pos[pos].clip_id)
        for pos, _ in index
        if by_pos[pos].preview
    ]
    previews = [p for p in wanted if (out / PREVIEWS / p).is_file()]
    failures = [(int(pos), str(path), str(reason)) for pos, path, reason in record["failures"]]
    notes = [(int(pos), str(path), str(note)) for pos, path, note in record["notes"]]
    if len(index) + len(failures) != len(positions):
        return False
    rec.done += len(positions)
    rec.shards.append(ShardFile(name, int(record["shard_rows"]), size, record["shard_sha256"]))
    rec.journals.append(journal_name(rank, k))
    rec.previews += previews
    rec.index += index
    rec.failures += failures
    rec.notes += notes
    rec.segments += int(record["shard_rows"])
    return True


class ShardJournal:
    """One rank's record of the clips since its last finished shard; written beside each shard."""

    def __init__(self, *, out: Path, rank: int, n_ranks: int, share: Share) -> None:
        self.folder = out / JOURNAL_DIR
        self.rank = rank
        self.n_ranks = n_ranks
        self.inputs = share.inputs
        self.start = share.done  # share position of the first clip not yet journalled
        self._reset()

    def _reset(self) -> None:
        self.positions: list[int] = []
        self.index: list[tuple[int, IndexRow]] = []
        self.failures: list[tuple[int, str, str]] = []
        self.notes: list[tuple[int, str, str]] = []

    def shard_finished(self, shard: ShardFile) -> None:
        """:class:`ShardWriter` callback: journal every clip handled since the previous shard.

        Runs inside :meth:`ShardWriter.append` of the clip that opens the next shard, before
        that clip is recorded here, or when the share's last shard is closed.
        """
        parsed = parse_shard_name(shard.name)
        if parsed is None or parsed[0] != self.rank:
            raise RuntimeError(f"shard {shard.name!r} is not one of rank {self.rank}'s")
        record = {
            "format": JOURNAL_FORMAT,
            "stage": "spectrograms",
            "rank": self.rank,
            "n_ranks": self.n_ranks,
            "inputs": dict(self.inputs),
            "shard": shard.name,
            "shard_rows": shard.rows,
            "shard_bytes": shard.bytes,
            "shard_sha256": shard.sha256,
            "share_start": self.start,
            "positions": self.positions,
            "index": [[pos, asdict(row)] for pos, row in self.index],
            "failures": [list(f) for f in self.failures],
            "notes": [list(n) for n in self.notes],
        }
        # Compact (about half the size of indented JSON): one journal per shard adds up.
        write_text(
            self.folder / journal_name(*parsed),
            json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n",
        )
        self.start += len(self.positions)
        self._reset()
