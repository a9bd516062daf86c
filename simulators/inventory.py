"""The simulated city's inventory: municipalities, sites, devices, links. Seeded and reproducible.

At ``scale=1`` the city has about 900 access points on about 225 sites (wifi.brussels had 867 APs on
221 locations in 2020), 175 school fibre links of 100 Mbit/s (Fiber to the School) and one
aggregation switch per dozen sites. ``scale`` multiplies everything, from a handful of devices
(``0.005``) to about 100,000 (``90``). The inventory is written as JSON for the collector's
enrichment (``city-telemetry simulate --write-inventory PATH``; format in docs/simulator.md).
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from simulators.places import MUNICIPALITIES, NAMED_PLACES, Municipality, SiteKind

FORMAT = "city-telemetry.inventory/1"

APS_AT_SCALE_1 = 900
SCHOOLS_AT_SCALE_1 = 175
SITES_PER_SWITCH = 12
SCHOOL_LINK_MBPS = 100
AP_UPLINK_MBPS = 1000
SWITCH_UPLINK_MBPS = 10_000
MAX_DEVICES = 110_000

DeviceKind = Literal["ap", "switch", "cpe"]
Flavour = Literal["canonical", "unifi", "openwrt", "telegraf"]

# Access points per site by kind: (low, high), drawn uniformly. Mean about 4 (domain.md §6 hints).
APS_PER_SITE: dict[SiteKind, tuple[int, int]] = {
    "metro": (4, 8),
    "square": (3, 5),
    "park": (2, 5),
    "library": (2, 3),
    "town_hall": (2, 4),
}
# How busy one AP of a site of this kind is, relative to the city's mean.
KIND_POPULARITY: dict[SiteKind, float] = {"metro": 1.35, "square": 1.1, "park": 0.8, "library": 0.9, "town_hall": 0.7}
TOP_SPOTS = frozenset({"gare-du-midi", "arts-loi", "de-brouckere", "grand-place"})  # domain.md §3.3
FILL_ORDER: tuple[SiteKind, ...] = ("square", "park", "metro", "library", "square", "park")

CHANNELS_24 = (1, 6, 11)
CHANNELS_5 = (36, 52, 100, 116, 132, 149)  # 80 MHz blocks; 52-144 need DFS
DFS_CHANNELS = frozenset(range(52, 145))


@dataclass(frozen=True, slots=True)
class Site:
    site: str
    nis: str
    name: str
    kind: str  # a SiteKind, or "school" / "pop" (aggregation point)
    lat: float
    lon: float
    popularity: float = 1.0  # per-AP busyness multiplier (APs only)
    switch: str | None = None  # the aggregation switch serving this site


@dataclass(frozen=True, slots=True)
class Port:
    name: str
    speed_mbps: int
    peer: str  # the site (downlink) or "core" (uplink)


@dataclass(frozen=True, slots=True)
class Device:
    device: str
    kind: DeviceKind
    nis: str
    site: str
    model: str
    flavour: Flavour
    link_capacity_mbps: int  # the device's uplink: AP 1000, switch 10000, school CPE 100
    counter_bits: Literal[32, 64] = 64
    index: int = 0  # position in the inventory, used to derive MAC and management addresses
    phase_ms: int = 0  # where in each report period the device reports (offset from the period start)
    uplink: str | None = None  # the device this one hangs off (AP -> switch)
    channel_24: int = 0
    channel_5: int = 0
    tx_power_24: int = 0
    tx_power_5: int = 0
    ports: tuple[Port, ...] = ()

    @property
    def mac(self) -> str:
        value = 0x02_00_00_00_00_00 | (self.index & 0xFF_FFFF_FFFF)
        return ":".join(f"{(value >> shift) & 0xFF:02x}" for shift in range(40, -8, -8))

    @property
    def mgmt_ip(self) -> str:
        return f"10.{20 + self.index // 65_536}.{(self.index // 256) % 256}.{self.index % 256}"


@dataclass(slots=True)
class Inventory:
    seed: int
    scale: float
    vendor_share: float
    counter32_share: float
    municipalities: tuple[Municipality, ...] = MUNICIPALITIES
    sites: list[Site] = field(default_factory=list)
    devices: list[Device] = field(default_factory=list)

    def site_map(self) -> dict[str, Site]:
        return {s.site: s for s in self.sites}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "seed": self.seed,
            "scale": self.scale,
            "vendor_share": self.vendor_share,
            "counter32_share": self.counter32_share,
            "municipalities": [asdict(m) for m in self.municipalities],
            "sites": [asdict(s) for s in self.sites],
            "devices": [
                {
                    "device": d.device,
                    "kind": d.kind,
                    "nis": d.nis,
                    "site": d.site,
                    "model": d.model,
                    "flavour": d.flavour,
                    "link_capacity_mbps": d.link_capacity_mbps,
                    "counter_bits": d.counter_bits,
                    "uplink": d.uplink,
                    **({"ports": [asdict(p) for p in d.ports]} if d.ports else {}),
                    **({"channels": {"2.4": d.channel_24, "5": d.channel_5}} if d.kind == "ap" else {}),
                }
                for d in self.devices
            ],
        }

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def load_inventory(path: Path) -> dict[str, Any]:
    """Read an inventory file; returns ``{"devices": {device_id: {...}}, "sites": {...}, ...}`` keyed for
    enrichment lookups (a device's site, municipality, kind and link capacity)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file (format={data.get('format')!r})")
    return {
        "format": data["format"],
        "municipalities": {m["nis"]: m for m in data["municipalities"]},
        "sites": {(s["nis"], s["site"]): s for s in data["sites"]},
        "devices": {d["device"]: d for d in data["devices"]},
    }


def _apportion(total: int, weights: list[float]) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder)."""
    whole = sum(weights)
    raw = [total * w / whole for w in weights]
    parts = [math.floor(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: (parts[i] - raw[i], i))[: total - sum(parts)]:
        parts[i] += 1
    return parts


def _near(rng: random.Random, m: Municipality, spread_km: float = 1.4) -> tuple[float, float]:
    dlat = rng.gauss(0, spread_km) / 111.0
    dlon = rng.gauss(0, spread_km) / (111.0 * math.cos(math.radians(m.lat)))
    return round(m.lat + dlat, 5), round(m.lon + dlon, 5)


def build_inventory(
    seed: int = 7, scale: float = 1.0, vendor_share: float = 0.0, counter32_share: float = 0.25
) -> Inventory:
    """The city for ``seed`` and ``scale``. Flavours and counter widths have RNG streams of their own,
    so changing ``vendor_share`` or ``counter32_share`` does not move a site or rename a device."""
    if scale <= 0:
        raise ValueError("scale must be positive")
    if not 0.0 <= vendor_share <= 1.0 or not 0.0 <= counter32_share <= 1.0:
        raise ValueError("vendor_share and counter32_share are shares between 0 and 1")
    rng = random.Random(f"inventory:{seed}")
    flavour_rng = random.Random(f"flavour:{seed}")
    width_rng = random.Random(f"counters:{seed}")
    phase_rng = random.Random(f"phase:{seed}")
    inventory = Inventory(seed=seed, scale=scale, vendor_share=vendor_share, counter32_share=counter32_share)
    n_aps = max(1, round(APS_AT_SCALE_1 * scale))
    n_schools = max(1, round(SCHOOLS_AT_SCALE_1 * scale))
    estimate = n_aps + n_schools + n_aps / 4 / SITES_PER_SWITCH
    if estimate > MAX_DEVICES:
        raise ValueError(f"scale {scale} gives about {estimate:.0f} devices; the simulator stops at {MAX_DEVICES}")

    populations = [float(m.population) for m in MUNICIPALITIES]
    ap_budget = _apportion(n_aps, populations)
    index = 0
    ap_sites: dict[str, list[Site]] = {}
    ap_plan: list[tuple[Site, int]] = []
    for m, budget in zip(MUNICIPALITIES, ap_budget, strict=True):
        sites: list[Site] = []
        named = list(NAMED_PLACES[m.nis])
        filler = 0
        left = budget
        while left > 0:
            if named:
                slug, name, kind = named.pop(0)
            else:
                kind = FILL_ORDER[filler % len(FILL_ORDER)]
                filler += 1
                slug = f"{kind.replace('_', '-')}-{m.nis}-{filler:03d}"
                name = f"{kind.replace('_', ' ').title()} {filler} ({m.name_fr})"
            low, high = APS_PER_SITE[kind]
            count = min(left, rng.randint(low, high))
            left -= count
            lat, lon = _near(rng, m)
            popularity = KIND_POPULARITY[kind] * math.exp(rng.gauss(0.0, 0.35)) * (2.0 if slug in TOP_SPOTS else 1.0)
            sites.append(Site(slug, m.nis, name, kind, lat, lon, round(popularity, 4)))
            ap_plan.append((sites[-1], count))
        ap_sites[m.nis] = sites

    # Aggregation switches: one per SITES_PER_SWITCH sites of a municipality, at a point of presence.
    switch_of: dict[str, str] = {}
    switches: list[Device] = []
    for m in MUNICIPALITIES:
        sites = ap_sites[m.nis]
        n_switches = math.ceil(len(sites) / SITES_PER_SWITCH)
        for k in range(n_switches):
            served = sites[k::n_switches]
            device_id = f"sw-{m.nis}-{k + 1:02d}"
            lat, lon = _near(rng, m, 0.5)
            pop = Site(f"pop-{m.nis}-{k + 1:02d}", m.nis, f"Point of presence {k + 1} ({m.name_fr})", "pop", lat, lon)
            inventory.sites.append(pop)
            ports = tuple(Port(f"ge-0/0/{i}", AP_UPLINK_MBPS, s.site) for i, s in enumerate(served))
            ports += (Port("xe-0/1/0", SWITCH_UPLINK_MBPS, "core"),)
            for s in served:
                switch_of[s.site] = device_id
            switches.append(
                Device(device_id, "switch", m.nis, pop.site, "EX2300-24T", "canonical", SWITCH_UPLINK_MBPS, ports=ports)
            )

    per_municipality: dict[str, int] = {}
    for site, count in ap_plan:
        placed = Site(
            site.site, site.nis, site.name, site.kind, site.lat, site.lon, site.popularity, switch_of[site.site]
        )
        inventory.sites.append(placed)
        for k in range(count):
            per_municipality[site.nis] = per_municipality.get(site.nis, 0) + 1
            flavour: Flavour = "canonical"
            if flavour_rng.random() < vendor_share:
                flavour = "unifi" if flavour_rng.random() < 0.5 else "openwrt"
            model = {"canonical": "generic-ax3000", "unifi": "U7PG2", "openwrt": "OpenWrt-23.05"}[flavour]
            inventory.devices.append(
                Device(
                    device=f"ap-{site.nis}-{per_municipality[site.nis]:04d}",
                    kind="ap",
                    nis=site.nis,
                    site=site.site,
                    model=model,
                    flavour=flavour,
                    link_capacity_mbps=AP_UPLINK_MBPS,
                    index=index,
                    phase_ms=phase_rng.randrange(60_000),
                    uplink=switch_of[site.site],
                    channel_24=CHANNELS_24[k % len(CHANNELS_24)],
                    channel_5=CHANNELS_5[(k + rng.randrange(len(CHANNELS_5))) % len(CHANNELS_5)],
                    tx_power_24=rng.randint(14, 20),
                    tx_power_5=rng.randint(17, 23),
                )
            )
            index += 1

    for sw in switches:
        inventory.devices.append(
            _network_device(sw, index, flavour_rng, width_rng, phase_rng, vendor_share, counter32_share)
        )
        index += 1

    school_budget = _apportion(n_schools, populations)
    for m, count in zip(MUNICIPALITIES, school_budget, strict=True):
        for k in range(count):
            lat, lon = _near(rng, m)
            school = Site(f"school-{m.nis}-{k + 1:03d}", m.nis, f"School {k + 1} ({m.name_fr})", "school", lat, lon)
            inventory.sites.append(school)
            ports = (Port("wan0", SCHOOL_LINK_MBPS, "core"), Port("lan0", 1000, school.site))
            cpe = Device(
                f"cpe-{m.nis}-{k + 1:03d}",
                "cpe",
                m.nis,
                school.site,
                "FttS-CPE",
                "canonical",
                SCHOOL_LINK_MBPS,
                ports=ports,
            )
            inventory.devices.append(
                _network_device(cpe, index, flavour_rng, width_rng, phase_rng, vendor_share, counter32_share)
            )
            index += 1
    return inventory


def _network_device(
    device: Device,
    index: int,
    flavour_rng: random.Random,
    width_rng: random.Random,
    phase_rng: random.Random,
    vendor_share: float,
    counter32_share: float,
) -> Device:
    flavour: Flavour = "telegraf" if flavour_rng.random() < vendor_share else "canonical"
    bits: Literal[32, 64] = 32 if width_rng.random() < counter32_share else 64
    return Device(
        device.device,
        device.kind,
        device.nis,
        device.site,
        device.model,
        flavour,
        device.link_capacity_mbps,
        counter_bits=bits,
        index=index,
        phase_ms=phase_rng.randrange(60_000),
        ports=device.ports,
    )
