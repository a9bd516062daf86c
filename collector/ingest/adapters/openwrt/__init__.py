"""Adapter: OpenWrt NetJSON DeviceMonitoring.

README.md beside this file says what is read, mapped and refused; sample.toml shows its settings.
"""

from collector.ingest.adapters.base import AdapterInfo
from collector.ingest.adapters.openwrt.adapter import NetJsonAdapter

ADAPTER = AdapterInfo(
    name="openwrt", factory=NetJsonAdapter, default_pattern="openwrt/{nis}/{site}/{device}/monitoring"
)
