"""The sink's read side against the real influxd 1.6: chunks merged, tags kept, errors raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.app.config import load_config
from collector.harness.localservers import InfluxDB
from collector.sink.influxdb import InfluxWriter
from collector.sink.query import InfluxQuery, QueryError, merge_chunks, quote_string
from tests.conftest import DATABASE

pytestmark = pytest.mark.servers


async def test_a_chunked_answer_is_merged_per_series(influxdb: InfluxDB, tmp_path: Path) -> None:
    config = load_config(None, {"CITY_TELEMETRY__INFLUXDB__URL": f'"{influxdb.url}"'}).influxdb
    writer = InfluxWriter(config)
    lines = [f"m,device=d{i % 3} v={i}i {1_700_000_000_000_000_000 + i}" for i in range(250)]
    report = await writer.write(lines)
    await writer.close()
    assert report.accepted == 250
    query = InfluxQuery(config)
    try:
        series = await query.query('SELECT v FROM m GROUP BY "device"', chunk_rows=7)
        assert sorted(s.tags["device"] for s in series) == ["d0", "d1", "d2"]
        for s in series:
            device = int(s.tags["device"][1:])
            expected = [[1_700_000_000_000_000_000 + i, i] for i in range(250) if i % 3 == device]
            assert s.values == expected
        only = await query.query(f"SELECT v FROM m WHERE device = {quote_string('d1')} AND v < 10")
        assert [row["v"] for row in only[0].rows()] == [1, 4, 7]
        with pytest.raises(QueryError):
            await query.query("SELECT FROM WHERE")
    finally:
        await query.close()
    assert config.database == DATABASE


def test_an_error_inside_a_chunk_is_raised() -> None:
    body = b'{"results":[{"statement_id":0,"series":[{"name":"m","columns":["time","v"],"values":[[1,2]]}]}]}\n'
    assert merge_chunks(body)[0].values == [[1, 2]]
    with pytest.raises(QueryError, match="boom"):
        merge_chunks(body + b'{"results":[{"statement_id":0,"error":"boom"}]}\n')


async def test_stream_hands_on_chunks_as_pieces_that_join_to_the_answer(influxdb: InfluxDB, tmp_path: Path) -> None:
    """The KPI engine's day read takes pieces as they come (never the whole answer at once). A chunk
    of 20,000 rows is one JSON line of about a megabyte, far above aiohttp's readline limit."""
    config = load_config(None, {"CITY_TELEMETRY__INFLUXDB__URL": f'"{influxdb.url}"'}).influxdb
    writer = InfluxWriter(config)
    start = 1_700_000_000_000_000_000
    lines = [f"big,device=d{i % 2} v={i}i,w={i / 4} {start + i}" for i in range(50_000)]
    assert (await writer.write(lines)).accepted == 50_000
    await writer.close()
    query = InfluxQuery(config)
    try:
        pieces = [p async for p in query.stream('SELECT v, w FROM big GROUP BY "device"')]
        assert len(pieces) >= 3  # 25,000 rows a device: more than one 20,000-row chunk
        assert max(len(p.values) for p in pieces) == 20_000
        joined: dict[str, list[list[object]]] = {}
        for p in pieces:
            assert p.columns == ["time", "v", "w"]
            joined.setdefault(p.tags["device"], []).extend(p.values)
        for device in (0, 1):
            expected = [[start + i, i, i / 4] for i in range(50_000) if i % 2 == device]
            assert joined[f"d{device}"] == expected
        assert [s.values for s in await query.query('SELECT v, w FROM big GROUP BY "device"')] == [
            joined["d0"],
            joined["d1"],
        ]
        with pytest.raises(QueryError):
            async for _ in query.stream("SELECT FROM WHERE"):
                pass
    finally:
        await query.close()
