"""The simulated city: a seeded model that yields what its devices publish, in publish order.

``Simulation(config).items()`` is a pure generator (no clock, no network): the same config gives the
same items, byte for byte. Each item says when (in simulated time) it is published, on which topic,
with which payload, QoS and retain flag, and which faults shaped it. The model's state, not the
messages, feeds ``Simulation.truth`` (simulators/truth.py) as it goes.

Time advances in report ticks of ``period_s``. Every device reports once per tick at its own phase
(an offset under a minute, from the inventory); between two reports the model integrates what
happened: client sessions arriving and leaving, the bytes they move, outages and reboots. Model and
calibration: docs/simulator.md.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from simulators import payloads as p
from simulators import vendors
from simulators.faults import FaultConfig
from simulators.inventory import DFS_CHANNELS, Device, Inventory, build_inventory
from simulators.rhythm import ArrivalModel, poisson, school_load, session_duration_s
from simulators.truth import TZ, TruthBook

ROOT = "bxl/v1"
DAY_MS = 86_400_000
WILL_DELAY_MS = 45_000  # the broker fires a will after 1.5 keepalives (30 s)
PROBE_OFFSET_MS = 500
CAPACITY_BPS = {"2.4": 40e6, "5": 200e6}  # usable airtime capacity, for channel utilisation
BEACONS_PER_S = 10.0
OVERSIZED_CLIENTS = 2600  # entries in a runaway client table: about 300 kB, above the 256 KiB limit
TOLERATED_FAULTS = (
    "duplicate",
    "out_of_order",
    "late",
    "burst",
    "clock_skew",
    "last_will",
    "reboot",
    "boot",
    "counter_wrap",
    "counter_wrap_ambiguous",
    "dfs",
    "connect",
)
INVALID_FAULTS = ("malformed", "oversized")


@dataclass(frozen=True)
class SimConfig:
    start_ms: int
    seed: int = 7
    scale: float = 1.0
    duration_s: float = 86_400.0
    period_s: int = 60
    clients_every: int = 5  # ap.clients every N ticks (60 s x 5 = 300 s)
    vendor_share: float = 0.0
    faults: FaultConfig = field(default_factory=FaultConfig)
    client_lists: bool = True

    def __post_init__(self) -> None:
        if not 10 <= self.period_s <= 3600:
            raise ValueError("period_s must be between 10 and 3600")
        if self.duration_s < self.period_s:
            raise ValueError("duration_s must be at least one period")
        if self.clients_every < 1:
            raise ValueError("clients_every must be at least 1")

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(self.duration_s * 1000)

    @property
    def period_ms(self) -> int:
        return self.period_s * 1000


@dataclass(frozen=True, slots=True)
class Item:
    at_ms: int  # simulated time of publication (pacing), not the payload's timestamp
    topic: str
    payload: bytes
    qos: int
    retain: bool
    labels: tuple[str, ...]
    message: str  # metrics, clients, interfaces, probe, state, event; stat, monitoring, snmp for vendors
    device: str
    flavour: str

    @property
    def invalid(self) -> bool:
        """The collector must refuse this one (the fault made it so)."""
        return any(label.split(":")[0] in INVALID_FAULTS for label in self.labels)


@dataclass(frozen=True, slots=True)
class FaultEvent:
    fault: str  # outage, reboot, burst, dfs
    subject: str  # device or site
    t0_ms: int
    t1_ms: int
    detail: str = ""


class Session:
    __slots__ = ("band", "down", "end", "mac", "rssi", "rx", "seen_day", "start", "tx", "up")

    def __init__(self, rng: random.Random, start: float) -> None:
        bits = rng.getrandbits(48)
        first = ((bits >> 40) & 0xFC) | 0x02  # locally administered, unicast: a randomised MAC
        self.mac = f"{first:02x}:" + ":".join(f"{(bits >> s) & 0xFF:02x}" for s in range(32, -8, -8))
        self.band = "5" if rng.random() < 0.65 else "2.4"
        self.rssi = max(-88, min(-35, round(rng.gauss(-63.0, 7.0))))
        self.down = min(2e6, rng.lognormvariate(math.log(6000.0), 1.0))  # bytes/s to the client
        self.up = self.down * rng.uniform(0.08, 0.25)  # bytes/s from the client
        self.start = start
        self.end = start + session_duration_s(rng) * 1000
        self.rx = 0.0  # bytes received from the client (AP's view)
        self.tx = 0.0
        self.seen_day = -1


class RadioState:
    __slots__ = ("band", "channel", "cu_bg", "noise", "rx", "tx", "tx_power", "tx_retries", "tx_total", "width")

    def __init__(self, band: str, channel: int, tx_power: int, noise: float, cu_bg: float) -> None:
        self.band = band
        self.channel = channel
        self.width = 20 if band == "2.4" else 80
        self.tx_power = tx_power
        self.noise = noise
        self.cu_bg = cu_bg
        self.rx = 0.0
        self.tx = 0.0
        self.tx_total = 0.0
        self.tx_retries = 0.0


class DeviceState:
    """What all devices share: up/down, boot time, clock, message counter, scheduled downtime."""

    def __init__(self, device: Device, start_ms: int, uptime_s: float) -> None:
        self.device = device
        self.up = True
        self.boot_ms = start_ms - uptime_s * 1000
        self.seq = 0
        self.skew_ms = 0
        self.down: list[tuple[int, int, str, str]] = []  # (from, to, cause, detail)
        self.last_sample_ms = start_ms
        self.rebooted = False  # since the last report

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


class ApState(DeviceState):
    def __init__(self, device: Device, start_ms: int, uptime_s: float) -> None:
        super().__init__(device, start_ms, uptime_s)
        self.sessions: list[Session] = []
        self.radios: dict[str, RadioState] = {}
        self.uplink_rx = 0.0
        self.uplink_tx = 0.0
        self.rx_errors = 0.0
        self.tx_dropped = 0.0
        self.reported_rx = 0  # at the last clients report
        self.reported_tx = 0
        self.last_radio: dict[str, tuple[float, float]] = {}
        self.popularity = 1.0
        self.kind = "square"
        self.cpu = self.mem = self.temp = 0.0
        self.tick_rx = 0.0
        self.tick_tx = 0.0


class NetState(DeviceState):
    def __init__(self, device: Device, start_ms: int, uptime_s: float) -> None:
        super().__init__(device, start_ms, uptime_s)
        names = [port.name for port in device.ports]
        self.counters: dict[str, dict[str, float]] = {n: dict.fromkeys(COUNTERS, 0.0) for n in names}
        self.reported: dict[str, dict[str, float]] = {}
        self.factor = 1.0
        self.out_ratio = 0.25
        self.rtt_base = 1.0
        self.util_in = 0.0
        self.probe_seq = 0
        # Utilisation of intervals no report has closed yet: (spans as reported, in, out). A report
        # makes them measurable; a boot first loses them with the counters (the truth's utilisation).
        self.unreported: list[tuple[list[tuple[int, int]], float, float]] = []


COUNTERS = (
    "in_octets",
    "out_octets",
    "in_ucast_pkts",
    "out_ucast_pkts",
    "in_errors",
    "out_errors",
    "in_discards",
    "out_discards",
)
WRAPPING = ("in_octets", "out_octets", "in_ucast_pkts", "out_ucast_pkts")


class Simulation:
    def __init__(self, config: SimConfig, inventory: Inventory | None = None) -> None:
        self.config = config
        faults = config.faults
        self.inventory = inventory or build_inventory(config.seed, config.scale, config.vendor_share, faults.counter32)
        self.start_ms = config.start_ms
        self.end_ms = config.end_ms
        self.period_ms = config.period_ms
        self.rng = random.Random(f"state:{config.seed}")
        self.fault_rng = random.Random(f"faults:{config.seed}")
        self.msg_rng = random.Random(f"messages:{config.seed}")
        self.truth = TruthBook(self.inventory, self.start_ms, self.end_ms, self.period_ms)
        self.events: list[FaultEvent] = []
        self.stats: Counter[str] = Counter()
        self._heap: list[tuple[int, int, Item]] = []
        self._order = 0
        self._local: dict[int, tuple[int, int]] = {}
        sites = self.inventory.site_map()
        kind_weight: dict[str, float] = {}
        for d in self.inventory.devices:
            if d.kind == "ap":
                site = sites[d.site]
                kind_weight[site.kind] = kind_weight.get(site.kind, 0.0) + site.popularity
        self.arrivals = ArrivalModel(kind_weight)
        self.aps: list[ApState] = []
        self.switches: list[NetState] = []
        self.cpes: list[NetState] = []
        self._site_aps: dict[str, list[ApState]] = {}
        for d in self.inventory.devices:
            uptime = self.rng.uniform(3600.0, 60 * 86_400.0)
            if d.kind == "ap":
                ap = ApState(d, self.start_ms, uptime)
                self._init_ap(ap, sites[d.site].kind, sites[d.site].popularity, uptime)
                self.aps.append(ap)
                self._site_aps.setdefault(d.site, []).append(ap)
            else:
                net = NetState(d, self.start_ms, uptime)
                self._init_net(net, uptime)
                (self.switches if d.kind == "switch" else self.cpes).append(net)
        self._bursts: dict[str, list[tuple[int, int]]] = {}
        self._dfs: dict[str, list[int]] = {}
        self._schedule_faults()

    # -- set-up -------------------------------------------------------------------------------------
    def _init_ap(self, ap: ApState, kind: str, popularity: float, uptime: float) -> None:
        rng, d = self.rng, ap.device
        ap.kind, ap.popularity = kind, popularity
        ap.cpu, ap.mem, ap.temp = rng.uniform(3, 10), rng.uniform(30, 50), rng.uniform(42, 55)
        ap.radios = {
            "2.4": RadioState("2.4", d.channel_24, d.tx_power_24, rng.gauss(-92.0, 1.5), rng.uniform(15, 40)),
            "5": RadioState("5", d.channel_5, d.tx_power_5, rng.gauss(-95.0, 1.5), rng.uniform(2, 10)),
        }
        mean_rate = 48e3 * popularity * rng.uniform(0.5, 1.5)  # bytes/s to clients, over the device's life
        ap.uplink_rx = uptime * mean_rate
        ap.uplink_tx = ap.uplink_rx * 0.15
        for band, share in (("2.4", 0.35), ("5", 0.65)):
            radio = ap.radios[band]
            radio.tx = ap.uplink_rx * share
            radio.rx = ap.uplink_tx * share
            radio.tx_total = radio.tx / 1100 + uptime * BEACONS_PER_S
            radio.tx_retries = radio.tx_total * 0.08
            ap.last_radio[band] = (radio.tx, radio.rx)
        ap.rx_errors = uptime * rng.uniform(0.0, 0.002)
        ap.tx_dropped = uptime * rng.uniform(0.0, 0.001)
        ap.reported_rx, ap.reported_tx = int(ap.uplink_tx), int(ap.uplink_rx)
        # Warm-up: the sessions of the 24 hours before the start, so the city starts mid-life.
        for hour in range(24, 0, -1):
            h0 = self.start_ms - hour * 3_600_000
            weekday, local_hour = self._local_time(h0)
            mean = self.arrivals.rate_per_s(kind, weekday, local_hour) * popularity * 3600
            for _ in range(poisson(rng, mean)):
                session = Session(rng, h0 + rng.random() * 3_600_000)
                if session.end > self.start_ms:
                    elapsed = (self.start_ms - session.start) / 1000
                    session.rx, session.tx = elapsed * session.up, elapsed * session.down
                    ap.sessions.append(session)

    def _init_net(self, net: NetState, uptime: float) -> None:
        rng = self.rng
        net.factor = rng.uniform(0.5, 1.6)
        net.out_ratio = rng.uniform(0.15, 0.35)
        net.rtt_base = rng.uniform(0.8, 2.5)
        for port in net.device.ports:
            octets = uptime * port.speed_mbps * 1e6 / 8 * rng.uniform(0.01, 0.05)
            c = net.counters[port.name]
            c["in_octets"], c["out_octets"] = octets, octets * net.out_ratio
            c["in_ucast_pkts"], c["out_ucast_pkts"] = octets / 900, octets * net.out_ratio / 300
            c["in_errors"] = uptime * rng.uniform(0, 1e-4)
            c["in_discards"] = uptime * rng.uniform(0, 1e-4)
        net.reported = {name: dict(values) for name, values in net.counters.items()}

    def _schedule_faults(self) -> None:
        """Outages, reboots, bursts, DFS events and clock skews, drawn up front from their own stream."""
        f, rng = self.config.faults, self.fault_rng
        devices: list[DeviceState] = [*self.aps, *self.switches, *self.cpes]
        devices.sort(key=lambda s: s.device.index)
        for state in devices:
            if rng.random() < f.clock_skew:
                magnitude = rng.uniform(5.0, f.max_skew_s)
                state.skew_ms = round(magnitude * 1000) * (1 if rng.random() < 0.5 else -1)
                self.events.append(
                    FaultEvent(
                        "clock_skew", state.device.device, self.start_ms, self.end_ms, f"{state.skew_ms / 1000:+.3f} s"
                    )
                )
        block = self.start_ms
        while block < self.end_ms:
            length = min(DAY_MS, self.end_ms - block)
            share = length / DAY_MS
            for state in devices:
                if rng.random() < f.outage * share:
                    d0 = block + int(rng.random() * length)
                    d1 = d0 + int(math.exp(rng.uniform(math.log(900.0), math.log(4 * 3600.0))) * 1000)
                    silent = rng.random() < f.silent_outage
                    if not self._overlaps(state, d0, d1):
                        self._down(state, d0, d1, "outage", "silent" if silent else "will")
                if rng.random() < f.reboot * share:
                    d0 = block + int(rng.random() * length)
                    d1 = d0 + rng.randint(60_000, 180_000)
                    reason = rng.choice(("firmware upgrade", "scheduled reboot", "watchdog"))
                    if not self._overlaps(state, d0, d1):
                        self._down(state, d0, d1, "reboot", reason)
            for site in sorted(self._site_aps):
                if rng.random() < f.burst * share:
                    b0 = block + int(rng.random() * length)
                    b1 = b0 + rng.randint(600_000, 3_600_000)
                    self._bursts.setdefault(site, []).append((b0, b1))
                    self.events.append(FaultEvent("burst", site, b0, b1))
            for ap in self.aps:
                if ap.device.channel_5 in DFS_CHANNELS and rng.random() < f.dfs * share:
                    t = block + int(rng.random() * length)
                    self._dfs.setdefault(ap.device.device, []).append(t)
                    self.events.append(FaultEvent("dfs", ap.device.device, t, t))
            block += length

    @staticmethod
    def _overlaps(state: DeviceState, d0: int, d1: int, margin: int = 120_000) -> bool:
        return any(a - margin <= d1 and d0 <= b + margin for a, b, _, _ in state.down)

    def _down(self, state: DeviceState, d0: int, d1: int, cause: str, detail: str) -> None:
        state.down.append((d0, d1, cause, detail))
        state.down.sort()
        self.truth.down_interval(state.device.device, d0, min(d1, self.end_ms), cause)
        self.events.append(FaultEvent(cause, state.device.device, d0, d1, detail))

    # -- time ---------------------------------------------------------------------------------------
    def _local_time(self, t_ms: float) -> tuple[int, int]:
        """(weekday, hour) in Brussels. Offsets are whole hours, so one lookup per UTC hour."""
        key = int(t_ms // 3_600_000)
        cached = self._local.get(key)
        if cached is None:
            moment = datetime.fromtimestamp(key * 3600, UTC).astimezone(TZ)
            cached = self._local[key] = (moment.weekday(), moment.hour)
        return cached

    # -- the run ------------------------------------------------------------------------------------
    def items(self) -> Iterator[Item]:
        period = self.period_ms
        ticks = math.ceil((self.end_ms - self.start_ms) / period)
        for state in sorted([*self.aps, *self.switches, *self.cpes], key=lambda s: s.device.index):
            d = state.device
            if d.flavour == "canonical":
                t = self.start_ms + (d.phase_ms % period) // 10
                body = p.device_state(d.device, "online", t + state.skew_ms, state.next_seq(), "connected")
                self._emit(self.start_ms, state, "state", body, retain=True, labels=("connect",), periodic=False)
        for tick in range(ticks):
            t0 = self.start_ms + tick * period
            for ap in self.aps:
                self._ap_tick(ap, tick, t0)
            for sw in self.switches:
                self._switch_tick(sw, t0)
            for cpe in self.cpes:
                self._cpe_tick(cpe, t0)
            yield from self._release(t0)
        yield from self._release(None)

    def _release(self, before: int | None) -> Iterator[Item]:
        heap = self._heap
        while heap and (before is None or heap[0][0] < before):
            item = heapq.heappop(heap)[2]
            self.stats[f"message:{item.message}"] += 1
            for label in item.labels:
                self.stats[f"fault:{label.split(':')[0]}"] += 1
            yield item

    def _boundaries(self, state: DeviceState, a: int, b: int) -> list[tuple[int, str, str]]:
        """Events inside (a, b]: downtime starts and ends, and local midnights (to split the truth)."""
        events: list[tuple[int, str, str]] = []
        for d0, d1, cause, detail in state.down:
            if a < d0 <= b:
                events.append((d0, "down", f"{cause}:{detail}"))
            if a < d1 <= b:
                events.append((d1, "up", f"{cause}:{detail}"))
        for _, d0, _ in self.truth.days[1:]:
            if a < d0 < b:
                events.append((d0, "day", ""))
        for t in self._dfs.get(state.device.device, ()):
            if a < t <= b:
                events.append((t, "dfs", ""))
        events.sort()
        return events

    # -- access points ------------------------------------------------------------------------------
    def _ap_tick(self, ap: ApState, tick: int, t0: int) -> None:
        d = ap.device
        b = t0 + d.phase_ms % self.period_ms
        a = max(b - self.period_ms, self.start_ms)  # the run starts with the warmed-up state at start
        ap.tick_rx = ap.tick_tx = 0.0
        cursor = a
        for t, what, detail in self._boundaries(ap, a, b):
            self._ap_segment(ap, cursor, t)
            cursor = t
            if what == "down":
                self._go_down(ap, t, detail)
                ap.sessions.clear()
            elif what == "up":
                self._boot(ap, t, detail)
                for radio in ap.radios.values():
                    radio.rx = radio.tx = radio.tx_total = radio.tx_retries = 0.0
                ap.last_radio = {band: (0.0, 0.0) for band in ap.radios}
                ap.uplink_rx = ap.uplink_tx = ap.rx_errors = ap.tx_dropped = 0.0
                ap.reported_rx = ap.reported_tx = 0
            elif what == "dfs" and ap.up:
                radio = ap.radios["5"]
                old, radio.channel = radio.channel, 36
                if d.flavour == "canonical":
                    body = p.device_event(
                        d.device,
                        t + ap.skew_ms,
                        ap.next_seq(),
                        "radio.dfs_channel_change",
                        "warning",
                        f"radar detected on channel {old}, moved to 36",
                        {"band": "5", "from_channel": old, "to_channel": 36},
                    )
                    self._emit(t, ap, "event", body, labels=("dfs",), periodic=False)
        self._ap_segment(ap, cursor, b)
        clients_tick = tick % self.config.clients_every == 0
        active = [s for s in ap.sessions if s.start <= b] if ap.up else []
        self.truth.client_sample(d, tick, b, len(active), b + ap.skew_ms)
        if clients_tick and ap.up:
            day = self.truth.day_of(b)
            for s in active:
                if s.seen_day != day:
                    s.seen_day = day
                    self.truth.seen_client(d.device, b)
        if not ap.up:
            return
        snap = self._ap_snapshot(ap, b, active, clients_tick)
        self.truth.report_counters(d, snap.ts_ms, snap.uptime_s, snap.uplink_tx_bytes, snap.uplink_rx_bytes)
        if d.flavour == "canonical":
            self._emit(b, ap, "metrics", p.ap_metrics(snap))
            if clients_tick:
                self._emit(b, ap, "clients", p.ap_clients(snap, self.config.client_lists))
                ap.reported_rx, ap.reported_tx = int(ap.uplink_tx), int(ap.uplink_rx)
        else:
            if d.flavour == "unifi":
                body = vendors.unifi_stat_device(d, snap, (b - ap.last_sample_ms) / 1000)
            else:
                body = vendors.netjson_monitoring(d, snap)
            self._emit(b, ap, "stat" if d.flavour == "unifi" else "monitoring", body)
            ap.reported_rx, ap.reported_tx = int(ap.uplink_tx), int(ap.uplink_rx)
        ap.last_sample_ms = b

    def _ap_segment(self, ap: ApState, c0: int, c1: int) -> None:
        if c1 <= c0 or not ap.up:
            return
        rng = self.rng
        begin = max(c0, self.start_ms)
        if c1 > begin:
            weekday, hour = self._local_time((begin + c1) / 2)
            mean = self.arrivals.rate_per_s(ap.kind, weekday, hour) * ap.popularity * (c1 - begin) / 1000
            for _ in range(poisson(rng, mean)):
                session = Session(rng, begin + rng.random() * (c1 - begin))
                ap.sessions.append(session)
                self.truth.session_started(ap.device.device, session.start)
        rx_sum = tx_sum = 0.0
        radios = ap.radios
        for s in ap.sessions:
            o0 = c0 if c0 > s.start else s.start
            o1 = c1 if c1 < s.end else s.end
            if o1 > o0:
                dt = (o1 - o0) / 1000
                rx, tx = dt * s.up, dt * s.down
                s.rx += rx
                s.tx += tx
                radio = radios[s.band]
                radio.rx += rx
                radio.tx += tx
                rx_sum += rx
                tx_sum += tx
        ap.uplink_rx += tx_sum  # what the clients download arrives on the uplink
        ap.uplink_tx += rx_sum
        ap.tick_rx += rx_sum
        ap.tick_tx += tx_sum
        ap.rx_errors += rng.random() * (c1 - c0) / 1000 * 0.002
        ap.tx_dropped += rng.random() * (c1 - c0) / 1000 * 0.001
        self.truth.traffic(ap.device.device, c0, c1, rx_sum, tx_sum)
        ap.sessions = [s for s in ap.sessions if s.end > c1]

    def _ap_snapshot(self, ap: ApState, b: int, active: list[Session], with_clients: bool) -> p.ApSnap:
        rng = self.rng
        dt = max(1.0, (b - ap.last_sample_ms) / 1000)
        n = len(active)
        radios = []
        for band in ("2.4", "5"):
            r = ap.radios[band]
            last_tx, last_rx = ap.last_radio[band]
            d_tx, d_rx = r.tx - last_tx, r.rx - last_rx
            ap.last_radio[band] = (r.tx, r.rx)
            n_band = sum(1 for s in active if s.band == band)
            low, high = (10.0, 45.0) if band == "2.4" else (1.0, 12.0)
            r.cu_bg = min(high, max(low, r.cu_bg + rng.gauss(0.0, 1.5)))
            tx_pct = d_tx * 8 / dt / CAPACITY_BPS[band] * 100
            rx_pct = d_rx * 8 / dt / CAPACITY_BPS[band] * 100
            total = min(98.0, r.cu_bg + tx_pct + rx_pct + 0.4 * n_band)
            frames = d_tx / 1100 + BEACONS_PER_S * dt
            r.tx_total += frames
            r.tx_retries += frames * (0.04 + 0.0015 * total)
            r.noise = min(-85.0, max(-100.0, r.noise + rng.gauss(0.0, 0.3)))
            radios.append(
                p.RadioSnap(
                    band,
                    r.channel,
                    r.width,
                    r.tx_power,
                    round(r.noise, 1),
                    round(total, 1),
                    round(min(total, tx_pct + 0.2 * n_band), 1),
                    round(min(total, rx_pct), 1),
                    n_band,
                    int(r.tx),
                    int(r.rx),
                    int(r.tx_retries),
                    int(r.tx_total),
                )
            )
        clients: tuple[p.ClientSnap, ...] = ()
        if with_clients or ap.device.flavour == "openwrt":
            noise = {band: ap.radios[band].noise for band in ap.radios}
            clients = tuple(
                p.ClientSnap(
                    s.mac,
                    s.band,
                    s.rssi,
                    max(0, round(s.rssi - noise[s.band])),
                    int(s.rx),
                    int(s.tx),
                    int((b - s.start) / 1000),
                )
                for s in active
            )
        cpu = min(95.0, max(0.5, ap.cpu + 0.35 * n + rng.gauss(0.0, 1.5)))
        mem = min(95.0, max(5.0, ap.mem + 0.08 * n + rng.gauss(0.0, 0.4)))
        temp = ap.temp + 0.05 * n + rng.gauss(0.0, 0.4)
        return p.ApSnap(
            device=ap.device.device,
            ts_ms=b + ap.skew_ms,
            seq=ap.next_seq(),
            uptime_s=int((b - ap.boot_ms) / 1000),
            cpu_pct=round(cpu, 1),
            mem_pct=round(mem, 1),
            temperature_c=round(temp, 1),
            num_clients=n,
            uplink_rx_bytes=int(ap.uplink_rx),
            uplink_tx_bytes=int(ap.uplink_tx),
            uplink_rx_errors=int(ap.rx_errors),
            uplink_tx_dropped=int(ap.tx_dropped),
            radios=tuple(radios),
            clients=clients,
            interval_rx_bytes=int(ap.uplink_tx) - ap.reported_rx,
            interval_tx_bytes=int(ap.uplink_rx) - ap.reported_tx,
        )

    # -- down and up --------------------------------------------------------------------------------
    def _go_down(self, state: DeviceState, t: int, detail: str) -> None:
        state.up = False
        d = state.device
        cause, _, how = detail.partition(":")
        if d.flavour != "canonical":
            return
        if cause == "outage" and how == "will":
            body = p.device_state(d.device, "lost", reason="connection lost")
            self._emit(t + WILL_DELAY_MS, state, "state", body, retain=True, labels=("last_will",), periodic=False)
        elif cause == "reboot":
            body = p.device_state(d.device, "rebooting", t + state.skew_ms, state.next_seq(), how)
            self._emit(t, state, "state", body, retain=True, labels=("reboot",), periodic=False)

    def _boot(self, state: DeviceState, t: int, detail: str) -> None:
        state.up = True
        state.boot_ms = t
        state.seq = 0
        state.rebooted = True
        d = state.device
        cause, _, how = detail.partition(":")
        if d.flavour != "canonical":
            return
        reason = "power_loss" if cause == "outage" else how.replace(" ", "_")
        ts = t + state.skew_ms
        body = p.device_state(d.device, "online", ts, state.next_seq(), "connected")
        self._emit(t, state, "state", body, retain=True, labels=("boot",), periodic=False)
        event = p.device_event(
            d.device,
            ts,
            state.next_seq(),
            "boot",
            "warning" if cause == "outage" else "info",
            f"booted ({reason.replace('_', ' ')})",
            {"reason": reason},
        )
        self._emit(t, state, "event", event, labels=("boot",), periodic=False)

    # -- switches and school links ------------------------------------------------------------------
    def _net_interval(self, net: NetState, t0: int) -> tuple[int, int, float, list[tuple[int, int]], float]:
        """Walk (a, b] through downtime; returns (a, b, seconds up, the spans of it the counters
        measure, and their share of the up time): all of it, or after a boot in (a, b] only what came
        after it, since a boot restarts the counters and what they held before is gone."""
        b = t0 + net.device.phase_ms % self.period_ms
        a = max(b - self.period_ms, self.start_ms)
        cursor, up_s = a, 0.0
        spans: list[tuple[int, int]] = []
        booted_at: int | None = None
        for t, what, detail in self._boundaries(net, a, b):
            if net.up:
                up_s += (t - cursor) / 1000
                spans.append((cursor, t))
            cursor = t
            if what == "down":
                self._go_down(net, t, detail)
            elif what == "up":
                self._boot(net, t, detail)
                booted_at = t
                net.unreported.clear()  # what the counters held since the last report is gone
                for values in net.counters.values():
                    for key in values:
                        values[key] = 0.0
        if net.up:
            up_s += (b - cursor) / 1000
            spans.append((cursor, b))
        kept = 1.0
        if booted_at is not None:
            spans = [(x, y) for x, y in spans if x >= booted_at]
            kept = sum(y - x for x, y in spans) / 1000 / up_s if up_s else 0.0
        return a, b, up_s, spans, kept

    @staticmethod
    def _as_reported(net: NetState, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Spans of true time on the device's clock, as its reports stamp them (``clock_skew``): the
        5-minute buckets a KPI engine can put the traffic in are those of the reported times."""
        return [(a + net.skew_ms, b + net.skew_ms) for a, b in spans]

    def _switch_tick(self, sw: NetState, t0: int) -> None:
        a, b, up_s, spans, kept = self._net_interval(sw, t0)
        fraction = up_s * 1000 / self.period_ms
        rng = self.rng
        total_down = total_up = 0.0
        for port in sw.device.ports[:-1]:
            aps = self._site_aps.get(port.peer, [])
            down = sum(ap.tick_rx for ap in aps) * fraction  # AP uplink rx: bytes going to the site
            up = sum(ap.tick_tx for ap in aps) * fraction
            self._count(sw.counters[port.name], up * kept, down * kept, up_s, rng)
            total_down += down
            total_up += up
        self._count(sw.counters[sw.device.ports[-1].name], total_down * kept, total_up * kept, up_s, rng)
        cap = sw.device.ports[-1].speed_mbps * 1e6 / 8 * up_s  # what the uplink could carry while up
        self.truth.traffic(sw.device.device, a, b, total_down, total_up)
        if up_s:
            sw.unreported.append((self._as_reported(sw, spans), total_down / cap, total_up / cap))
        self._net_report(sw, b)

    def _cpe_tick(self, cpe: NetState, t0: int) -> None:
        a, b, up_s, spans, kept = self._net_interval(cpe, t0)
        rng = self.rng
        weekday, hour = self._local_time(b)
        noise = rng.lognormvariate(0.0, 0.3)
        util_in = min(0.97, school_load(weekday, hour) * cpe.factor * noise)
        wan, lan = cpe.device.ports
        cap = wan.speed_mbps * 1e6 / 8  # bytes/s
        down = util_in * cap * up_s
        up = down * cpe.out_ratio
        self._count(cpe.counters[wan.name], down * kept, up * kept, up_s, rng)
        self._count(cpe.counters[lan.name], up * kept, down * kept, up_s, rng)
        self.truth.traffic(cpe.device.device, a, b, down, up)
        if up_s:  # the rate while up: what the link carried over the time it was measured
            cpe.unreported.append((self._as_reported(cpe, spans), down / (cap * up_s), up / (cap * up_s)))
        cpe.util_in = util_in if up_s else 0.0
        self._net_report(cpe, b)
        self._probe(cpe, b + PROBE_OFFSET_MS)

    @staticmethod
    def _count(c: dict[str, float], in_bytes: float, out_bytes: float, up_s: float, rng: random.Random) -> None:
        c["in_octets"] += in_bytes
        c["out_octets"] += out_bytes
        c["in_ucast_pkts"] += in_bytes / 900
        c["out_ucast_pkts"] += out_bytes / 300
        c["in_errors"] += rng.random() * up_s * 2e-4
        c["in_discards"] += rng.random() * up_s * 2e-4
        c["out_discards"] += rng.random() * up_s * 1e-4

    def _net_report(self, net: NetState, b: int) -> None:
        net.last_sample_ms = b
        if not net.up:
            return
        for spans, util_in, util_out in net.unreported:  # this report closes them: they are measured
            self.truth.utilisation(net.device.device, spans, util_in, util_out)
        net.unreported.clear()
        d = net.device
        interfaces = tuple(
            p.IfSnap(port.name, "up", port.speed_mbps, *(int(net.counters[port.name][k]) for k in COUNTERS))
            for port in d.ports
        )
        snap = p.NetSnap(
            d.device, b + net.skew_ms, net.next_seq(), int((b - net.boot_ms) / 1000), d.counter_bits, interfaces
        )
        link = snap.interfaces[-1 if d.kind == "switch" else 0]  # the uplink, the school's wan0
        self.truth.report_counters(d, snap.ts_ms, snap.sys_uptime_s, link.in_octets, link.out_octets)
        labels: list[str] = []
        if d.counter_bits == 32:
            for i in interfaces:
                old = net.reported.get(i.name)
                for key in WRAPPING:
                    new = getattr(i, key)
                    if old is None or net.rebooted:
                        continue
                    delta = new - int(old[key])
                    if delta >= p.UINT32:
                        labels.append(f"counter_wrap_ambiguous:{i.name}/{key}")
                    elif new // p.UINT32 > int(old[key]) // p.UINT32:
                        labels.append(f"counter_wrap:{i.name}/{key}")
        net.reported = {i.name: {k: getattr(i, k) for k in COUNTERS} for i in interfaces}
        net.rebooted = False
        if d.flavour == "canonical":
            self._emit(b, net, "interfaces", p.if_counters(snap), labels=tuple(labels))
        else:
            self._emit(b, net, "snmp", vendors.telegraf_snmp(d, snap), labels=tuple(labels))

    def _probe(self, cpe: NetState, t: int) -> None:
        """The probe system pings each school link every tick; it publishes on the link's topic."""
        rng = self.rng
        sent = 20
        cpe.probe_seq += 1
        rtt: tuple[float, float, float, float] | None = None
        up = cpe.up and not any(d0 <= t < d1 for d0, d1, _, _ in cpe.down)
        received = 0
        if up:
            loss = 0.0005 + (0.03 if cpe.util_in > 0.9 else 0.0)
            received = sent - sum(1 for _ in range(sent) if rng.random() < loss)
            queue = 0.6 * cpe.util_in / max(0.03, 1 - cpe.util_in)
            low = cpe.rtt_base * rng.uniform(0.9, 1.0)
            avg = cpe.rtt_base + queue + rng.uniform(0.0, 0.2)
            high = avg + rng.uniform(0.2, 3.0)
            jitter = rng.uniform(0.05, 0.4) + 0.3 * queue
            if received:
                rtt = (round(low, 3), round(avg, 3), round(high, 3), round(jitter, 3))
        d = cpe.device
        body = p.link_probe(d.device, t, cpe.probe_seq, sent, received, rtt)
        topic = f"{ROOT}/{d.nis}/{d.site}/{d.kind}/{d.device}/probe"
        self._push_faulty(t, topic, p.dumps(body), body, "probe", d, "canonical", (), d.site)

    # -- emitting -----------------------------------------------------------------------------------
    def _emit(
        self,
        at: int,
        state: DeviceState,
        message: str,
        body: dict[str, Any] | bytes,
        retain: bool = False,
        labels: tuple[str, ...] = (),
        periodic: bool = True,
    ) -> None:
        d = state.device
        if d.flavour == "canonical" or message in ("state", "event"):
            topic = f"{ROOT}/{d.nis}/{d.site}/{d.kind}/{d.device}/{message}"
        else:
            topic = vendors.vendor_topic(d)
        payload = body if isinstance(body, bytes) else p.dumps(body)
        if state.skew_ms and "last_will" not in labels:
            labels = (*labels, "clock_skew")
        if not periodic:
            if "last_will" not in labels:
                at, labels = self._burst(d.site, at, labels)
            self._push(Item(at, topic, payload, 1, retain, labels, message, d.device, d.flavour))
            return
        self._push_faulty(at, topic, payload, body, message, d, d.flavour, labels, d.site)

    def _burst(self, site: str, at: int, labels: tuple[str, ...]) -> tuple[int, tuple[str, ...]]:
        for b0, b1 in self._bursts.get(site, ()):
            if b0 <= at < b1:
                return b1, (*labels, "burst")
        return at, labels

    def _push_faulty(
        self,
        at: int,
        topic: str,
        payload: bytes,
        body: dict[str, Any] | bytes,
        message: str,
        d: Device,
        flavour: str,
        labels: tuple[str, ...],
        site: str,
    ) -> None:
        f, rng = self.config.faults, self.msg_rng
        at, labels = self._burst(site, at, labels)
        u = rng.random()
        oversize = rng.random() < f.oversized if (message == "clients" and flavour == "canonical") else False
        if "burst" in labels:
            self._push(Item(at, topic, payload, 1, False, labels, message, d.device, flavour))
            return
        if oversize and isinstance(body, dict):
            big = dict(body)
            big["clients"] = [_runaway_client(k) for k in range(OVERSIZED_CLIENTS)]
            self._push(Item(at, topic, p.dumps(big), 1, False, (*labels, "oversized"), message, d.device, flavour))
            return
        edge = f.malformed
        if u < edge:
            variant, bad = self._malform(payload, body, message, flavour)
            self._push(Item(at, topic, bad, 1, False, (*labels, f"malformed:{variant}"), message, d.device, flavour))
            return
        item = Item(at, topic, payload, 1, False, labels, message, d.device, flavour)
        edge += f.duplicate
        if u < edge:
            self._push(item)
            again = at + rng.randint(50, 5000)
            self._push(Item(again, topic, payload, 1, False, (*labels, "duplicate"), message, d.device, flavour))
            return
        edge += f.out_of_order
        if u < edge:
            held = at + self.period_ms + rng.randint(200, 2000)
            self._push(Item(held, topic, payload, 1, False, (*labels, "out_of_order"), message, d.device, flavour))
            return
        edge += f.late
        if u < edge:
            delay = rng.randint(1_800_000, 4 * 3_600_000)
            late = max(at, min(at + delay, self.end_ms))
            self._push(Item(late, topic, payload, 1, False, (*labels, "late"), message, d.device, flavour))
            return
        self._push(item)

    def _malform(self, payload: bytes, body: dict[str, Any] | bytes, message: str, flavour: str) -> tuple[str, bytes]:
        rng = self.msg_rng
        variant = rng.randrange(4)
        cut = rng.randrange(1, len(payload))
        if flavour != "canonical" or not isinstance(body, dict):
            variant %= 2
        if variant == 0:
            return "truncated", payload[:cut]
        if variant == 1:
            return "garbled", b"\xff\xfe" + payload[2:cut]
        bad = orjson.loads(payload)
        if variant == 2:
            key = {"metrics": "num_clients", "clients": "num_clients", "interfaces": "sys_uptime_s", "probe": "sent"}[
                message
            ]
            bad[key] = "unknown"
            return "wrong_type", p.dumps(bad)
        if message == "metrics":
            bad["cpu_pct"] = 140.0
        elif message == "clients":
            bad["num_clients"] = -1
        elif message == "interfaces":
            bad["interfaces"][0]["speed_mbps"] = -100
        else:
            bad["received"] = bad["sent"] + 5
        return "out_of_range", p.dumps(bad)

    def _push(self, item: Item) -> None:
        self._order += 1
        heapq.heappush(self._heap, (item.at_ms, self._order, item))

    # -- results ------------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        c = self.config
        return {
            "seed": c.seed,
            "scale": c.scale,
            "start": p.iso_ms(self.start_ms),
            "end": p.iso_ms(self.end_ms),
            "period_s": c.period_s,
            "clients_every": c.clients_every,
            "vendor_share": c.vendor_share,
            "faults": c.faults.describe(),
            "devices": len(self.inventory.devices),
            "aps": len(self.aps),
            "switches": len(self.switches),
            "school_links": len(self.cpes),
        }


def _runaway_client(k: int) -> dict[str, Any]:
    mac = f"06:00:00:{(k >> 16) & 0xFF:02x}:{(k >> 8) & 0xFF:02x}:{k & 0xFF:02x}"
    return {"mac": mac, "band": "5", "rssi_dbm": -70, "snr_db": 25, "rx_bytes": 0, "tx_bytes": 0, "connected_s": 0}
