"""Adapter: Telegraf line protocol and JSON (snmp IF-MIB, net).

README.md beside this file says what is read, mapped and refused; sample.toml shows its settings.
"""

from collector.ingest.adapters.base import AdapterInfo
from collector.ingest.adapters.telegraf.adapter import TelegrafAdapter

ADAPTER = AdapterInfo(name="telegraf", factory=TelegrafAdapter, default_pattern="telegraf/{nis}/{site}/{device}/+")
