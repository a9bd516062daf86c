"""The simulator's vendor flavours (simulators/vendors.py) through the real broker into InfluxDB.

A small simulated city where every device publishes its vendor's format is published as is; what
is stored is checked against the simulator's inventory, which the payloads do not state in canonical
form: radio channels and powers, port names, speeds and counter widths, and the device tags.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from simulators.city import SimConfig, Simulation
from simulators.faults import FaultConfig
from tests.conftest import Publisher, collector_config, points, running_collector, wait_until

pytestmark = pytest.mark.servers
PERIOD_S = 60


def stored(influxdb: InfluxDB, measurement: str) -> dict[str, list[dict[str, Any]]]:
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in points(influxdb, f'SELECT * FROM "{measurement}"'):
        by_device[row["device"]].append({k: v for k, v in row.items() if v is not None})
    return by_device


async def test_the_simulators_vendor_devices_are_stored_as_their_inventory_says(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    start_ms = int((time.time() - 3600) * 1000)
    simulation = Simulation(
        SimConfig(
            start_ms=start_ms,
            seed=11,
            scale=0.02,
            duration_s=5 * PERIOD_S,
            period_s=PERIOD_S,
            vendor_share=1.0,
            faults=FaultConfig.none(),
        )
    )
    items = list(simulation.items())
    devices = {d.device: d for d in simulation.inventory.devices}
    flavours = {d.flavour for d in devices.values()}
    assert flavours == {"unifi", "openwrt", "telegraf"}
    config = collector_config(mosquitto, influxdb, tmp_path)
    async with running_collector(config) as collector:
        for item in items:
            publisher.publish(item.topic, item.payload, retain=item.retain)
        publisher.flush()
        await wait_until(lambda: collector.counters["messages_committed"] == len(items), what="commit")
    assert dict(collector.dead_letters.counts) == {}

    aps, radios, clients = stored(influxdb, "ap"), stored(influxdb, "ap_radio"), stored(influxdb, "ap_clients")
    netdevs, interfaces = stored(influxdb, "netdev"), stored(influxdb, "interface")
    assert set(aps) == {n for n, d in devices.items() if d.kind == "ap"}
    # OpenWrt APs report their interfaces too
    assert set(netdevs) == {n for n, d in devices.items() if d.kind != "ap" or d.flavour == "openwrt"}
    kind_tagged = {item.device for item in items if item.flavour == "telegraf" and b",kind=" in item.payload}
    for name, device in devices.items():
        tags = {"nis": device.nis, "site": device.site, "device": name}
        if device.kind == "ap":
            rows = sorted(aps[name], key=lambda r: r["time"])
            assert len(rows) == 5, name
            assert all({**r, **tags, "kind": "ap"} == r for r in rows)
            # uptime is in seconds: it grows by the time between reports
            for a, b in itertools.pairwise(rows):
                assert abs((b["uptime_s"] - a["uptime_s"]) - (b["time"] - a["time"]) / 1e9) <= 1, name
            assert all(0 <= r["cpu_pct"] <= 100 and 0 <= r["mem_pct"] <= 100 for r in rows)
            for radio in radios[name]:
                channel, power = {
                    "2.4": (device.channel_24, device.tx_power_24),
                    "5": (device.channel_5, device.tx_power_5),
                }[radio["band"]]
                assert (radio["channel"], radio["tx_power_dbm"]) == (channel, power), (name, radio)
            assert {r["band"] for r in radios[name]} == {"2.4", "5"}
            if device.flavour == "openwrt":
                summary = {r["time"]: r["num_clients"] for r in clients[name]}
                assert summary == {r["time"]: r["num_clients"] for r in rows}, name
        else:
            # Telegraf cannot tell a school CPE from a switch unless its metrics carry a kind tag
            kind = device.kind if name in kind_tagged else "switch"
            assert {r["kind"] for r in netdevs[name]} == {kind}, name
            assert len(netdevs[name]) == 5
            ports = {r["ifname"]: r for r in interfaces[name]}
            assert set(ports) == {p.name for p in device.ports}, name
            for port in device.ports:
                assert ports[port.name]["speed_mbps"] == port.speed_mbps, (name, port)
                assert ports[port.name]["counter_bits"] == device.counter_bits, name
