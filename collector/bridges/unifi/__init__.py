"""The UniFi bridge: a UniFi Network controller's ``stat/device`` and ``stat/sta`` onto MQTT (README.md)."""
