"""``city-telemetry run`` as a real process for the tests, and its log: one copy for every test folder.

``start_daemon`` starts the CLI (``python -m collector.app.cli run -c CONFIG [ARGS]``) with its
output appended to a log file, unbuffered, and remembers the process; the autouse fixture
``_no_daemon_outlives_its_test`` in ``tests/conftest.py`` ends any that is still running after its
test (SIGTERM first, so that a supervisor takes its workers down with it, then SIGKILL), because a
failed test must not leave a collector consuming a later test's messages.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

STARTED: list[subprocess.Popen[bytes]] = []


def storage_toml(folder: Path, influx_url: str) -> str:
    """The ``[influxdb]``, ``[batch]``, ``[dead_letter]`` and ``[spool]`` sections of a daemon test's
    collector.toml: InfluxDB retried quickly, small batches, its files in ``folder``."""
    return f"""[influxdb]
url = "{influx_url}"
retry_max_s = 1.0
[batch]
max_interval_s = 0.1
[dead_letter]
file = "{folder / "dead-letter.jsonl"}"
[spool]
folder = "{folder / "spool"}"
"""


def start_daemon(config: Path, log: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """``city-telemetry run -c config *args`` with ``env`` added to ours, its output appended to ``log``."""
    with open(log, "ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "collector.app.cli", "run", "-c", str(config), *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    STARTED.append(process)
    return process


def end_started() -> None:
    """End every process ``start_daemon`` started that still runs: SIGTERM, then SIGKILL after 30 s."""
    while STARTED:
        process = STARTED.pop()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def wait_for_log(log: Path, event: str, timeout_s: float = 20, occurrence: int = 1) -> None:
    """Wait until ``log`` holds the JSON event ``event`` ``occurrence`` times; AssertionError with the log if not."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count(f'"event": "{event}"') >= occurrence:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {event} in {log}:\n{log.read_text() if log.exists() else ''}")
