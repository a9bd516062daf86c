"""A spool with one bad byte in an early record, reopened by the collector: everything else reaches the
real InfluxDB, and the loss is reported with its size (docs/delivery.md, "The spool")."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from collector.delivery.spool import QUARANTINE, Spool, encode_record
from collector.harness.localservers import InfluxDB, Mosquitto
from tests.conftest import collector_config, points, running_collector, wait_until

pytestmark = pytest.mark.servers

LINES_PER_RECORD = 50
SEGMENT_BYTES = 64 * 1024


def record_lines(record: int, base_ns: int) -> list[str]:
    return [
        f"spool_probe,device=probe-{record:03d} seq={record * LINES_PER_RECORD + i}i {base_ns + record * 1000 + i}"
        for i in range(LINES_PER_RECORD)
    ]


async def test_one_flipped_byte_in_a_full_segment_loses_one_record_and_says_so(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    folder = tmp_path / "spool"
    base_ns = (time.time_ns() - 3600 * 10**9) // 10**9 * 10**9
    spool = Spool(folder, max_bytes=10 * SEGMENT_BYTES, segment_bytes=SEGMENT_BYTES)
    records: list[list[str]] = []
    while len(list(folder.glob("*.spool"))) < 2:  # the first segment full, a second one begun
        records.append(record_lines(len(records), base_ns))
        assert spool.append(records[-1])
    spool.close()
    first = sorted(folder.glob("*.spool"))[0]
    assert first.stat().st_size > SEGMENT_BYTES - 4096
    sizes = [len(encode_record("\n".join(r).encode())) for r in records]
    bad = 3  # an early record of the full segment
    start = sum(sizes[:bad])
    data = bytearray(first.read_bytes())
    data[start + 100] ^= 0x04  # one bit, in the middle of its body
    first.write_bytes(bytes(data))

    config = collector_config(
        mosquitto, influxdb, tmp_path, SPOOL__SEGMENT_BYTES=str(SEGMENT_BYTES), SPOOL__MAX_BYTES=str(10 * SEGMENT_BYTES)
    )
    expected = {int(line.split("seq=")[1].split("i")[0]) for i, r in enumerate(records) if i != bad for line in r}
    async with running_collector(config) as collector:
        await wait_until(lambda: collector.spool is not None and collector.spool.empty, what="spool drained")
        stats = collector.stats()
    assert (stats["spool_lost_records"], stats["spool_lost_bytes"]) == (1, sizes[bad])
    assert stats["lines_drained"] == len(expected)
    rows = await asyncio.to_thread(points, influxdb, "SELECT seq FROM spool_probe")
    stored = [row["seq"] for row in rows]
    assert len(stored) == len(expected) and set(stored) == expected  # every other record, exactly once
    assert not set(range(bad * LINES_PER_RECORD, (bad + 1) * LINES_PER_RECORD)) & set(stored)
    [quarantined] = list((folder / QUARANTINE).iterdir())
    assert quarantined.stat().st_size == sizes[bad]
    assert f"-at-{start}-{sizes[bad]}-bytes" in quarantined.name
