"""Dashboard queries on data shaped like the city's, not like the simulator's: one site name in several
municipalities (a site is identified by (nis, site): docs/kpis.md; every commune has its town hall),
on the real InfluxDB with Grafana's macros substituted."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from collector.harness.localservers import InfluxDB
from tests.grafana.provisioning import Query, dashboard_queries, substitute

pytestmark = pytest.mark.servers

DATABASE = "city_telemetry"
DAY_NS = 86_400 * 10**9
# (nis, municipality, site, AP availability %): two town halls among the worst, and healthy sites
SITES = [
    ("21004", "Bruxelles", "maison-communale", 61.0),
    ("21009", "Ixelles", "maison-communale", 70.0),
    *[("21001", "Anderlecht", f"parc-{i}", 99.0 + i / 100) for i in range(12)],
]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InfluxDB, int, int]]:
    server = InfluxDB(tmp_path_factory.mktemp("shapes") / "influxdb")
    server.start()
    try:
        server.query(f"CREATE DATABASE {DATABASE}")
        server.query(f'CREATE RETENTION POLICY "kpi" ON {DATABASE} DURATION INF REPLICATION 1')
        day = (time.time_ns() // DAY_NS - 1) * DAY_NS
        lines = [
            f"kpi_site,grain=day,municipality={m},nis={nis},site={site} ap_availability_pct={pct},hotspots=1i,"
            f"devices=3i,final=true {day}"
            for nis, m, site, pct in SITES
        ]
        request = urllib.request.Request(
            f"{server.url}/write?db={DATABASE}&rp=kpi", data="\n".join(lines).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 204
        yield server, day // 10**6 - 1000, (day + DAY_NS) // 10**6
    finally:
        server.kill()


def run(influxdb: InfluxDB, statement: str) -> list[dict[str, Any]]:
    """The rows of the answer, as Grafana's table shows them (tags of GROUP BY included)."""
    params = urllib.parse.urlencode({"db": DATABASE, "q": statement, "epoch": "ms"}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{influxdb.url}/query", data=params), timeout=30) as answer:
        (result,) = json.load(answer)["results"]
    assert "error" not in result, f"{statement}\n{result['error']}"
    return [
        {**dict(zip(s["columns"], values, strict=True)), **s.get("tags", {})}
        for s in result.get("series", [])
        for values in s["values"]
    ]


def query(title: str) -> Query:
    (found,) = [q for q in dashboard_queries() if f"'{title}'" in q.id]
    return found


def test_worst_sites_keeps_two_municipalities_sites_of_one_name_apart(city: tuple[InfluxDB, int, int]) -> None:
    influxdb, start_ms, end_ms = city
    statement = substitute(query("Worst sites").text, {"kpi_rp": "kpi", "nis": ".*"}, start_ms, end_ms, "10s")
    rows = run(influxdb, statement)
    worst = sorted((row["AP availability %"], row["municipality"]) for row in rows)
    assert len(rows) == 10, rows
    assert worst[:2] == [(61.0, "Bruxelles"), (70.0, "Ixelles")], rows
