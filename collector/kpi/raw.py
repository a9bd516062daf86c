"""The raw readings of a time range, read back from InfluxDB for the KPI computation.

Contract: ``await read_raw(query, from_ns, to_ns)`` returns a :class:`RawData`: per device, the
evidence the pure KPI functions take (reports with uptimes, state marks, client counts, client
pseudonyms, counter readings, probes, radio samples), built from the measurements of
docs/data-model.md with InfluxQL (``sink/query.py``). It is the one place that knows the storage
layout on the read side; the computation (day.py) never sees a query.

The live engine and ``kpi recompute`` both read through here: the same stored readings give the
same KPIs whichever process wrote them, in whatever order they arrived.

A span is read once and its windows are cut from it: ``RawData.slice(from_ns, to_ns)`` is exactly
what ``read_raw`` would return for the narrower range (every list is sorted by time, a device with
no reading in the range is left out), so the 288 five-minute windows and 24 hours of a day cost one
read, not 313, and a window's KPIs do not depend on how wide the span it was cut from was.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

from collector.kpi.availability import Report, StateMark
from collector.kpi.clients import ClientCount, ClientsReport
from collector.kpi.compute import DeviceReadings
from collector.kpi.counters import CounterReading
from collector.kpi.enrich import Place
from collector.kpi.traffic import Check, Probe
from collector.sink.query import InfluxQuery, Series

TAGS = ("device", "kind", "nis", "site")
T = TypeVar("T")
TS: Callable[[Any], int] = attrgetter("ts_ns")
FIRST: Callable[[Any], int] = itemgetter(0)


def _cut(items: Sequence[T], lo: int, hi: int, key: Callable[[Any], int] = TS) -> list[T]:
    """The items (sorted by ``key``) with ``lo <= key < hi``."""
    return list(items[bisect_left(items, lo, key=key) : bisect_left(items, hi, key=key)])


IF_COUNTERS = {  # stored field -> the counter's name in compute.DeviceReadings
    "in_octets": "in",
    "out_octets": "out",
    "in_ucast_pkts": "in_pkts",
    "out_ucast_pkts": "out_pkts",
    "in_errors": "in_errors",
    "out_errors": "out_errors",
    "in_discards": "in_discards",
    "out_discards": "out_discards",
}


@dataclass(slots=True)
class InterfaceRaw:
    bits: int = 64
    speed_mbps: int | None = None
    counters: dict[str, list[CounterReading]] = field(default_factory=dict)
    oper: list[Check] = field(default_factory=list)

    def sort(self) -> None:
        for series in self.counters.values():
            series.sort(key=TS)
        self.oper.sort(key=TS)

    def slice(self, lo: int, hi: int) -> InterfaceRaw | None:
        counters = {name: cut for name, series in self.counters.items() if (cut := _cut(series, lo, hi))}
        oper = _cut(self.oper, lo, hi)
        if not counters and not oper:
            return None
        return InterfaceRaw(self.bits, self.speed_mbps, counters, oper)


@dataclass(slots=True)
class RadioSample:
    ts_ns: int
    cu_total_pct: float | None
    tx_retries: int | None
    tx_total: int | None


@dataclass(slots=True)
class DeviceRaw:
    device: str
    tags: dict[str, str] = field(default_factory=dict)
    reports: list[Report] = field(default_factory=list)
    marks: list[StateMark] = field(default_factory=list)
    clients: list[ClientCount] = field(default_factory=list)
    presence: list[ClientsReport] = field(default_factory=list)
    uplink_rx: list[CounterReading] = field(default_factory=list)  # bytes to the clients (AP uplink in)
    uplink_tx: list[CounterReading] = field(default_factory=list)  # bytes from the clients (AP uplink out)
    interfaces: dict[str, InterfaceRaw] = field(default_factory=dict)
    probes: list[Probe] = field(default_factory=list)
    radios: dict[str, list[RadioSample]] = field(default_factory=dict)
    rf_good: list[tuple[int, int, int]] = field(default_factory=list)  # (ts, good_rf_clients, num_clients)

    def sort(self) -> None:
        for items in (self.reports, self.marks, self.clients, self.presence, self.uplink_rx, self.uplink_tx):
            items.sort(key=TS)
        self.probes.sort(key=TS)
        self.rf_good.sort(key=FIRST)
        for interface in self.interfaces.values():
            interface.sort()
        for samples in self.radios.values():
            samples.sort(key=TS)

    def slice(self, lo: int, hi: int) -> DeviceRaw | None:
        """The device's readings in ``[lo, hi)`` (lists sorted by ``sort``); None if there are none."""
        interfaces = {name: cut for name, i in self.interfaces.items() if (cut := i.slice(lo, hi)) is not None}
        radios = {band: part for band, samples in self.radios.items() if (part := _cut(samples, lo, hi))}
        out = DeviceRaw(
            self.device,
            dict(self.tags),
            _cut(self.reports, lo, hi),
            _cut(self.marks, lo, hi),
            _cut(self.clients, lo, hi),
            _cut(self.presence, lo, hi),
            _cut(self.uplink_rx, lo, hi),
            _cut(self.uplink_tx, lo, hi),
            interfaces,
            _cut(self.probes, lo, hi),
            radios,
            _cut(self.rf_good, lo, hi, FIRST),
        )
        empty = not (
            out.reports or out.marks or out.clients or out.presence or out.uplink_rx or out.uplink_tx
        ) and not (interfaces or out.probes or radios or out.rf_good)
        return None if empty else out


