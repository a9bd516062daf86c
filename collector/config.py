"""Typed configuration: a TOML file, then environment overrides, validated once at start-up.

Environment variables ``CITY_TELEMETRY__<SECTION>__<KEY>`` override the file (values are parsed as
TOML scalars, so ``CITY_TELEMETRY__BATCH__MAX_LINES=2000`` is an integer). Secrets can be given as
``password_file``/``token_file``: the file is read at start-up and its content never logged.
Every error names the bad key, e.g. ``influxdb.url: Input should be a valid URL``.
"""

from __future__ import annotations

import os
import ssl
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from paho.mqtt.client import topic_matches_sub
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from collector.inventory import load_device_ids
from collector.routing import RoutingConfig, subscriptions
from collector.topics import TopicPattern

ENV_PREFIX = "CITY_TELEMETRY__"

PositiveSeconds = Annotated[float, Field(gt=0)]


class ConfigError(Exception):
    """Raised with a message that names every bad key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _read_secret(path: Path | None, key: str) -> SecretStr | None:
    if path is None:
        return None
    try:
        return SecretStr(path.read_text(encoding="utf-8").strip())
    except OSError as error:
        raise ValueError(f"cannot read {key} {str(path)!r}: {error.strerror}") from None


class TlsConfig(_Section):
    """TLS to the broker (docs/security.md). The files are loaded here, so check-config finds bad ones."""

    ca_file: Path | None = Field(None, description="CA of the broker's certificate; default: the system's")
    cert_file: Path | None = Field(None, description="our client certificate (PEM; may hold the key too)")
    key_file: Path | None = Field(None, description="its private key (PEM, unencrypted, readable by us only)")
    insecure_skip_verify: bool = False

    @model_validator(mode="after")
    def _loadable(self) -> TlsConfig:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, key)
            try:
                if path is not None:
                    path.open("rb").close()
            except OSError as error:
                raise ValueError(f"cannot read {key} {str(path)!r}: {error.strerror}") from None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            if self.ca_file is not None:
                context.load_verify_locations(cafile=self.ca_file)
        except ssl.SSLError as error:
            raise ValueError(f"ca_file {str(self.ca_file)!r} holds no usable certificate: {error.reason}") from None
        try:
            if self.cert_file is not None:
                context.load_cert_chain(self.cert_file, self.key_file, password=_no_passphrase)
        except ssl.SSLError as error:
            raise ValueError(f"cert_file/key_file not usable: {error.reason}") from None
        return self


def _no_passphrase() -> str:
    raise ValueError("key_file is encrypted: give an unencrypted key, readable by the collector's user only")


class MqttConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field("city-telemetry", min_length=1, max_length=64, description="stable: the session is ours")
    topics: list[str] = Field(default_factory=list, description="subscriptions; default: the topic pattern's")
    qos: Literal[0, 1] = 1
    protocol: Literal["5", "3.1.1"] = Field(
        "3.1.1", description="MQTT version; paho decodes 3.1.1 much faster (docs/delivery.md, 'MQTT version')"
    )
    keepalive_s: int = Field(30, ge=5, le=3600)
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    tls: TlsConfig | None = None
    receive_maximum: int = Field(
        20_000, ge=1, le=65_535, description="unacknowledged messages the broker may send us (MQTT 5)"
    )
    reconnect_min_s: PositiveSeconds = 0.5
    reconnect_max_s: PositiveSeconds = 30.0

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value  # protocol = 5 in TOML or the environment

    @model_validator(mode="after")
    def _load_secret(self) -> MqttConfig:
        if self.password_file is not None:
            object.__setattr__(self, "password", _read_secret(self.password_file, "mqtt.password_file"))
        return self


class TopicConfig(_Section):
    pattern: str = "bxl/v1/{nis}/{site}/{kind}/{device}/{message}"

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        TopicPattern(value)  # raises ValueError naming the problem
        return value


class InfluxConfig(_Section):
    api: Literal["v1", "v2"] = "v1"
    url: str = Field("http://127.0.0.1:8086", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    # v1 (InfluxDB 1.x, and 3.x's v1 compatibility)
    database: str = "city_telemetry"
    retention_policy: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    create_database: bool = Field(True, description="v1: CREATE DATABASE at start-up if missing")
    # v2 (InfluxDB 2.x, 3.x, Cloud)
    org: str | None = None
    bucket: str | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    gzip: bool = True
    timeout_s: PositiveSeconds = 10.0
    retry_min_s: PositiveSeconds = 0.2
    retry_max_s: PositiveSeconds = 30.0

    @field_validator("url")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        if "@" in value.split("//", 1)[-1].split("/", 1)[0]:
            raise ValueError("credentials in the URL would be logged; use username and password_file or token_file")
        return value

    @model_validator(mode="after")
    def _check(self) -> InfluxConfig:
        if self.password_file is not None:
            object.__setattr__(self, "password", _read_secret(self.password_file, "influxdb.password_file"))
        if self.token_file is not None:
            object.__setattr__(self, "token", _read_secret(self.token_file, "influxdb.token_file"))
        if self.api == "v2":
            missing = [key for key in ("org", "bucket", "token") if getattr(self, key) is None]
            if missing:
                raise ValueError(f"api = 'v2' needs {', '.join(missing)}")
        return self


class BatchConfig(_Section):
    max_lines: int = Field(5000, ge=1, le=1_000_000, description="flush when this many lines wait")
    max_interval_s: PositiveSeconds = Field(0.5, description="flush at least this often")


class DeadLetterConfig(_Section):
    file: Path | None = Path("dead-letter.jsonl")
    topic: str | None = Field(None, description="also publish rejections here (QoS 1)")
    log_every_s: PositiveSeconds = Field(10.0, description="at most one log line per reason in this time")

    @field_validator("topic")
    @classmethod
    def _plain_topic(cls, value: str | None) -> str | None:
        if value is not None and (not value or "+" in value or "#" in value):
            raise ValueError("must be a topic name without wildcards")
        return value


class SpoolConfig(_Section):
    """Disk spool for readings InfluxDB cannot take now (docs/delivery.md, "The spool")."""

    enabled: bool = True
    folder: Path = Path("spool")
    max_bytes: int = Field(1024**3, ge=1024, description="when full, stop acknowledging (backpressure)")
    segment_bytes: int = Field(16 * 1024**2, ge=1024)
    after_s: PositiveSeconds = Field(5.0, description="spool a batch InfluxDB has failed to take for this long")


class InventoryConfig(_Section):
    """The city's inventory (``city-telemetry simulate --write-inventory`` writes one; docs/simulator.md)."""

    file: Path | None = None
    require_known: bool = Field(False, description="refuse messages from devices not in the inventory")

    @model_validator(mode="after")
    def _needs_file(self) -> InventoryConfig:
        if self.require_known and self.file is None:
            raise ValueError("require_known needs file")
        if self.file is not None:
            load_device_ids(self.file)  # InventoryError (a ValueError) names the problem
        return self


