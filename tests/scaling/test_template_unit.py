"""deploy/systemd/city-telemetry@.service: each instance its own client id, spool and dead letters."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from collector.app.config import load_config

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "systemd" / "city-telemetry@.service"


def instance_environment(instance: str, host: str) -> dict[str, str]:
    """The unit's Environment= lines, with systemd's %i and %H as it would expand them."""
    env = {}
    for line in TEMPLATE.read_text().splitlines():
        if line.startswith("Environment="):
            name, value = line.removeprefix("Environment=").split("=", 1)
            env[name] = value.replace("%i", instance).replace("%H", host)
    return env


def test_each_instance_has_its_own_session_spool_and_dead_letters(tmp_path: Path) -> None:
    text = (ROOT / "deploy" / "collector.toml").read_text()
    # the shipped config, but with secrets that exist here (the test does not read /etc)
    text = re.sub(r'^(\w+_file) = "/etc/[^"]*"', r"# \1", text, flags=re.MULTILINE)
    config_path = tmp_path / "collector.toml"
    config_path.write_text(text)
    a = load_config(config_path, instance_environment("a", "h1"))
    b = load_config(config_path, instance_environment("b", "h2"))
    assert (a.mqtt.client_id, b.mqtt.client_id) == ("city-telemetry-h1-a", "city-telemetry-h2-b")
    assert a.spool.folder == Path("/var/lib/city-telemetry/a/spool")
    assert a.dead_letter.file == Path("/var/lib/city-telemetry/a/dead-letter.jsonl")
    assert b.spool.folder == Path("/var/lib/city-telemetry/b/spool")


def test_template_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed on this machine")
    unit = tmp_path / "city-telemetry@.service"
    unit.write_text(
        TEMPLATE.read_text().replace("/opt/city-telemetry/bin/city-telemetry", shutil.which("true") or "/bin/true")
    )
    instance = tmp_path / "city-telemetry@a.service"
    instance.symlink_to(unit)
    result = subprocess.run([analyze, "verify", str(instance)], capture_output=True, text=True, timeout=60, check=False)
    problems = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if "city-telemetry@" in line and "mosquitto.service" not in line and "influxdb.service" not in line
    ]
    if result.returncode != 0 and not problems and "Failed to" in result.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip().splitlines()[0]}")
    assert problems == [], result.stdout + result.stderr
