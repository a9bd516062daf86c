"""Ingest: from a raw MQTT message to validated readings, then to InfluxDB lines.

Pure and synchronous, no I/O: routing (which code reads a topic), the vendor adapters and the
canonical schemas (decode), the time window and cardinality guard, then normalise and line protocol
(encode). Every stage returns values or a ``Rejection`` with a stable reason code.
Next in the flow: ``collector.delivery``.
"""
