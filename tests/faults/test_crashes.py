"""The collector killed with SIGKILL at random moments while readings stream in."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from collector.harness.localservers import InfluxDB, Mosquitto
from tests.daemon import start_daemon, wait_for_log
from tests.faults.streams import PacedPublisher, readings, stored_count, stored_seqs
from tests.integration.test_daemon import write_config

pytestmark = [pytest.mark.servers, pytest.mark.slow]


def kill(daemon: subprocess.Popen[bytes]) -> None:
    daemon.send_signal(signal.SIGKILL)
    daemon.wait(timeout=10)


def test_sigkill_at_random_moments_loses_nothing(mosquitto: Mosquitto, influxdb: InfluxDB, tmp_path: Path) -> None:
    rng = random.Random(20261128)
    rate = 250.0
    messages = readings(int(rate * 24))
    config = write_config(tmp_path / "collector.toml", mosquitto, influxdb)
    config.write_text(config.read_text().replace("[spool]", "[spool]\nafter_s = 1.0"))
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    wait_for_log(log, "mqtt_connected")
    time.sleep(0.3)
    publisher = PacedPublisher(mosquitto.port, messages, rate)
    publisher.start()
    starts = 1
    try:
        for _ in range(3):  # killed while writing, at moments drawn from a fixed seed
            time.sleep(rng.uniform(1.5, 4.0))
            kill(daemon)
            time.sleep(rng.uniform(0.1, 1.0))
            daemon = start_daemon(config, log)
            starts += 1
            wait_for_log(log, "mqtt_connected", occurrence=starts)
        # Killed while InfluxDB is away, with readings in the spool: the next run drains them.
        influxdb.stop()
        wait_for_log(log, "influxdb_write_failed")
        deadline = time.monotonic() + 20
        while "spool_draining" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)  # something has been spooled
        time.sleep(1.0)
        kill(daemon)
        spool_files = list((tmp_path / "spool").glob("*.spool"))
        assert spool_files, "the killed run should have left spooled readings"
        influxdb.start()
        daemon = start_daemon(config, log)
        publisher.finish()
        deadline = time.monotonic() + 90
        while stored_count(influxdb) < len(messages) and time.monotonic() < deadline:
            time.sleep(0.5)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        publisher.abort()
    assert "spool_recovered" in log.read_text()
    assert stored_count(influxdb) == len(messages)
    assert stored_seqs(influxdb) == list(range(len(messages)))
