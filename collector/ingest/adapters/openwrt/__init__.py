"""Adapter: OpenWrt NetJSON DeviceMonitoring.

README.md beside this file says what is read, mapped and refused."""
