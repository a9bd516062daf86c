"""Bridges: processes that fetch what equipment without MQTT offers and publish it on the broker.

A bridge is the path from a vendor's controller or cloud to the collector's topics: the UniFi
bridge polls a UniFi Network controller, the Meraki bridge receives Meraki webhooks and polls the
Dashboard API. Each publishes exactly what an adapter (collector/ingest/adapters/) or the canonical
topics accept, with the device's NIS code and site from the city's inventory, and never a half-read
poll. They sit beside delivery, KPIs and ops: they may use the edges' helpers (MQTT settings, the
inventory format), and only the app layer (``city-telemetry bridge ...``) imports them.
docs/bridges.md says how to run them.
"""
