"""Real Mosquitto and InfluxDB 1.x processes on loopback ports, for the demo and the tests.

Each server lives in a folder of its own (config, data, log) and can be stopped, killed and started
again on the same port with the same data, which is what the fault tests need.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def find_binary(name: str) -> str:
    for candidate in (shutil.which(name), f"/usr/sbin/{name}", f"/usr/bin/{name}"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"{name} not found: install the Debian package (make test does)")


class ServerProcess:
    name = "server"

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)
        self.log_path = folder / f"{self.name}.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> bool:
        return _port_open(self.port)

    def start(self, timeout_s: float = 20.0) -> None:
        if self.running:
            return
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self.command(), stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log_path}")
            if self.ready():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} did not become ready in {timeout_s} s; see {self.log_path}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> None:
        self._signal(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        self._signal(signal.SIGKILL, 10.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _signal(self, signum: int, timeout_s: float) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signum)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # Wait for the port to be released so a restart on it works.
        deadline = time.monotonic() + 5
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)


class Mosquitto(ServerProcess):
    name = "mosquitto"

    def __init__(self, folder: Path, port: int | None = None, extra_config: str = "") -> None:
        super().__init__(folder, port)
        self.extra_config = extra_config

    def command(self) -> list[str]:
        data = self.folder / "data"
        data.mkdir(exist_ok=True)
        conf = self.folder / "mosquitto.conf"
        # Started as root, mosquitto switches to its own user, which cannot write our folder.
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"""# written by city-telemetry's local server harness
per_listener_settings false
listener {self.port} 127.0.0.1
allow_anonymous true
persistence true
persistence_location {data}/
autosave_interval 1
# A collector that is slow or away must find its messages queued, not dropped (docs/delivery.md).
max_queued_messages 2000000
max_queued_bytes 0
max_inflight_messages 0
max_packet_size 1048576
log_dest stdout
log_type error
log_type warning
log_type notice
connection_messages true
{user}{self.extra_config}
"""
        )
        return [find_binary("mosquitto"), "-c", str(conf)]


class InfluxDB(ServerProcess):
    name = "influxd"

    def __init__(self, folder: Path, port: int | None = None) -> None:
        super().__init__(folder, port)
        self.rpc_port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        conf = self.folder / "influxdb.conf"
        data = self.folder / "var"
        conf.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{self.rpc_port}"
[meta]
  dir = "{data}/meta"
[data]
  dir = "{data}/data"
  wal-dir = "{data}/wal"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
  max-body-size = 0
[logging]
  level = "warn"
[continuous_queries]
  enabled = false
"""
        )
        return [find_binary("influxd"), "run", "-config", str(conf)]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as response:
                return bool(response.status == 204)
        except (urllib.error.URLError, OSError):
            return False

    def query(self, q: str, database: str | None = None, epoch: str = "ns") -> list[dict[str, Any]]:
        """Run InfluxQL; returns the series of the first statement (``[]`` when it has none)."""
        params = {"q": q, "epoch": epoch}
        if database:
            params["db"] = database
        request = urllib.request.Request(
            f"{self.url}/query", data=urllib.parse.urlencode(params).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        result = body["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        return list(result.get("series", []))

    def rows(self, q: str, database: str) -> list[dict[str, Any]]:
        """Rows of a query as dicts (tags of GROUP BY included), across all returned series."""
        rows = []
        for series in self.query(q, database):
            tags = series.get("tags", {})
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(tags)
                row["_measurement"] = series["name"]
                rows.append(row)
        return rows
