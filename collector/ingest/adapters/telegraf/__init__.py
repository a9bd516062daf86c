"""Adapter: Telegraf line protocol and JSON (snmp IF-MIB, net).

README.md beside this file says what is read, mapped and refused; sample.toml shows its settings.
"""

from pydantic import Field

from collector.ingest.adapters.base import AdapterInfo
from collector.ingest.adapters.telegraf.adapter import DEFAULT_POLL_TOLERANCE_S, TelegrafAdapter

ADAPTER = AdapterInfo(
    name="telegraf",
    factory=TelegrafAdapter,
    default_pattern="telegraf/{nis}/{site}/{device}/+",
    settings={
        "poll_tolerance_s": (
            float,
            Field(
                DEFAULT_POLL_TOLERANCE_S,
                ge=0.0,
                le=300.0,
                description="rows of one agent within this many seconds of a poll's first row are that poll",
            ),
        )
    },
)
