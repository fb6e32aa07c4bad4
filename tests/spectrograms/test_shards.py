"""Shard integrity (genreflow.spectrograms.shards): every shard's size and SHA-256 in
``features.json``, checked by the stages that read them, and mended by a rerun."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from genreflow.cli import main
from genreflow.core.errors import StageError
from genreflow.spectrograms.shards import open_features
from tests.support.spectrogram_runs import output_files
from tests.support.tone_data import FEATURE_SETTINGS, read_json


def damage(shard: Path) -> None:
    """Flip one bit in the middle of ``shard``: same size, other bytes (bit rot)."""
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x10
    shard.write_bytes(bytes(data))


@pytest.fixture
def features(tone_features, tmp_path) -> Path:
    copy = tmp_path / "features"
    shutil.copytree(tone_features, copy)
    return copy


def test_features_json_records_each_shards_size_and_sha256(tone_features):
    info = read_json(tone_features / "features.json")
    assert sorted(info["shard_files"]) == sorted(info["shards"]) and info["shards"]
    for name, recorded in info["shard_files"].items():
        data = (tone_features / name).read_bytes()
        assert recorded == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    fs = open_features(tone_features, verify=True)
    assert fs.verify() >= 0.0


def test_a_shard_whose_bytes_changed_is_refused_by_name(features, tone_model, capsys):
    shard = features / read_json(features / "features.json")["shards"][0]
    damage(shard)
    open_features(features)  # the size still matches: only a full check sees it
    with pytest.raises(StageError, match="checksum mismatch") as info:
        open_features(features, verify=True)
    assert str(shard) in str(info.value) and "genreflow spectrograms" in str(info.value)

    capsys.readouterr()
    out = features.parent / "model"
    assert main(["train", "--features", str(features), "--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{shard}: checksum mismatch" in err and not (out / "model.keras").exists()
    evaluate = ["evaluate", "--model", str(tone_model), "--features", str(features)]
    assert main([*evaluate, "--out", str(features.parent / "eval")]) == 2
    assert f"{shard}: checksum mismatch" in capsys.readouterr().err


def test_a_shard_of_another_size_is_refused_on_open(features):
    shard = features / read_json(features / "features.json")["shards"][-1]
    shard.write_bytes(shard.read_bytes()[:-64])  # a partial copy
    with pytest.raises(StageError, match="records") as info:
        open_features(features)
    assert str(shard) in str(info.value)


def test_a_rerun_converts_the_damaged_shards_clips_again(features, tone_features):
    shard = features / read_json(features / "features.json")["shards"][0]
    damage(shard)
    args = ["spectrograms", "--manifest", str(tone_features.parent / "manifest.csv")]
    args += ["--out", str(features)]
    for setting in FEATURE_SETTINGS:
        args += ["--set", setting]
    assert main(args) == 0
    open_features(features, verify=True)
    assert output_files(features) == output_files(tone_features)
