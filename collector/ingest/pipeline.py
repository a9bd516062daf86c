"""The ingest path for one message: decode -> stages -> encode.

``decode.py`` turns (topic, payload) into validated readings or a Rejection; the stages between (the
KPI engine's, which see every reading before it is encoded) consume and may extend those readings;
``encode.py`` turns them into lines. Pure and synchronous, like each of its parts: the app feeds it
and delivers what it returns.

A message with no time of its own (a last will, a reading an adapter stamps on receipt) is stored at
a time chosen on receipt. With :attr:`Pipeline.receipts` set (the app's ``delivery/stamps.py``
ledger), that choice is remembered by message (topic, packet id, payload digest), and a redelivery
(MQTT DUP flag) of a message remembered is decoded again at its first receipt time and stored at
its first stamp: the same point, not a second one. Messages with their own time never get there.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Protocol

from collector.ingest.decode import Decoded, DecodeOptions, Decoder, Rejection
from collector.ingest.encode import Encoder
from collector.ingest.normalise import SeriesKeys
from collector.ingest.routing import Route
from collector.ingest.topics import TopicPattern

# A stage between decode and encode: it may look at, replace or add to a message's readings.
Stage = Callable[[list[Decoded], int], list[Decoded]]

__all__ = ["DecodeOptions", "Pipeline", "ReceiptStamps", "Rejection", "Stage"]


class ReceiptStamps(Protocol):
    """Where the stamps of receipt-stamped messages are remembered (collector/delivery/stamps.py)."""

    def recall(self, key: str) -> tuple[int, int] | None:
        """(first receipt time, will stamp) of a message seen before, or None."""
        ...

    def remember(self, key: str, received_ns: int, stamp_ns: int) -> None: ...


# A client MAC in any usual spelling (aa:bb:.., aa-bb-.., aabbcc.., aabb.ccdd.eeff): masked before a
# payload is digested, so that no digest kept on disk can be brute-forced back to one (48 bits, with
# known vendor prefixes, is within reach when the rest of a short payload is known).
_MAC = re.compile(rb"[0-9A-Fa-f]{2}([:-]?)[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}|[0-9A-Fa-f]{4}(?:\.[0-9A-Fa-f]{4}){2}")


def stamp_key(topic: str, packet_id: int, payload: bytes | bytearray) -> str:
    """What identifies one message across redeliveries: topic, packet id and payload (its MAC-shaped
    texts masked), digested (128-bit BLAKE2b; collector/delivery/stamps.py says why these three)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(topic.encode())
    digest.update(b"\0" + packet_id.to_bytes(2, "big") + b"\0")
    digest.update(_MAC.sub(b"<mac>", payload))
    return digest.hexdigest()


def _on_receipt(readings: list[Decoded], received_ns: int) -> bool:
    """Whether any reading is stored at a time chosen on receipt: a will (no ts; its stamp is the
    receipt or an estimate from it) or an adapter's reading stamped with the receipt time."""
    for reading in readings:
        ts = reading.message.ts  # type: ignore[union-attr]  # decode makes canonical readings only
        if ts is None or ts == received_ns:
            return True
    return False


class Pipeline:
    """``options``: the Decoder's (decode.py, ``DecodeOptions``); ``max_series``: the Encoder's."""

    def __init__(
        self,
        topic_pattern: TopicPattern,
        options: DecodeOptions | None = None,
        *,
        max_series: int = 500_000,
        stages: Sequence[Stage] = (),
    ) -> None:
        self.decoder = Decoder(topic_pattern, options)
        self.encoder = Encoder(max_series)
        self.stages = list(stages)
        self.receipts: ReceiptStamps | None = None
        self.restamped = 0  # redeliveries stored at their first stamp

    def process(
        self,
        topic: str,
        payload: bytes | bytearray,
        retained: bool,
        received_ns: int,
        packet_id: int = 0,
        dup: bool = False,
    ) -> list[str] | Rejection:
        """The lines of one message, or why not. ``packet_id`` (0: QoS 0, never redelivered) and
        ``dup`` (the MQTT DUP flag) let a redelivery keep its first stamp (module docstring)."""
        decoded = self.decoder.decode(topic, payload, retained, received_ns)
        if decoded.__class__ is Rejection:
            return decoded
        readings: list[Decoded] = decoded  # type: ignore[assignment]
        if packet_id and self.receipts is not None and _on_receipt(readings, received_ns):
            key = stamp_key(topic, packet_id, payload)
            first = self.receipts.recall(key) if dup else None
            if first is None:
                stamp = next((r.stamp_ns for r in readings if r.message.ts is None), 0)  # type: ignore[union-attr]
                self.receipts.remember(key, received_ns, stamp)
            else:
                received_ns, stamp = first
                again = self.decoder.decode(topic, payload, retained, received_ns)
                if again.__class__ is Rejection:
                    return again
                readings = [
                    replace(r, stamp_ns=stamp) if r.message.ts is None else r  # type: ignore[union-attr]
                    for r in again  # type: ignore[union-attr]
                ]
                self.restamped += 1
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
