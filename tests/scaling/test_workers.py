"""``city-telemetry run --workers 3`` as real processes on a real mosquitto shared subscription and influxd.

What is asserted (docs/scaling.md): every reading of a counted set is stored once, with its values;
a worker SIGKILLed mid-run is restarted by the supervisor and nothing is lost; a worker killed and
not restarted leaves its share queued in its broker session (nothing stored, nothing handed to the
others), and that share is stored when worker k comes back, or when it is drained (``--drain``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto, free_port
from tests import samples
from tests.conftest import DATABASE, Publisher
from tests.daemon import start_daemon, storage_toml

pytestmark = pytest.mark.servers


def write_config(folder: Path, mosquitto: Mosquitto, influxdb: InfluxDB, port: int, protocol: str = "3.1.1") -> Path:
    path = folder / "collector.toml"
    path.write_text(
        f"""
[mqtt]
port = {mosquitto.port}
protocol = "{protocol}"
client_id = "collector"
shared_group = "city"
watch_broker_drops = false
{storage_toml(folder, influxdb.url)}[health]
listen = "127.0.0.1:{port}"
[log]
stats_every_s = 1.0
[kpi]
enabled = false
[ops]
self_stats_every_s = 0
"""
    )
    return path


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""


def wait_ready(port: int, timeout_s: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body = get(port, "/readyz")
        if status == 200:
            return dict(json.loads(body))
        time.sleep(0.1)
    raise AssertionError(f"not ready in {timeout_s} s: {get(port, '/readyz')}")


def metric(port: int, name: str, missing: float | None = None) -> float:
    """A metric's value; ``missing`` if not exported yet (a counter appears once it counted), else fail."""
    _, text = get(port, "/metrics")
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    if missing is not None:
        return missing
    raise AssertionError(f"{name} not in /metrics:\n{text}")


def events(log: Path, event: str) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text().splitlines():
        if f'"event": "{event}"' in line:
            found.append(json.loads(line))
    return found


def wait_for_event(log: Path, event: str, count: int = 1, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(found := events(log, event)) >= count:
            return found
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} {event} in {log}:\n{log.read_text()}")


def readings(first: int, n: int) -> list[tuple[str, str, tuple[str, int, int]]]:
    """n ap.clients readings, one device each: (topic, payload, (device, seq, rx_bytes) as stored)."""
    out = []
    for i in range(first, first + n):
        topic, payload, rows = samples.ap_clients(i, samples.recent(offset_s=-i * 0.001))
        out.append((topic, json.dumps(payload), (rows[0]["device"], rows[0]["seq"], rows[0]["rx_bytes"])))
    return out


def stored(influxdb: InfluxDB) -> list[tuple[str, int, int]]:
    rows = influxdb.rows('SELECT "seq", "rx_bytes" FROM ap_clients GROUP BY "device"', DATABASE)
    return sorted((row["device"], row["seq"], row["rx_bytes"]) for row in rows)


def count(influxdb: InfluxDB) -> int:
    try:
        series = influxdb.query("SELECT count(seq) FROM ap_clients", DATABASE)
    except RuntimeError as error:  # the first write creates the database
        assert "database not found" in str(error)
        return 0
    return int(series[0]["values"][0][1]) if series else 0


