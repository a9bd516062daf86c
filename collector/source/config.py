"""``[mqtt]`` and ``[mqtt.tls]``: how the collector reaches the broker (docs/security.md for TLS)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from collector.settings import PositiveSeconds, Section, read_secret


class TlsConfig(Section):
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


class MqttConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field("city-telemetry", min_length=1, max_length=64, description="stable: the session is ours")
    topics: list[str] = Field(default_factory=list, description="subscriptions; default: the topic pattern's")
    shared_group: str | None = Field(
        None,
        description="subscribe as a member of this MQTT shared subscription group ($share/<group>/<filter>), "
        "so that several collectors share the messages (docs/scaling.md); default: a plain subscription",
    )
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
    max_held_bytes: int = Field(
        64 * 1024 * 1024,
        ge=64 * 1024,
        description="payload bytes held between receiving and acknowledging; above it reading pauses "
        "(docs/delivery.md, 'Bounded memory'); keep the broker's max_inflight_bytes below it",
    )
    watch_broker_drops: bool = Field(
        True, description="subscribe to the broker's $SYS drop counter and report its rises (docs/delivery.md)"
    )
    reconnect_min_s: PositiveSeconds = 0.5
    reconnect_max_s: PositiveSeconds = 30.0

    @field_validator("shared_group")
    @classmethod
    def _group_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or any(c in value for c in "/+#")):
            raise ValueError("must be a non-empty name without '/', '+' or '#' (MQTT 5, 4.8.2)")
        return value

    def subscribed_filters(self, filters: list[str]) -> list[str]:
        """What SUBSCRIBE carries for these topic filters: ``$share/<group>/<filter>`` with a group."""
        if self.shared_group is None:
            return list(filters)
        return [f"$share/{self.shared_group}/{topic}" for topic in filters]

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol_as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int | float) else value  # protocol = 5 in TOML or the environment

    @model_validator(mode="after")
    def _load_secret(self) -> MqttConfig:
        if self.password_file is not None:
            object.__setattr__(self, "password", read_secret(self.password_file, "mqtt.password_file"))
        return self
