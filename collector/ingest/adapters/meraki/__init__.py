"""Adapter: Meraki webhook alerts.

README.md beside this file says what is read, mapped and refused; sample.toml shows its settings.
"""

from collector.ingest.adapters.base import AdapterInfo
from collector.ingest.adapters.meraki.adapter import MerakiAdapter

ADAPTER = AdapterInfo(name="meraki", factory=MerakiAdapter, default_pattern="meraki/{nis}/{site}/{device}/alert")
