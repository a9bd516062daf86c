"""``[health]`` and ``[log]``: how operators watch the collector."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from collector.settings import PositiveSeconds, Section


class HealthConfig(Section):
    """HTTP ``/healthz`` and ``/metrics`` (Prometheus); off unless ``listen`` is set."""

    listen: str | None = Field(None, pattern=r"^[^\s:]+:\d{1,5}$", description='e.g. "127.0.0.1:9108"')


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["json", "console"] = "json"
    stats_every_s: PositiveSeconds = 30.0
