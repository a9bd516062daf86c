"""read_raw builds what the KPI functions take from InfluxDB's answers as they come: in pieces.

No server: a stand-in for ``InfluxQuery.stream`` answers each statement with the series of its
measurement, every series split into pieces of two rows (InfluxDB's chunks), rows of several series
interleaved in time, values missing and one past 64 bits. The readings must come out whole, sorted
by time (a device's reports from ``ap`` and ``netdev`` merged), each None where nothing was stored.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from collector.kpi.availability import Report, StateMark
from collector.kpi.clients import ClientCount, ClientsReport
from collector.kpi.counters import CounterReading
from collector.kpi.enrich import Place
from collector.kpi.raw import read_raw, to_readings
from collector.kpi.traffic import Check, Probe
from collector.sink.query import Series

AP = {"device": "ap-1", "kind": "ap", "nis": "21004", "site": "square"}
CPE = {"device": "cpe-1", "kind": "school_cpe", "nis": "21001", "site": "school"}

ANSWERS: dict[str, list[tuple[dict[str, str], list[list[Any]]]]] = {
    "ap": [(AP, [[30, 90.0, 3, 500, 50], [10, 70.0, None, 100, None], [20, 80.0, 2, None, 20]])],
    # the same device also answers as a network device: its reports merge, in time order
    "netdev": [({**AP}, [[15, 75.0], [40, None]]), (CPE, [[10, 500.0], [20, 560.0]])],
    "interface": [
        (
            {**CPE, "ifname": "wan"},
            [
                [10, 1000, 10, 5, 1, 0, 0, 0, 0, 1, 100, 32],
                [20, 2**64 + 9, 20, 9, 2, 0, 0, 0, 0, 0, 100, 32],  # past 64 bits: kept as read
            ],
        )
    ],
    "device_state": [(AP, [[12, "online", 1, False, None], [35, "lost", 0, True, None], [36, "lost", 0, True, True]])],
    "ap_client_presence": [(AP, [[25, "b,a"], [10, ""]])],
    "ap_clients": [(AP, [[10, 2, 3], [25, None, 4]])],
    "link_probe": [(CPE, [[20, 10, 9, 4.5, None], [10, 10, 10, None, 0.2]])],
    "ap_radio": [
        ({**AP, "band": "5"}, [[20, 12.5, 4, 100], [10, None, 2, 50], [30, 40.0, None, 150]]),
        ({**AP, "band": "2.4"}, [[10, 60.0, 1, 10]]),
    ],
}


class PiecewiseQuery:
    """Answers like ``InfluxQuery.stream``: each series in pieces of two rows, in InfluxDB's row order."""

    async def stream(self, statement: str, chunk_rows: int = 2) -> AsyncIterator[Series]:
        measurement = re.search(r'FROM "(\w+)"', statement)
        assert measurement is not None
        columns = re.findall(r'"(\w+)"', statement.split(" FROM ")[0])
        for tags, rows in ANSWERS[measurement.group(1)]:
            ordered = sorted(rows, key=lambda row: row[0])
            for start in range(0, len(ordered), chunk_rows):
                yield Series(measurement.group(1), dict(tags), ["time", *columns], ordered[start : start + chunk_rows])


async def test_the_read_is_whole_and_in_time_order_when_answers_come_in_pieces() -> None:
    raw = await read_raw(PiecewiseQuery(), 0, 100)  # type: ignore[arg-type]
    ap, cpe = raw.devices["ap-1"], raw.devices["cpe-1"]
    assert ap.tags == AP and cpe.tags == CPE
    assert list(ap.reports) == [
        Report(10, 70.0),
        Report(15, 75.0),
        Report(20, 80.0),
        Report(30, 90.0),
        Report(40, None),
    ]
    assert list(ap.clients) == [ClientCount(20, 2), ClientCount(30, 3)]
    assert list(ap.uplink_rx) == [CounterReading(10, 100, 70.0), CounterReading(30, 500, 90.0)]
    assert list(ap.uplink_tx) == [CounterReading(20, 20, 80.0), CounterReading(30, 50, 90.0)]
    assert list(ap.marks) == [StateMark(12, True, False), StateMark(35, False, True)]  # the estimated will left out
    assert list(ap.presence) == [
        ClientsReport(10, "ap-1", frozenset()),
        ClientsReport(25, "ap-1", frozenset({"a", "b"})),
    ]
    assert list(ap.rf_good) == [(10, 2, 3)]
    assert sorted(ap.radios) == ["2.4", "5"]
    five = ap.radios["5"]
    assert list(five.utilisation) == [(20, 12.5), (30, 40.0)]
    assert list(five.retries) == [CounterReading(10, 2), CounterReading(20, 4)]
    assert list(five.frames) == [CounterReading(10, 50), CounterReading(20, 100), CounterReading(30, 150)]
    wan = cpe.interfaces["wan"]
    assert (wan.bits, wan.speed_mbps) == (32, 100)
    assert list(wan.counters["in"]) == [CounterReading(10, 1000, 500.0), CounterReading(20, 2**64 + 9, 560.0)]
    assert list(wan.oper) == [Check(10, True), Check(20, False)]
    assert list(cpe.probes) == [Probe(10, 10, 10, None, 0.2), Probe(20, 10, 9, 4.5, None)]
    assert list(cpe.reports) == [Report(10, 500.0), Report(20, 560.0)]

    # A cut is what the readings in its range are, and the device readings the KPI functions take
    cut = raw.slice(15, 31).devices["ap-1"]
    assert [r.ts_ns for r in cut.reports] == [15, 20, 30]
    assert list(cut.presence) == [ClientsReport(25, "ap-1", frozenset({"a", "b"}))]
    readings = to_readings(cut, Place("ap-1", "ap", "square", "21004", "Bruxelles"))
    assert list(readings.counters["rx"]) == [CounterReading(20, 20, 80.0), CounterReading(30, 50, 90.0)]
    assert list(readings.counters["tx_total:5"]) == [CounterReading(20, 100), CounterReading(30, 150)]
    assert {band: list(cu) for band, cu in readings.channel_utilisation.items()} == {"5": [(20, 12.5), (30, 40.0)]}
    assert raw.slice(50, 100).devices == {}
