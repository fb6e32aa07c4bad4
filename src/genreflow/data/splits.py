"""Assign clips to the train / valid / test splits.

Methods (config ``split.method``):

``stratified``
    Seeded and stratified by label: each label's clips are shuffled and cut by
    ``split.fractions``. When clips carry a ``group`` (artist, album) whole groups are assigned
    instead, so that no group spans two splits, keeping the label mix close to the fractions.
``gtzan-filtered``
    The standard fault-filtered GTZAN split (Kereliuk, Sturm & Larsen 2015), matched on the clip
    id (``blues.00012``) whatever the extension; clips not in its lists are left out.
``column``
    The split given in the dataset CSV's ``split`` column.
``auto``
    ``gtzan-filtered`` when the clips are GTZAN, else ``stratified``.

The result depends only on the clips (not on the order they were found in) and the seed.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources

from genreflow.core.errors import ConfigError, DatasetError
from genreflow.data.manifest import SPLITS, Clip, SkippedItem

#: Values of ``split.method``.
SPLIT_METHODS = ("auto", "stratified", "gtzan-filtered", "column")

#: The ten GTZAN genres (the label folders of the dataset).
GTZAN_GENRES = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)

#: Accepted spellings in a CSV ``split`` column.
SPLIT_ALIASES = {
    "train": "train",
    "valid": "valid",
    "validation": "valid",
    "val": "valid",
    "test": "test",
}

#: ``auto`` uses the GTZAN split only if at least this fraction of the listed clips is present
#: (the demo dataset shares GTZAN's names but has a few clips per genre).
GTZAN_MIN_LIST_COVERAGE = 0.5

_GTZAN_LIST_FILES = {
    "train": "train_filtered.txt",
    "valid": "valid_filtered.txt",
    "test": "test_filtered.txt",
}


@dataclasses.dataclass(frozen=True)
class SplitResult:
    """Clips with their split, and how it was decided.

    Attributes
    ----------
    clips : list of Clip
        The clips that have a split, sorted by ``clip_id``.
    method : str
        The method used (``auto`` resolved).
    requested : str
        The method asked for.
    group_aware : bool
        Whole groups were assigned (stratified split of grouped clips).
    left_out : list of SkippedItem
        Clips without a split (not in the GTZAN lists).
    notes : list of str
        Why ``auto`` chose what it chose, and other remarks for the user.
    """

    clips: list[Clip]
    method: str
    requested: str
    group_aware: bool = False
    left_out: list[SkippedItem] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


def assign_splits(
    clips: Sequence[Clip],
    *,
    method: str,
    fractions: Mapping[str, float],
    seed: int,
) -> SplitResult:
    """Give every clip a split.

    Parameters
    ----------
    clips : sequence of Clip
        The dataset (any order).
    method : {"auto", "stratified", "gtzan-filtered", "column"}
        See the module docstring.
    fractions : mapping
        ``{"train": 0.7, "valid": 0.15, "test": 0.15}``; used by ``stratified``.
    seed : int
        Seed of the stratified shuffle.

    Returns
    -------
    SplitResult

    Raises
    ------
    ConfigError
        Unknown method or bad fractions.
    DatasetError
        No clips; ``gtzan-filtered`` with no clip in the lists; ``column`` without (valid)
        split values.
    """
    if method not in SPLIT_METHODS:
        raise ConfigError(
            f"key 'split.method' has value {method!r}; allowed: one of {', '.join(SPLIT_METHODS)}"
        )
    fractions = _checked_fractions(fractions)
    clips = sorted(clips, key=lambda c: c.clip_id)
    if not clips:
        raise DatasetError("no clips to split")
    notes: list[str] = []
    resolved = method
    if method == "auto":
        is_gtzan, why = _gtzan_verdict(clips)
        resolved = "gtzan-filtered" if is_gtzan else "stratified"
        notes.append(f"split.method auto -> {resolved}: {why}")
        if any(c.split for c in clips):
            notes.append("the CSV has split values; set split.method=column to use them")

    if resolved == "gtzan-filtered":
        kept, left_out, more = gtzan_filtered_split(clips)
        notes.extend(more)
        return SplitResult(kept, resolved, method, left_out=left_out, notes=notes)
    if resolved == "column":
        return SplitResult(column_split(clips), resolved, method, notes=notes)
    grouped = any(c.group for c in clips)
    split = grouped_split if grouped else stratified_split
    result = split(clips, fractions=fractions, seed=seed)
    return SplitResult(result, resolved, method, group_aware=grouped, notes=notes)


def stratified_split(
    clips: Sequence[Clip], *, fractions: Mapping[str, float], seed: int
) -> list[Clip]:
    """Seeded split stratified by label.

    Each label's clips (sorted by id) are shuffled with a generator seeded from ``seed`` and the
    label, then cut into :func:`split_sizes` pieces.

    Returns
    -------
    list of Clip
        Sorted by ``clip_id``.
    """
    fractions = _checked_fractions(fractions)
    by_label: dict[str, list[Clip]] = {}
    for clip in sorted(clips, key=lambda c: c.clip_id):
        by_label.setdefault(clip.label, []).append(clip)
    out: list[Clip] = []
    for label, members in sorted(by_label.items()):
        order = _shuffled(members, random.Random(f"genreflow-split:{seed}:{label}"))
        start = 0
        for name, size in split_sizes(len(order), fractions).items():
            out.extend(dataclasses.replace(c, split=name) for c in order[start : start + size])
            start += size
    return sorted(out, key=lambda c: c.clip_id)


def grouped_split(
    clips: Sequence[Clip], *, fractions: Mapping[str, float], seed: int
) -> list[Clip]:
    """Split whole groups, keeping each split's label counts close to the fractions.

    Clips without a group form a group of their own. Groups are placed largest first (equal
    sizes in seeded random order), each into the split where it most reduces
    ``sum((count - target)**2 / target)`` over (split, label) cells.

    Returns
    -------
    list of Clip
        Sorted by ``clip_id``; no group appears in two splits.
    """
    fractions = _checked_fractions(fractions)
    groups: dict[str, list[Clip]] = {}
    for clip in sorted(clips, key=lambda c: c.clip_id):
        key = f"g:{clip.group}" if clip.group else f"c:{clip.clip_id}"
        groups.setdefault(key, []).append(clip)
    totals: dict[str, int] = {}
    for clip in clips:
        totals[clip.label] = totals.get(clip.label, 0) + 1
    active = [s for s in SPLITS if fractions[s] > 0]
    target = {s: {lab: fractions[s] * n for lab, n in totals.items()} for s in active}
    current: dict[str, dict[str, int]] = {s: dict.fromkeys(totals, 0) for s in active}

    keys = _shuffled(sorted(groups), random.Random(f"genreflow-groups:{seed}"))
    keys.sort(key=lambda k: -len(groups[k]))  # stable: equal sizes keep the seeded order
    out: list[Clip] = []
    for key in keys:
        members = groups[key]
        counts: dict[str, int] = {}
        for clip in members:
            counts[clip.label] = counts.get(clip.label, 0) + 1

        def cost_increase(s: str, counts: dict[str, int] = counts) -> float:
            return sum(
                n * (2 * (current[s][lab] - target[s][lab]) + n) / target[s][lab]
                for lab, n in counts.items()
            )

        best = min(active, key=cost_increase)  # ties: the first split in SPLITS order
        for lab, n in counts.items():
            current[best][lab] += n
        out.extend(dataclasses.replace(c, split=best) for c in members)
    return sorted(out, key=lambda c: c.clip_id)


def split_sizes(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Cut ``n`` items into split sizes by ``fractions`` (largest remainder).

    When ``n`` is at least the number of splits with a non-zero fraction, each of them gets at
    least one item (taken from the largest).

    Returns
    -------
    dict
        ``{"train": n_train, "valid": n_valid, "test": n_test}``, summing to ``n``.
    """
    active = [s for s in SPLITS if fractions[s] > 0]
    exact = {s: n * fractions[s] for s in SPLITS}
    sizes = {s: math.floor(round(exact[s], 9)) for s in SPLITS}
    by_remainder = sorted(active, key=lambda s: (-(exact[s] - sizes[s]), SPLITS.index(s)))
    for s in by_remainder[: n - sum(sizes.values())]:
        sizes[s] += 1
    if n >= len(active):
        for s in active:
            if sizes[s] == 0:
                donor = max(active, key=lambda d: sizes[d])
                sizes[donor] -= 1
                sizes[s] += 1
    return sizes


