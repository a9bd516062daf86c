"""Vendor adapters: one module per source format, each turning a vendor payload into canonical messages.

| module | source | topic (default) |
|---|---|---|
| ``unifi`` | UniFi controller ``stat/device`` (uap, usw) | ``unifi/{nis}/{site}/{device}/stat`` |
| ``netjson`` | OpenWrt NetJSON DeviceMonitoring | ``openwrt/{nis}/{site}/{device}/monitoring`` |
| ``telegraf`` | Telegraf line protocol and JSON (snmp IF-MIB, net) | ``telegraf/{nis}/{site}/{device}/+`` |
| ``meraki`` | Meraki webhook alerts | ``meraki/{nis}/{site}/{device}/alert`` |
| ``mapping`` | any JSON, declared in the config | the mapping's pattern |

See docs/adapters.md for what each field maps to.
"""

from collector.ingest.adapters.base import Adapter, AdapterError, Reading, Source

__all__ = ["Adapter", "AdapterError", "Reading", "Source"]
