"""``[influxdb]``: where readings are written, v1 (database) or v2 (org, bucket, token)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from collector.settings import PositiveSeconds, Section, read_secret


class InfluxConfig(Section):
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
            object.__setattr__(self, "password", read_secret(self.password_file, "influxdb.password_file"))
        if self.token_file is not None:
            object.__setattr__(self, "token", read_secret(self.token_file, "influxdb.token_file"))
        if self.api == "v2":
            missing = [key for key in ("org", "bucket", "token") if getattr(self, key) is None]
            if missing:
                raise ValueError(f"api = 'v2' needs {', '.join(missing)}")
        return self
