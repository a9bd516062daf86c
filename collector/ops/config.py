"""``[health]``, ``[log]`` and ``[ops]``: how operators watch the collector."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from collector.settings import PositiveSeconds, Section


class HealthConfig(Section):
    """HTTP ``/healthz`` and ``/metrics`` (Prometheus); off unless ``listen`` is set."""

    listen: str | None = Field(None, pattern=r"^[^\s:]+:\d{1,5}$", description='e.g. "127.0.0.1:9108"')

    @field_validator("listen")
    @classmethod
    def _a_port(cls, value: str | None) -> str | None:
        # The operating system would take 99999 as 99999 - 65536: a port the monitoring does not probe.
        if value is not None and int(value.rsplit(":", 1)[1]) > 65_535:
            raise ValueError(f"{value!r}: a port is 0 to 65535")
        return value


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"
    stats_every_s: PositiveSeconds = 30.0


class OpsConfig(Section):
    """What the collector tells about itself, beside ``/metrics`` (docs/operations.md)."""

    self_stats_every_s: float = Field(
        10.0,
        ge=0,
        description="write the collector's own statistics to InfluxDB this often (0: off); Grafana's "
        "Collector health dashboard reads them",
    )
