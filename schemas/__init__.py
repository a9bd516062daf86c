"""Pydantic models of what devices send (``canonical``) and of what we store (``stored``)."""

from schemas.canonical import (
    SCHEMA_MODELS,
    ApClients,
    ApMetrics,
    CanonicalMessage,
    DeviceEvent,
    DeviceState,
    IfCounters,
    LinkProbe,
)

__all__ = [
    "SCHEMA_MODELS",
    "ApClients",
    "ApMetrics",
    "CanonicalMessage",
    "DeviceEvent",
    "DeviceState",
    "IfCounters",
    "LinkProbe",
]
