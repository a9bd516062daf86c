"""A small, seeded sample of city telemetry for the demo and smoke tests: a few access points,
school links and switches over one simulated hour, plus a few malformed messages.

The full simulated city (issue: "The simulated city") replaces this in the demo when it lands.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

ROOT = "bxl/v1"
SITES = [("21004", "gare-centrale"), ("21009", "place-flagey"), ("21015", "gare-du-nord"), ("21016", "parc-wolvendael")]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def quick_city_messages(seed: int = 7, aps_per_site: int = 4, minutes: int = 60) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    start = (datetime.now(UTC) - timedelta(minutes=minutes + 5)).replace(second=0, microsecond=0)
    out: list[tuple[str, bytes]] = []
    seq: dict[str, int] = {}

    def emit(nis: str, site: str, kind: str, device: str, message: str, body: dict[str, object]) -> None:
        seq[device] = seq.get(device, 0) + 1
        body = {"device_id": device, "seq": seq[device], **body}
        out.append((f"{ROOT}/{nis}/{site}/{kind}/{device}/{message}", json.dumps(body).encode()))

    for minute in range(minutes):
        now = start + timedelta(minutes=minute)
        for nis, site in SITES:
            for k in range(aps_per_site):
                device = f"ap-{nis}-{site[:4]}-{k}"
                clients = max(0, int(rng.gauss(20, 8)))
                emit(nis, site, "ap", device, "metrics", {
                    "schema": "ap.metrics/1", "ts": _iso(now), "uptime_s": 86_400 + minute * 60,
                    "cpu_pct": round(rng.uniform(3, 40), 1), "mem_pct": round(rng.uniform(30, 70), 1),
                    "num_clients": clients,
                    "radios": [
                        {"band": "2.4", "channel": rng.choice([1, 6, 11]), "width_mhz": 20, "tx_power_dbm": 17,
                         "cu_total_pct": round(rng.uniform(30, 80), 1), "num_clients": clients // 3},
                        {"band": "5", "channel": rng.choice([36, 52, 100]), "width_mhz": 80, "tx_power_dbm": 20,
                         "cu_total_pct": round(rng.uniform(5, 40), 1), "num_clients": clients - clients // 3},
                    ],
                })  # fmt: skip
        school = f"cpe-school-{minute % 5:03d}"
        emit("21001", "athenee-anderlecht", "cpe", school, "probe", {
            "schema": "link.probe/1", "ts": _iso(now), "target": "dc-core-1", "sent": 20,
            "received": 20 - (rng.random() < 0.1), "rtt_avg_ms": round(rng.uniform(0.8, 3.0), 2),
        })  # fmt: skip
    out.append((f"{ROOT}/21004/gare-centrale/ap/ap-broken/metrics", b'{"schema": "ap.metrics/1", "device_id": '))
    out.append((f"{ROOT}/21004/gare-centrale/ap/ap-hot/metrics", json.dumps({
        "schema": "ap.metrics/1", "device_id": "ap-hot", "ts": _iso(start), "seq": 1, "uptime_s": 5,
        "num_clients": 3, "cpu_pct": 180.0}).encode()))  # fmt: skip
    return out
