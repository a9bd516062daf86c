"""A fixed hypothesis profile (reproducible, bounded runs) and one real influxd per test module."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from collector.harness.localservers import InfluxDB
from tests.property.store import Store

# "ci" (the default): the same examples on every run (derandomize), no example database in the
# working tree, no per-example deadline (a write to influxd can take a while on a loaded machine).
# Set CITY_TELEMETRY_HYPOTHESIS=explore to search with fresh random examples, ten times as many.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=100,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("explore", parent=settings.get_profile("ci"), derandomize=False, max_examples=1000)
settings.load_profile(os.environ.get("CITY_TELEMETRY_HYPOTHESIS", "ci"))


def scaled(max_examples: int) -> int:
    """``max_examples`` for the ci profile, ten times it when exploring."""
    return max_examples * (10 if settings().max_examples >= 1000 else 1)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    server = InfluxDB(tmp_path_factory.mktemp("influxd"))
    server.start()
    try:
        yield Store(server)
    finally:
        server.kill()
