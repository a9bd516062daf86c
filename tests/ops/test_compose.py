"""deploy/compose.yaml and the Dockerfile: they parse, name their images, mount what the repository
has, and the collector's container settings are a valid config.

No container is started here (no images are pulled in tests); ``docker compose config`` checks the
file as well where the docker compose plugin is installed.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from collector.app.config import load_config
from collector.harness.localservers import free_port, write_password_file

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ACL = DEPLOY / "mosquitto" / "city-telemetry.acl"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of the service's bind mounts (short syntax; named volumes left out)."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def test_services_name_their_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"mosquitto", "influxdb", "collector", "grafana"}
    images = {name: service["image"] for name, service in services.items()}
    assert images["influxdb"] == "influxdb:1.8"
    assert images["mosquitto"].startswith("eclipse-mosquitto:2.")
    assert images["grafana"].startswith("grafana/grafana-oss:")
    assert all(":" in image and not image.endswith(":") for image in images.values()), images
    build = services["collector"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"


def test_every_mounted_host_path_exists_in_the_repository(compose: dict[str, Any]) -> None:
    conf_names_acl = "\nacl_file " in (DEPLOY / "mosquitto" / "city-telemetry.conf").read_text()
    missing = []
    for name, service in compose["services"].items():
        for source, _ in bind_mounts(service):
            path = (DEPLOY / source).resolve()
            # The ACL file is needed (and checked) once the shipped broker config uses it.
            if not path.exists() and not (path == ACL and not conf_names_acl):
                missing.append(f"{name}: {source}")
    assert missing == []
    for name in compose.get("volumes", {}):
        assert any(str(v).startswith(f"{name}:") for s in compose["services"].values() for v in s.get("volumes", []))
    named = {str(v).split(":")[0] for s in compose["services"].values() for v in s.get("volumes", [])}
    assert {n for n in named if not n.startswith((".", "/"))} == set(compose["volumes"])


def test_grafana_gets_the_provisioning_and_dashboards(compose: dict[str, Any]) -> None:
    mounts = dict(bind_mounts(compose["services"]["grafana"]))
    assert mounts["./grafana/provisioning"] == "/etc/grafana/provisioning"
    assert mounts["./grafana/dashboards"] == "/var/lib/grafana/dashboards"
    assert (DEPLOY / "grafana" / "provisioning").is_dir() and (DEPLOY / "grafana" / "dashboards").is_dir()


def test_mosquitto_runs_our_conf(compose: dict[str, Any]) -> None:
    service = compose["services"]["mosquitto"]
    mounts = dict(bind_mounts(service))
    target = mounts["./mosquitto/city-telemetry.conf"]
    assert f"mosquitto -c {target}" in " ".join(service["command"])
    conf = (DEPLOY / "mosquitto" / "city-telemetry.conf").read_text()
    for line in conf.splitlines():
        if line.startswith("password_file "):  # the secret, copied there by the command
            assert "mosquitto_passwd" in service["secrets"]
            assert f"cp /run/secrets/mosquitto_passwd {line.split()[1]}" in " ".join(service["command"])
        if line.startswith("acl_file "):
            assert mounts["./mosquitto/city-telemetry.acl"] == line.split()[1]
        if line.startswith("persistence_location "):
            location = line.split()[1].rstrip("/")
            assert f"mosquitto-data:{location}" in service["volumes"]


def test_collector_container_settings_are_a_valid_config(compose: dict[str, Any], tmp_path: Path) -> None:
    service = compose["services"]["collector"]
    mounts = dict(bind_mounts(service))
    assert mounts["./collector.toml"] == "/etc/city-telemetry/collector.toml"
    env = dict(service["environment"])
    secret = tmp_path / "mqtt_password"
    secret.write_text("s3cret\n")
    assert env["CITY_TELEMETRY__MQTT__PASSWORD_FILE"] == '"/run/secrets/mqtt_password"'
    env["CITY_TELEMETRY__MQTT__PASSWORD_FILE"] = json.dumps(str(secret))
    config = load_config(DEPLOY / "collector.toml", env)  # a misspelt key would fail here
    assert config.mqtt.host == "mosquitto" and config.mqtt.username == "city-telemetry"
    assert config.influxdb.url == "http://influxdb:8086"
    assert config.health.listen == "0.0.0.0:9108"
    assert config.spool.folder == Path("/var/lib/city-telemetry/spool")
    assert "collector-state:/var/lib/city-telemetry" in service["volumes"]
    # Secrets come from deploy/secrets/, which git ignores.
    for secret_spec in compose["secrets"].values():
        assert secret_spec["file"].startswith("./secrets/")
    assert "/deploy/secrets/" in (ROOT / ".gitignore").read_text().splitlines()


def test_dockerfile_slim_non_root_and_runs_the_mounted_config() -> None:
    text = (ROOT / "Dockerfile").read_text()
    froms = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert froms and all(image == "python:3.11-slim" for image in froms)
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users == ["city-telemetry"]
    assert 'ENTRYPOINT ["city-telemetry"]' in text
    assert 'CMD ["run", "-c", "/etc/city-telemetry/collector.toml"]' in text
    # What the image copies is what .dockerignore lets through.
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    for line in text.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert f"!{source.rstrip('/')}" in {entry.rstrip("/") for entry in ignore}, source
                assert (ROOT / source).exists(), source


def test_docker_compose_config_accepts_it() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("docker is not installed")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"the docker compose plugin is not installed: {probe.stderr.strip()[:80]}")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "--quiet", "--no-interpolate"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


_CONTAINER_PATHS = re.compile(r"(?<![\w/.])(/var/lib/mosquitto|/etc/mosquitto|/run/secrets)(?=[/\s:]|$)")


@pytest.mark.servers
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, as the container's start command runs")
def test_the_brokers_start_command_takes_a_password_file_that_only_root_can_read(
    compose: dict[str, Any],
) -> None:
    """The mosquitto service as compose starts it, on the real mosquitto: its command run as root (as in
    the image), with the container's paths moved under a folder of the test. The password file is the
    secret as the compose header's ``mosquitto_passwd -c`` makes it (mosquitto 2.0.16 and later create
    it 0600, owner root) and bind-mounts it. Mosquitto reads its password file after it has switched to
    its own user (measured on 2.0.11: "Unable to open pwfile" for a root-only file), so the command has
    to hand the broker a copy it can read: the collector's account then connects."""
    try:
        pwd.getpwnam("mosquitto")
    except KeyError:
        pytest.skip("no mosquitto user to switch to")
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    service = compose["services"]["mosquitto"]
    root = Path(tempfile.mkdtemp(prefix="compose-mosquitto-"))
    root.chmod(0o755)  # the broker's user must be able to enter it, like the container's /
    port = free_port()
    try:

        def inside(text: str) -> str:
            return _CONTAINER_PATHS.sub(lambda m: f"{root}{m.group(1)}", text)

        for source, target in bind_mounts(service):
            placed = Path(inside(target))
            placed.parent.mkdir(parents=True, exist_ok=True)
            text = inside((DEPLOY / source).read_text(encoding="utf-8"))
            placed.write_text(text.replace("\nlistener 1883\n", f"\nlistener {port} 127.0.0.1\n"), encoding="utf-8")
        (root / "var" / "lib" / "mosquitto").mkdir(parents=True)  # the named volume
        password = "compose-s3cret"
        (root / "host-secrets").mkdir()
        host_secret = write_password_file(root / "host-secrets" / "mosquitto-passwd", {"city-telemetry": password})
        host_secret.chmod(0o600)  # as mosquitto_passwd 2.0.16+ creates it, owner root
        for secret in service["secrets"]:
            spec = secret if isinstance(secret, dict) else {"source": secret}
            if spec["source"] == "mosquitto_passwd":
                secret_file = Path(inside(spec.get("target", f"/run/secrets/{spec['source']}")))
                secret_file.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(host_secret, secret_file)
        command = [inside(part) for part in service["command"]]
        assert command[:2] == ["sh", "-c"]
        script = re.sub(r"(?<![\w/])mosquitto -c ", f"{mosquitto} -c ", command[2])
        process = subprocess.Popen(
            ["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
        try:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="city-telemetry")
            client.username_pw_set("city-telemetry", password)
            deadline = time.monotonic() + 10
            while True:
                assert process.poll() is None, f"the broker stopped: {process.communicate()[0]}"
                try:
                    reason = client.connect("127.0.0.1", port)
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the broker does not listen"
                    time.sleep(0.1)
            assert reason == mqtt.MQTT_ERR_SUCCESS
            client.loop_start()
            deadline = time.monotonic() + 10
            while not client.is_connected():
                assert process.poll() is None, f"the broker stopped: {process.communicate()[0]}"
                assert time.monotonic() < deadline, "no CONNACK"
                time.sleep(0.05)
            client.disconnect()
            client.loop_stop()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.servers
def test_the_headers_influxdb_setup_step_makes_the_policies_the_collector_writes_into(
    compose: dict[str, Any], influxdb: Any
) -> None:
    """The shipped collector.toml writes KPI points into the retention policy "kpi", which only
    ``influxdb setup`` creates (without it InfluxDB refuses every KPI point and the dashboards' KPI
    panels stay empty). The compose header's set-up step, run as written with the collector service's
    environment (its InfluxDB address replaced by the test's influxd), creates it."""
    header = [line.removeprefix("#").strip() for line in COMPOSE.read_text().splitlines() if line.startswith("#")]
    steps = [line for line in header if " influxdb setup " in f"{line} "]
    assert steps, "the compose header has no 'influxdb setup' step"
    words = steps[0].split("#")[0].split()
    assert words[:3] == ["docker", "compose", "run"] and "collector" in words, words
    args = words[words.index("collector") + 1 :]
    assert args[:2] == ["influxdb", "setup"]
    mounts = {target: DEPLOY / source for source, target in bind_mounts(compose["services"]["collector"])}
    args = [str(mounts.get(arg, arg)) for arg in args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITY_TELEMETRY__")}
    env.update(compose["services"]["collector"]["environment"])
    env["CITY_TELEMETRY__INFLUXDB__URL"] = json.dumps(influxdb.url)
    env["CITY_TELEMETRY__MQTT__PASSWORD_FILE"] = json.dumps(str(COMPOSE))  # any readable file: not used here
    result = subprocess.run(
        [sys.executable, "-m", "collector.app.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (series,) = influxdb.query("SHOW RETENTION POLICIES ON city_telemetry")
    policies = {row[0]: row[4] for row in series["values"]}  # name -> default
    config = load_config(DEPLOY / "collector.toml")
    assert policies == {"raw": True, config.influxdb.kpi_retention_policy: False}
