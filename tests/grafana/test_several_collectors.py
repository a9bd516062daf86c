"""Two collectors (two ``instance`` tags) writing their statistics into one database: every query of the
Collector health dashboard and every alert rule on the statistics, with the dashboard's "All", keeps
their figures apart (one series per instance), on the real InfluxDB. A query without ``GROUP BY
"instance"`` would show one collector's counters, or mix them field by field (``last()`` of each field
picks its own point), as the city's."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from collector.harness.localservers import InfluxDB
from tests.grafana.provisioning import Query, alert_queries, dashboard_queries, substitute

pytestmark = pytest.mark.servers

DATABASE = "city_telemetry"
STATISTICS = ('"city_telemetry_collector"', '"city_telemetry_rejected"')
INSTANCES = {"collector-a": 1000, "collector-b": 7}  # instance -> its messages per point


@pytest.fixture(scope="module")
def stats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InfluxDB, int, int]]:
    server = InfluxDB(tmp_path_factory.mktemp("several") / "influxdb")
    server.start()
    try:
        server.query(f"CREATE DATABASE {DATABASE}")
        start_ns = (time.time_ns() // 10**9 - 600) * 10**9
        lines = []
        for instance, rate in INSTANCES.items():
            for i in range(30):  # 30 points 10 s apart
                n = rate * (i + 1)
                fields = (
                    f"received={n}i,messages_committed={n}i,rejected={i}i,lines_written={n}i,lines_drained=0i,"
                    f"write_latency_ms=2.5,write_latency_max_ms=9.0,write_retries={i}i,self_stats_failures=0i,"
                    f"spool_bytes={i * 10}i,backpressure=0i,mqtt_held_messages=0i,mqtt_connects=1i,"
                    f"mqtt_disconnects=0i,mqtt_connect_failures=0i,broker_dropped_seen={i}i,kpi_days_pending=0i,"
                    f'kpi_days_computed={i}i,kpi_failures=0i,health="healthy",health_code=0i'
                )
                stamp = start_ns + i * 10 * 10**9
                lines.append(f"city_telemetry_collector,host=h,instance={instance} {fields} {stamp}")
                lines.append(f"city_telemetry_rejected,host=h,instance={instance},reason=invalid messages={i}i {stamp}")
        request = urllib.request.Request(
            f"{server.url}/write?db={DATABASE}", data="\n".join(lines).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 204
        yield server, start_ns // 10**6 - 1000, start_ns // 10**6 + 300_000
    finally:
        server.kill()


def run(influxdb: InfluxDB, statement: str) -> dict[str, Any]:
    params = urllib.parse.urlencode({"db": DATABASE, "q": statement, "epoch": "ms"}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{influxdb.url}/query", data=params), timeout=30) as answer:
        body = json.load(answer)
    (result,) = body["results"]
    assert "error" not in result, f"{statement}\n{result['error']}"
    return dict(result)


def statistics_queries() -> list[Query]:
    return [
        q
        for q in dashboard_queries() + alert_queries()
        if any(m in q.text for m in STATISTICS) and not q.text.startswith("SHOW")
    ]


def test_there_are_statistics_queries() -> None:
    assert len(statistics_queries()) >= 10


@pytest.mark.parametrize("query", statistics_queries(), ids=lambda q: q.id)
def test_each_collectors_figures_stay_its_own(stats: tuple[InfluxDB, int, int], query: Query) -> None:
    influxdb, start_ms, end_ms = stats
    statement = substitute(query.text, {"instance": ".*"}, start_ms, end_ms, "10s")
    series = run(influxdb, statement).get("series", [])
    assert series, f"no rows: {statement}"
    shown = sorted(s.get("tags", {}).get("instance", "(merged)") for s in series)
    assert set(shown) == set(INSTANCES), f"{query.id}: series {shown}\n{statement}"
