"""Encode: validated readings -> InfluxDB lines, or a Rejection (unencodable, too many series).

Pure: no I/O, no clock except the receive time the caller passes (a will without a timestamp of its
own is stored at its receipt). The mapping from a canonical message to measurements, tags and
fields is ``normalise.py`` (documented in docs/data-model.md); this stage owns the series-key cache,
which is also the series half of the cardinality guard.
"""

from __future__ import annotations

from collections.abc import Iterable

from collector.ingest.decode import Decoded, Rejection
from collector.ingest.lineprotocol import EncodeError
from collector.ingest.normalise import SeriesKeys, TooManySeries, to_lines


class Encoder:
    def __init__(self, max_series: int = 500_000) -> None:
        self.keys = SeriesKeys(max_series)

    def encode(self, readings: Iterable[Decoded], received_ns: int) -> list[str] | Rejection:
        """The lines of one message's readings: all of them, or a Rejection for the whole message."""
        lines: list[str] = []
        keys = self.keys
        try:
            for reading in readings:
                lines += to_lines(
                    reading.message, reading.tags, reading.stamp_ns or received_ns, keys, reading.stamp_ns != 0
                )
        except EncodeError as error:
            return Rejection("unencodable", str(error))
        except TooManySeries as error:
            return Rejection("too_many_series", str(error))
        return lines
