"""What a config change reruns: the keys and hashes the workflow names its outputs by."""

from __future__ import annotations

import pytest

from genreflow.core.config import RUN_LENGTH_KEYS, TRAIN_SPEED_KEYS, load_config
from genreflow.snakefile.keys import (
    TRAIN_CLI_KEYS,
    dataset_key,
    feature_hash,
    is_demo,
    snapshot_digests,
    train_hash,
)


def keys(overrides: dict | None = None) -> dict:
    """``fhash``, ``thash`` and each stage's snapshot digest, for the defaults + ``overrides``."""
    cfg = load_config(None, overrides=overrides)
    digests = {name.split("-")[0]: digest for name, digest in snapshot_digests(cfg).items()}
    return {"fhash": feature_hash(cfg), "thash": train_hash(cfg), **digests}


BASE = keys()


def changed(overrides: dict) -> set[str]:
    """Which of them differ from the defaults' after the change."""
    after = keys(overrides)
    return {name for name, value in after.items() if value != BASE[name]}


@pytest.mark.parametrize(
    ("change", "reruns"),
    [
        # Features: new spectrograms, a new model on them, every snapshot but the manifest's.
        ({"mel.n_mels": 64}, {"fhash", "thash", "features", "train"}),
        ({"audio.segment_seconds": 2.0}, {"fhash", "thash", "features", "train"}),
        # What the spectrogram job writes, but not the features' identity.
        ({"preprocess.shard_mb": 64}, {"features"}),
        # Which spectrogram jobs run: nothing already made changes.
        ({"preprocess.ranks": [1, 2]}, set()),
        ({"preprocess.production_ranks": 1}, set()),
        ({"preprocess.weak_scaling": 10}, set()),  # more timing jobs, in their own folders
        # The model: new model folder and training snapshot; the features stay.
        ({"train.learning_rate": 0.001}, {"thash", "train"}),
        ({"train.epochs": 30}, {"thash", "train"}),
        ({"train.jit_compile": True}, {"thash", "train"}),
        # Where and how fast training runs, passed on the command line: nothing reruns
        # through the config (the rules' params and outputs name the thread counts).
        ({"train.threads": [1, 2, 4]}, set()),
        ({"train.production_threads": 1}, set()),
        ({"train.sweep_epochs": 5}, set()),
        # A speed key the rules do not pass on: the snapshot changes, the model folder not.
        ({"train.inter_op_threads": 2}, {"train"}),
        ({"train.bind_cores": False}, {"train"}),
        # The data and the split: the manifest snapshot.
        ({"split.seed": 7}, {"manifest"}),
        ({"data.demo.clips_per_genre": 5}, {"manifest"}),
    ],
)
def test_what_a_change_reruns(change, reruns):
    assert changed(change) == reruns


def test_key_lists_agree():
    # Keys passed on the command line are speed keys (they must not rename the model), and
    # a checkpoint survives every speed key.
    assert set(TRAIN_CLI_KEYS) <= set(TRAIN_SPEED_KEYS) <= set(RUN_LENGTH_KEYS)
    assert {"epochs", "max_seconds", "patience"} <= set(RUN_LENGTH_KEYS)
    schema_train_keys = set(load_config(None)["train"])
    assert set(RUN_LENGTH_KEYS) <= schema_train_keys


def test_dataset_keys(tmp_path):
    demo = load_config(None)
    assert is_demo(demo)
    assert dataset_key(demo) == "demo-20x10s-seed0"
    one, two = tmp_path / "a" / "music", tmp_path / "b" / "music"
    first = load_config(None, overrides={"data.root": str(one)})
    second = load_config(None, overrides={"data.root": str(two)})
    assert not is_demo(first)
    # Same folder name, different places: different results folders, both named for it.
    assert dataset_key(first) != dataset_key(second)
    assert dataset_key(first).startswith("music-") and dataset_key(second).startswith("music-")
    assert dataset_key(first) == dataset_key(load_config(None, overrides={"data.root": str(one)}))
