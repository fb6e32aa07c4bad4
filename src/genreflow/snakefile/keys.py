"""Which config keys key which outputs: the rules of what a config change reruns.

The workflow (``workflow/rules/common.smk``) and the package share these lists and hashes, so
that the folder names, the config snapshots and training's resume key agree on them:

- ``fhash`` (:func:`feature_hash`) hashes ``audio`` and ``mel``: the spectrograms.
- ``thash`` (:func:`train_hash`) hashes ``train`` minus ``TRAIN_SPEED_KEYS``, plus ``fhash``:
  the production model.
- Each stage reads a snapshot of the config whose digest (:func:`snapshot_digests`) covers only
  the sections that stage reads, minus the keys the rules pass on the command line
  (:data:`TRAIN_CLI_KEYS`) or that only choose which jobs run (:data:`PREPROCESS_SWEEP_KEYS`).
- A training checkpoint resumes across changes to ``RUN_LENGTH_KEYS`` only.

The classes of keys that stages need too (``FEATURE_SECTIONS``, ``TRAIN_SPEED_KEYS``,
``RUN_LENGTH_KEYS``) live in :mod:`genreflow.core.config`, beneath every stage.

``tests/snakefile/test_keys.py`` states what each change reruns.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from genreflow.core.config import FEATURE_SECTIONS, TRAIN_SPEED_KEYS, config_hash

#: Keys of ``train`` the rules pass on the command line (``--threads``, ``--epochs``,
#: ``--workers``): a change to them does not touch the training snapshot.
TRAIN_CLI_KEYS = (
    "threads",
    "production_threads",
    "sweep_epochs",
    "workers",
    "sweep_workers",
    "workers_per_node",
)

#: Keys of ``preprocess`` that choose which jobs run (and where), not what one job writes.
PREPROCESS_SWEEP_KEYS = ("ranks", "production_ranks", "weak_scaling", "ranks_per_node")


def is_demo(cfg: Mapping[str, Any]) -> bool:
    """True when the config names no dataset: the synthetic demo set is used."""
    return not cfg["data"]["root"] and not cfg["data"]["csv"]


def dataset_key(cfg: Mapping[str, Any]) -> str:
    """Folder name of one dataset under ``results``.

    The demo set is named by its parameters (``demo-20x10s-seed0``); a real dataset by the
    name of its folder (or CSV) plus a short hash of the absolute path, so two folders that
    share a name do not share results.
    """
    data = cfg["data"]
    if is_demo(cfg):
        demo = data["demo"]
        return f"demo-{demo['clips_per_genre']}x{demo['seconds']:g}s-seed{demo['seed']}"
    source = data["csv"] or data["root"]
    absolute = os.path.abspath(os.path.expanduser(source))
    digest = hashlib.sha256(absolute.encode("utf-8")).hexdigest()[:8]
    return f"{_slug(Path(absolute).stem)}-{digest}"


def feature_hash(cfg: Mapping[str, Any]) -> str:
    """Hash of the sections that define the spectrograms (``audio``, ``mel``)."""
    return config_hash(cfg, FEATURE_SECTIONS)


def train_hash(cfg: Mapping[str, Any]) -> str:
    """Hash of what defines the production model: ``train`` minus speed keys, plus features."""
    train = {k: v for k, v in cfg["train"].items() if k not in TRAIN_SPEED_KEYS}
    return config_hash({"train": train, "features": feature_hash(cfg)})


def section_digest(cfg: Mapping[str, Any], *sections: str, drop: tuple[str, ...] = ()) -> str:
    """Digest of some config sections, minus ``drop`` keys inside them."""
    picked = {}
    for section in sections:
        value = cfg[section]
        picked[section] = (
            {k: v for k, v in value.items() if k not in drop} if isinstance(value, dict) else value
        )
    return config_hash(picked)


def snapshot_digests(cfg: Mapping[str, Any]) -> dict[str, str]:
    """Config snapshot name -> digest of the sections its stage reads.

    The names carry ``fhash``/``thash``, so each feature or model variant has its own snapshot.
    """
    fhash, thash = feature_hash(cfg), train_hash(cfg)
    return {
        "manifest": section_digest(cfg, "data", "split"),
        f"features-{fhash}": section_digest(
            cfg, "audio", "mel", "preprocess", drop=PREPROCESS_SWEEP_KEYS
        ),
        f"train-{fhash}-{thash}": section_digest(cfg, "audio", "mel", "train", drop=TRAIN_CLI_KEYS),
    }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "data"