def gtzan_filtered_split(
    clips: Sequence[Clip],
) -> tuple[list[Clip], list[SkippedItem], list[str]]:
    """The fault-filtered GTZAN split, matched on ``clip_id``.

    Returns
    -------
    kept : list of Clip
        Clips in the lists, with their split, sorted by ``clip_id``.
    left_out : list of SkippedItem
        Clips not in the lists.
    notes : list of str
        How many listed clips the data lacks.

    Raises
    ------
    DatasetError
        No clip is in the lists.
    """
    table = gtzan_filtered_table()
    kept: list[Clip] = []
    left_out: list[SkippedItem] = []
    for clip in sorted(clips, key=lambda c: c.clip_id):
        if clip.clip_id in table:
            kept.append(dataclasses.replace(clip, split=table[clip.clip_id]))
        else:
            reason = "not in the GTZAN fault-filtered split lists (left out of the standard split)"
            left_out.append(SkippedItem(clip.path, reason, "not-in-split-lists"))
    if not kept:
        raise DatasetError(
            f"split.method gtzan-filtered: none of the {len(clips)} clips is in the GTZAN "
            "fault-filtered lists (clip ids like blues.00012); use split.method=stratified"
        )
    notes = [f"GTZAN fault-filtered split: {len(kept)} of its {len(table)} listed clips found"]
    missing = sorted(set(table) - {c.clip_id for c in kept})
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        notes.append(f"{len(missing)} listed clip(s) are not in the data: {shown}")
    return kept, left_out, notes


