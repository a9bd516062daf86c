"""``city-telemetry run`` as a real process: signals, exit codes, logs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests import samples
from tests.conftest import DATABASE, Publisher
from tests.daemon import start_daemon, wait_for_log

pytestmark = pytest.mark.servers


def write_config(path: Path, mosquitto: Mosquitto, influxdb: InfluxDB) -> Path:
    path.write_text(
        f"""
[mqtt]
port = {mosquitto.port}
client_id = "daemon-test"
[influxdb]
url = "{influxdb.url}"
retry_max_s = 1.0
[batch]
max_interval_s = 0.1
max_lines = 200
[dead_letter]
file = "{path.parent / "dead-letter.jsonl"}"
[spool]
folder = "{path.parent / "spool"}"
[log]
stats_every_s = 1.0
"""
    )
    return path


def count(influxdb: InfluxDB) -> int:
    series = influxdb.query("SELECT count(num_clients) FROM ap_clients", DATABASE)
    return int(series[0]["values"][0][1]) if series else 0


def test_sigterm_flushes_and_exits_zero_and_a_restart_takes_the_rest(
    mosquitto: Mosquitto, influxdb: InfluxDB, publisher: Publisher, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "collector.toml", mosquitto, influxdb)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    wait_for_log(log, "mqtt_connected")
    time.sleep(0.3)
    n = 6000  # more than the first 1,000 and one drain (2,000) at stop: some are left for the restart
    payloads = []
    for i in range(n):
        topic, payload, _ = samples.ap_clients(i, samples.recent(offset_s=i * 0.01))
        payloads.append((topic, json.dumps(payload)))
    for topic, text in payloads[:1000]:
        publisher.publish(topic, text)
    publisher.flush()
    daemon.send_signal(signal.SIGTERM)  # more is published while it stops, and the rest while it is away
    for topic, text in payloads[1000:5000]:
        publisher.publish(topic, text)
    publisher.flush()
    assert daemon.wait(timeout=30) == 0
    # Published after the exit: the restart surely has messages to take (a collector that writes as
    # soon as it is free may well have taken all that came while it was stopping).
    for topic, text in payloads[5000:]:
        publisher.publish(topic, text)
    publisher.flush()
    stopped = [json.loads(line) for line in log.read_text().splitlines() if '"collector_stopped"' in line]
    assert len(stopped) == 1
    acked_first_run = stopped[0]["acked"]
    assert 0 < acked_first_run <= 5000
    assert count(influxdb) >= acked_first_run  # everything acknowledged was written first

    # Whatever the first run did not take is still in the broker session: a second run takes it.
    daemon = start_daemon(config, log)
    wait_for_log(log, "mqtt_connected", occurrence=2)
    deadline = time.monotonic() + 60
    while count(influxdb) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    daemon.send_signal(signal.SIGINT)
    assert daemon.wait(timeout=30) == 0
    assert count(influxdb) == n
    # Logs are JSON lines, one event each.
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            assert "event" in json.loads(line)


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[influxdb]\napi = 'v3'\n")
    result = subprocess.run(
        [sys.executable, "-m", "collector.app.cli", "run", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "influxdb.api" in result.stderr
