"""A last will redelivered after a SIGKILL between write and acknowledgement is stored once, at its
first stamp.

On the real mosquitto, influxd and ``city-telemetry run``: a device connects with a will and drops
its connection; the broker publishes the will (no timestamp: stored ``stamped_on_receipt``). The
collector writes it to InfluxDB through a proxy that stores the write and holds the answer back, so
the collector is left written-but-unacknowledged, and is SIGKILLed there. The broker redelivers the
will to the restarted collector (persistent session, QoS 1, DUP set, same packet id).

With the receipt-stamp file (``<spool>/receipt-stamps``, collector/delivery/stamps.py) the point is
stored once, at the first time. The same run with the file deleted before the restart is the
collector without it: the point is stored twice, at two times. That case shows this test can fail.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from collector.harness.localservers import InfluxDB, Mosquitto
from tests import samples
from tests.conftest import DATABASE, points
from tests.faults.proxy import FaultyInfluxProxy

pytestmark = pytest.mark.servers

DEVICE = "ap-will-1"
TOPIC = samples.topic("21004", "gare-du-midi", "ap", DEVICE, "state")
WILL = json.dumps({"schema": "device.state/1", "device_id": DEVICE, "state": "lost", "reason": "connection lost"})


def write_config(folder: Path, mosquitto: Mosquitto, influx_url: str) -> Path:
    path = folder / "collector.toml"
    path.write_text(
        f"""
[mqtt]
port = {mosquitto.port}
client_id = "will-redelivery"
[influxdb]
url = "{influx_url}"
retry_max_s = 0.5
timeout_s = 30.0
[dead_letter]
file = "{folder / "dead-letter.jsonl"}"
[spool]
folder = "{folder / "spool"}"
after_s = 60.0
[kpi]
enabled = false
[ops]
self_stats_every_s = 0
[log]
stats_every_s = 0.5
"""
    )
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "collector.app.cli", "run", "-c", str(config)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def events(log: Path, name: str) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text().splitlines():
        if f'"event": "{name}"' in line:
            found.append(json.loads(line))
    return found


async def until(condition: Any, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)


def device_dies(port: int) -> None:
    """A device with a last will loses its connection without DISCONNECT: the broker publishes the will."""
    device = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=DEVICE, protocol=mqtt.MQTTv311)
    device.will_set(TOPIC, WILL, qos=1)
    device.connect("127.0.0.1", port, keepalive=30)
    device.loop(timeout=1.0)  # CONNACK
    sock = device.socket()
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)  # a dead link, not a clean DISCONNECT
    sock.close()


def stored(influxdb: InfluxDB) -> list[dict[str, Any]]:
    return points(influxdb, f"SELECT state, stamped_on_receipt FROM device_state WHERE device = '{DEVICE}'")


@pytest.mark.parametrize("keep_stamps", [True, False], ids=["stamp-kept", "stamp-file-deleted"])
async def test_a_will_redelivered_after_sigkill_is_stored_once_at_its_first_stamp(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path, keep_stamps: bool
) -> None:
    influxdb.query(f"CREATE DATABASE {DATABASE}")  # else the held-back answer would be "database not found"
    proxy = FaultyInfluxProxy(influxdb.url)
    await proxy.start()
    config = write_config(tmp_path, mosquitto, proxy.url)
    log = tmp_path / "daemon.log"
    daemon = start(config, log)
    try:
        await until(lambda: len(events(log, "mqtt_connected")) >= 1, "first run connected")
        await asyncio.sleep(0.3)  # SUBACK
        proxy.mode = "swallow"
        device_dies(mosquitto.port)
        await until(lambda: proxy.swallowed >= 1 and len(stored(influxdb)) == 1, "the will written, unanswered")
        first = stored(influxdb)[0]
        assert (first["state"], first["stamped_on_receipt"]) == ("lost", True)
        stamps = tmp_path / "spool" / "receipt-stamps"
        text = stamps.read_text()
        assert len(text.splitlines()) == 2  # header and this will's stamp, written before the write
        assert DEVICE not in text and "gare-du-midi" not in text  # digests and times only
        daemon.send_signal(signal.SIGKILL)  # written, not acknowledged: the broker still has the will
        daemon.wait(timeout=10)
        proxy.mode = "pass"
        if not keep_stamps:
            stamps.unlink()  # the collector without the fix: nothing remembers the first stamp
        await asyncio.sleep(0.2)
        daemon = start(config, log)
        await until(lambda: len(events(log, "mqtt_connected")) >= 2, "second run connected")
        # The redelivery was received and acknowledged by the second run.
        await until(
            lambda: any(e["received"] >= 1 and e["acked"] >= 1 for e in events(log, "collector_stats")),
            "the redelivered will acknowledged",
        )
        second_run = [e for e in events(log, "collector_stats") if e["received"] >= 1][-1]
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
        await proxy.stop()
    rows = stored(influxdb)
    if keep_stamps:
        assert second_run["receipt_stamps_reused"] == 1
        assert [(r["time"], r["state"], r["stamped_on_receipt"]) for r in rows] == [(first["time"], "lost", True)]
    else:
        assert second_run["receipt_stamps_reused"] == 0
        assert len(rows) == 2 and rows[0]["time"] == first["time"] and rows[1]["time"] > first["time"]
