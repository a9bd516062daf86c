"""structlog set-up: JSON lines for a daemon (journald, Loki), or readable console output.

Records of the standard ``logging`` module (paho-mqtt logs through it) go through the same
processors and renderer as our own events, so the stream stays one JSON object per line: such a
record becomes the event ``library_log`` with the library's text in ``message`` and its logger in
``logger`` (e.g. ``paho.mqtt``). Only their warnings and errors are kept: paho logs every packet
at debug level, which would cost more than the collector's own work.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO, cast

import structlog
from structlog.typing import EventDict, WrappedLogger

LIBRARY_EVENT = "library_log"
_HINT = "a message of the library named in 'logger'; the collector's own events around it say what it did about it"
_handler: logging.Handler | None = None  # ours on the root logger, replaced by a later configure_logging


def _library_event(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """A standard-library record: its text as ``message``, under one event name operators can search for."""
    event_dict["message"] = event_dict.pop("event", "")
    event_dict["event"] = LIBRARY_EVENT
    event_dict["hint"] = _HINT
    return event_dict


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was set up (a test harness
    or a daemoniser may replace it; a stream captured at set-up may be closed by then)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


_STDERR = cast(TextIO, _CurrentStderr())


def configure_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> None:
    out = stream if stream is not None else _STDERR  # the stream to write to; default: stderr when written
    global _handler
    numeric = getattr(logging, level.upper())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            timestamper,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line (print() writes the line and its newline apart: with several worker
        # processes on one unbuffered stderr, two lines could interleave).
        logger_factory=structlog.WriteLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                timestamper,
                _library_event,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    if _handler is not None:
        root.removeHandler(_handler)
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.WARNING))
    _handler = handler
