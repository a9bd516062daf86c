"""systemd's notifications from a real ``city-telemetry run``, read from a socket this test binds as
``$NOTIFY_SOCKET`` (what systemd does for ``Type=notify``), and the shipped unit's syntax.

The daemon runs with ``WATCHDOG_USEC`` as systemd would set it for ``WatchdogSec=``, and with the
test-only hook ``CITY_TELEMETRY_TEST_BLOCK_LOOP_S`` (collector/ops/systemd.py): SIGUSR2 then blocks
its event loop, which must stop the WATCHDOG pings for as long as it lasts.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from collector.ops.systemd import BLOCK_LOOP_ENV, Notifier, notify_address, watchdog_interval
from tests import samples
from tests.conftest import DATABASE, Publisher
from tests.daemon import start_daemon as start_daemon_process
from tests.daemon import storage_toml
from tests.ops.suback_gate import SubackGate

pytestmark = pytest.mark.servers

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "city-telemetry.service"
WATCHDOG_S = 0.5  # the pings' interval: WATCHDOG_USEC is twice that
BLOCK_S = 3.0


class NotifyListener:
    """An AF_UNIX datagram socket in the abstract namespace, as ``$NOTIFY_SOCKET`` names it, and
    every datagram received on it with its arrival time (monotonic)."""

    def __init__(self) -> None:
        self.name = f"@city-telemetry-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(b"\0" + self.name[1:].encode())
        self.sock.settimeout(0.1)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            self.messages.append((time.monotonic(), fields))

    def times(self, key: str) -> list[float]:
        return [at for at, fields in list(self.messages) if key in fields]

    def wait_for(self, key: str, timeout_s: float) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = self.times(key)
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no {key}= within {timeout_s} s; got {self.messages}")

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[NotifyListener]:
    notify = NotifyListener()
    yield notify
    notify.close()


def write_config(path: Path, mqtt_port: int, influxdb: InfluxDB) -> Path:
    path.write_text(
        f"""
