"""Device -> site, municipality, kind and link capacity, from the city's inventory file.

Contract: ``load_places(path)`` reads the inventory (``city-telemetry.inventory/1``, the format the
simulator writes with ``--write-inventory`` and docs/simulator.md documents, so a city can write its
own from its asset database) into a ``Places`` index; ``Places.place(device, tags)`` returns the
``Place`` a KPI groups by. A device missing from the inventory is never dropped: it gets a Place from
its topic tags (``nis``, ``site``, ``kind``) with ``known=False`` and no capacity, so its KPIs are
still computed and grouped, and the caller counts it as unknown. A malformed inventory is refused at
load time with a message naming what is wrong; nothing is guessed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.ingest.inventory import FORMAT, InventoryError, read_json

REGION = "bxl"  # the Brussels-Capital Region: the top of the aggregation
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Place:
    device: str
    kind: str  # ap, switch, cpe... (the topic's kind)
    site: str
    nis: str
    municipality: str  # name (French where the inventory has two), or "unknown"
    region: str = REGION
    capacity_mbps: int | None = None  # the device's link (AP and switch uplink, school fibre)
    link: str | None = None  # the interface that is that link (switch uplink, school wan0), if known
    counter_bits: int | None = None
    ports: tuple[tuple[str, int], ...] = ()  # (ifname, speed_mbps) of every port the inventory lists
    known: bool = True

    def port_mbps(self, ifname: str) -> int | None:
        """The speed of an interface, from the inventory (the link's capacity for the link itself)."""
        for name, speed in self.ports:
            if name == ifname:
                return speed
        return self.capacity_mbps if ifname == self.link else None

    def level(self, level: str) -> str:
        """This place's key at an aggregation level: device, site, municipality or region."""
        if level == "device":
            return self.device
        if level == "site":
            return f"{self.nis}/{self.site}"  # a site is identified by (nis, site)
        if level == "municipality":
            return self.nis
        if level == "region":
            return self.region
        raise ValueError(f"unknown aggregation level {level!r} (device, site, municipality, region)")


@dataclass(frozen=True, slots=True)
class Places:
    devices: Mapping[str, Place] = field(default_factory=dict)
    municipalities: Mapping[str, str] = field(default_factory=dict)  # nis -> name

    def place(self, device: str, tags: Mapping[str, str] | None = None) -> Place:
        """The device's place; from its topic tags, flagged unknown, if the inventory lacks it."""
        found = self.devices.get(device)
        if found is not None:
            return found
        tags = tags or {}
        nis = tags.get("nis", UNKNOWN)
        return Place(
            device=device,
            kind=tags.get("kind", UNKNOWN),
            site=tags.get("site", UNKNOWN),
            nis=nis,
            municipality=self.municipalities.get(nis, UNKNOWN),
            known=False,
        )


def load_places(path: Path, region: str = REGION) -> Places:
    return parse_places(read_json(path), str(path), region)


def parse_places(data: Any, where: str = "inventory", region: str = REGION) -> Places:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InventoryError(f"{where}: not a {FORMAT} file")
    names: dict[str, str] = {}
    for i, m in enumerate(_list(data, "municipalities", where, required=False)):
        nis, name = m.get("nis"), m.get("name_fr") or m.get("name") or m.get("name_nl")
        if not isinstance(nis, str) or not isinstance(name, str):
            raise InventoryError(f"{where}: municipalities[{i}] needs a 'nis' code and a name ('name_fr' or 'name')")
        names[nis] = name
    devices: dict[str, Place] = {}
    for i, d in enumerate(_list(data, "devices", where, required=True)):
        devices_key = f"{where}: devices[{i}]"
        for key in ("device", "kind", "nis", "site"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise InventoryError(f"{devices_key}: '{key}' must be a non-empty string")
        if d["device"] in devices:
            raise InventoryError(f"{devices_key}: device {d['device']!r} is listed twice")
        capacity = d.get("link_capacity_mbps")
        if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool) or capacity <= 0):
            raise InventoryError(f"{devices_key}: 'link_capacity_mbps' must be a positive integer")
        bits = d.get("counter_bits")
        if bits not in (None, 32, 64):
            raise InventoryError(f"{devices_key}: 'counter_bits' must be 32 or 64")
        ports: list[tuple[str, int]] = []
        link: str | None = None
        for j, p in enumerate(d.get("ports") or []):
            if (
                not isinstance(p, dict)
                or not isinstance(p.get("name"), str)
                or not isinstance(p.get("speed_mbps"), int)
            ):
                raise InventoryError(f"{devices_key}: ports[{j}] needs a 'name' and an integer 'speed_mbps'")
            ports.append((p["name"], p["speed_mbps"]))
            if p.get("peer") == "core" and link is None:
                link = p["name"]  # the port towards the core is the device's link
        devices[d["device"]] = Place(
            device=d["device"],
            kind=d["kind"],
            site=d["site"],
            nis=d["nis"],
            municipality=names.get(d["nis"], UNKNOWN),
            region=region,
            capacity_mbps=capacity,
            link=link,
            counter_bits=bits,
            ports=tuple(ports),
        )
    return Places(devices, names)


def _list(data: dict[str, Any], key: str, where: str, required: bool) -> list[dict[str, Any]]:
    value = data.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise InventoryError(f"{where}: '{key}' must be a list of objects")
    return value
