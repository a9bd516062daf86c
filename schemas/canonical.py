"""The canonical message format that devices (or our vendor adapters) publish.

Every message is one JSON object: an envelope (``schema``, ``device_id``, ``ts``, ``seq``) plus the
fields of its kind. ``schema`` is ``<name>/<major version>``; a new major version is a new model, so a
device that sends ``ap.metrics/1`` keeps working when ``ap.metrics/2`` appears.

Units are part of the field names (``_s``, ``_pct``, ``_dbm``, ``_bytes``, ``_mbps``, ``_ms``).
Ranges follow the vendors' and IF-MIB's published ranges (docs/data-model.md) with generous margins: they reject what is
physically impossible, not what is merely unusual. Counters must fit InfluxDB's signed 64-bit
integers. Unknown keys are rejected (``extra="forbid"``) so that a misspelt field is a visible error
rather than a silently missing series.

Types are checked, never coerced (``strict``): a string or a boolean where a number belongs
(``"cpu_pct": "12"``, ``"num_clients": true``) is a firmware bug the operator must hear about, so it
is refused naming the field. An integer field also refuses an integral float (``23.0``): a device
whose counters pass through a float has lost exactness above 2**53 without saying so, and one rule
(a JSON integer, no fraction or exponent) is easier to state to device makers than "floats that
happen to be whole". A float field accepts an integer (``17`` is the number 17.0). ``ts`` is an
RFC 3339 string kept to the nanosecond (``schemas/timestamps.py``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, WithJsonSchema, model_validator

from schemas.macs import MAC
from schemas.timestamps import EpochNs, validate_timestamp

INT64_MAX = 2**63 - 1
UINT32_MAX = 2**32 - 1

# --- reusable field types -------------------------------------------------------------------
Counter = Annotated[int, Field(ge=0, le=INT64_MAX, description="monotonic counter (wraps/resets allowed)")]
Gauge = Annotated[int, Field(ge=0, le=INT64_MAX)]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]
Dbm = Annotated[float, Field(ge=-130.0, le=40.0)]
Identifier = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$",
        description="letters, digits, '.', '_', ':', '-'; 1-64 characters",
    ),
]
FreeText = Annotated[str, Field(max_length=1024, pattern=r"^[^\x00-\x1f\x7f]*$")]
Timestamp = Annotated[
    EpochNs,
    PlainValidator(validate_timestamp),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 with a UTC offset and up to 9 fractional digits, e.g. 2026-11-28T14:00:00.250Z",
        }
    ),
]
Sequence = Annotated[int, Field(ge=0, le=INT64_MAX, description="per-device message counter")]
Band = Literal["2.4", "5", "6"]


def _integer(value: object) -> object:
    """An integer-valued Literal compares by equality, so 20.0 and True would pass it: refuse them first."""
    if value.__class__ is not int:
        raise ValueError(f"expected an integer, got {type(value).__name__}")
    return value


Width = Annotated[Literal[20, 40, 80, 160, 320], BeforeValidator(_integer)]
CounterBits = Annotated[Literal[32, 64], BeforeValidator(_integer)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


class Envelope(_Strict):
    """Fields every canonical message carries."""

    device_id: Identifier
    ts: Timestamp
    seq: Sequence


# --- access points ----------------------------------------------------------------------------
class Radio(_Strict):
    band: Band
    channel: int = Field(ge=1, le=233)
    width_mhz: Width
    tx_power_dbm: float = Field(ge=-10.0, le=36.0)
    noise_floor_dbm: Dbm | None = None
    cu_total_pct: Percent | None = Field(None, description="channel utilisation, all sources")
    cu_tx_pct: Percent | None = None
    cu_rx_pct: Percent | None = None
    num_clients: Gauge = 0
    tx_bytes: Counter | None = None
    rx_bytes: Counter | None = None
    tx_retries: Counter | None = None
    tx_total: Counter | None = Field(None, description="transmitted frames, for the retry rate")


class ApMetrics(Envelope):
    """``ap.metrics/1``: one access point and its radios, typically every 60 s."""

    schema_id: Literal["ap.metrics/1"] = Field(alias="schema")
    uptime_s: Gauge
    cpu_pct: Percent | None = None
    mem_pct: Percent | None = None
    temperature_c: float | None = Field(None, ge=-40.0, le=125.0)
    num_clients: Gauge
    uplink_rx_bytes: Counter | None = None
    uplink_tx_bytes: Counter | None = None
    uplink_rx_errors: Counter | None = None
    uplink_tx_dropped: Counter | None = None
    radios: list[Radio] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _one_radio_per_band(self) -> ApMetrics:
        bands = [r.band for r in self.radios]
        if len(bands) != len(set(bands)):
            raise ValueError("radios: at most one radio per band")
        return self


class WifiClient(_Strict):
    """One associated client. ``mac`` is personal data: the collector never stores it."""

    mac: str = Field(pattern=MAC, description="aa:bb:cc:dd:ee:ff, AA-BB-CC-DD-EE-FF, aabbccddeeff or aabb.ccdd.eeff")
    band: Band
    rssi_dbm: Dbm
    snr_db: float | None = Field(None, ge=0.0, le=100.0)
    rx_bytes: Counter = 0
    tx_bytes: Counter = 0
    connected_s: Gauge = 0


class ApClients(Envelope):
    """``ap.clients/1``: a summary of the clients of one access point, typically every 300 s."""

    schema_id: Literal["ap.clients/1"] = Field(alias="schema")
    num_clients: Gauge
    rssi_avg_dbm: Dbm | None = None
    rssi_min_dbm: Dbm | None = None
    snr_avg_db: float | None = Field(None, ge=0.0, le=100.0)
    good_rf_clients: Gauge | None = Field(None, description="clients with RSSI >= -67 dBm and SNR >= 25 dB")
    rx_bytes: Counter | None = Field(None, description="bytes received from clients since the last report")
    tx_bytes: Counter | None = Field(None, description="bytes sent to clients since the last report")
    clients: list[WifiClient] | None = Field(None, max_length=2048)


# --- switches, routers, school links ---------------------------------------------------------
OperStatus = Literal["up", "down", "testing", "unknown", "dormant", "notPresent", "lowerLayerDown"]


class Interface(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]*$")
    oper_status: OperStatus
    speed_mbps: Gauge | None = Field(None, description="ifHighSpeed")
    counter_bits: CounterBits = Field(64, description="width of the device's octet counters")
    in_octets: Counter | None = None
    out_octets: Counter | None = None
    in_ucast_pkts: Counter | None = None
    out_ucast_pkts: Counter | None = None
    in_errors: Counter | None = None
    out_errors: Counter | None = None
    in_discards: Counter | None = None
    out_discards: Counter | None = None

    @model_validator(mode="after")
    def _fits_counter_width(self) -> Interface:
        if self.counter_bits == 32:
            for key in ("in_octets", "out_octets", "in_ucast_pkts", "out_ucast_pkts"):
                value = getattr(self, key)
                if value is not None and value > UINT32_MAX:
                    raise ValueError(f"{key}={value} does not fit a 32-bit counter")
        return self


class IfCounters(Envelope):
    """``if.counters/1``: IF-MIB style interface counters of a switch, router or school CPE."""

    schema_id: Literal["if.counters/1"] = Field(alias="schema")
    sys_uptime_s: Gauge | None = None
    interfaces: list[Interface] = Field(min_length=1, max_length=512)

    @model_validator(mode="after")
    def _unique_names(self) -> IfCounters:
        names = [i.name for i in self.interfaces]
        if len(names) != len(set(names)):
            raise ValueError("interfaces: names must be unique")
        return self


class LinkProbe(Envelope):
    """``link.probe/1``: an active probe (ICMP, TWAMP) of one link: latency, jitter, loss."""

    schema_id: Literal["link.probe/1"] = Field(alias="schema")
    target: Identifier
    method: Literal["icmp", "twamp", "http"] = "icmp"
    sent: int = Field(ge=1, le=1_000_000)
    received: int = Field(ge=0, le=1_000_000)
    rtt_min_ms: float | None = Field(None, ge=0.0, le=60_000.0)
    rtt_avg_ms: float | None = Field(None, ge=0.0, le=60_000.0)
    rtt_max_ms: float | None = Field(None, ge=0.0, le=60_000.0)
    jitter_ms: float | None = Field(None, ge=0.0, le=60_000.0, description="IPDV, RFC 3393")

    @model_validator(mode="after")
    def _consistent(self) -> LinkProbe:
        if self.received > self.sent:
            raise ValueError("received must not exceed sent")
        if self.rtt_min_ms is not None and self.rtt_max_ms is not None and self.rtt_min_ms > self.rtt_max_ms:
            raise ValueError("rtt_min_ms must not exceed rtt_max_ms")
        return self

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent


# --- device state and events -----------------------------------------------------------------
DeviceStateValue = Literal["online", "offline", "lost", "rebooting", "maintenance"]


class DeviceState(_Strict):
    """``device.state/1``: retained state. Doubles as the MQTT last will, which is registered when
    the device connects and so cannot know when it will fire: ``ts`` and ``seq`` are optional and
    the collector stamps a will with the time it received it."""

    schema_id: Literal["device.state/1"] = Field(alias="schema")
    device_id: Identifier
    ts: Timestamp | None = None
    seq: Sequence | None = None
    state: DeviceStateValue
    reason: FreeText | None = None


# An attribute keeps the JSON type it was sent with (true stays a boolean, 5 an integer, 5.0 a float);
# each type is stored in a field of its own (docs/data-model.md), so devices cannot conflict.
def _int64(value: object) -> object:
    """An integer attribute beyond 64 bits would otherwise be taken by the float option, altered."""
    if value.__class__ is int and not -(2**63) <= value <= INT64_MAX:
        raise ValueError("an integer attribute must fit 64 bits")
    return value


EventAttribute = Annotated[
    Annotated[str, Field(max_length=256, pattern=r"^[^\x00-\x1f\x7f]*$")] | int | float | bool,
    BeforeValidator(_int64),
]


class DeviceEvent(Envelope):
    """``device.event/1``: something that happened (reboot, upgrade, DFS channel change, roam ...)."""

    schema_id: Literal["device.event/1"] = Field(alias="schema")
    type: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")
    severity: Literal["info", "warning", "critical"] = "info"
    message: FreeText | None = None
    attributes: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")], EventAttribute] = Field(
        default_factory=dict, max_length=16
    )

    @model_validator(mode="after")
    def _reserved_attributes(self) -> DeviceEvent:
        clash = {"severity", "message", "seq"} & self.attributes.keys()
        if clash:
            raise ValueError(f"attributes: reserved names {sorted(clash)}")
        return self


CanonicalMessage = ApMetrics | ApClients | IfCounters | LinkProbe | DeviceState | DeviceEvent

SCHEMA_MODELS: dict[str, type[CanonicalMessage]] = {
    "ap.metrics/1": ApMetrics,
    "ap.clients/1": ApClients,
    "if.counters/1": IfCounters,
    "link.probe/1": LinkProbe,
    "device.state/1": DeviceState,
    "device.event/1": DeviceEvent,
}
