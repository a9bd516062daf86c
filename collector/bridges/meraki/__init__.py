"""The Meraki bridge: webhooks and Dashboard API polls onto MQTT (README.md)."""
