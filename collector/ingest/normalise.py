"""Canonical message -> InfluxDB lines. Pure: no I/O, no clock except what the caller passes.

The data model is documented in docs/data-model.md; keep the two in step. Timestamps are the
messages' own integer nanoseconds (``EpochNs``), written as they are.
"""

from __future__ import annotations

from collector.ingest.lineprotocol import FieldValue, FieldWriter, encode_field, encode_line, join_line, series_key
from schemas.canonical import (
    ApClients,
    ApMetrics,
    CanonicalMessage,
    DeviceEvent,
    DeviceState,
    IfCounters,
    LinkProbe,
)
from schemas.stored import ClientPresence

Tags = tuple[tuple[str, str], ...]
Fields = list[tuple[str, FieldValue | None]]


class TooManySeries(Exception):
    """A new series beyond the cardinality guard (``limits.max_series``)."""


class SeriesKeys:
    """Escaped series keys, built once per series rather than once per message.

    Also the cardinality guard: the series it holds are the series this process writes, and once
    ``max_series`` are known a new one is refused (TooManySeries) instead of growing the database
    (and this cache) without bound. Known series keep working.
    """

    def __init__(self, max_series: int = 500_000) -> None:
        self._keys: dict[tuple[str, Tags, Tags], str] = {}
        self.max_series = max_series

    def get(self, measurement: str, base: Tags, extra: Tags = ()) -> str:
        cache_key = (measurement, base, extra)
        key = self._keys.get(cache_key)
        if key is None:
            if len(self._keys) >= self.max_series:
                raise TooManySeries(f"{self.max_series} series already written; refusing a new one")
            key = self._keys[cache_key] = series_key(measurement, base + extra)
        return key

    def __len__(self) -> int:
        return len(self._keys)


_AP_FIELDS = FieldWriter(
    "uptime_s",
    "cpu_pct",
    "mem_pct",
    "temperature_c",
    "num_clients",
    "uplink_rx_bytes",
    "uplink_tx_bytes",
    "uplink_rx_errors",
    "uplink_tx_dropped",
    "seq",
)
_RADIO_FIELDS = FieldWriter(
    "channel",
    "width_mhz",
    "tx_power_dbm",
    "noise_floor_dbm",
    "cu_total_pct",
    "cu_tx_pct",
    "cu_rx_pct",
    "num_clients",
    "tx_bytes",
    "rx_bytes",
    "tx_retries",
    "tx_total",
)
_CLIENT_FIELDS = FieldWriter(
    "num_clients",
    "rssi_avg_dbm",
    "rssi_min_dbm",
    "snr_avg_db",
    "good_rf_clients",
    "rx_bytes",
    "tx_bytes",
    "seq",
)
_IF_FIELDS = FieldWriter(
    "speed_mbps",
    "counter_bits",
    "in_octets",
    "out_octets",
    "in_ucast_pkts",
    "out_ucast_pkts",
    "in_errors",
    "out_errors",
    "in_discards",
    "out_discards",
    "oper_status",
)
_PROBE_FIELDS = FieldWriter(
    "sent", "received", "rtt_min_ms", "rtt_avg_ms", "rtt_max_ms", "jitter_ms", "seq", "loss_pct"
)
_OPER_UP = (encode_field("oper_up", 0), encode_field("oper_up", 1))


# InfluxDB fixes a field's type per measurement (and shard), not per series: if attributes were
# stored as ``attr_<name>``, the first device to send ``from_channel`` as text would make every
# other device's integer ``from_channel`` a 400 "field type conflict". The type is part of the
# field key instead, so each type has its own field and no device can refuse another's.
_ATTRIBUTE_SUFFIX = {bool: "b", int: "i", float: "f", str: "s"}


def to_lines(
    message: CanonicalMessage | ClientPresence, tags: Tags, received_ns: int, keys: SeriesKeys, estimated: bool = False
) -> list[str]:
    """The lines for one validated message. ``tags`` come from the topic (sorted by key)."""
    if isinstance(message, ApMetrics):
        ts = message.ts
        lines = [join_line(keys.get("ap", tags), _AP_FIELDS.fields(message), ts)]
        for radio in message.radios:
            series = keys.get("ap_radio", tags, (("band", radio.band),))
            lines.append(join_line(series, _RADIO_FIELDS.fields(radio), ts))
        return lines
    if isinstance(message, ApClients):
        # Client MACs stop here: only the summary is stored (privacy by design, docs/data-model.md).
        return [join_line(keys.get("ap_clients", tags), _CLIENT_FIELDS.fields(message), message.ts)]
    if isinstance(message, IfCounters):
        ts = message.ts
        up = sum(1 for i in message.interfaces if i.oper_status == "up")
        device_fields: Fields = [
            ("sys_uptime_s", message.sys_uptime_s),
            ("interfaces_up", up),
            ("interfaces_total", len(message.interfaces)),
            ("seq", message.seq),
        ]
        lines = [encode_line(keys.get("netdev", tags), device_fields, ts)]
        for interface in message.interfaces:
            fields = _IF_FIELDS.fields(interface)
            fields.append(_OPER_UP[interface.oper_status == "up"])
            lines.append(join_line(keys.get("interface", tags, (("ifname", interface.name),)), fields, ts))
        return lines
    if isinstance(message, LinkProbe):
        extra = (("method", message.method), ("target", message.target))
        return [join_line(keys.get("link_probe", tags, extra), _PROBE_FIELDS.fields(message), message.ts)]
    if isinstance(message, DeviceState):
        is_will = message.ts is None
        state_fields: Fields = [
            ("state", message.state),
            ("up", 1 if message.state == "online" else 0),
            ("reason", message.reason),
            ("seq", message.seq),
            ("stamped_on_receipt", is_will),
        ]
        if estimated:  # a will from a backlog: its time is the collector's estimate (docs/data-model.md)
            state_fields.append(("estimated", True))
        stamp = received_ns if message.ts is None else message.ts
        return [encode_line(keys.get("device_state", tags), state_fields, stamp)]
    if isinstance(message, DeviceEvent):
        event_fields: Fields = [
            ("severity", message.severity),
            ("message", message.message),
            ("seq", message.seq),
        ]
        attributes = sorted(message.attributes.items())
        event_fields.extend((f"attr_{key}_{_ATTRIBUTE_SUFFIX[value.__class__]}", value) for key, value in attributes)
        event_key = keys.get("device_event", tags, (("type", message.type),))
        return [encode_line(event_key, event_fields, message.ts)]
    if isinstance(message, ClientPresence):
        presence: Fields = [("pids", ",".join(message.pids)), ("clients", len(message.pids))]
        return [encode_line(keys.get("ap_client_presence", tags), presence, message.ts_ns)]
    raise TypeError(f"no normaliser for {type(message).__name__}")  # pragma: no cover - exhaustive above
