"""Session fixtures: the tiny data and models that many test modules share, built once.

- ``tone_features``: tone "genre" clips -> ``genreflow spectrograms`` (``tone_data.py``).
- ``tone_model``: a model trained on them for 2 epochs.
- ``demo_model``: a model trained for 1 epoch on a tiny synthetic demo set (``demo_model.py``).

Tests read them and never write into them: a test that needs to change one copies it first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from demo_model import tiny_model
from tone_data import make_features, train_tiny_model


@pytest.fixture(scope="session")
def tone_features(tmp_path_factory) -> Path:
    return make_features(tmp_path_factory.mktemp("tone-data"))


@pytest.fixture(scope="session")
def tone_model(tone_features, tmp_path_factory) -> Path:
    return train_tiny_model(tone_features, tmp_path_factory.mktemp("tone-model") / "model")


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("demo-model"))
