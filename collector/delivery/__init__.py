"""Delivery: make what ingest produced durable, then acknowledge it.

Batches of lines go to the InfluxDB sink; when it is away they go to the disk spool; refusals go to
the dead-letter store. Only then are the messages acknowledged to the broker (write-then-acknowledge),
so nothing acknowledged is ever lost. Next in the flow: ``collector.sink``.
"""