@dataclass(slots=True)
class RawData:
    from_ns: int
    to_ns: int
    devices: dict[str, DeviceRaw] = field(default_factory=dict)

    def any_within(self, from_ns: int, to_ns: int) -> bool:
        """Whether any device reported (or changed state) in ``[from_ns, to_ns)``."""
        for d in self.devices.values():
            for times in ((r.ts_ns for r in d.reports), (m.ts_ns for m in d.marks), (c.ts_ns for c in d.clients)):
                if any(from_ns <= ts < to_ns for ts in times):
                    return True
        return False

    def slice(self, from_ns: int, to_ns: int) -> RawData:
        """What ``read_raw(query, from_ns, to_ns)`` returns, cut from this wider read."""
        assert self.from_ns <= from_ns and to_ns <= self.to_ns, "a slice lies within the span read"
        out = RawData(from_ns, to_ns)
        for name, device in self.devices.items():
            cut = device.slice(from_ns, to_ns)
            if cut is not None:
                out.devices[name] = cut
        return out

    def device(self, series: Series) -> DeviceRaw:
        name = series.tags.get("device", "")
        raw = self.devices.get(name)
        if raw is None:
            raw = self.devices[name] = DeviceRaw(name)
        for key in TAGS:
            value = series.tags.get(key)
            if value:
                raw.tags.setdefault(key, value)
        return raw


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _group(extra: str = "") -> str:
    return 'GROUP BY "device", "kind", "nis", "site"' + (f', "{extra}"' if extra else "")