[mqtt]
port = {mqtt_port}
client_id = "notify-test"
reconnect_min_s = 0.5
reconnect_max_s = 1.0
{storage_toml(path.parent, influxdb.url)}"""
    )
    return path


def stored(influxdb: InfluxDB) -> bool:
    try:
        return bool(influxdb.query("SELECT count(num_clients) FROM ap_clients", DATABASE))
    except RuntimeError as error:  # before the first write creates it
        assert "database not found" in str(error)
        return False


def start_daemon(config: Path, log: Path, listener: NotifyListener) -> subprocess.Popen[bytes]:
    """``city-telemetry run`` as systemd would start it with ``Type=notify`` and ``WatchdogSec=``."""
    env = {
        "NOTIFY_SOCKET": listener.name,
        "WATCHDOG_USEC": str(int(WATCHDOG_S * 2 * 1_000_000)),
        BLOCK_LOOP_ENV: str(BLOCK_S),
    }
    return start_daemon_process(config, log, env=env)


def log_events(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_ready_after_subscription_watchdog_from_the_loop_status_and_stopping(
    mosquitto: Mosquitto, influxdb: InfluxDB, listener: NotifyListener, tmp_path: Path
) -> None:
    mosquitto.stop()  # the broker is away at start: the daemon must not say READY
    config = write_config(tmp_path / "collector.toml", mosquitto.port, influxdb)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log, listener)
    publisher: Publisher | None = None
    try:
        listener.wait_for("WATCHDOG", timeout_s=20)
        time.sleep(2.0)
        assert listener.times("READY") == [], "READY=1 before the broker was even up"
        assert any("connecting" in f.get("STATUS", "") for _, f in listener.messages)

        mosquitto.start()
        ready_at = listener.wait_for("READY", timeout_s=20)
        assert listener.messages[[at for at, _ in listener.messages].index(ready_at)][1]["READY"] == "1"
        # READY means subscribed: a reading published at once is collected and stored.
        publisher = Publisher(mosquitto.port)
        topic, payload, _ = samples.ap_clients(1, samples.recent())
        publisher.publish(topic, json.dumps(payload))
        publisher.flush()
        deadline = time.monotonic() + 20
        while not stored(influxdb):
            assert time.monotonic() < deadline, "the reading published right after READY was not stored"
            time.sleep(0.1)
        connected = [e for e in log_events(log) if e["event"] == "mqtt_connected"]
        assert len(connected) == 1

        # WATCHDOG at half of WATCHDOG_USEC while the loop runs.
        time.sleep(2.5)
        before_block = [at for at in listener.times("WATCHDOG") if at > ready_at]
        gaps = [b - a for a, b in itertools.pairwise(before_block)]
        assert len(gaps) >= 3
        assert all(WATCHDOG_S * 0.6 < gap < WATCHDOG_S * 3 for gap in gaps), gaps
        assert sorted(gaps)[len(gaps) // 2] == pytest.approx(WATCHDOG_S, abs=0.15)

        # The loop blocked (test-only SIGUSR2 hook): no WATCHDOG until it runs again.
        blocked_at = time.monotonic()
        daemon.send_signal(signal.SIGUSR2)
        time.sleep(BLOCK_S + 1.5)
        during = [at for at in listener.times("WATCHDOG") if blocked_at + WATCHDOG_S * 2 < at < blocked_at + BLOCK_S]
        assert during == [], f"{len(during)} WATCHDOG pings while the event loop was blocked"
        after = [at for at in listener.times("WATCHDOG") if at > blocked_at + BLOCK_S]
        assert after, "the pings did not resume once the loop ran again"
        assert any(e["event"] == "test_loop_blocked" for e in log_events(log))

        # STATUS carries the rates; the one reading was counted.
        statuses = [f["STATUS"] for _, f in listener.messages if "STATUS" in f]
        assert any("msg/s" in s and "lines/s" in s and "spool 0 lines" in s for s in statuses), statuses

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        stopping = listener.times("STOPPING")
        assert len(stopping) == 1
        # A clean stop: our own disconnect is logged at info level, and nothing at warning or above
        # after the stop began.
        events = log_events(log)
        disconnects = [e for e in events if e["event"] == "mqtt_disconnected"]
        assert [e["level"] for e in disconnects] == ["info"]
        assert disconnects[0]["shutdown"] is True
        stop_index = next(i for i, e in enumerate(events) if e["event"] == "mqtt_disconnected")
        assert [e for e in events[stop_index:] if e["level"] in ("warning", "error", "critical")] == []
    finally:
        if publisher is not None:
            publisher.close()
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)


def test_ready_waits_for_the_suback_not_the_connack(
    mosquitto: Mosquitto, influxdb: InfluxDB, listener: NotifyListener, tmp_path: Path
) -> None:
    gate = SubackGate(mosquitto.port)  # passes the CONNACK, holds the SUBACKs
    config = write_config(tmp_path / "collector.toml", gate.port, influxdb)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log, listener)
    try:
        assert gate.holding.wait(20), "the collector never subscribed"
        deadline = time.monotonic() + 10
        while not any(e["event"] == "mqtt_connected" for e in log_events(log)):
            assert time.monotonic() < deadline, "no mqtt_connected"
            time.sleep(0.05)
        time.sleep(1.5)  # connected, pinging the watchdog, not subscribed yet
        assert listener.times("WATCHDOG")
        assert listener.times("READY") == [], "READY=1 before the broker granted the subscriptions"
        released_at = time.monotonic()
        gate.release.set()
        assert listener.wait_for("READY", timeout_s=10) >= released_at
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(timeout=10)
        gate.close()


def test_notifier_speaks_to_a_path_socket_and_ignores_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(5)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        assert notifier.send(ready=1, status="x y")
        assert receiver.recv(4096) == b"READY=1\nSTATUS=x y"
        notifier.close()
    finally:
        receiver.close()
    path.unlink()
    gone = Notifier({"NOTIFY_SOCKET": str(path)})
    assert gone.send(watchdog=1) is False  # logged once, never raised
    gone.close()
    assert Notifier({}).send(ready=1) is False  # not under systemd: nothing to do


def test_watchdog_interval_is_half_of_watchdog_usec_and_only_for_our_pid() -> None:
    pid = os.getpid()
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid)}, pid) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(pid + 1)}, pid) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, pid) is None
    assert watchdog_interval({}, pid) is None
    assert notify_address("@name") == b"\0name"
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("") is None


def test_unit_is_type_notify_with_a_watchdog_and_verifies(tmp_path: Path) -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "NotifyAccess=main", "WatchdogSec=", "ProtectSystem=strict", "NoNewPrivileges=true"):
        assert f"\n{line}" in text, line
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    # verify checks that ExecStart's binary exists: point it at one that does, keep everything else.
    unit = tmp_path / "city-telemetry.service"
    unit.write_text(text.replace("/opt/city-telemetry/bin/city-telemetry", shutil.which("true") or "/bin/true"))
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False)
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "city-telemetry.service" in line and "mosquitto.service" not in line and "influxdb.service" not in line
    ]
    if result.returncode != 0 and not problems and "Failed to" in result.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip().splitlines()[0]}")
    assert problems == [], result.stdout + result.stderr
