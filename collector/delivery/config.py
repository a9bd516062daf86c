"""``[batch]``, ``[dead_letter]`` and ``[spool]``: how readings are grouped, refused and kept durable."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from collector.settings import PositiveSeconds, Section


class BatchConfig(Section):
    """How lines are grouped into writes (docs/delivery.md, "Batching").

    A batch is written as soon as the writer is free; what arrives during a write forms the next
    batch. ``max_interval_s`` is accepted so that existing files keep loading, and has no effect:
    it promised "at least this often", which writing at once always keeps.
    """

    max_lines: int = Field(5000, ge=1, le=1_000_000, description="at most this many lines in one write request")
    linger_s: float = Field(
        0.0, ge=0, le=10, description="with the writer free, wait up to this long for more lines (0: write at once)"
    )
    max_interval_s: PositiveSeconds = Field(
        0.5, description="no effect since batches are written when the writer is free (kept for old files)"
    )


class DeadLetterConfig(Section):
    """Where refusals are kept, and how much of them (docs/delivery.md, "Dead letters")."""

    file: Path | None = Path("dead-letter.jsonl")
    topic: str | None = Field(None, description="also publish rejections here (QoS 1)")
    log_every_s: PositiveSeconds = Field(10.0, description="at most one log line per reason in this time")
    excerpt_bytes: int = Field(
        4096, ge=64, le=1024**2, description="keep at most this much of a payload, topic or line (start and end)"
    )
    max_file_bytes: int = Field(
        64 * 1024**2, ge=0, description="rotate the file beyond this size; 0: never by size (external logrotate)"
    )
    max_file_age_s: float = Field(
        86_400.0, ge=0, description="rotate the file once its oldest record is this old; 0: never by age"
    )
    keep_files: int = Field(7, ge=0, le=1000, description="rotated files kept (file.1 newest); older ones deleted")
    retained_memory: int = Field(
        10_000, ge=0, le=1_000_000, description="refused retained messages remembered, so each is dead-lettered once"
    )

    @field_validator("topic")
    @classmethod
    def _plain_topic(cls, value: str | None) -> str | None:
        if value is not None and (not value or "+" in value or "#" in value):
            raise ValueError("must be a topic name without wildcards")
        return value

    @field_validator("max_file_bytes")
    @classmethod
    def _room_for_records(cls, value: int) -> int:
        if 0 < value < 4096:
            raise ValueError("must be 0 (no rotation by size) or at least 4096")
        return value


class SpoolConfig(Section):
    """Disk spool for readings InfluxDB cannot take now (docs/delivery.md, "The spool")."""

    enabled: bool = True
    folder: Path = Path("spool")
    max_bytes: int = Field(1024**3, ge=1024, description="when full, stop acknowledging (backpressure)")
    segment_bytes: int = Field(16 * 1024**2, ge=1024)
    after_s: PositiveSeconds = Field(5.0, description="spool a batch InfluxDB has failed to take for this long")
