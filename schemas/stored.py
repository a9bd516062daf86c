"""What the collector itself derives and stores, beside the canonical messages devices send.

``ClientPresence``: the clients one access point listed in one ``ap.clients/1`` report, as keyed
daily pseudonyms (collector/kpi/pseudonym.py), never as MAC addresses. It is what unique-client
and session KPIs are computed from, by the live engine and by ``kpi recompute`` alike, so it is
stored (measurement ``ap_client_presence``, with a bounded retention: docs/privacy.md).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClientPresence:
    device_id: str
    ts_ns: int  # the report's own time
    pids: tuple[str, ...]  # sorted, distinct pseudonyms (32 hex digits each)
    unpseudonymised: int = 0  # client entries that were not MAC addresses (counted, never stored)
