"""The city's inventory: which devices exist, and where. Read once at start-up.

The file is the JSON the simulator writes (``city-telemetry simulate --write-inventory``; format
``city-telemetry.inventory/1``, docs/simulator.md), which an operator can also produce from their
asset database. Only ``devices[].device`` is required here.

``read_json`` is the one reader of the file (the KPI engine's ``load_places`` uses it too);
``[inventory]`` (config.py) reads it once at start-up and keeps the document, so that the pipeline's
device ids and the KPI engine's places come from one read of one version of the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMAT = "city-telemetry.inventory/1"


class InventoryError(ValueError):
    pass


def read_json(path: Path) -> Any:
    """The JSON document of an inventory file, unchecked; InventoryError naming the file if it
    cannot be read or is not JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise InventoryError(f"inventory {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise InventoryError(f"inventory {path}: not JSON: {error}") from None


def devices_of(data: Any, path: Path) -> Any:
    """The ``devices`` value of an inventory document, as it is (each reader checks what it needs);
    InventoryError naming the file if the document is not of FORMAT."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InventoryError(f"inventory {path}: not a {FORMAT} file")
    return data.get("devices")


def read_devices(path: Path) -> Any:
    """The ``devices`` value of an inventory file (``read_json``, then ``devices_of``)."""
    return devices_of(read_json(path), path)


def load_device_ids(path: Path) -> frozenset[str]:
    return device_ids_of(read_json(path), path)


def device_ids_of(data: Any, path: Path) -> frozenset[str]:
    """The device ids of an inventory document (InventoryError naming the file if there are none to read)."""
    devices = devices_of(data, path)
    if not isinstance(devices, list) or not all(
        isinstance(d, dict) and isinstance(d.get("device"), str) for d in devices
    ):
        raise InventoryError(f"inventory {path}: 'devices' must be a list of objects with a 'device' id")
    return frozenset(d["device"] for d in devices)
