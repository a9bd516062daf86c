"""Development harness, not on the runtime path: local mosquitto and influxd for tests, and the demo."""
