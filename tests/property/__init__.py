"""Property-based and hostile-input tests: the encoder against a real InfluxDB, every decoder on
generated payloads, and inputs crafted to inject line protocol or exhaust the collector."""
