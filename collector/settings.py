"""What every configuration section shares: frozen, unknown keys refused, secrets read from files.

Each layer of the collector declares its own section (``collector/source/config.py`` for MQTT,
``collector/sink/config.py`` for InfluxDB, ...); ``collector/app/config.py`` assembles them into the
whole file and loads it. This module sits below all of them, so any layer may import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr

PositiveSeconds = Annotated[float, Field(gt=0)]


class Section(BaseModel):
    """A config section: immutable once loaded, and an unknown key is an error that names it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def read_secret(path: Path | None, key: str) -> SecretStr | None:
    """The content of a secret file (stripped), never logged; a ValueError naming ``key`` if unreadable."""
    if path is None:
        return None
    try:
        return SecretStr(path.read_text(encoding="utf-8").strip())
    except OSError as error:
        raise ValueError(f"cannot read {key} {str(path)!r}: {error.strerror}") from None
