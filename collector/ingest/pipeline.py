"""The ingest path for one message: decode -> stages -> encode.

``decode.py`` turns (topic, payload) into validated readings or a Rejection; the stages between (the
KPI engine's, which see every reading before it is encoded) consume and may extend those readings;
``encode.py`` turns them into lines. Pure and synchronous, like each of its parts: the app feeds it
and delivers what it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from collector.ingest.decode import Decoded, Decoder, Rejection
from collector.ingest.encode import Encoder
from collector.ingest.normalise import SeriesKeys
from collector.ingest.routing import Route
from collector.ingest.topics import TopicPattern

# A stage between decode and encode: it may look at, replace or add to a message's readings.
Stage = Callable[[list[Decoded], int], list[Decoded]]

__all__ = ["Pipeline", "Rejection", "Stage"]


class Pipeline:
    def __init__(
        self,
        topic_pattern: TopicPattern,
        *,
        routes: Sequence[Route] | None = None,
        max_payload_bytes: int = 256 * 1024,
        max_future_s: float = 600.0,
        max_past_s: float = 30 * 86_400.0,
        cache_size: int = 200_000,
        max_devices: int = 200_000,
        max_series: int = 500_000,
        known_devices: frozenset[str] | None = None,
        will_delay_s: float = 45.0,
        will_max_lag_s: float = 120.0,
        stages: Sequence[Stage] = (),
    ) -> None:
        self.decoder = Decoder(
            topic_pattern,
            routes=routes,
            max_payload_bytes=max_payload_bytes,
            max_future_s=max_future_s,
            max_past_s=max_past_s,
            cache_size=cache_size,
            max_devices=max_devices,
            known_devices=known_devices,
            will_delay_s=will_delay_s,
            will_max_lag_s=will_max_lag_s,
        )
        self.encoder = Encoder(max_series)
        self.stages = list(stages)

    def process(
        self, topic: str, payload: bytes | bytearray, retained: bool, received_ns: int
    ) -> list[str] | Rejection:
        decoded = self.decoder.decode(topic, payload, retained, received_ns)
        if decoded.__class__ is Rejection:
            return decoded
        readings: list[Decoded] = decoded  # type: ignore[assignment]
        for stage in self.stages:
            readings = stage(readings, received_ns)
        return self.encoder.encode(readings, received_ns)

    # What the app reports about the ingest state.
    @property
    def routes(self) -> list[Route]:
        return self.decoder.routes

    @property
    def keys(self) -> SeriesKeys:
        return self.encoder.keys

    @property
    def retained_wills_skipped(self) -> int:
        return self.decoder.retained_wills_skipped
