"""The bridges' figures quoted in docs/bridges.md: how fast a webhook is answered, how long a big poll takes.

1. Meraki webhooks: the bridge as the real CLI subprocess (webhook only), a real mosquitto; 500
   alerts posted one after the other; the time from POST to the 200, which the bridge sends only
   after the broker's PUBACK.
2. UniFi: one ``--once`` poll of a controller of our own (the tests' fake, on 127.0.0.1) serving
   900 access points (the unpoller UAP dump with distinct MACs) and 9,000 wireless clients; wall
   time of the whole command, interpreter start included.

Loopback only; the figures depend on the machine (docs/bridges.md says which).
Run: .venv/bin/python -m bench.bridges
"""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from collector.harness.localservers import Mosquitto, free_port
from tests.bridges.helpers import ROOT, json_lines, last_stats
from tests.bridges.test_unifi_bridge import Controller, device, write_config

ALERT = ROOT / "collector" / "ingest" / "adapters" / "meraki" / "testdata" / "aps_went_down.json"


async def webhooks(folder: Path, mosquitto: Mosquitto, count: int = 500) -> None:
    port = free_port()
    (folder / "secret").write_text("not-a-real-secret\n")
    (folder / "inventory.json").write_text(json.dumps({"format": "city-telemetry.inventory/1", "devices": []}))
    config = folder / "meraki.toml"
    config.write_text(
        f'[mqtt]\nport = {mosquitto.port}\n[inventory]\nfile = "{folder / "inventory.json"}"\n'
        f'[log]\nlevel = "warning"\n[meraki.webhook]\nlisten = "127.0.0.1:{port}"\n'
        f'shared_secret_file = "{folder / "secret"}"\n'
    )
    command = [sys.executable, "-m", "collector.app.cli", "bridge", "meraki", "-c", str(config)]
    process = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    alert = json.loads(ALERT.read_text())
    url = f"http://127.0.0.1:{port}/meraki/webhook"
    times: list[float] = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(100):
                try:
                    async with session.post(url, data=b"{"):
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            for _ in range(count):
                started = time.perf_counter()
                async with session.post(url, json=alert) as response:
                    assert response.status == 200
                times.append((time.perf_counter() - started) * 1000)
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
    times.sort()
    print(
        f"meraki webhooks, {count} sequential, POST to 200 (after PUBACK): median {statistics.median(times):.2f} ms, "
        f"p95 {times[int(0.95 * len(times))]:.2f} ms, max {times[-1]:.2f} ms"
    )


async def big_poll(folder: Path, mosquitto: Mosquitto, aps: int = 900, clients: int = 9000) -> None:
    controller = Controller()
    template = device("uap_stat_device.json")
    elements = [
        {**template, "mac": f"02:00:00:00:{i // 256:02x}:{i % 256:02x}", "name": f"ap-{i:04d}"} for i in range(aps)
    ]
    controller.devices = {"default": elements, "metro": []}
    controller.stations = [
        {
            "mac": f"02:5e:00:{i // 65536:02x}:{(i // 256) % 256:02x}:{i % 256:02x}",
            "ap_mac": elements[i % aps]["mac"],
            "is_wired": False,
            "radio": "na",
            "signal": -60,
            "noise": -95,
            "rx_bytes": 1000,
            "tx_bytes": 2000,
            "uptime": 60,
        }
        for i in range(clients)
    ]
    controller.http.start()
    try:
        config = write_config(folder, mosquitto, controller)
        command = [sys.executable, "-m", "collector.app.cli", "bridge", "unifi", "-c", str(config), "--once"]
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        out, _ = await process.communicate()
        wall = time.perf_counter() - started
    finally:
        controller.http.stop()
    stats = last_stats(json_lines(out.decode()))
    print(
        f"unifi --once, {aps} APs and {clients} clients: exit {process.returncode}, {stats['published']} messages "
        f"acknowledged, {wall:.2f} s wall time (interpreter start included)"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-bridges-") as name:
        folder = Path(name)
        mosquitto = Mosquitto(folder / "mosquitto")
        mosquitto.start()
        try:
            await webhooks(folder, mosquitto)
            await big_poll(folder, mosquitto)
        finally:
            mosquitto.kill()


if __name__ == "__main__":
    asyncio.run(main())