class LimitsConfig(_Section):
    max_devices: int = Field(200_000, ge=1, description="distinct devices accepted; new ones beyond are refused")
    max_series: int = Field(500_000, ge=1, description="distinct series written; new ones beyond are refused")
    max_payload_bytes: int = Field(256 * 1024, ge=64)
    max_future_s: PositiveSeconds = Field(600.0, description="reject timestamps further ahead than this")
    max_past_s: PositiveSeconds = Field(30 * 86_400.0, description="reject timestamps older than this")


class HealthConfig(_Section):
    """HTTP ``/healthz`` and ``/metrics`` (Prometheus); off unless ``listen`` is set."""

    listen: str | None = Field(None, pattern=r"^[^\s:]+:\d{1,5}$", description='e.g. "127.0.0.1:9108"')


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"
    stats_every_s: PositiveSeconds = 30.0


class Config(_Section):
    mqtt: MqttConfig = MqttConfig()
    topics: TopicConfig = TopicConfig()
    influxdb: InfluxConfig = InfluxConfig()
    batch: BatchConfig = BatchConfig()
    dead_letter: DeadLetterConfig = DeadLetterConfig()
    limits: LimitsConfig = LimitsConfig()
    spool: SpoolConfig = SpoolConfig()
    inventory: InventoryConfig = InventoryConfig()
    health: HealthConfig = HealthConfig()
    log: LogConfig = LogConfig()
    routing: RoutingConfig = RoutingConfig()

    @property
    def subscriptions(self) -> list[str]:
        """``mqtt.topics`` if given, else the canonical root and every route's (collector/routing.py)."""
        return self.mqtt.topics or subscriptions(TopicPattern(self.topics.pattern).subscription, self.routing)

    @model_validator(mode="after")
    def _dead_letters_not_subscribed(self) -> Config:
        topic = self.dead_letter.topic
        if topic is not None:
            for subscription in self.subscriptions:
                if topic_matches_sub(subscription, topic):
                    raise ValueError(
                        f"dead_letter.topic {topic!r} is inside the subscription {subscription!r}: "
                        "the collector would read its own rejections"
                    )
        return self


# Secrets are taken from the environment as given: a password may look like a number or a date.
_RAW_STRING_KEYS = frozenset({"password", "token"})


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        value: Any = raw
        if path[-1] not in _RAW_STRING_KEYS:  # a secret is taken as it is, never parsed
            try:
                value = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                value = raw  # a bare string
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another variable")
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def format_validation_error(error: ValidationError) -> str:
    lines = []
    for problem in error.errors(include_url=False):
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}")
    return "\n".join(lines)


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"{path}: {error.strerror}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None
    data = _merge(data, _env_overrides(os.environ if environ is None else environ))
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None
