"""Meraki dashboard webhook alerts (as a webhook-to-MQTT bridge republishes them, one per message).

Every alert -> ``device.event/1``:

- ``type``: a neutral name for the alerts whose meaning is the same whatever the vendor
  (``stopped_reporting`` -> ``device.down``, ``started_reporting`` -> ``device.up``,
  ``port_disconnected`` -> ``port.down``, ``port_connected`` -> ``port.up``,
  ``port_speed_change`` -> ``port.speed_change``), else ``meraki.<alertTypeId>``;
- ``severity`` from ``alertLevel`` (``informational`` -> ``info``, ``warning``, ``critical``);
- ``message`` = ``alertType`` (Meraki's human title, e.g. "APs went down");
- ``attributes``: ``alert_type_id`` and ``alert_id``, then ``alertData``'s single values under
  snake_case names (``portNum`` -> ``port_num``; at most 16 attributes, texts cut at 256
  characters). Client data is never copied: keys that identify a client (``mac``, ``ip``,
  ``clientName``, ``userEmail`` ...) and any value that looks like a MAC address are left out,
  and so is the webhook's ``sharedSecret``.

"APs went down" / "APs came up" also give ``device.state/1`` ``offline`` / ``online`` with the
alert title as the reason. Kind: the topic's ``{kind}``, else the route's ``kind`` setting, else from
``deviceModel`` (MR ap, MS switch, MX/Z/MG router, MV camera, MT sensor). Time: ``occurredAt``.
``seq``: 0 for events, none for state.

Types are checked as Meraki documents them: ``alertTypeId``, ``alertId``, ``alertType``,
``alertLevel`` and ``deviceModel`` are strings and ``occurredAt`` an RFC 3339 time (kept to the
nanosecond); anything else there is refused, naming the key. ``alertData`` values keep the JSON type
they were sent with (docs/data-model.md: each attribute type has its own field).
"""

from __future__ import annotations

import re
from typing import Any

from collector.ingest.adapters.base import (
    AdapterError,
    Reading,
    Source,
    as_object,
    as_str,
    build,
    from_rfc3339,
    invalid,
    load_object,
    require,
    show,
)
from schemas.canonical import DeviceEvent, DeviceState
from schemas.macs import is_mac

EVENT_TYPES = {
    "stopped_reporting": "device.down",
    "started_reporting": "device.up",
    "port_disconnected": "port.down",
    "port_connected": "port.up",
    "port_speed_change": "port.speed_change",
}
STATES = {"stopped_reporting": "offline", "started_reporting": "online"}
SEVERITY = {"informational": "info", "info": "info", "warning": "warning", "critical": "critical"}
MODEL_KINDS = {
    "MR": "ap",
    "CW": "ap",
    "MS": "switch",
    "MX": "router",
    "Z": "router",
    "MG": "router",
    "MV": "camera",
    "MT": "sensor",
}
PERSONAL = frozenset(
    {
        "mac",
        "ip",
        "client_name",
        "client_url",
        "client_id",
        "user_email",
        "user_name",
        "user_id",
        "pcc_name",
        "wifi_mac",
        "contending_mac",
        "conflicting_ip",
        "eth",
        "name",
        "serial_number",
        "changed_by",
        "foreign_bssid",
        "bluetooth_client_id",
        "device_id",
    }
)
MAX_ATTRIBUTES = 16
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_ATTRIBUTE = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")  # \Z: "$" would let "port\n" through
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def snake(key: str) -> str:
    return _CAMEL.sub(r"_\1", key).lower().replace("-", "_")


class MerakiAdapter:
    name = "meraki"

    def decode(self, payload: bytes | bytearray, source: Source, received_ns: int) -> list[Reading]:
        doc = load_object(payload, "a Meraki webhook alert")
        alert_type_id = as_str(require(doc, "alertTypeId"), "alertTypeId")
        ts = from_rfc3339(require(doc, "occurredAt"), "occurredAt")
        level = doc.get("alertLevel")
        severity = "info"
        if level is not None:
            if not isinstance(level, str) or level not in SEVERITY:
                raise invalid("alertLevel", f"{show(level)} is not informational, warning or critical")
            severity = SEVERITY[level]
        title = doc.get("alertType")
        message = None if title is None else _text(as_str(title, "alertType"), 1024)
        kind = source.kind or _kind(doc)
        attributes: dict[str, Any] = {"alert_type_id": alert_type_id}
        alert_id = doc.get("alertId")
        if alert_id is not None and as_str(alert_id, "alertId"):
            attributes["alert_id"] = _text(alert_id, 256)
        alert_data = doc.get("alertData")
        if alert_data is not None:
            for key, value in as_object(alert_data, "alertData").items():
                if len(attributes) >= MAX_ATTRIBUTES:
                    break
                name = snake(key)
                if name in PERSONAL or not _ATTRIBUTE.match(name) or name in ("severity", "message", "seq"):
                    continue
                if isinstance(value, str):
                    if is_mac(value):  # personal data, in any spelling: not stored
                        continue
                    attributes[name] = _text(value, 256)
                elif isinstance(value, bool | int | float):
                    attributes[name] = value
                # nested objects and lists are not single values: not stored
        event = {
            "schema": "device.event/1",
            "device_id": source.device,
            "ts": ts,
            "seq": 0,
            "type": EVENT_TYPES.get(alert_type_id, f"meraki.{alert_type_id}"),
            "severity": severity,
            "message": message,
            "attributes": attributes,
        }
        readings = [Reading(kind, build(DeviceEvent, event, f"Meraki alert {alert_type_id!r}"))]
        state = STATES.get(alert_type_id)
        if state is not None:
            record = {
                "schema": "device.state/1",
                "device_id": source.device,
                "ts": ts,
                "state": state,
                "reason": message,
            }
            readings.append(Reading(kind, build(DeviceState, record, f"Meraki alert {alert_type_id!r}")))
        return readings


def _text(value: str, limit: int) -> str:
    return _CONTROL.sub(" ", value)[:limit]


def _kind(doc: dict[str, Any]) -> str:
    model = doc.get("deviceModel")
    if model is None or model == "":
        raise invalid(
            "deviceModel",
            "missing: cannot tell the device class; set routing.meraki.kind or publish on a topic with a {kind} level",
        )
    model = as_str(model, "deviceModel")
    for prefix in sorted(MODEL_KINDS, key=len, reverse=True):
        if model.upper().startswith(prefix):
            return MODEL_KINDS[prefix]
    raise AdapterError(
        "unsupported", f"deviceModel {show(model)} is not a Meraki family we know ({', '.join(MODEL_KINDS)})"
    )
