"""Adapter: UniFi controller ``stat/device`` (uap, usw).

README.md beside this file says what is read, mapped and refused; sample.toml shows its settings.
"""

from collector.ingest.adapters.base import AdapterInfo
from collector.ingest.adapters.unifi.adapter import UnifiAdapter

ADAPTER = AdapterInfo(name="unifi", factory=UnifiAdapter, default_pattern="unifi/{nis}/{site}/{device}/stat")