def column_split(clips: Sequence[Clip]) -> list[Clip]:
    """Use each clip's own split value (from the CSV ``split`` column).

    Raises
    ------
    DatasetError
        No clip has a split value, or some value is not train/valid/test (or an alias).
    """
    if not any(c.split for c in clips):
        raise DatasetError(
            "split.method column needs a dataset CSV with a 'split' column "
            f"(none of the {len(clips)} clips has a split value)"
        )
    bad = [c for c in clips if c.split not in SPLIT_ALIASES]
    if bad:
        first = bad[0]
        raise DatasetError(
            f"{len(bad)} clip(s) have an invalid split value, e.g. {first.path}: "
            f"'{first.split}'; allowed: {', '.join(SPLIT_ALIASES)}"
        )
    out = [dataclasses.replace(c, split=SPLIT_ALIASES[c.split]) for c in clips]
    return sorted(out, key=lambda c: c.clip_id)


def cross_validation_folds(
    clips: Sequence[Clip], *, folds: int, seed: int, valid_per_label: int = 0, grouped: bool = False
) -> list[list[Clip]]:
    """Stratified k-fold splits: for each fold, every clip with ``split`` set.

    The folds come from scikit-learn's ``StratifiedKFold(shuffle=True, random_state=seed)`` on
    the clips' labels; fold ``k``'s clips are ``test``, and of the others ``valid_per_label``
    per label (never a label's last train clip) are ``valid``, the rest ``train``. With
    ``grouped``, ``StratifiedGroupKFold`` on the clips' ``group`` (artist, album) instead: no
    group has clips on both sides of a fold.

    Returns
    -------
    list of list of Clip, length ``folds``
        Each inner list holds every clip once, in the input order.

    Raises
    ------
    DatasetError
        A label has fewer clips than ``folds`` (or, grouped, there are fewer groups).
    """
    import numpy as np
    from sklearn.model_selection import StratifiedKFold

    labels = np.array([c.label for c in clips])
    names, counts = np.unique(labels, return_counts=True)
    if counts.min() < folds:
        raise DatasetError(
            f"label '{names[counts.argmin()]}' has {counts.min()} clips, fewer than {folds} folds"
        )
    if grouped:
        from sklearn.model_selection import StratifiedGroupKFold

        # No clip of a group (artist, album) on both sides; a clip without one is its own group.
        groups = np.array([c.group or f"clip:{c.clip_id}" for c in clips])
        if len(set(groups)) < folds:
            raise DatasetError(f"{len(set(groups))} groups, fewer than {folds} folds")
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        indices = splitter.split(np.zeros(len(labels)), labels, groups)
    else:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        indices = splitter.split(np.zeros(len(labels)), labels)
    plans = []
    for k, (_, test_index) in enumerate(indices):
        rng = np.random.default_rng([seed, k])
        split = np.full(len(clips), "train", dtype=object)
        split[test_index] = "test"
        for label in names:
            pool = np.flatnonzero((labels == label) & (split == "train"))
            split[rng.permutation(pool)[: min(valid_per_label, len(pool) - 1)]] = "valid"
        plans.append(
            [dataclasses.replace(c, split=str(s)) for c, s in zip(clips, split, strict=True)]
        )
    return plans


