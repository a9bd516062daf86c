"""The city's inventory: which devices exist, and where. Read once at start-up.

The file is the JSON the simulator writes (``city-telemetry simulate --write-inventory``; format
``city-telemetry.inventory/1``, docs/simulator.md), which an operator can also produce from their
asset database. Only ``devices[].device`` is required here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMAT = "city-telemetry.inventory/1"


class InventoryError(ValueError):
    pass


def read_devices(path: Path) -> Any:
    """The ``devices`` value of an inventory file, as it is (each reader checks what it needs);
    InventoryError naming the file if it cannot be read, is not JSON or not of FORMAT."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InventoryError(f"inventory {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise InventoryError(f"inventory {path}: not JSON: {error}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InventoryError(f"inventory {path}: not a {FORMAT} file")
    return data.get("devices")


def load_device_ids(path: Path) -> frozenset[str]:
    devices = read_devices(path)
    if not isinstance(devices, list) or not all(
        isinstance(d, dict) and isinstance(d.get("device"), str) for d in devices
    ):
        raise InventoryError(f"inventory {path}: 'devices' must be a list of objects with a 'device' id")
    return frozenset(d["device"] for d in devices)
