"""The InfluxDB sink: the edge where lines leave the process (v1 ``/write``, v2 ``/api/v2/write``).

Last stage of the flow. It reports exactly which lines InfluxDB accepted and which it refused; the
delivery layer decides what that means for acknowledgements.
"""