def wait_count(influxdb: InfluxDB, n: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while count(influxdb) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    assert count(influxdb) == n


def publish(publisher: Publisher, batch: list[tuple[str, str, tuple[str, int, int]]]) -> None:
    for topic, payload, _ in batch:
        publisher.publish(topic, payload)
    publisher.flush()


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=60)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_three_workers_store_every_reading_once(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path, protocol: str
) -> None:
    port = free_port()
    config = write_config(tmp_path, mosquitto, influxdb, port, protocol)
    log = tmp_path / "supervisor.log"
    supervisor = start_daemon(config, log, "--workers", "3")
    ready = wait_ready(port)
    assert sorted(ready["workers"]) == ["1", "2", "3"]
    batch = readings(0, 3000)
    publish(publisher, batch)
    wait_count(influxdb, len(batch))
    assert stored(influxdb) == sorted(expected for _, _, expected in batch)
    # Received once each, in all: the broker gave each reading to one worker (InfluxDB would hide a
    # duplicate: same series, same time), and every worker had a share.
    deadline = time.monotonic() + 10
    while metric(port, "city_telemetry_acked_total", 0) < len(batch) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric(port, "city_telemetry_received_total") == len(batch)
    assert metric(port, "city_telemetry_acked_total") == len(batch)
    assert metric(port, "city_telemetry_workers_running") == 3
    status, body = get(port, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "healthy"
    assert stop(supervisor) == 0
    stopped = events(log, "collector_stopped")
    assert sorted(line["worker"] for line in stopped) == [1, 2, 3]
    assert sum(line["received"] for line in stopped) == len(batch)
    assert all(line["received"] > 0 for line in stopped)
    # Each worker has its own spool and dead-letter folder.
    assert sorted(p.name for p in (tmp_path / "spool").iterdir()) == ["worker-1", "worker-2", "worker-3"]
    assert {line["client_id"] for line in events(log, "collector_starting")} == {
        "collector-1",
        "collector-2",
        "collector-3",
    }


def test_a_worker_killed_mid_run_is_restarted_and_nothing_is_lost(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path, mosquitto, influxdb, port)
    log = tmp_path / "supervisor.log"
    supervisor = start_daemon(config, log, "--workers", "3")
    wait_ready(port)
    batch = readings(0, 9000)
    for topic, payload, _ in batch[:3000]:
        publisher.publish(topic, payload)
    _, body = get(port, "/healthz")
    victim = json.loads(body)["workers"]["2"]["pid"]
    os.kill(victim, signal.SIGKILL)  # mid-run: readings are arriving, some received and not acknowledged
    publish(publisher, batch[3000:])
    exited = wait_for_event(log, "worker_exited")
    assert exited[0]["worker"] == 2 and exited[0]["signal"] == "SIGKILL"
    wait_for_event(log, "worker_started", count=4)  # the three, and worker 2 again
    wait_count(influxdb, len(batch), timeout_s=90)
    assert stored(influxdb) == sorted(expected for _, _, expected in batch)
    wait_ready(port)
    assert metric(port, "city_telemetry_worker_restarts_total") == 1
    assert metric(port, "city_telemetry_workers_running") == 3
    assert stop(supervisor) == 0
    started = [line for line in events(log, "worker_started") if line["worker"] == 2]
    assert [line["client_id"] for line in started] == ["collector-2", "collector-2"]  # the same session


@pytest.mark.parametrize("comeback", ["worker 3 again", "two workers and worker 3 drained"])
def test_a_worker_not_restarted_keeps_its_share_in_the_broker_until_it_returns(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path, comeback: str
) -> None:
    port = free_port()
    config = write_config(tmp_path, mosquitto, influxdb, port)
    log = tmp_path / "supervisor.log"
    supervisor = start_daemon(config, log, "--workers", "3", "--no-restart")
    wait_ready(port)
    first = readings(0, 300)
    publish(publisher, first)
    wait_count(influxdb, len(first))
    _, body = get(port, "/healthz")
    os.kill(json.loads(body)["workers"]["3"]["pid"], signal.SIGKILL)
    wait_for_event(log, "worker_exited")
    # /healthz: the whole is unhealthy while worker 3 is away (its share is not collected).
    deadline = time.monotonic() + 10
    while get(port, "/healthz")[0] != 503 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert get(port, "/healthz")[0] == 503
    rest = readings(300, 3000)
    publish(publisher, rest)
    # Workers 1 and 2 store their shares; worker 3's stays queued in its session, not handed to them.
    deadline = time.monotonic() + 30
    previous = -1
    while time.monotonic() < deadline:
        now = count(influxdb)
        if now == previous and now > len(first):
            break
        previous = now
        time.sleep(1.0)
    missing = len(first) + len(rest) - count(influxdb)
    assert 900 <= missing <= 1100, missing  # a third of 3,000, round robin
    assert events(log, "worker_started").__len__() == 3  # not restarted
    assert stop(supervisor) != 0  # worker 3 did not stop cleanly: it was killed

    if comeback == "worker 3 again":  # the supervisor started again: worker 3 resumes its session
        supervisor = start_daemon(config, log, "--workers", "3")
        wait_ready(port)
        wait_count(influxdb, len(first) + len(rest))
        assert stored(influxdb) == sorted(expected for _, _, expected in first + rest)
        assert stop(supervisor) == 0
        returned = [line for line in events(log, "collector_stopped") if line["worker"] == 3][-1]
        assert returned["received"] >= missing  # its share came to it, not to the others
        return
    # Fewer workers: two, and worker 3's session drained on its own; its share is stored, exactly.
    supervisor = start_daemon(config, log, "--workers", "2")
    wait_ready(port)
    drain = start_daemon(config, tmp_path / "drain.log", "--worker", "3", "--drain", "--idle", "2")
    assert drain.wait(timeout=60) == 0
    finished = events(tmp_path / "drain.log", "drain_finished")
    assert finished[0]["messages"] >= missing
    wait_count(influxdb, len(first) + len(rest))
    assert stored(influxdb) == sorted(expected for _, _, expected in first + rest)
    # Its session holds no subscription any more: nothing new is queued for it.
    more = readings(3300, 300)
    publish(publisher, more)
    wait_count(influxdb, len(first) + len(rest) + len(more))
    assert stop(supervisor) == 0


def test_under_systemd_ready_once_every_worker_is_subscribed_and_a_hung_worker_is_replaced(
    mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path
) -> None:
    from collector.ops.systemd import BLOCK_LOOP_ENV
    from tests.ops.test_systemd import NotifyListener

    listener = NotifyListener()
    port = free_port()
    config = write_config(tmp_path, mosquitto, influxdb, port)
    log = tmp_path / "supervisor.log"
    mosquitto.stop()  # away at start: no READY=1 before every worker has subscribed
    env = {
        "NOTIFY_SOCKET": listener.name,
        "WATCHDOG_USEC": "1000000",
        BLOCK_LOOP_ENV: "45",  # test-only: SIGUSR2 blocks a worker's event loop this long
    }
    try:
        supervisor = start_daemon(config, log, "--workers", "2", env=env)
        listener.wait_for("WATCHDOG", timeout_s=20)
        time.sleep(1.5)
        assert listener.times("READY") == []
        mosquitto.start()
        listener.wait_for("READY", timeout_s=30)
        assert get(port, "/readyz")[0] == 200
        # Only the supervisor speaks to systemd (NotifyAccess=main): the workers are not given the socket.
        assert [e.get("worker") for e in events(log, "systemd_ready")] == [None]
        assert len(listener.times("READY")) == 1

        # Worker 1's event loop blocked: no report for 30 s, the supervisor kills and restarts it.
        _, body = get(port, "/healthz")
        os.kill(json.loads(body)["workers"]["1"]["pid"], signal.SIGUSR2)
        hung = wait_for_event(log, "worker_hung", timeout_s=45)
        assert hung[0]["worker"] == 1
        wait_for_event(log, "worker_started", count=3)
        wait_ready(port)
        assert stop(supervisor) == 0
        assert len(listener.times("STOPPING")) == 1
    finally:
        listener.close()


def test_workers_stop_cleanly_when_their_supervisor_is_killed(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(tmp_path, mosquitto, influxdb, port)
    log = tmp_path / "supervisor.log"
    supervisor = start_daemon(config, log, "--workers", "2")
    wait_ready(port)
    _, body = get(port, "/healthz")
    pids = [json.loads(body)["workers"][k]["pid"] for k in ("1", "2")]
    batch = readings(0, 500)
    publish(publisher, batch)
    supervisor.kill()  # SIGKILL: nothing forwarded; the workers see their pipe close
    supervisor.wait(timeout=10)
    gone = wait_for_event(log, "worker_supervisor_gone", count=2, timeout_s=20)
    assert sorted(line["worker"] for line in gone) == [1, 2]
    stopped = wait_for_event(log, "collector_stopped", count=2, timeout_s=30)
    assert sorted(line["worker"] for line in stopped) == [1, 2]
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid) for pid in pids):
        assert time.monotonic() < deadline, "a worker outlived its supervisor"
        time.sleep(0.1)
    # What they had received was stored before they stopped (the rest waits in their sessions).
    assert count(influxdb) == sum(line["received"] for line in stopped) > 0


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:", 1)[1].split("\n", 1)[0].lower()
    except (OSError, IndexError):
        return "zombie"
