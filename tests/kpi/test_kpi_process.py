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
from collector.kpi.engine import peak_rss_bytes


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


def _own_peak(_: object) -> int:
    return peak_rss_bytes()


async def test_the_kpi_process_reports_its_own_peak_memory_not_the_collector_s() -> None:
    """The KPI process is forked then exec'd: ``ru_maxrss`` there starts at the size of the process
    that started it. A collector holding 400 MiB more must not make the KPI process say so."""
    held = bytearray(400 << 20)
    held[::4096] = b"\x01" * len(range(0, len(held), 4096))  # touched: resident, not just reserved
    engine = build_kpi_engine(load_config(None, {}), None)
    try:
        assert peak_rss_bytes() > 400 << 20
        assert await engine._run(_own_peak, None) < 250 << 20  # an interpreter with the KPI code loaded
    finally:
        engine.close()
        del held
