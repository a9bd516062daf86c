"""``[topics]``, ``[inventory]`` and ``[limits]``: what the ingest stages accept (``[routing]`` is in routing.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, PrivateAttr, field_validator, model_validator

from collector.ingest.inventory import device_ids_of, read_json
from collector.ingest.topics import TopicPattern
from collector.settings import PositiveSeconds, Section


class TopicConfig(Section):
    pattern: str = "bxl/v1/{nis}/{site}/{kind}/{device}/{message}"

    @field_validator("pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        TopicPattern(value)  # raises ValueError naming the problem
        return value


class InventoryConfig(Section):
    """The city's inventory (``city-telemetry simulate --write-inventory`` writes one; docs/simulator.md)."""

    file: Path | None = None
    require_known: bool = Field(False, description="refuse messages from devices not in the inventory")

    _document: Any = PrivateAttr(None)
    _device_ids: frozenset[str] | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _needs_file(self) -> InventoryConfig:
        if self.require_known and self.file is None:
            raise ValueError("require_known needs file")
        if self.file is not None:
            # Read once, here: check-config reports a bad file, and the pipeline (device ids) and the
            # KPI engine (places, from the document) reuse what was read.
            self._document = read_json(self.file)  # InventoryError (a ValueError) names the problem
            self._device_ids = device_ids_of(self._document, self.file)
        return self

    @property
    def device_ids(self) -> frozenset[str] | None:
        """The inventory's device ids (None without a file)."""
        return self._device_ids

    @property
    def document(self) -> Any:
        """The inventory file's JSON document as read at start-up (None without a file)."""
        return self._document


class LimitsConfig(Section):
    max_devices: int = Field(200_000, ge=1, description="distinct devices accepted; new ones beyond are refused")
    max_series: int = Field(500_000, ge=1, description="distinct series written; new ones beyond are refused")
    max_payload_bytes: int = Field(256 * 1024, ge=64)
    max_future_s: PositiveSeconds = Field(600.0, description="reject timestamps further ahead than this")
    max_past_s: PositiveSeconds = Field(30 * 86_400.0, description="reject timestamps older than this")
    will_delay_s: PositiveSeconds = Field(
        45.0, description="how long after a device's last packet the broker fires its will (1.5 keepalives)"
    )
    will_max_lag_s: PositiveSeconds = Field(
        120.0,
        description="a will received later than this after the device's newest reading comes from a backlog "
        "and is stored will_delay_s after that reading (a report period + will_delay_s)",
    )
