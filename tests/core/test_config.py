"""Config loading and validation: defaults, clear errors, --set overrides, the shared schema."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import pytest
import yaml

from genreflow.commands._common import add_config_arguments, config_from_args
from genreflow.core.config import config_hash, fmax_hz, load_config, schema, schema_path
from genreflow.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def schema_defaults(node: dict) -> dict:
    """The defaults the schema declares, section by section."""
    out = {}
    for name, sub in node.get("properties", {}).items():
        if sub.get("type") == "object" and "properties" in sub:
            out[name] = schema_defaults(sub)
        elif "default" in sub:
            out[name] = sub["default"]
    return out


def test_defaults_load_and_match_the_schema():
    cfg = load_config()
    assert cfg == schema_defaults(schema())
    assert set(cfg) == {"results", "data", "audio", "mel", "preprocess", "split", "train", "serve"}
    assert cfg["audio"]["sample_rate"] == 22050
    assert cfg["split"]["method"] == "auto"
    assert cfg["split"]["fractions"] == {"train": 0.7, "valid": 0.15, "test": 0.15}
    assert fmax_hz(cfg) == 11025.0
    assert load_config() is not cfg and load_config() == cfg  # a fresh dict every time


@pytest.mark.parametrize(
    ("overrides", "must_mention"),
    [
        # bad enum
        ({"audio.sample_rate": 12345}, ["audio.sample_rate", "12345", "one of", "22050", "44100"]),
        ({"split.method": "random"}, ["split.method", '"random"', "stratified", "gtzan-filtered"]),
        ({"audio.tail": "wrap"}, ["audio.tail", '"wrap"', '"pad"', '"drop"']),
        # wrong type
        ({"train.epochs": "ten"}, ["train.epochs", '"ten"', "type integer"]),
        ({"split": 5}, ["'split'", "5", "type object"]),
        ({"preprocess.ranks": 2}, ["preprocess.ranks", "2", "type array"]),
        # below minimum / above maximum
        ({"train.epochs": 0}, ["train.epochs", "0", ">= 1"]),
        ({"mel.n_mels": 8}, ["mel.n_mels", "8", ">= 16"]),
        ({"audio.silence_dbfs": 3}, ["audio.silence_dbfs", "3", "<= 0"]),
        ({"split.fractions.train": 0}, ["split.fractions.train", "0", "> 0"]),
        ({"preprocess.ranks": []}, ["preprocess.ranks", "[]", "at least 1"]),
        ({"audio.mono": False}, ["audio.mono", "false", "only true"]),
        # fractions that do not sum to 1
        ({"split.fractions.train": 0.9}, ["split.fractions", "0.9", "1.2", "sum to 1"]),
        # fmax above Nyquist
        (
            {"audio.sample_rate": 16000, "mel.fmax": 10000},
            ["mel.fmax", "10000", "sample_rate/2 = 8000"],
        ),
        ({"mel.fmin": 12000}, ["mel.fmin", "12000", "below mel.fmax (11025"]),
        # "auto" or a count
        (
            {"preprocess.production_ranks": "fast"},
            ["preprocess.production_ranks", '"fast"', '"auto" or an integer >= 1'],
        ),
        (
            {"train.production_threads": 0},
            ["train.production_threads", "0", '"auto" or an integer >= 1'],
        ),
        ({"preprocess.weak_scaling": 0}, ["preprocess.weak_scaling", "null or an integer >= 1"]),
    ],
)
def test_bad_values_name_key_value_and_allowed(overrides, must_mention):
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=overrides)
    message = str(exc.value)
    assert "\n" not in message
    for text in must_mention:
        assert text in message, (text, message)


@pytest.mark.parametrize(
    ("overrides", "dotted", "value", "allowed"),
    [
        ({"split.seeed": 1}, "split.seeed", "1", "fractions, method, seed"),
        ({"trian": {"epochs": 1}}, "trian", '{"epochs": 1}', "audio, data, mel"),
        ({"split.fractions.holdout": 0.1}, "split.fractions.holdout", "0.1", "test, train, valid"),
    ],
)
def test_unknown_key_names_the_dotted_key_its_value_and_the_allowed_keys(
    overrides, dotted, value, allowed
):
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=overrides)
    message = str(exc.value)
    assert f"unknown key '{dotted}' (value {value})" in message
    assert allowed in message


@pytest.mark.parametrize("old", ["bench_epochs", "bench_workers"])
def test_a_renamed_key_is_told_its_new_name(old):
    with pytest.raises(ConfigError) as exc:
        load_config(overrides={f"train.{old}": 2 if old == "bench_epochs" else [2]})
    new = old.replace("bench_", "sweep_")
    assert f"renamed: 'train.{old}' -> 'train.{new}'" in str(exc.value)


def test_config_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: -4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: key 'train\.batch_size' has value -4"):
        load_config(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)
    bad.write_text("train: {epochs: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return parser.parse_args(argv)


def test_set_overrides_through_config_from_args(tmp_path):
    cfg = config_from_args(
        parse(
            [
                "--set",
                "train.epochs=3",
                "--set",
                "split.fractions={train: 0.8, valid: 0.1, test: 0.1}",
                "--set",
                "mel.fmax=null",
                "--set",
                "data.root=/data/gtzan",
            ]
        )
    )
    assert cfg["train"]["epochs"] == 3  # YAML value: an int, not "3"
    assert cfg["split"]["fractions"] == {"train": 0.8, "valid": 0.1, "test": 0.1}
    assert cfg["mel"]["fmax"] is None
    assert cfg["data"]["root"] == "/data/gtzan"
    assert cfg["train"]["batch_size"] == 32  # untouched keys keep their defaults

    # --set wins over --config, and is validated like the file
    path = tmp_path / "c.yaml"
    path.write_text("train: {epochs: 7, batch_size: 8}\n")
    cfg = config_from_args(parse(["--config", str(path), "--set", "train.epochs=2"]))
    assert (cfg["train"]["epochs"], cfg["train"]["batch_size"]) == (2, 8)
    with pytest.raises(ConfigError, match="key 'train.epochs' has value 0"):
        config_from_args(parse(["--config", str(path), "--set", "train.epochs=0"]))
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        config_from_args(parse(["--set", "train.epochs"]))
    with pytest.raises(ConfigError, match="'epochs' is not a section"):
        config_from_args(parse(["--set", "train.epochs=3", "--set", "train.epochs.x=1"]))


def test_repo_config_yaml_validates():
    path = REPO / "config" / "config.yaml"
    cfg = load_config(path)
    raw = yaml.safe_load(path.read_text())
    # every section the file sets is loaded as written (validation only adds defaults)
    for section, values in raw.items():
        if isinstance(values, dict):
            for key, value in values.items():
                assert cfg[section][key] == value, (section, key)
        else:
            assert cfg[section] == values


def test_workflow_schema_is_the_package_schema():
    link = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert link.is_symlink()
    assert link.resolve() == schema_path().resolve()
    assert yaml.safe_load(link.read_text()) == schema()


def test_snakemake_validate_accepts_the_schema_and_fills_the_same_defaults():
    from snakemake.utils import validate

    cfg = {"train": {"epochs": 3}, "split": {"method": "stratified"}}
    validate(cfg, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert cfg == load_config(overrides={"train.epochs": 3, "split.method": "stratified"})


def reordered(node):
    """The same mapping with every level's keys in reverse order."""
    if isinstance(node, dict):
        return {k: reordered(node[k]) for k in reversed(list(node))}
    return node


def test_config_hash_ignores_key_order_and_follows_values():
    cfg = load_config()
    shuffled = reordered(cfg)
    assert list(shuffled) != list(cfg)
    assert config_hash(shuffled) == config_hash(cfg)
    assert config_hash(shuffled, ("audio", "mel")) == config_hash(cfg, ("mel", "audio"))

    changed = copy.deepcopy(cfg)
    changed["mel"]["n_mels"] = 64
    assert config_hash(changed) != config_hash(cfg)
    assert config_hash(changed, ("audio", "mel")) != config_hash(cfg, ("audio", "mel"))
    # a section outside the hashed ones does not matter
    assert config_hash(changed, ("split",)) == config_hash(cfg, ("split",))
    assert len(config_hash(cfg)) == 16 and config_hash(cfg) == config_hash(load_config())
