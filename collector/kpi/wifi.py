"""Radio KPIs: channel utilisation p95 and the share of busy radios, retry rate, client RF quality.

Contract: pure functions over samples of one window. Channel utilisation is the radio's reported
``cu_total_pct`` (the share of airtime the radio sensed busy); a radio is busy when its p95 over the
window is above 70 %. Retry rate is Δtx_retries / Δtx_total from the counters (counters.deltas, the
same wrap and reset rules as octets). RF quality is the share of client samples with RSSI >= -67 dBm
and SNR >= 25 dB (the level commonly required for voice and video on Wi-Fi).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from collector.kpi.clients import down_to_rank, percentile

BUSY_PCT = 70.0
GOOD_RSSI_DBM = -67
GOOD_SNR_DB = 25


@dataclass(frozen=True, slots=True)
class ChannelLoad:
    radios: int
    p95_pct: float  # over every sample of every radio
    busy_radios: int  # radios whose own p95 is above BUSY_PCT
    busy_share_pct: float


def channel_load(samples: Mapping[str, Sequence[float]], busy_pct: float = BUSY_PCT) -> ChannelLoad:
    """``samples``: radio key (device/band) -> its ``cu_total_pct`` samples in the window."""
    radios = {k: v for k, v in samples.items() if v}
    if not radios:
        return ChannelLoad(0, 0.0, 0, 0.0)
    busy = sum(1 for v in radios.values() if percentile(v, 95) > busy_pct)
    p95 = down_to_rank(list(radios.values()), 95)[-1]  # of every sample: a city's day holds millions
    return ChannelLoad(len(radios), p95, busy, 100.0 * busy / len(radios))


def rf_quality_pct(clients: Iterable[tuple[float, float]]) -> float | None:
    """Share of (rssi_dbm, snr_db) client samples that are good; None without samples."""
    total = good = 0
    for rssi, snr in clients:
        total += 1
        if rssi >= GOOD_RSSI_DBM and snr >= GOOD_SNR_DB:
            good += 1
    return 100.0 * good / total if total else None


def rf_quality_from_counts(samples: Iterable[tuple[int, int]]) -> float | None:
    """The same from per-report summaries (good_rf_clients, num_clients), as ap_clients stores them."""
    good = total = 0
    for g, n in samples:
        good += g
        total += n
    return 100.0 * good / total if total else None
