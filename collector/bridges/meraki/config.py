"""``[meraki]``, ``[meraki.webhook]`` and ``[meraki.api]``: what the Meraki bridge receives and polls."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from collector.bridges.common import HttpTls, check_topic
from collector.settings import PositiveSeconds, Section, read_secret


class WebhookConfig(Section):
    """The HTTP server Meraki posts alerts to (behind HTTPS: Meraki refuses plain-HTTP receivers)."""

    enabled: bool = True
    listen: str = Field("127.0.0.1:8181", pattern=r"^[^\s:]+:\d{1,5}$", description="host:port to listen on")
    path: str = Field("/meraki/webhook", pattern=r"^/[A-Za-z0-9._~/-]*$")
    # Required while enabled: a section switched off (an API-only bridge) needs no secret.
    shared_secret_file: Path | None = Field(
        None, description="file holding the secret set on the dashboard's webhook receiver"
    )
    shared_secret: SecretStr | None = Field(None, exclude=True)
    cert_file: Path | None = Field(None, description="serve HTTPS with this certificate (else: a TLS proxy in front)")
    key_file: Path | None = None
    max_body_bytes: int = Field(256 * 1024, ge=1024, le=16 * 1024 * 1024)
    ack_timeout_s: PositiveSeconds = Field(
        3.0, description="wait for the broker's PUBACK before answering 200; later: 503 and Meraki sends again"
    )

    @model_validator(mode="after")
    def _load(self) -> WebhookConfig:
        if not self.enabled:
            return self
        if self.shared_secret_file is None:
            raise ValueError("shared_secret_file needed while the webhook receiver is enabled (enabled = false: off)")
        secret = read_secret(self.shared_secret_file, "meraki.webhook.shared_secret_file")
        if secret is None or len(secret.get_secret_value()) < 8:
            raise ValueError("shared_secret_file: the secret must have at least 8 characters")
        object.__setattr__(self, "shared_secret", secret)
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if self.cert_file is not None:
            try:
                ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(self.cert_file, self.key_file)
            except (OSError, ssl.SSLError) as error:
                raise ValueError(f"cert_file/key_file not usable: {error}") from None
        return self


class ApiConfig(Section):
    """The Dashboard API poll: device statuses and wireless channel utilisation of one organisation."""

    enabled: bool = True
    url: str = Field("https://api.meraki.com/api/v1", pattern=r"^https?://[^\s]+[^/]$")
    # Required while enabled: a section switched off (a webhook-only bridge) needs neither.
    organization_id: str | None = Field(None, min_length=1, pattern=r"^[A-Za-z0-9_-]+$")
    api_key_file: Path | None = Field(None, description="file holding the API key (sent as Authorization: Bearer)")
    api_key: SecretStr | None = Field(None, exclude=True)
    period_s: PositiveSeconds = Field(300.0, description="one poll per period (channel utilisation is per 5 min)")
    max_requests_per_s: float = Field(
        5.0, gt=0, le=10.0, description="our share of the organisation's 10 requests/s (shared by every app)"
    )
    per_page: int = Field(1000, ge=3, le=1000)
    timeout_s: PositiveSeconds = 15.0
    retries: int = Field(3, ge=0, le=10, description="retries of one failed request within a poll")
    retry_delay_s: PositiveSeconds = 1.0
    retry_after_max_s: PositiveSeconds = Field(60.0, description="longest Retry-After honoured; longer: poll fails")
    max_pages: int = Field(100, ge=1, description="a Link chain longer than this is a loop: the poll fails")
    backoff_min_s: PositiveSeconds = 30.0
    backoff_max_s: PositiveSeconds = 900.0
    channel_utilization: bool = Field(True, description="also poll wireless channel utilisation by device")
    tls: HttpTls = HttpTls()

    @model_validator(mode="after")
    def _load(self) -> ApiConfig:
        if not self.enabled:
            return self
        missing = [key for key in ("organization_id", "api_key_file") if getattr(self, key) is None]
        if missing:
            raise ValueError(f"{' and '.join(missing)} needed while the API poll is enabled (enabled = false: off)")
        object.__setattr__(self, "api_key", read_secret(self.api_key_file, "meraki.api.api_key_file"))
        return self


class MerakiConfig(Section):
    webhook: WebhookConfig | None = None
    api: ApiConfig | None = None
    publish_timeout_s: PositiveSeconds = Field(10.0, description="wait for the PUBACKs of one poll")
    alert_topic: str = Field("meraki/{nis}/{site}/{device}/alert", description="routing.meraki.pattern's topic")
    state_topic: str = Field("bxl/v1/{nis}/{site}/{kind}/{device}/state", description="canonical device.state/1")
    event_topic: str = Field("bxl/v1/{nis}/{site}/{kind}/{device}/event", description="canonical device.event/1")

    @model_validator(mode="after")
    def _something(self) -> MerakiConfig:
        for key in ("alert_topic", "state_topic", "event_topic"):
            check_topic(key, getattr(self, key))
        if (self.webhook is None or not self.webhook.enabled) and (self.api is None or not self.api.enabled):
            raise ValueError("neither [meraki.webhook] nor [meraki.api] is configured and enabled")
        return self
