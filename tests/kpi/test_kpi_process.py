"""The KPI process yields the CPU to ingest: it runs ``kpi.process_nice`` nicer than the collector.

Its reads and computations can wait; the collector's ingest cannot (engine.py, ``_start_kpi_process``).
The niceness is read inside the very process the engine computes in, built from the config as the
collector builds it.
"""

from __future__ import annotations

import os

import pytest

from collector.app.config import ConfigError, load_config
from collector.app.service import build_kpi_engine


@pytest.mark.parametrize("nice", [0, 7])
async def test_the_kpi_process_runs_kpi_process_nice_nicer_than_the_collector(nice: int) -> None:
    if os.nice(0) + 7 > 19:
        pytest.skip("this process is too nice already: the kernel's limit of 19 would hide the difference")
    engine = build_kpi_engine(load_config(None, {"CITY_TELEMETRY__KPI__PROCESS_NICE": str(nice)}), None)
    try:
        assert await engine._run(os.nice, 0) == min(os.nice(0) + nice, 19)
    finally:
        engine.close()


def test_the_default_is_nicer_and_the_bounds_are_the_kernel_s() -> None:
    assert load_config(None, {}).kpi.process_nice == 10
    with pytest.raises(ConfigError, match=r"kpi\.process_nice"):
        load_config(None, {"CITY_TELEMETRY__KPI__PROCESS_NICE": "20"})
