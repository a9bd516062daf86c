"""Why our own line-protocol encoder, and orjson: speed and behaviour against the alternatives, in one run.

1. Line protocol: lines/s of ours (``collector/ingest/lineprotocol.py``, series key cached per series as
   the encoder does, and built every time) against influxdb-client's ``Point`` builder, for the
   ``ap_radio`` point the pipeline writes most; then what each writes for values line protocol
   cannot carry (ours refuses them, EncodeError; what the other writes is printed as it is).
2. JSON: ``orjson.loads`` against the standard library's ``json.loads`` on a real UniFi controller
   dump (the adapters' input) and a canonical message, and ``dumps`` of a dead-letter record.

Best of 5 rounds each, no I/O. Needs the optional ``bench`` extra (influxdb-client).
Run: .venv/bin/python -m bench.compare_encoders
"""

from __future__ import annotations

import json
import math
import time
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from influxdb_client import Point, WritePrecision

from collector.ingest.lineprotocol import EncodeError, encode_line, series_key
from collector.ingest.normalise import SeriesKeys

ADAPTERS = Path(__file__).resolve().parents[1] / "collector" / "ingest" / "adapters"
TAGS = (("band", "5"), ("device", "ap-21004-0042"), ("kind", "ap"), ("nis", "21004"), ("site", "gare-du-midi"))
FIELDS: list[tuple[str, Any]] = [
    ("channel", 36),
    ("width_mhz", 80),
    ("tx_power_dbm", 20.0),
    ("cu_total_pct", 12.5),
    ("num_clients", 15),
    ("tx_bytes", 834_859_686),
    ("rx_bytes", 3_358_763_522),
]
TS = 1_764_338_400_123_456_000


def best_rate(function: Callable[[], object], number: int) -> float:
    """Calls per second, best of 5 rounds of ``number`` calls."""
    return number / min(timeit.repeat(function, number=number, repeat=5))


def ours_cached() -> str:
    return encode_line(KEYS.get("ap_radio", TAGS[1:], TAGS[:1]), FIELDS, TS)


def ours_uncached() -> str:
    return encode_line(series_key("ap_radio", TAGS), FIELDS, TS)


def theirs() -> str:
    point = Point("ap_radio")
    for key, value in TAGS:
        point.tag(key, value)
    for key, value in FIELDS:
        point.field(key, value)
    line: str = point.time(TS, WritePrecision.NS).to_line_protocol()
    return line


KEYS = SeriesKeys()

HOSTILE: list[tuple[str, str, str, Any]] = [
    ("newline in a tag value", "site", "gare\ndu-midi", 1),
    ("tag value ending in a backslash", "site", "gare\\", 1),
    ("field key 'time'", "site", "x", ("time", 1)),
    ("NaN field", "site", "x", ("rssi", math.nan)),
    ("integer beyond 64 bits", "site", "x", ("octets", 2**64)),
]


def hostile() -> list[tuple[str, str, str]]:
    """(case, ours, theirs) for values line protocol cannot carry unchanged."""
    found = []
    for case, tag, value, field in HOSTILE:
        key, field_value = field if isinstance(field, tuple) else ("n", field)
        try:
            ours = encode_line(series_key("m", ((tag, value),)), [(key, field_value)], TS)
        except EncodeError as error:
            ours = f"refused: {error}"
        try:
            theirs_line = Point("m").tag(tag, value).field(key, field_value).time(TS).to_line_protocol()
            theirs = repr(theirs_line) if theirs_line else "'' (point silently dropped)"
        except Exception as error:  # whatever the library does is the finding
            theirs = f"{type(error).__name__}: {error}"
        found.append((case, ours, theirs))
    return found


def main() -> None:
    assert ours_cached() == ours_uncached()
    print("line protocol, one ap_radio point (5 tags, 7 fields):")
    print(f"  their line: {theirs()}")
    print(f"  our line:   {ours_cached()}")
    rates = [
        ("ours, series key cached per series", best_rate(ours_cached, 20_000)),
        ("ours, series key built every time", best_rate(ours_uncached, 20_000)),
        ("influxdb-client Point", best_rate(theirs, 20_000)),
    ]
    for name, rate in rates:
        print(f"  {name:<38} {rate:>10,.0f} lines/s  {rate / rates[0][1]:.2f}")
    print("values line protocol cannot carry unchanged:")
    for case, ours, theirs_line in hostile():
        print(f"  {case}:\n    ours:   {ours}\n    theirs: {theirs_line}")

    print("JSON (best of 5):")
    unifi = (ADAPTERS / "unifi" / "testdata" / "uap_stat_device.json").read_bytes()
    canonical = json.dumps(
        {
            "schema": "ap.metrics/1",
            "device_id": "ap-21004-0042",
            "ts": "2026-11-28T14:00:00Z",
            "seq": 812,
            "uptime_s": 86400,
            "cpu_pct": 12.5,
            "mem_pct": 41.0,
            "num_clients": 23,
            "radios": [
                {"band": "2.4", "channel": 6, "width_mhz": 20, "tx_power_dbm": 17, "num_clients": 8},
                {"band": "5", "channel": 36, "width_mhz": 80, "tx_power_dbm": 20, "num_clients": 15},
            ],
        }
    ).encode()
    record = {
        "received_at": time.time_ns(),
        "reason": "invalid",
        "detail": "cpu_pct: too high",
        "topic": "bxl/v1/x",
        "payload": canonical.decode(),
    }
    for name, payload in (("UniFi dump", unifi), ("canonical message", canonical)):
        ours_rate = best_rate(partial(orjson.loads, payload), 2000)
        std_rate = best_rate(partial(json.loads, payload), 2000)
        print(
            f"  loads {name} ({len(payload):,} bytes): orjson {ours_rate:,.0f}/s, json {std_rate:,.0f}/s, "
            f"x{ours_rate / std_rate:.1f}"
        )
    ours_rate = best_rate(lambda: orjson.dumps(record), 20_000)
    std_rate = best_rate(lambda: json.dumps(record).encode(), 20_000)
    print(f"  dumps dead-letter record: orjson {ours_rate:,.0f}/s, json {std_rate:,.0f}/s, x{ours_rate / std_rate:.1f}")


if __name__ == "__main__":
    main()
