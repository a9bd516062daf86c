"""``[batch]``, ``[dead_letter]`` and ``[spool]``: how readings are grouped, refused and kept durable."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from collector.settings import PositiveSeconds, Section


class BatchConfig(Section):
    max_lines: int = Field(5000, ge=1, le=1_000_000, description="flush when this many lines wait")
    max_interval_s: PositiveSeconds = Field(0.5, description="flush at least this often")


class DeadLetterConfig(Section):
    file: Path | None = Path("dead-letter.jsonl")
    topic: str | None = Field(None, description="also publish rejections here (QoS 1)")
    log_every_s: PositiveSeconds = Field(10.0, description="at most one log line per reason in this time")

    @field_validator("topic")
    @classmethod
    def _plain_topic(cls, value: str | None) -> str | None:
        if value is not None and (not value or "+" in value or "#" in value):
            raise ValueError("must be a topic name without wildcards")
        return value


class SpoolConfig(Section):
    """Disk spool for readings InfluxDB cannot take now (docs/delivery.md, "The spool")."""

    enabled: bool = True
    folder: Path = Path("spool")
    max_bytes: int = Field(1024**3, ge=1024, description="when full, stop acknowledging (backpressure)")
    segment_bytes: int = Field(16 * 1024**2, ge=1024)
    after_s: PositiveSeconds = Field(5.0, description="spool a batch InfluxDB has failed to take for this long")
