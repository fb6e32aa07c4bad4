"""Session fixtures: the tiny data and models that many test modules share, built once.

- ``tone_features``: tone "genre" clips -> ``genreflow spectrograms`` (``support/tone_data.py``).
- ``tone_model``: a model trained on them for 2 epochs.
- ``demo_model``: a model trained for 1 epoch on a tiny synthetic demo set (``support/demo_model.py``).

Tests read them and never write into them: a test that needs to change one copies it first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.demo_model import tiny_model
from tests.support.tone_data import make_features, train_tiny_model


@pytest.fixture(scope="session")
def tone_features(tmp_path_factory) -> Path:
    return make_features(tmp_path_factory.mktemp("tone-data"))


@pytest.fixture(scope="session")
def tone_model(tone_features, tmp_path_factory) -> Path:
    return train_tiny_model(tone_features, tmp_path_factory.mktemp("tone-model") / "model")


@pytest.fixture(scope="session")
def demo_model(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("demo-model"))


#: Modules whose tests are independent end-to-end runs with no shared fixture: spread one test
#: at a time over the xdist workers. Every other module goes to one worker as a whole, so its
#: module-scoped fixtures (trained models, feature sets) are built once.
_SPREAD_MODULES = {"tests.end_to_end.test_workflow"}


def _spread(item) -> bool:
    """Whether ``item``'s module is one of :data:`_SPREAD_MODULES`."""
    return item.module.__name__ in _SPREAD_MODULES


def pytest_collection_modifyitems(config, items):
    """Group tests for pytest-xdist's ``--dist loadgroup`` (``make test``) and start long ones first.

    SLURM tests run one after another on one worker: the local cluster is one node, and the
    jobs of two tests at once would queue behind each other and blur what each test checks
    (time limits, pending reasons). Modules with slow tests are started first, so that no
    worker is left with a long one at the end while the other idles.
    """
    for item in items:
        if item.get_closest_marker("slurm2"):
            # The two-node cluster is a cluster of its own: its tests queue on it alone.
            item.add_marker(pytest.mark.xdist_group("slurm2"))
        elif item.get_closest_marker("slurm"):
            item.add_marker(pytest.mark.xdist_group("slurm"))
        elif not _spread(item):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
    # The spread modules' slow tests first (the longest end-to-end runs), then modules with slow
    # tests; a module's tests stay contiguous (pytest rebuilds module fixtures otherwise).
    slow_modules = {item.module for item in items if item.get_closest_marker("slow")}

    def order(item) -> tuple[bool, bool, bool]:
        slow = item.get_closest_marker("slow") is not None
        return not (_spread(item) and slow), item.module not in slow_modules, _spread(item)

    items.sort(key=order)
