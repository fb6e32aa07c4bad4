"""Load and validate ``config/config.yaml`` against the schema shared with Snakemake.

The schema (``genreflow/schemas/config.schema.yaml``, also reachable as
``workflow/schemas/config.schema.yaml``) carries every default, so
``load_config(None)`` gives the full default configuration.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from genreflow.core.errors import ConfigError

#: Sections that define the features; a change to any of them invalidates the spectrograms.
FEATURE_SECTIONS = ("audio", "mel")

#: Keys of ``train`` that choose how and where training runs, not what it learns from: they do
#: not enter ``thash``. (The worker count changes the global batch, so the production model;
#: it stays out of the folder name, and the `train` rule reruns through its params instead.)
TRAIN_SPEED_KEYS = (
    "threads",
    "production_threads",
    "inter_op_threads",
    "sweep_epochs",
    "workers",
    "sweep_workers",
    "port_base",
    "bind_cores",
    "workers_per_node",
)

#: Keys that were renamed: a config that still uses the old name is told the new one.
RENAMED_KEYS = {
    "train.bench_epochs": "train.sweep_epochs",
    "train.bench_workers": "train.sweep_workers",
}

#: ``train`` keys that only bound or place a run; changing them keeps checkpoints resumable.
RUN_LENGTH_KEYS = (
    *TRAIN_SPEED_KEYS,  # the worker count enters training's resume key as the resolved count
    "epochs",
    "max_seconds",
    "patience",
    "export",  # which checkpoint becomes model.keras, chosen again at every export
    "ensemble",  # the baseline is fitted at export, beside the trained CNN
)


@cache
def schema() -> dict:
    """The configuration JSON schema (parsed once)."""
    text = resources.files("genreflow").joinpath("schemas/config.schema.yaml").read_text("utf-8")
    return yaml.safe_load(text)


def schema_path() -> Path:
    """Filesystem path of the schema (for tools that want a file, like Snakemake)."""
    return Path(str(resources.files("genreflow").joinpath("schemas/config.schema.yaml")))


def load_config(
    path: str | os.PathLike | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> dict:
    """Read a YAML config, apply ``overrides`` (dotted keys), fill defaults and validate.

    Parameters
    ----------
    path : path-like or None
        YAML file; ``None`` means "all defaults".
    overrides : mapping, optional
        ``{"train.epochs": 2, ...}``; applied before validation, so they are checked too.

    Returns
    -------
    dict
        The complete configuration.

    Raises
    ------
    ConfigError
        Unreadable file, or a value the schema rejects (the message names key, value, allowed).
    """
    source = str(path) if path is not None else "<defaults>"
    raw: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config: {exc.strerror or exc}") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{source}: the config must be a mapping of sections, not {type(raw).__name__}"
            )
    cfg = copy.deepcopy(raw)
    for dotted, value in (overrides or {}).items():
        _set_dotted(cfg, dotted, value)
    return validate_config(cfg, source=source)


def validate_config(cfg: dict, *, source: str = "config") -> dict:
    """Fill defaults into ``cfg`` (in place) and validate it; return it.

    Raises
    ------
    ConfigError
        Naming the first offending key, its value and what the schema allows.
    """
    import jsonschema

    validator_cls = _defaulting_validator(jsonschema.Draft202012Validator)
    validator = validator_cls(schema())
    errors = sorted(
        validator.iter_errors(cfg),
        key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))),
    )
    if errors:
        raise ConfigError(f"{source}: {_describe(errors[0])}")
    _check_cross_fields(cfg, source)
    return cfg


def config_hash(cfg: Mapping[str, Any], sections: tuple[str, ...] | None = None) -> str:
    """A short, stable hash of (some sections of) a validated config.

    Two configs with the same values in ``sections`` hash the same whatever their key order.
    """
    picked = {k: cfg.get(k) for k in sections} if sections is not None else dict(cfg)
    blob = json.dumps(picked, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def fmax_hz(cfg: Mapping[str, Any]) -> float:
    """The effective upper mel edge: ``mel.fmax`` or Nyquist."""
    fmax = cfg["mel"]["fmax"]
    return float(fmax) if fmax is not None else cfg["audio"]["sample_rate"] / 2.0


def _set_dotted(cfg: dict, dotted: str, value: Any) -> None:
    node = cfg
    *parents, leaf = dotted.split(".")
    for key in parents:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"override {dotted}: '{key}' is not a section")
        node = child
    node[leaf] = value


def _describe(error) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    value = json.dumps(error.instance, default=str)
    kind = error.validator
    rule = error.validator_value
    if kind == "enum":
        allowed = "one of " + ", ".join(json.dumps(v) for v in rule)
    elif kind == "const":
        allowed = f"only {json.dumps(rule)}"
    elif kind == "type":
        allowed = f"type {rule}"
    elif kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[
            kind
        ]
        allowed = f"a number {sign} {rule}"
    elif kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known)) if isinstance(error.instance, dict) else []
        prefix = f"{key}." if error.absolute_path else ""
        unknown = ", ".join(
            f"'{prefix}{name}' (value {json.dumps(error.instance[name], default=str)})"
            for name in extra
        )
        renamed = [
            f"'{prefix}{name}' -> '{RENAMED_KEYS[prefix + name]}'"
            for name in extra
            if prefix + name in RENAMED_KEYS
        ]
        hint = f"; renamed: {', '.join(renamed)}" if renamed else ""
        return f"unknown key {unknown}{hint}; allowed keys: {', '.join(known)}"
    elif kind == "anyOf":
        allowed = " or ".join(_describe_schema(option) for option in rule)
    elif kind == "minItems":
        allowed = f"a list with at least {rule} item(s)"
    elif kind == "uniqueItems":
        allowed = "a list without repeated values"
    else:
        allowed = error.message
    return f"key '{key}' has value {value}; allowed: {allowed}"


def _describe_schema(option: Mapping[str, Any]) -> str:
    """``"auto"``, ``an integer >= 1``, ``null``: one alternative of an ``anyOf``."""
    if "const" in option:
        return json.dumps(option["const"])
    kind = option.get("type")
    if kind == "null":
        return "null"
    text = {"integer": "an integer", "number": "a number"}.get(kind, f"type {kind}")
    if "minimum" in option:
        text += f" >= {option['minimum']}"
    if "maximum" in option:
        text += f" <= {option['maximum']}"
    return text


#: The front end each pretrained backbone was trained on (``train.model.backbone``): the
#: ``audio`` and ``mel`` values its features must have.
BACKBONE_FRONT_ENDS: dict[str, dict[str, Any]] = {
    "musicnn-msd": {
        "audio.sample_rate": 16000,
        "mel.n_fft": 512,
        "mel.hop_length": 256,
        "mel.n_mels": 96,
        "mel.fmin": 0.0,
        "mel.fmax": None,
        "mel.compression": "logc",
    },
}


def front_end_mismatch(
    backbone: str, *, audio: Mapping[str, Any], mel: Mapping[str, Any]
) -> tuple[str, Any, Any] | None:
    """The first ``audio``/``mel`` setting that differs from ``backbone``'s front end, as
    ``(dotted key, value, wanted)``, or None (also for ``none``). ``mel.fmax`` at Nyquist
    counts as null; a ``mel`` without ``compression`` (older features) as ``db``."""
    sections = {"audio": audio, "mel": mel}
    for dotted, wanted in BACKBONE_FRONT_ENDS.get(backbone, {}).items():
        section, key = dotted.split(".")
        value = sections[section].get(key, "db" if key == "compression" else None)
        nyquist = key == "fmax" and value == audio["sample_rate"] / 2
        if value != wanted and not nyquist:
            return dotted, value, wanted
    return None


def _check_backbone_front_end(cfg: dict, source: str) -> None:
    backbone = cfg["train"]["model"]["backbone"]
    mismatch = front_end_mismatch(backbone, audio=cfg["audio"], mel=cfg["mel"])
    if mismatch is not None:
        dotted, value, wanted = mismatch
        raise ConfigError(
            f"{source}: key '{dotted}' has value {json.dumps(value)}; allowed with "
            f"train.model.backbone {backbone}: only {json.dumps(wanted)} (the front end the "
            "backbone was trained on)"
        )


def _check_cross_fields(cfg: dict, source: str) -> None:
    _check_backbone_front_end(cfg, source)
    sr = cfg["audio"]["sample_rate"]
    fmax = fmax_hz(cfg)
    if fmax > sr / 2:
        raise ConfigError(
            f"{source}: key 'mel.fmax' has value {fmax}; allowed: at most sample_rate/2 = {sr / 2}"
        )
    if cfg["mel"]["fmin"] >= fmax:
        raise ConfigError(
            f"{source}: key 'mel.fmin' has value {cfg['mel']['fmin']}; allowed: below mel.fmax ({fmax})"
        )
    if cfg["mel"]["n_fft"] > cfg["audio"]["segment_seconds"] * sr:
        raise ConfigError(
            f"{source}: key 'mel.n_fft' has value {cfg['mel']['n_fft']}; allowed: at most one segment "
            f"({int(cfg['audio']['segment_seconds'] * sr)} samples)"
        )
    fractions = cfg["split"]["fractions"]
    total = fractions["train"] + fractions["valid"] + fractions["test"]
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(
            f"{source}: key 'split.fractions' has values {json.dumps(fractions)} summing to {total:g}; "
            "allowed: fractions that sum to 1"
        )


def _defaulting_validator(base):
    """A validator class that also fills ``default`` values (as Snakemake's ``validate`` does)."""
    from jsonschema import validators

    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(base, {"properties": set_defaults})
