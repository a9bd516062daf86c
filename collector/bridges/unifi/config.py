"""``[unifi]``: which UniFi Network controller the bridge polls, how, and where it publishes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from collector.bridges.common import HttpTls, check_topic
from collector.settings import PositiveSeconds, Section, read_secret


class UnifiConfig(Section):
    url: str = Field(pattern=r"^https?://[^/]+$", description="the controller, e.g. https://unifi.example:8443")
    api: Literal["classic", "unifi-os"] = Field(
        "classic",
        description="classic controller (POST /api/login) or a UniFi OS console (POST /api/auth/login, "
        "every path under /proxy/network)",
    )
    username: str = Field(min_length=1, description="a read-only controller account")
    password_file: Path = Field(description="file holding its password (mode 0600)")
    password: SecretStr | None = Field(None, exclude=True, description="read from password_file at start")
    sites: list[str] = Field(default_factory=list, description="site names to poll (empty: every site it sees)")
    period_s: PositiveSeconds = Field(60.0, description="one poll per period (the devices' report period)")
    timeout_s: PositiveSeconds = Field(10.0, description="one request, from sending to the last byte")
    retries: int = Field(2, ge=0, le=10, description="retries of one failed request within a poll")
    retry_delay_s: PositiveSeconds = 1.0
    backoff_min_s: PositiveSeconds = Field(5.0, description="first wait after a failed poll, then doubled")
    backoff_max_s: PositiveSeconds = Field(300.0, description="longest wait between polls when the controller is away")
    publish_timeout_s: PositiveSeconds = Field(10.0, description="wait for the broker's PUBACKs of one poll")
    clients: bool = Field(True, description="publish an ap.clients/1 report per access point from stat/sta")
    device_topic: str = Field("unifi/{nis}/{site}/{device}/stat", description="routing.unifi.pattern's topic")
    clients_topic: str = Field("bxl/v1/{nis}/{site}/{kind}/{device}/clients", description="canonical topic")
    tls: HttpTls = HttpTls()

    @model_validator(mode="after")
    def _load_secret(self) -> UnifiConfig:
        object.__setattr__(self, "password", read_secret(self.password_file, "unifi.password_file"))
        for key in ("device_topic", "clients_topic"):
            check_topic(key, getattr(self, key))
        return self
