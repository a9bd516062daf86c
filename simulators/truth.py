"""Ground truth: the true KPI values of a run, kept from the simulator's own state as it runs.

Nothing here reads a published message. The simulation reports what really happened (a device was
down from t0 to t1, these clients were associated at this instant, this many bytes crossed this
radio) and this module sums it per local day, per device and per municipality. Definitions are in
docs/simulator.md ("Ground truth").
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from simulators.inventory import Device, Inventory

TZ = ZoneInfo("Europe/Brussels")
REBOOT_SLACK_MS = 2000  # uptime is whole seconds: a boot is later than the previous report by more


def local_days(start_ms: int, end_ms: int) -> list[tuple[str, int, int]]:
    """The local (Brussels) calendar days that [start, end) touches, clipped to it: (date, from, to)."""
    days = []
    day = datetime.fromtimestamp(start_ms / 1000, TZ).date()
    while True:
        d0 = int(datetime(day.year, day.month, day.day, tzinfo=TZ).timestamp() * 1000)
        nxt = day + timedelta(days=1)
        d1 = int(datetime(nxt.year, nxt.month, nxt.day, tzinfo=TZ).timestamp() * 1000)
        if d0 >= end_ms:
            break
        days.append((day.isoformat(), max(d0, start_ms), min(d1, end_ms)))
        day = nxt
    return days


def overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(slots=True)
class DayAcc:
    samples: int = 0
    clients_sum: int = 0
    clients_max: int = 0
    unique: int = 0
    sessions: int = 0
    rx: float = 0.0
    tx: float = 0.0
    # Per 5-minute bucket: the utilisation in and out times the milliseconds measured, and those ms.
    util_buckets: dict[int, list[float]] = field(default_factory=dict)

    @property
    def util_in(self) -> list[float]:
        """The mean utilisation in of each 5-minute bucket the reports measured (docs/kpis.md)."""
        return [b[0] / b[2] for _, b in sorted(self.util_buckets.items()) if b[2]]

    @property
    def util_out(self) -> list[float]:
        return [b[1] / b[2] for _, b in sorted(self.util_buckets.items()) if b[2]]

    # What the reports can observe (docs/simulator.md "Ground truth"): counter increases between
    # consecutive reports, strictly inside the day (obs_*) and shared pro rata of time (prorata_*).
    obs_a: int = 0
    obs_b: int = 0
    prorata_a: float = 0.0
    prorata_b: float = 0.0
    multiwrap: int = 0
    # The KPI definition of concurrent clients (5-minute buckets, docs/kpis.md "Clients"): per bucket of
    # the reports' own time, the clients of the AP's last report in it.
    buckets: dict[int, int] = field(default_factory=dict)


BUCKET_MS = 300_000  # the 5-minute buckets of peak and mean concurrent clients


class TruthBook:
    def __init__(self, inventory: Inventory, start_ms: int, end_ms: int, period_ms: int) -> None:
        self.inventory = inventory
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.period_ms = period_ms
        self.days = local_days(start_ms, end_ms)
        self._day_starts = [d0 for _, d0, _ in self.days]
        self.acc: dict[str, list[DayAcc]] = {d.device: [DayAcc() for _ in self.days] for d in inventory.devices}
        self.down: dict[str, list[tuple[int, int, str]]] = {d.device: [] for d in inventory.devices}
        # clients summed over a municipality's APs, per report tick: day -> nis -> tick -> clients
        self.ticks: list[dict[str, dict[int, int]]] = [{} for _ in self.days]
        self.unseen_sessions = 0
        self.last_report: dict[str, tuple[int, int, int]] = {}  # device -> (ts, counter a, counter b)

    def day_of(self, t_ms: float) -> int:
        """Index of the local day containing t (clamped to the run)."""
        lo, hi = 0, len(self._day_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._day_starts[mid] <= t_ms:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def in_run(self, t_ms: float) -> bool:
        return self.start_ms <= t_ms < self.end_ms

    # -- what the simulation reports ----------------------------------------------------------------
    def down_interval(self, device: str, d0: int, d1: int, cause: str) -> None:
        self.down[device].append((d0, d1, cause))

    def client_sample(self, device: Device, tick: int, t_ms: int, clients: int, reported_ms: int | None = None) -> None:
        """The true clients at a report instant ``t_ms``; ``reported_ms``: the time the report carries
        (the device's clock), whose 5-minute bucket the KPI engine puts it in."""
        if not self.in_run(t_ms):
            return
        day = self.day_of(t_ms)
        acc = self.acc[device.device][day]
        acc.samples += 1
        acc.clients_sum += clients
        acc.clients_max = max(acc.clients_max, clients)
        acc.buckets[(t_ms if reported_ms is None else reported_ms) // BUCKET_MS] = clients  # in time order
        per_tick = self.ticks[day].setdefault(device.nis, {})
        per_tick[tick] = per_tick.get(tick, 0) + clients

    def seen_client(self, device: str, t_ms: int) -> None:
        if self.in_run(t_ms):
            self.acc[device][self.day_of(t_ms)].unique += 1

    def session_started(self, device: str, t_ms: float) -> None:
        if self.in_run(t_ms):
            self.acc[device][self.day_of(t_ms)].sessions += 1

    def traffic(self, device: str, t0_ms: float, t1_ms: float, rx: float, tx: float) -> None:
        """``rx``/``tx`` bytes spread evenly over [t0, t1); only the part inside the run counts."""
        length = t1_ms - t0_ms
        if length <= 0 or (rx == 0 and tx == 0):
            return
        first, last = self.day_of(t0_ms), self.day_of(t1_ms)
        for day in range(first, last + 1):
            _, d0, d1 = self.days[day]
            share = overlap(t0_ms, t1_ms, d0, d1) / length
            if share > 0:
                acc = self.acc[device][day]
                acc.rx += rx * share
                acc.tx += tx * share

    def report_counters(self, device: Device, ts_ms: int, uptime_s: int, a: int, b: int) -> None:
        """A report of the device's volume counters: AP ``a``/``b`` = bytes from/to clients (its uplink
        tx/rx), link ``a``/``b`` = in/out octets. Values are the true running totals (a 32-bit device
        reports them modulo 2**32), ``ts_ms`` and ``uptime_s`` as the report carries them (device
        clock). A boot after the previous report means the counters restarted from zero."""
        previous = self.last_report.get(device.device)
        self.last_report[device.device] = (ts_ms, a, b)
        if previous is None:
            return
        t0, a0, b0 = previous
        boot = ts_ms - uptime_s * 1000
        if boot > t0 + REBOOT_SLACK_MS:
            da, db, start = a, b, boot
        else:
            da, db, start = a - a0, b - b0, t0
        first, last = self._report_day(t0), self._report_day(ts_ms)
        if last is not None and first == last:
            acc = self.acc[device.device][last]
            acc.obs_a += da
            acc.obs_b += db
            if device.counter_bits == 32 and max(da, db) >= 2**32:
                acc.multiwrap += 1
        for day, (_, d0, d1) in enumerate(self.days):
            if ts_ms == start:
                part = 1.0 if d0 <= ts_ms < d1 else 0.0
            else:
                part = overlap(start, ts_ms, d0, d1) / (ts_ms - start)
            if part > 0:
                acc = self.acc[device.device][day]
                acc.prorata_a += da * part
                acc.prorata_b += db * part

    def _report_day(self, t_ms: int) -> int | None:
        """The day of the run a report's timestamp falls in (None outside the run)."""
        for day, (_, d0, d1) in enumerate(self.days):
            if d0 <= t_ms < d1:
                return day
        return None

    def utilisation(self, device: str, spans: list[tuple[int, int]], util_in: float, util_out: float) -> None:
        """One report interval's utilisation while the link was up (``spans``: the parts of the
        interval it was), shared among the 5-minute buckets those parts cover by time: each bucket's
        figure is the mean rate of the time it was measured (the KPI's samples are 5-minute buckets of
        counter deltas; a bucket the link was down throughout has none). The first interval of the
        run is left out: no earlier report opens it, so no counter delta measures it."""
        if device not in self.last_report:
            return
        for a_ms, b_ms in spans:
            bucket = a_ms - a_ms % BUCKET_MS
            while bucket < b_ms:
                part = min(b_ms, bucket + BUCKET_MS) - max(a_ms, bucket)
                if part > 0 and self.in_run(bucket):
                    sums = self.acc[device][self.day_of(bucket)].util_buckets.setdefault(bucket, [0.0, 0.0, 0.0])
                    sums[0] += util_in * part
                    sums[1] += util_out * part
                    sums[2] += part
                bucket += BUCKET_MS

    # -- the result ---------------------------------------------------------------------------------
    def up_ms(self, device: str, day: int) -> float:
        _, d0, d1 = self.days[day]
        down = sum(overlap(a, b, d0, d1) for a, b, _ in self.down[device])
        return (d1 - d0) - down

    def result(self, meta: dict[str, Any]) -> dict[str, Any]:
        out_days = []
        for day, (date, d0, d1) in enumerate(self.days):
            span = d1 - d0
            devices: dict[str, Any] = {}
            for device in self.inventory.devices:
                devices[device.device] = self._device_day(device, day, span)
            out_days.append(
                {
                    "date": date,
                    "from": _iso(d0),
                    "to": _iso(d1),
                    "period_s": span / 1000,
                    "devices": devices,
                    "municipalities": self._municipalities(day, span, devices),
                }
            )
        return {"format": "city-telemetry.truth/1", "simulation": meta, "days": out_days}

    def _device_day(self, device: Device, day: int, span: float) -> dict[str, Any]:
        acc = self.acc[device.device][day]
        up = self.up_ms(device.device, day)
        entry: dict[str, Any] = {
            "nis": device.nis,
            "site": device.site,
            "kind": device.kind,
            "availability_pct": round(100 * up / span, 4) if span else 100.0,
            "up_s": round(up / 1000, 3),
            "outages": self._count_down(device.device, day, "outage"),
            "reboots": self._count_down(device.device, day, "reboot"),
        }
        if device.kind == "ap":
            entry.update(
                samples=acc.samples,
                peak_clients=acc.clients_max,
                mean_clients=round(acc.clients_sum / acc.samples, 4) if acc.samples else 0.0,
                **self._concurrent_5m([device], day, span),
                unique_clients=acc.unique,
                sessions=acc.sessions,
                rx_bytes=round(acc.rx),
                tx_bytes=round(acc.tx),
                observable_rx_bytes=acc.obs_a,
                observable_tx_bytes=acc.obs_b,
                prorata_rx_bytes=round(acc.prorata_a),
                prorata_tx_bytes=round(acc.prorata_b),
            )
        else:
            port = device.ports[-1] if device.kind == "switch" else device.ports[0]
            entry.update(
                link=port.name,
                link_capacity_mbps=port.speed_mbps,
                in_bytes=round(acc.rx),
                out_bytes=round(acc.tx),
                utilisation_in_mean_pct=_mean_pct(acc.util_in),
                utilisation_in_p95_pct=round(100 * percentile(acc.util_in, 95), 4),
                utilisation_in_max_pct=round(100 * max(acc.util_in, default=0.0), 4),
                utilisation_out_mean_pct=_mean_pct(acc.util_out),
                utilisation_out_p95_pct=round(100 * percentile(acc.util_out, 95), 4),
                observable_in_bytes=acc.obs_a,
                observable_out_bytes=acc.obs_b,
                prorata_in_bytes=round(acc.prorata_a),
                prorata_out_bytes=round(acc.prorata_b),
                multiwrap_intervals=acc.multiwrap,
            )
        return entry

    def _concurrent_5m(self, aps: list[Device], day: int, span: float) -> dict[str, Any]:
        """Peak and mean over the day's 5-minute buckets of the sum of the APs' clients (a bucket with no
        report of an AP counts 0 for it), as the KPI engine defines them."""
        _, d0, d1 = self.days[day]
        totals: dict[int, int] = {}
        for ap in aps:
            for acc in self.acc[ap.device]:  # every day's: a report near midnight may carry the other day's time
                for bucket, clients in acc.buckets.items():
                    if d0 <= bucket * BUCKET_MS < d1:
                        totals[bucket] = totals.get(bucket, 0) + clients
        return {
            "peak_clients_5m": max(totals.values(), default=0),
            "mean_clients_5m": round(sum(totals.values()) / (span / BUCKET_MS), 4),
        }

    def _count_down(self, device: str, day: int, cause: str) -> int:
        _, d0, d1 = self.days[day]
        return sum(1 for a, b, c in self.down[device] if c == cause and a < d1 and b > d0)

    def _municipalities(self, day: int, span: float, devices: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for m in self.inventory.municipalities:
            aps = [d for d in self.inventory.devices if d.nis == m.nis and d.kind == "ap"]
            schools = [d for d in self.inventory.devices if d.nis == m.nis and d.kind == "cpe"]
            if not aps and not schools:
                continue
            ticks = self.ticks[day].get(m.nis, {})
            n_ticks = max((devices[d.device]["samples"] for d in aps), default=0)
            entry: dict[str, Any] = {
                "name_fr": m.name_fr,
                "name_nl": m.name_nl,
                "aps": len(aps),
                "ap_availability_pct": _ratio_pct(sum(devices[d.device]["up_s"] for d in aps), len(aps) * span / 1000),
                "peak_clients": max(ticks.values(), default=0),
                "mean_clients": round(sum(ticks.values()) / n_ticks, 4) if n_ticks else 0.0,
                **self._concurrent_5m(aps, day, span),
                "unique_clients": sum(devices[d.device]["unique_clients"] for d in aps),
                "sessions": sum(devices[d.device]["sessions"] for d in aps),
                "rx_bytes": sum(devices[d.device]["rx_bytes"] for d in aps),
                "tx_bytes": sum(devices[d.device]["tx_bytes"] for d in aps),
                **{
                    f"{kind}_{way}_bytes": sum(devices[d.device][f"{kind}_{way}_bytes"] for d in aps)
                    for kind in ("observable", "prorata")
                    for way in ("rx", "tx")
                },
                "school_links": len(schools),
            }
            if schools:
                util = [u for d in schools for u in self.acc[d.device][day].util_in]
                entry.update(
                    school_link_availability_pct=_ratio_pct(
                        sum(devices[d.device]["up_s"] for d in schools), len(schools) * span / 1000
                    ),
                    school_in_bytes=sum(devices[d.device]["in_bytes"] for d in schools),
                    school_out_bytes=sum(devices[d.device]["out_bytes"] for d in schools),
                    school_observable_in_bytes=sum(devices[d.device]["observable_in_bytes"] for d in schools),
                    school_observable_out_bytes=sum(devices[d.device]["observable_out_bytes"] for d in schools),
                    school_prorata_in_bytes=sum(devices[d.device]["prorata_in_bytes"] for d in schools),
                    school_prorata_out_bytes=sum(devices[d.device]["prorata_out_bytes"] for d in schools),
                    school_utilisation_in_mean_pct=_mean_pct(util),
                    school_utilisation_in_p95_pct=round(100 * percentile(util, 95), 4),
                )
            out[m.nis] = entry
        return out

    def write(self, path: Path, meta: dict[str, Any]) -> dict[str, Any]:
        result = self.result(meta)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return result


def _iso(t_ms: float) -> str:
    return datetime.fromtimestamp(t_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _mean_pct(values: list[float]) -> float:
    return round(100 * sum(values) / len(values), 4) if values else 0.0


def _ratio_pct(part: float, whole: float) -> float:
    return round(100 * part / whole, 4) if whole else 100.0
