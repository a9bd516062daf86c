"""The shipped deploy/mosquitto files, copied for a test broker with only ports and paths changed.

``local_copy`` writes city-telemetry.conf with its port, data folder, password file and ACL file
replaced (and ``user root`` when we are root: mosquitto would otherwise switch to its own user, which
cannot enter our folders). The ACL is the shipped one, byte for byte, unless a test adds a gateway
account to it (``gateway``): the documented way to let one account publish for many devices, which the
tests that are not about access rules use to publish thousands of readings for hundreds of devices.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "mosquitto"
SHIPPED = DEPLOY / "city-telemetry.conf"
SHIPPED_ACL = DEPLOY / "city-telemetry.acl"
QUEUE_SETTINGS = ("max_queued_messages ", "max_queued_bytes ")
COLLECTOR_ACCOUNT = "city-telemetry"  # the collector's account name in the shipped ACL


def gateway(account: str, root: str = "bxl/#") -> str:
    """ACL lines for an account that publishes for many devices (the ACL file's commented example)."""
    return f"\nuser {account}\ntopic write {root}\n"


def local_copy(
    folder: Path,
    port: int,
    password_file: Path,
    keep_queue_settings: bool = True,
    more: dict[str, str] | None = None,
    acl_extra: str = "",
    acl_file: Path | None = None,
) -> Path:
    """The shipped conf with only its port and paths changed; ``more`` replaces further whole lines
    (e.g. to take the commented-out TLS listener in); ``acl_extra`` is appended to a copy of the ACL;
    ``acl_file`` replaces the shipped ACL (e.g. by what ``broker acl`` wrote)."""
    folder.mkdir(parents=True, exist_ok=True)
    acl = acl_file or SHIPPED_ACL
    if acl_extra:
        acl = folder / "city-telemetry.acl"
        acl.write_text(SHIPPED_ACL.read_text(encoding="utf-8") + acl_extra, encoding="utf-8")
    replacements = {
        "persistence_location /var/lib/mosquitto/": f"persistence_location {folder / 'data'}/",
        "listener 1883": f"listener {port} 127.0.0.1",
        "password_file /etc/mosquitto/passwd": f"password_file {password_file}",
        "acl_file /etc/mosquitto/city-telemetry.acl": f"acl_file {acl}",
        **(more or {}),
    }
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    for original in replacements:
        assert lines.count(original) == 1, f"{SHIPPED} no longer has the line {original!r}"
    adjusted = [replacements.get(line, line) for line in lines]
    if not keep_queue_settings:
        adjusted = [line for line in adjusted if not line.startswith(QUEUE_SETTINGS)]
    if os.geteuid() == 0:
        adjusted.insert(0, "user root")
    (folder / "data").mkdir(parents=True, exist_ok=True)
    copy = folder / "city-telemetry.conf"
    copy.write_text("\n".join(adjusted) + "\n", encoding="utf-8")
    return copy


def with_password(user: str, password: str) -> Callable[[mqtt.Client], None]:
    return lambda client: client.username_pw_set(user, password)
