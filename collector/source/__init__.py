"""The MQTT source: the edge where messages come in, and where acknowledgements go back.

First stage of the flow ``source -> ingest -> delivery -> sink``. It hands raw messages (topic,
payload, retain flag, connection generation) to the app, and sends PUBACKs only when delivery says
a message's data is durable. Nothing here knows what a payload means.
"""
