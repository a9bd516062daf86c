"""``make install`` / ``make uninstall`` (deploy/install.sh) into a temporary ``DESTDIR``.

Staged, so nothing on this machine changes: no user is created and systemctl is not called when
DESTDIR is set. pip installs the package and its dependencies into the staged virtual environment
(from its cache or the package index, as an operator's install would).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
UNIT = "etc/systemd/system/city-telemetry.service"
CONFIG = "etc/city-telemetry/collector.toml"
STATE = "var/lib/city-telemetry"
DOCS = "usr/share/doc/city-telemetry"
BIN = "usr/local/bin/city-telemetry"


def make(target: str, destdir: Path, **settings: str) -> str:
    args = ["make", "--no-print-directory", "-C", str(ROOT), target, f"DESTDIR={destdir}", f"PY={sys.executable}"]
    args += [f"{key}={value}" for key, value in settings.items()]
    result = subprocess.run(args, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def installed_cli(destdir: Path, prefix: str, *args: str) -> str:
    """Run the staged ``bin/city-telemetry`` (its #! names the final path, so through the staged python)."""
    venv = destdir / prefix.lstrip("/")
    result = subprocess.run(
        [str(venv / "bin" / "python"), str(venv / "bin" / "city-telemetry"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd="/",
        env={key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if not path.is_dir())


@pytest.mark.slow
def test_install_uninstall_and_purge_in_a_staging_folder(tmp_path: Path) -> None:
    stage = tmp_path / "stage"
    out = make("install", stage)
    assert "systemctl not called" in out
    venv = stage / "opt/city-telemetry"
    assert (venv / "pyvenv.cfg").is_file()
    script = (venv / "bin/city-telemetry").read_text()
    assert script.startswith("#!/opt/city-telemetry/bin/python"), script.splitlines()[0]
    assert str(stage) not in script  # the staging path is not left in what runs on the target
    assert installed_cli(stage, "/opt/city-telemetry", "--version").strip() == f"city-telemetry {VERSION}"
    assert "ok" in installed_cli(stage, "/opt/city-telemetry", "check-config", "-c", str(stage / CONFIG))
    # The unit runs what was installed, as shipped.
    unit = (stage / UNIT).read_text()
    assert unit == (ROOT / "deploy/systemd/city-telemetry.service").read_text()
    assert "ExecStart=/opt/city-telemetry/bin/city-telemetry run -c /etc/city-telemetry/collector.toml" in unit
    # Config (0640, from deploy/), state folder (0750), docs where the unit's Documentation= points.
    assert (stage / CONFIG).read_text() == (ROOT / "deploy/collector.toml").read_text()
    assert (stage / CONFIG).stat().st_mode & 0o777 == 0o640
    assert (stage / STATE).is_dir() and (stage / STATE).stat().st_mode & 0o777 == 0o750
    for doc in ("README.md", "docs/operations.md", "docs/delivery.md", "examples/collector.toml"):
        assert (stage / DOCS / doc).is_file(), doc
    assert (stage / DOCS / "examples/mosquitto/city-telemetry.conf").is_file()
    # docs/bridges.md, literally: the command on root's PATH, the bridges' units and sample configs there.
    assert os.readlink(stage / BIN) == "/opt/city-telemetry/bin/city-telemetry"
    for vendor in ("unifi", "meraki"):
        bridge_unit = f"city-telemetry-bridge-{vendor}.service"
        shipped = (ROOT / "deploy/systemd" / bridge_unit).read_text()
        assert (stage / "etc/systemd/system" / bridge_unit).read_text() == shipped
        sample = ROOT / "collector/bridges" / vendor / "sample.toml"
        assert (stage / DOCS / f"examples/bridges/bridge-{vendor}.toml").read_text() == sample.read_text()
    assert (stage / DOCS / "examples/mosquitto/city-telemetry.acl").is_file()
    template = (stage / DOCS / "examples/systemd/city-telemetry@.service").read_text()
    assert "StateDirectory=city-telemetry/%i" in template and (stage / DOCS / "docs/scaling.md").is_file()
    assert sorted(p.name for p in (stage / DOCS / "examples/grafana/dashboards").iterdir()) == sorted(
        p.name for p in (ROOT / "deploy/grafana/dashboards").iterdir()
    )

    # Uninstall keeps the operator's config and the state (spool, dead letters) unless PURGE=1.
    (stage / CONFIG).write_text((stage / CONFIG).read_text() + "\n# edited by the operator\n")
    (stage / STATE / "spool").mkdir()
    (stage / STATE / "spool" / "segment").write_text("readings")
    make("uninstall", stage)
    assert files_under(stage) == [CONFIG, f"{STATE}/spool/segment"]

    # A reinstall (here to another PREFIX) never overwrites the config, and the unit follows PREFIX.
    make("install", stage, PREFIX="/opt/elsewhere")
    assert (stage / CONFIG).read_text().endswith("# edited by the operator\n")
    assert "ExecStart=/opt/elsewhere/bin/city-telemetry run" in (stage / UNIT).read_text()
    bridge_unit = (stage / "etc/systemd/system/city-telemetry-bridge-unifi.service").read_text()
    assert "ExecStart=/opt/elsewhere/bin/city-telemetry bridge unifi" in bridge_unit
    assert os.readlink(stage / BIN) == "/opt/elsewhere/bin/city-telemetry"
    assert not (stage / "opt/city-telemetry").exists()
    assert installed_cli(stage, "/opt/elsewhere", "--version").strip() == f"city-telemetry {VERSION}"

    make("uninstall", stage, PREFIX="/opt/elsewhere", PURGE="1")
    assert files_under(stage) == []
