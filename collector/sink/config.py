"""``[influxdb]``: where readings are written, v1 (database) or v2 (org, bucket, token).

Raw readings and KPI points can be kept for different durations (deploy/influxdb-notes.md): on 1.x
in two retention policies of the database, raw readings in ``retention_policy`` (unset: the
database's default, which ``city-telemetry influxdb setup`` makes its ``raw`` policy) and KPI points
in ``kpi_retention_policy``; on 2.x/3.x in two buckets, KPI points written to ``kpi_bucket`` and read
through InfluxQL as ``"<kpi_retention_policy>"."kpi_<level>"`` (a DBRP mapping of ``bucket`` and that
name to ``kpi_bucket``). Unset, KPI points go where the raw readings go.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from collector.settings import PositiveSeconds, Section, read_secret

_RP_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")


class InfluxConfig(Section):
    api: Literal["v1", "v2"] = "v1"
    url: str = Field("http://127.0.0.1:8086", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    # v1 (InfluxDB 1.x, and 3.x's v1 compatibility)
    database: str = "city_telemetry"
    retention_policy: str | None = None
    kpi_retention_policy: str | None = Field(
        None, description="KPI points go to (and are read from) this retention policy; unset: as raw readings"
    )
    kpi_bucket: str | None = Field(None, description="v2: KPI points are written to this bucket; unset: bucket")
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    create_database: bool = Field(True, description="v1: CREATE DATABASE at start-up if missing")
    # v2 (InfluxDB 2.x, 3.x, Cloud)
    org: str | None = None
    bucket: str | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    gzip: bool | Literal["auto"] = Field(
        "auto", description='compress each request; "auto": unless InfluxDB is on this machine (a loopback url)'
    )
    timeout_s: PositiveSeconds = 10.0
    retry_min_s: PositiveSeconds = 0.2
    retry_max_s: PositiveSeconds = 30.0

    def compresses(self) -> bool:
        """Whether requests are gzipped. Over a network gzip sends a tenth of the bytes; to InfluxDB on
        this machine it costs the collector about 2 µs of CPU a message and InfluxDB more to inflate
        it, for nothing (docs/performance.md, "Profile"). So "auto" is off for a loopback host
        (``localhost``, 127.0.0.0/8, ``::1``) and on for any other."""
        if self.gzip != "auto":
            return self.gzip
        host = (urlsplit(self.url).hostname or "").rstrip(".")
        if host == "localhost" or host.endswith(".localhost"):  # RFC 6761: always the loopback
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:  # a name: where it points is not ours to guess
            return True
        mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 is 127.0.0.1
        return not (address.is_loopback or (mapped is not None and mapped.is_loopback))

    @field_validator("url")
    @classmethod
    def _no_credentials_in_url(cls, value: str) -> str:
        if "@" in value.split("//", 1)[-1].split("/", 1)[0]:
            raise ValueError("credentials in the URL would be logged; use username and password_file or token_file")
        return value

    @field_validator("kpi_retention_policy")
    @classmethod
    def _plain_name(cls, value: str | None) -> str | None:
        if value is not None and not _RP_NAME.match(value):
            raise ValueError(f"{value!r}: a retention policy name of A-Z a-z 0-9 _ . -, 1-64 characters")
        return value

    @model_validator(mode="after")
    def _check(self) -> InfluxConfig:
        if self.kpi_retention_policy is not None and self.kpi_retention_policy == self.retention_policy:
            raise ValueError("kpi_retention_policy is retention_policy: leave kpi_retention_policy unset")
        if self.api == "v1" and self.kpi_bucket is not None:
            raise ValueError("kpi_bucket is for api = 'v2'; with v1 use kpi_retention_policy")
        if self.api == "v2" and (self.kpi_retention_policy is None) != (self.kpi_bucket is None):
            raise ValueError(
                "api = 'v2' with KPIs in a bucket of their own needs both kpi_bucket (written to) and "
                "kpi_retention_policy (its DBRP name, read through InfluxQL); or neither"
            )
        if self.password_file is not None:
            object.__setattr__(self, "password", read_secret(self.password_file, "influxdb.password_file"))
        if self.token_file is not None:
            object.__setattr__(self, "token", read_secret(self.token_file, "influxdb.token_file"))
        if self.api == "v2":
            missing = [key for key in ("org", "bucket", "token") if getattr(self, key) is None]
            if missing:
                raise ValueError(f"api = 'v2' needs {', '.join(missing)}")
        return self

    def for_kpis(self) -> InfluxConfig:
        """The same server, with KPI points going to their own retention policy (v1) or bucket (v2)."""
        return self.model_copy(
            update={
                "retention_policy": self.kpi_retention_policy or self.retention_policy,
                "bucket": self.kpi_bucket or self.bucket,
            }
        )