def looks_like_gtzan(clips: Sequence[Clip]) -> bool:
    """True when ``clips`` are (most of) GTZAN, so ``auto`` picks the fault-filtered split.

    Requires the ten GTZAN labels, ids of the form ``<genre>.<5 digits>``, more than half of the
    clips in the split lists, and at least :data:`GTZAN_MIN_LIST_COVERAGE` of the listed clips
    present.
    """
    return _gtzan_verdict(clips)[0]


@cache
def gtzan_filtered_table() -> dict[str, str]:
    """``{clip_id: split}`` of the fault-filtered GTZAN lists shipped with the package."""
    folder = resources.files("genreflow").joinpath("data/gtzan_splits")
    table: dict[str, str] = {}
    for split, name in _GTZAN_LIST_FILES.items():
        for line in folder.joinpath(name).read_text("utf-8").splitlines():
            line = line.strip()
            if line:
                stem = line.rsplit("/", 1)[-1]
                table[stem.rsplit(".", 1)[0]] = split
    return table


def _gtzan_verdict(clips: Sequence[Clip]) -> tuple[bool, str]:
    labels = {c.label for c in clips}
    if labels != set(GTZAN_GENRES):
        return False, "the labels are not the ten GTZAN genres"
    named = sum(bool(re.fullmatch(rf"{re.escape(c.label)}\.\d{{5}}", c.clip_id)) for c in clips)
    if named < 0.9 * len(clips):
        return False, "the clip ids are not GTZAN's <genre>.<5 digits>"
    table = gtzan_filtered_table()
    listed = sum(c.clip_id in table for c in clips)
    coverage = listed / len(table)
    if listed <= len(clips) / 2 or coverage < GTZAN_MIN_LIST_COVERAGE:
        return False, (
            f"GTZAN-style names, but only {listed} of the {len(table)} fault-filtered clips are "
            f"present ({coverage:.0%} < {GTZAN_MIN_LIST_COVERAGE:.0%}): not GTZAN itself"
        )
    return True, f"GTZAN: {listed} of the {len(table)} fault-filtered clips present"


def _checked_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    try:
        out = {s: float(fractions[s]) for s in SPLITS}
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"key 'split.fractions' has value {dict(fractions)}; allowed: numbers for "
            f"{', '.join(SPLITS)}"
        ) from None
    if any(v < 0 for v in out.values()) or out["train"] <= 0 or abs(sum(out.values()) - 1) > 1e-6:
        raise ConfigError(
            f"key 'split.fractions' has value {out}; allowed: train > 0, valid and test >= 0, "
            "summing to 1"
        )
    return out


def _shuffled(items: Sequence, rng: random.Random) -> list:
    # Fisher-Yates on rng.random(), whose sequence Python keeps stable across versions for a
    # seed (random.shuffle's is not promised), so a seed means the same split everywhere.
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = int(rng.random() * (i + 1))
        out[i], out[j] = out[j], out[i]
    return out
