"""Real Mosquitto and InfluxDB 1.x processes on loopback ports, for the demo and the tests.

Each server lives in a folder of its own (config, data, log) and can be stopped, killed and started
again on the same port with the same data, which is what the fault tests need. Mosquitto can listen
with TLS (client certificates required) and check passwords; InfluxDB can require authentication,
with an admin user that the harness then uses for its own queries.
"""

from __future__ import annotations

import base64
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
from collections.abc import Mapping
from dataclasses import dataclass
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


def write_password_file(path: Path, users: Mapping[str, str]) -> Path:
    """A mosquitto ``password_file`` for ``users`` (name -> password), hashed by ``mosquitto_passwd -U``.

    The passwords go through a file readable by its owner only, never a command line.
    """
    for user, password in users.items():
        if not user or ":" in user or any(c in user + password for c in "\r\n"):
            raise ValueError(f"unusable user name or password for {user!r}")
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text("".join(f"{user}:{password}\n" for user, password in users.items()), encoding="utf-8")
    result = subprocess.run(
        [find_binary("mosquitto_passwd"), "-U", str(path)], capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"mosquitto_passwd -U failed: {result.stdout}{result.stderr}")
    return path


@dataclass(frozen=True, slots=True)
class BrokerTls:
    """A TLS listener: the broker's certificate and key, and the CA whose client certificates it takes."""

    cert_file: Path
    key_file: Path
    ca_file: Path
    require_certificate: bool = True


class Mosquitto(ServerProcess):
    """Mosquitto on 127.0.0.1: plain and anonymous by default.

    ``tls`` makes the one listener a TLS listener; ``password_file`` (see write_password_file) turns
    anonymous access off. ``config_file`` runs mosquitto with that file instead of the generated one
    (it must listen on 127.0.0.1 at ``port``); the other options are then ignored.
    """

    name = "mosquitto"

    def __init__(
        self,
        folder: Path,
        port: int | None = None,
        extra_config: str = "",
        *,
        tls: BrokerTls | None = None,
        password_file: Path | None = None,
        config_file: Path | None = None,
    ) -> None:
        super().__init__(folder, port)
        self.extra_config = extra_config
        self.tls = tls
        self.password_file = password_file
        self.config_file = config_file

    def reload(self) -> None:
        """SIGHUP: mosquitto reads its password file (and ACLs) again, keeping sessions and connections."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)

    def _security_config(self) -> str:
        lines = []
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                f"require_certificate {str(self.tls.require_certificate).lower()}",
            ]
        if self.password_file is not None:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        return "\n".join(lines)

    def command(self) -> list[str]:
        if self.config_file is not None:
            return [find_binary("mosquitto"), "-c", str(self.config_file)]
        data = self.folder / "data"
        data.mkdir(exist_ok=True)
        conf = self.folder / "mosquitto.conf"
        # Started as root, mosquitto switches to its own user, which cannot write our folder.
        user = "user root\n" if os.geteuid() == 0 else ""
        conf.write_text(
            f"""# written by city-telemetry's local server harness
per_listener_settings false
listener {self.port} 127.0.0.1
{self._security_config()}
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
    """influxd 1.x on 127.0.0.1.

    With ``admin`` (user, password), ``[http] auth-enabled = true`` and that admin user is created
    through the ``/query`` API once the server is up (as an operator would); ``query`` and ``rows``
    then authenticate as the admin.
    """

    name = "influxd"

    def __init__(self, folder: Path, port: int | None = None, *, admin: tuple[str, str] | None = None) -> None:
        super().__init__(folder, port)
        self.rpc_port = free_port()
        self.admin = admin

    def start(self, timeout_s: float = 20.0) -> None:
        was_running = self.running
        super().start(timeout_s)
        if self.admin is not None and not was_running:
            # Allowed without credentials while no admin exists; idempotent (with them) afterwards.
            user, password = self.admin
            self.query(
                f"CREATE USER {quote_identifier(user)} WITH PASSWORD {quote_string(password)} WITH ALL PRIVILEGES"
            )

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
  auth-enabled = {str(self.admin is not None).lower()}
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
        if self.admin is not None:
            request.add_header("Authorization", basic_auth(*self.admin))
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.load(response)
        result = body["results"][0]
        if "error" in result:
            raise RuntimeError(result["error"])
        return list(result.get("series", []))

    def write(self, database: str, lines: str) -> None:
        """Write line protocol (nanosecond times) through ``/write``, as any client would."""
        url = f"{self.url}/write?" + urllib.parse.urlencode({"db": database, "precision": "ns"})
        request = urllib.request.Request(url, data=lines.encode(), method="POST")
        if self.admin is not None:
            request.add_header("Authorization", basic_auth(*self.admin))
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.status != 204:
                raise RuntimeError(f"/write answered {response.status}")

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


def basic_auth(user: str, password: str) -> str:
    """An HTTP ``Authorization`` header value (what InfluxDB 1.x takes, like the collector sends)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def quote_identifier(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_string(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
