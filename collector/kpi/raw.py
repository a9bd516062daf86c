"""The raw readings of a time range, read back from InfluxDB for the KPI computation.

Contract: ``await read_raw(query, from_ns, to_ns)`` returns a :class:`RawData`: per device, the
evidence the pure KPI functions take (reports with uptimes, state marks, client counts, client
pseudonyms, counter readings, probes, radio samples), built from the measurements of
docs/data-model.md with InfluxQL (``sink/query.py``). It is the one place that knows the storage
layout on the read side; the computation (day.py) never sees a query.

The live engine and ``kpi recompute`` both read through here: the same stored readings give the
same KPIs whichever process wrote them, in whatever order they arrived.

A span is read once and its windows are cut from it: ``RawData.slice(from_ns, to_ns)`` is exactly
what ``read_raw`` would return for the narrower range (every kind of reading is sorted by time, a
device with no reading in the range is left out), so the 5-minute and hourly windows of 3 hours cost
one read, not 39, and a window's KPIs do not depend on how wide the span it was cut from was. A read
can be limited to some of the devices (``device_parts``): a day window is read in such parts. The
readings are held as columns of numbers (columns.py: a fifth of the memory of objects), and a cut is
a view on them, not a copy.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from collector.kpi.availability import Report, StateMark
from collector.kpi.clients import ClientCount, ClientsReport
from collector.kpi.columns import Columns, InternedRows, optional, stored
from collector.kpi.compute import DeviceReadings
from collector.kpi.counters import CounterReading
from collector.kpi.enrich import Place
from collector.kpi.traffic import Check, Probe
from collector.sink.query import InfluxQuery, QueryError, Series

TAGS = ("device", "kind", "nis", "site")


# How each kind of reading is built from its columns (time first), and the columns' type codes.
def _report(ts: int, uptime: float) -> Report:
    return Report(ts, optional(uptime))


def _mark(ts: int, up: int, will: int) -> StateMark:
    return StateMark(ts, bool(up), bool(will))


def _reading(ts: int, value: int, uptime: float) -> CounterReading:
    return CounterReading(ts, value, optional(uptime))


def _check(ts: int, ok: int) -> Check:
    return Check(ts, bool(ok))


def _probe(ts: int, sent: int, received: int, rtt: float, jitter: float) -> Probe:
    return Probe(ts, sent, received, optional(rtt), optional(jitter))


def counter_columns() -> Columns[CounterReading]:
    return Columns(_reading, "qd")


def check_columns() -> Columns[Check]:
    return Columns(_check, "b")


PID_TEXT = 32  # the pseudonymiser's hex digits a pseudonym (pseudonym.PID_BYTES x 2)
_HEX_PIDS = re.compile(rf"[0-9a-f]{{{PID_TEXT}}}(?:,[0-9a-f]{{{PID_TEXT}}})*")


def compact_pids(pids: str) -> str | bytes:
    """A report's pseudonyms as the KPI process holds them: the pseudonymiser's (lowercase hex of 16
    bytes, comma-joined) as their bytes, 16 a pseudonym where the text takes 33, and none as ``b""``;
    anything else as stored. An AP's reports are kept in an :class:`InternedRows` of these bytes
    (docs/performance.md, "An AP's clients kept once")."""
    if not pids:
        return b""
    return bytes.fromhex(pids.replace(",", "")) if _HEX_PIDS.fullmatch(pids) else pids


class Presence:
    """``make`` of an AP's client reports: the pseudonyms are kept as read (``compact_pids``: one
    object a report) and made a set of the stored text only while read, so a pseudonym is the same
    string whichever way its report was kept."""

    __slots__ = ("device",)

    def __init__(self, device: str) -> None:
        self.device = device

    def __call__(self, ts: int, pids: str | bytes) -> ClientsReport:
        if isinstance(pids, bytes):
            size = PID_TEXT // 2
            return ClientsReport(
                ts, self.device, frozenset([pids[i : i + size].hex() for i in range(0, len(pids), size)])
            )
        return ClientsReport(ts, self.device, frozenset(pids.split(",")) if pids else frozenset())


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
    counters: dict[str, Columns[CounterReading]] = field(default_factory=dict)
    oper: Columns[Check] = field(default_factory=check_columns)

    def columns(self) -> Iterator[Columns[Any]]:
        yield from self.counters.values()
        yield self.oper

    def slice(self, lo: int, hi: int) -> InterfaceRaw | None:
        counters = {name: cut for name, series in self.counters.items() if (cut := series.cut(lo, hi))}
        oper = self.oper.cut(lo, hi)
        if not counters and not oper:
            return None
        return InterfaceRaw(self.bits, self.speed_mbps, counters, oper)


@dataclass(slots=True)
class RadioRaw:
    """One radio's readings, in the form the KPIs take them: channel utilisation as (ts, pct), its
    retried and total frames as counters."""

    utilisation: Columns[tuple[int, float]] = field(default_factory=lambda: Columns(None, "d"))
    retries: Columns[CounterReading] = field(default_factory=lambda: Columns(CounterReading, "q"))
    frames: Columns[CounterReading] = field(default_factory=lambda: Columns(CounterReading, "q"))

    def columns(self) -> Iterator[Columns[Any]]:
        yield from (self.utilisation, self.retries, self.frames)

    def slice(self, lo: int, hi: int) -> RadioRaw | None:
        out = RadioRaw(self.utilisation.cut(lo, hi), self.retries.cut(lo, hi), self.frames.cut(lo, hi))
        return out if out.utilisation or out.retries or out.frames else None


class DeviceRaw:
    """One device's readings of a span, each kind in :class:`Columns` (sorted by time once read)."""

    __slots__ = (
        "clients",
        "device",
        "interfaces",
        "marks",
        "presence",
        "probes",
        "radios",
        "reports",
        "rf_good",
        "tags",
        "uplink_rx",
        "uplink_tx",
    )

    def __init__(self, device: str, tags: dict[str, str] | None = None) -> None:
        self.device = device
        self.tags: dict[str, str] = {} if tags is None else tags
        self.reports = Columns(_report, "d")
        self.marks = Columns(_mark, "bb")
        self.clients = Columns(ClientCount, "q")
        self.presence = Columns(Presence(device), [InternedRows(PID_TEXT // 2)])
        self.uplink_rx = counter_columns()  # bytes to the clients (AP uplink in)
        self.uplink_tx = counter_columns()  # bytes from the clients (AP uplink out)
        self.interfaces: dict[str, InterfaceRaw] = {}
        self.probes = Columns(_probe, "qqdd")
        self.radios: dict[str, RadioRaw] = {}
        self.rf_good: Columns[tuple[int, int, int]] = Columns(None, "qq")  # (ts, good_rf_clients, num_clients)

    def _flat(self) -> tuple[Columns[Any], ...]:
        return (
            self.reports,
            self.marks,
            self.clients,
            self.presence,
            self.uplink_rx,
            self.uplink_tx,
            self.probes,
            self.rf_good,
        )

    def columns(self) -> Iterator[Columns[Any]]:
        yield from self._flat()
        for interface in self.interfaces.values():
            yield from interface.columns()
        for radio in self.radios.values():
            yield from radio.columns()

    def sort(self) -> None:
        """Seal every column (sorted by time) and share equal time columns."""
        seal(self.columns())

    def slice(self, lo: int, hi: int) -> DeviceRaw | None:
        """The device's readings in ``[lo, hi)`` (after ``sort``), sharing the columns; None if
        there are none."""
        out: DeviceRaw = DeviceRaw.__new__(DeviceRaw)  # every attribute set below: no empty columns made
        out.device = self.device
        out.tags = dict(self.tags)
        out.reports = self.reports.cut(lo, hi)
        out.marks = self.marks.cut(lo, hi)
        out.clients = self.clients.cut(lo, hi)
        out.presence = self.presence.cut(lo, hi)
        out.uplink_rx = self.uplink_rx.cut(lo, hi)
        out.uplink_tx = self.uplink_tx.cut(lo, hi)
        out.interfaces = {name: cut for name, i in self.interfaces.items() if (cut := i.slice(lo, hi)) is not None}
        out.probes = self.probes.cut(lo, hi)
        out.radios = {band: part for band, r in self.radios.items() if (part := r.slice(lo, hi)) is not None}
        out.rf_good = self.rf_good.cut(lo, hi)
        empty = not any(out._flat()) and not (out.interfaces or out.radios)
        return None if empty else out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceRaw):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<DeviceRaw {self.device}: {sum(len(c) for c in self.columns())} readings>"


@dataclass(slots=True)
class RawData:
    from_ns: int
    to_ns: int
    devices: dict[str, DeviceRaw] = field(default_factory=dict)

    def any_within(self, from_ns: int, to_ns: int) -> bool:
        """Whether any device reported (or changed state) in ``[from_ns, to_ns)``: a report, a state,
        a client count, a client list or a probe. An AP whose firmware sends only client lists
        (``ap.clients/1``) has KPIs too: its clients, sessions and radio quality."""
        return any(
            d.reports.any_within(from_ns, to_ns)
            or d.marks.any_within(from_ns, to_ns)
            or d.clients.any_within(from_ns, to_ns)
            or d.presence.any_within(from_ns, to_ns)
            or d.rf_good.any_within(from_ns, to_ns)
            or d.probes.any_within(from_ns, to_ns)
            for d in self.devices.values()
        )

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
        """The device of ``series``; a tag it has no value for yet takes the series' value (the
        radios are read first: a device's tags are those its first series carried)."""
        name = series.tags.get("device", "")
        raw = self.devices.get(name)
        if raw is None:
            raw = self.devices[name] = DeviceRaw(name)
        for key in TAGS:
            value = series.tags.get(key)
            if value:
                raw.tags.setdefault(key, value)
        return raw


def seal(columns: Iterable[Columns[Any]]) -> None:
    """Sort ``columns`` and let those with equal times share one time column. The read calls it for
    the columns of each query that no later query adds to, as soon as that query ends, so that less
    is held while the rest of the day is read and when the computation starts."""
    times: list[Any] = []
    for column in columns:
        column.seal()
        column.share_times(times)


def _group(extra: str = "") -> str:
    return 'GROUP BY "device", "kind", "nis", "site"' + (f', "{extra}"' if extra else "")


ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MEASUREMENTS = (
    "ap",
    "ap_radio",
    "ap_clients",
    "ap_client_presence",
    "netdev",
    "interface",
    "device_state",
    "link_probe",
)


def device_parts(names: Iterable[str], parts: int, reach: int = 12) -> list[str]:
    """InfluxQL conditions that split the devices into at most ``parts`` + 1 disjoint parts whose union
    is every device, named in ``names`` or not.

    A part is the devices whose name has one of a set of characters at one position (the k-th from
    the end or from the start), or, for more parts than one position can give (ten digits are ten
    parts at most), one of a set at each of two positions: a cell of a grid. The last part is the
    devices whose name has no letter or digit at a position used (or is shorter). Every name is in
    exactly one part whatever ``names`` holds: the names only choose the positions and share their
    characters out so that the parts come out near equal (device names differ at the end for serial
    numbers, counters or MAC digits, at the start for host names of one domain), so a device that
    first reports after they were listed is still read, in some part. No names: the last characters
    decide. ``parts`` 1: one read of everything (``[""]``)."""
    listed = list(names)
    if parts <= 1:
        return [""]
    if not listed:  # nothing to go by (the server could not list them): the last characters, in turn
        listed = [a + b for a in ALPHANUMERIC for b in ALPHANUMERIC]
    singles: list[tuple[int, str, int, dict[str, int]]] = []  # (worst part, anchor, k, counts)
    best: _Split | None = None
    for anchor in ("end", "start"):
        for k in range(1, reach + 1):
            counts = _chars_at(listed, anchor, k)
            rest = len(listed) - sum(counts.values())
            bins, sizes = _share_out(counts, parts)
            split = _Split(max(*sizes, rest), anchor, (k,), (bins,))
            singles.append((split.worst, anchor, k, counts))
            if best is None or split.rank() < best.rank():
                best = split
    assert best is not None
    if best.worst * parts > 1.25 * len(listed):  # one position cannot share the names out: try two
        for anchor in ("end", "start"):
            ranked = sorted((s for s in singles if s[1] == anchor), key=lambda s: (s[0], s[2]))[:3]
            for (_, _, k1, counts1), (_, _, k2, counts2) in itertools.combinations(ranked, 2):
                if k1 > k2:
                    k1, k2, counts1, counts2 = k2, k1, counts2, counts1
                grid = _grid(listed, parts, anchor, k1, k2, counts1, counts2)
                if grid is not None and grid.rank() < best.rank():
                    best = grid
    return best.conditions()


def _chars_at(names: list[str], anchor: str, k: int) -> dict[str, int]:
    """How many names have each letter or digit at the k-th position from ``anchor``."""
    counts: dict[str, int] = {}
    for name in names:
        if len(name) >= k:
            char = name[-k] if anchor == "end" else name[k - 1]
            if char in ALPHANUMERIC:
                counts[char] = counts.get(char, 0) + 1
    return counts


def _share_out(counts: dict[str, int], bins_wanted: int) -> tuple[list[list[str]], list[int]]:
    """Every letter and digit into at most ``bins_wanted`` bins, the counted ones largest first to the
    smallest bin (near-equal sums), then those no name has there, so that the bins cover them too."""
    bins: list[list[str]] = [[] for _ in range(min(bins_wanted, max(1, len(counts))))]
    sizes = [0] * len(bins)
    for char in sorted(counts, key=lambda c: (-counts[c], c)):
        i = sizes.index(min(sizes))
        bins[i].append(char)
        sizes[i] += counts[char]
    for char in ALPHANUMERIC:
        if char not in counts:
            bins[sizes.index(min(sizes))].append(char)
    return bins, sizes


def _grid(
    names: list[str], parts: int, anchor: str, k1: int, k2: int, counts1: dict[str, int], counts2: dict[str, int]
) -> _Split | None:
    """The best grid of (characters at k1) x (characters at k2) with at most ``parts`` cells."""
    pairs: dict[tuple[str, str], int] = {}
    rest = 0
    for name in names:
        if len(name) >= k2:
            c1, c2 = (name[-k1], name[-k2]) if anchor == "end" else (name[k1 - 1], name[k2 - 1])
            if c1 in ALPHANUMERIC and c2 in ALPHANUMERIC:
                pairs[(c1, c2)] = pairs.get((c1, c2), 0) + 1
                continue
        rest += 1
    best: _Split | None = None
    for across in range(2, min(parts // 2, len(counts1)) + 1):
        down = min(parts // across, len(counts2))
        if down < 2:
            continue
        bins1, _ = _share_out(counts1, across)
        bins2, _ = _share_out(counts2, down)
        row = {c: i for i, b in enumerate(bins1) for c in b}
        column = {c: i for i, b in enumerate(bins2) for c in b}
        cells = [0] * (len(bins1) * len(bins2))
        for (c1, c2), n in pairs.items():
            cells[row[c1] * len(bins2) + column[c2]] += n
        split = _Split(max(*cells, rest), anchor, (k1, k2), (bins1, bins2))
        if best is None or split.rank() < best.rank():
            best = split
    return best


@dataclass(frozen=True, slots=True)
class _Split:
    """Parts by the characters at one or two positions: ``bins[i]`` shares out those at ``ks[i]``."""

    worst: int  # names in the largest part (the last, catch-all part included)
    anchor: str  # "end": the k-th character from the end; "start": from the start
    ks: tuple[int, ...]  # ascending
    bins: tuple[list[list[str]], ...]

    def rank(self) -> tuple[int, int, int]:
        """Smaller is better: the largest part first, then fewer positions, then nearer the anchor."""
        return (self.worst, len(self.ks), self.ks[-1])

    def conditions(self) -> list[str]:
        every = "0-9A-Za-z"
        if len(self.ks) == 1:
            out = [f'"device" =~ /{self._at("".join(sorted(b)))}/' for b in self.bins[0]]
            return [*out, f'"device" !~ /{self._at(every)}/']
        out = [
            f'"device" =~ /{self._at("".join(sorted(b1)), "".join(sorted(b2)))}/'
            for b1 in self.bins[0]
            for b2 in self.bins[1]
        ]
        return [*out, f'"device" !~ /{self._at(every, every)}/']

    def _at(self, *classes: str) -> str:
        """The regex of a name with a character of ``classes[i]`` at position ``ks[i]``."""

        def skip(n: int) -> str:  # any n characters, newlines too
            return f"(?s:.{{{n}}})" if n > 0 else ""

        if len(self.ks) == 1:
            (k,), (chars,) = self.ks, classes
            return f"[{chars}]{skip(k - 1)}$" if self.anchor == "end" else f"^{skip(k - 1)}[{chars}]"
        (k1, k2), (c1, c2) = self.ks, classes
        if self.anchor == "end":
            return f"[{c2}]{skip(k2 - k1 - 1)}[{c1}]{skip(k1 - 1)}$"
        return f"^{skip(k1 - 1)}[{c1}]{skip(k2 - k1 - 1)}[{c2}]"


async def stored_devices(query: InfluxQuery) -> list[str]:
    """The device tag values of the readings' measurements (in the whole retention: they only guide
    ``device_parts``); none if the server cannot say (the parts are then by the last character, still
    complete)."""
    measurements = ", ".join(f'"{m}"' for m in MEASUREMENTS)
    try:
        found = await query.query(f'SHOW TAG VALUES FROM {measurements} WITH KEY = "device"')
    except QueryError:
        return []
    return sorted({str(row["value"]) for series in found for row in series.rows()})


async def read_raw(query: InfluxQuery, from_ns: int, to_ns: int, devices: str = "") -> RawData:
    """Every reading stamped in ``[from_ns, to_ns)`` that a KPI needs (see the module docstring); of
    the devices that match ``devices`` (one of ``device_parts``) if it is given."""
    raw = RawData(from_ns, to_ns)
    span = f"time >= {from_ns} AND time < {to_ns}" + (f" AND {devices}" if devices else "")
    async for series in query.stream(
        f'SELECT "cu_total_pct", "tx_retries", "tx_total" FROM "ap_radio" WHERE {span} {_group("band")}'
    ):
        device = raw.device(series)
        radio = device.radios.get(series.tags.get("band", ""))
        if radio is None:
            radio = device.radios[series.tags.get("band", "")] = RadioRaw()
        for ts, cu, retries, total in series.values:
            if cu is not None:
                radio.utilisation.append(ts, float(cu))
            if retries is not None:
                radio.retries.append(ts, int(retries))
            if total is not None:
                radio.frames.append(ts, int(total))
    for device in raw.devices.values():
        seal(column for radio in device.radios.values() for column in radio.columns())
    async for series in query.stream(
        f'SELECT "uptime_s", "num_clients", "uplink_rx_bytes", "uplink_tx_bytes" FROM "ap" WHERE {span} {_group()}'
    ):
        device = raw.device(series)
        add_report, add_clients = device.reports.append, device.clients.append
        add_rx, add_tx = device.uplink_rx.append, device.uplink_tx.append
        for row in series.values:
            ts, uptime, clients, rx, tx = row
            up = stored(uptime)
            add_report(ts, up)
            if clients is not None:
                add_clients(ts, int(clients))
            if rx is not None:
                add_rx(ts, int(rx), up)
            if tx is not None:
                add_tx(ts, int(tx), up)
    for device in raw.devices.values():  # reports: the netdev query below adds to them
        seal((device.clients, device.uplink_rx, device.uplink_tx))
    uptimes: dict[tuple[str, int], float] = {}
    async for series in query.stream(f'SELECT "sys_uptime_s" FROM "netdev" WHERE {span} {_group()}'):
        device = raw.device(series)
        for ts, uptime in series.values:
            up = stored(uptime)
            device.reports.append(ts, up)
            uptimes[(device.device, ts)] = up
    fields = ", ".join(f'"{name}"' for name in IF_COUNTERS)
    nan = stored(None)
    async for series in query.stream(
        f'SELECT {fields}, "oper_up", "speed_mbps", "counter_bits" FROM "interface" WHERE {span} {_group("ifname")}'
    ):
        device = raw.device(series)
        interface = device.interfaces.setdefault(series.tags.get("ifname", ""), InterfaceRaw())
        for row in series.values:
            ts, *values, oper_up, speed, bits = row
            uptime = uptimes.get((device.device, ts), nan)
            if bits == 32:  # one report of 32-bit counters in the span makes the series 32-bit
                interface.bits = 32
            if speed is not None:
                interface.speed_mbps = int(speed)
            for name, value in zip(IF_COUNTERS.values(), values, strict=True):
                if value is not None:
                    counter = interface.counters.get(name)
                    if counter is None:
                        counter = interface.counters[name] = counter_columns()
                    counter.append(ts, int(value), uptime)
            if oper_up is not None:
                interface.oper.append(ts, bool(oper_up))
    for device in raw.devices.values():
        for interface in device.interfaces.values():
            seal(interface.columns())
    async for series in query.stream(
        f'SELECT "state", "up", "stamped_on_receipt", "estimated" FROM "device_state" WHERE {span} {_group()}'
    ):
        device = raw.device(series)
        for ts, _state, up, will, estimated in series.values:
            if estimated:
                continue  # a will from a backlog says only "gone after its last report": silence says that too
            device.marks.append(ts, bool(up), bool(will))
    async for series in query.stream(f'SELECT "pids" FROM "ap_client_presence" WHERE {span} {_group()}'):
        device = raw.device(series)
        for ts, pids in series.values:
            device.presence.append(ts, compact_pids(pids or ""))
        device.presence.trim()  # each AP's index of its clients' pseudonyms, not every AP's at once
    async for series in query.stream(
        f'SELECT "good_rf_clients", "num_clients" FROM "ap_clients" WHERE {span} {_group()}'
    ):
        device = raw.device(series)
        for ts, good, total in series.values:
            if good is not None and total is not None:
                device.rf_good.append(ts, int(good), int(total))
    async for series in query.stream(
        f'SELECT "sent", "received", "rtt_avg_ms", "jitter_ms" FROM "link_probe" WHERE {span} {_group()}'
    ):
        device = raw.device(series)
        for ts, sent, received, rtt, jitter in series.values:
            if sent is not None and received is not None:
                device.probes.append(ts, int(sent), int(received), stored(rtt), stored(jitter))
    raw.devices.pop("", None)  # a series without a device tag is not ours to count
    for device in raw.devices.values():
        device.sort()
    return raw


def to_readings(raw: DeviceRaw, place: Place) -> DeviceReadings:
    """What compute.py takes for one device. The link's counters are those of the interface the
    inventory names as the device's link (a school CPE with one interface: that one)."""
    counters: dict[str, Columns[CounterReading]] = {}
    if raw.uplink_tx or raw.uplink_rx:
        counters["rx"] = raw.uplink_tx  # bytes from the clients leave by the uplink
        counters["tx"] = raw.uplink_rx
    link = place.link if place.link in raw.interfaces else None
    if link is None and place.kind != "ap" and len(raw.interfaces) == 1:
        link = next(iter(raw.interfaces))
    link_bits = None
    link_oper: Columns[Check] | tuple[()] = ()
    if link is not None:
        counters.update(raw.interfaces[link].counters)
        link_bits = raw.interfaces[link].bits
        link_oper = raw.interfaces[link].oper
    for band, radio in raw.radios.items():
        counters[f"tx_retries:{band}"] = radio.retries
        counters[f"tx_total:{band}"] = radio.frames
    return DeviceReadings(
        place=place,
        reports=raw.reports,
        marks=raw.marks,
        clients=raw.clients,
        client_reports=raw.presence,
        counters=counters,
        probes=raw.probes,
        channel_utilisation={band: radio.utilisation for band, radio in raw.radios.items()},
        rf=raw.rf_good,
        link_counter_bits=link_bits,
        link_oper=link_oper,
    )