async def read_raw(query: InfluxQuery, from_ns: int, to_ns: int) -> RawData:
    """Every reading stamped in ``[from_ns, to_ns)`` that a KPI needs (see the module docstring)."""
    raw = RawData(from_ns, to_ns)
    span = f"time >= {from_ns} AND time < {to_ns}"
    async for series in query.stream(
        f'SELECT "uptime_s", "num_clients", "uplink_rx_bytes", "uplink_tx_bytes" FROM "ap" WHERE {span} {_group()}'
    ):
        device = raw.device(series)
        for row in series.values:
            ts, uptime, clients, rx, tx = row
            device.reports.append(Report(ts, _float(uptime)))
            if clients is not None:
                device.clients.append(ClientCount(ts, int(clients)))
            if rx is not None:
                device.uplink_rx.append(CounterReading(ts, int(rx), _float(uptime)))
            if tx is not None:
                device.uplink_tx.append(CounterReading(ts, int(tx), _float(uptime)))
    uptimes: dict[tuple[str, int], float | None] = {}
    async for series in query.stream(f'SELECT "sys_uptime_s" FROM "netdev" WHERE {span} {_group()}'):
        device = raw.device(series)
        for ts, uptime in series.values:
            device.reports.append(Report(ts, _float(uptime)))
            uptimes[(device.device, ts)] = _float(uptime)
    fields = ", ".join(f'"{name}"' for name in IF_COUNTERS)
    async for series in query.stream(
        f'SELECT {fields}, "oper_up", "speed_mbps", "counter_bits" FROM "interface" WHERE {span} {_group("ifname")}'
    ):
        device = raw.device(series)
        interface = device.interfaces.setdefault(series.tags.get("ifname", ""), InterfaceRaw())
        for row in series.values:
            ts, *values, oper_up, speed, bits = row
            uptime = uptimes.get((device.device, ts))
            if bits is not None:
                interface.bits = int(bits)
            if speed is not None:
                interface.speed_mbps = int(speed)
            for name, value in zip(IF_COUNTERS.values(), values, strict=True):
                if value is not None:
                    interface.counters.setdefault(name, []).append(CounterReading(ts, int(value), uptime))
            if oper_up is not None:
                interface.oper.append(Check(ts, bool(oper_up)))
    async for series in query.stream(
        f'SELECT "state", "up", "stamped_on_receipt", "estimated" FROM "device_state" WHERE {span} {_group()}'
    ):
        device = raw.device(series)
        for ts, _state, up, will, estimated in series.values:
            if estimated:
                continue  # a will from a backlog says only "gone after its last report": silence says that too
            device.marks.append(StateMark(ts, bool(up), bool(will)))
    async for series in query.stream(f'SELECT "pids" FROM "ap_client_presence" WHERE {span} {_group()}'):
        device = raw.device(series)
        for ts, pids in series.values:
            device.presence.append(
                ClientsReport(ts, device.device, frozenset(pids.split(",")) if pids else frozenset())
            )
    async for series in query.stream(
        f'SELECT "good_rf_clients", "num_clients" FROM "ap_clients" WHERE {span} {_group()}'
    ):
        device = raw.device(series)
        for ts, good, total in series.values:
            if good is not None and total is not None:
                device.rf_good.append((ts, int(good), int(total)))
    async for series in query.stream(
        f'SELECT "sent", "received", "rtt_avg_ms", "jitter_ms" FROM "link_probe" WHERE {span} {_group()}'
    ):
        device = raw.device(series)
        for ts, sent, received, rtt, jitter in series.values:
            if sent is not None and received is not None:
                device.probes.append(Probe(ts, int(sent), int(received), _float(rtt), _float(jitter)))
    async for series in query.stream(
        f'SELECT "cu_total_pct", "tx_retries", "tx_total" FROM "ap_radio" WHERE {span} {_group("band")}'
    ):
        device = raw.device(series)
        samples = device.radios.setdefault(series.tags.get("band", ""), [])
        for ts, cu, retries, total in series.values:
            samples.append(RadioSample(ts, _float(cu), _int(retries), _int(total)))
    raw.devices.pop("", None)  # a series without a device tag is not ours to count
    for device in raw.devices.values():
        device.sort()
    return raw


def to_readings(raw: DeviceRaw, place: Place) -> DeviceReadings:
    """What compute.py takes for one device. The link's counters are those of the interface the
    inventory names as the device's link (a school CPE with one interface: that one)."""
    counters: dict[str, list[CounterReading]] = {}
    if raw.uplink_tx or raw.uplink_rx:
        counters["rx"] = raw.uplink_tx  # bytes from the clients leave by the uplink
        counters["tx"] = raw.uplink_rx
    link = place.link if place.link in raw.interfaces else None
    if link is None and place.kind != "ap" and len(raw.interfaces) == 1:
        link = next(iter(raw.interfaces))
    if link is not None:
        counters.update(raw.interfaces[link].counters)
    for band, samples in raw.radios.items():
        counters[f"tx_retries:{band}"] = [
            CounterReading(s.ts_ns, s.tx_retries) for s in samples if s.tx_retries is not None
        ]
        counters[f"tx_total:{band}"] = [CounterReading(s.ts_ns, s.tx_total) for s in samples if s.tx_total is not None]
    return DeviceReadings(
        place=place,
        reports=raw.reports,
        marks=raw.marks,
        clients=raw.clients,
        client_reports=raw.presence,
        counters=counters,
        probes=raw.probes,
        channel_utilisation={
            band: [(s.ts_ns, s.cu_total_pct) for s in samples if s.cu_total_pct is not None]
            for band, samples in raw.radios.items()
        },
        rf=raw.rf_good,
    )
