"""The misbehaviour the simulated city can show, each fault switchable and seeded.

Rates are probabilities, each per its own opportunity (see ``OPPORTUNITY``), so that a test can count
a fault in the published stream and compare it with ``rate x opportunities``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

OPPORTUNITY = {
    "outage": "device and day: the device dies (15 min to 4 h, clients dropped), its last will fires "
    "(unless silent), it boots again (uptime and counters reset)",
    "silent_outage": "outage: share of outages whose last will never reaches the broker (silence only)",
    "reboot": "device and day: a clean reboot (1-3 min down; 'rebooting' state, then boot event, uptime and "
    "counters reset)",
    "counter32": "switch or school CPE: its interface counters are 32-bit and wrap",
    "duplicate": "periodic message: delivered twice (a QoS 1 redelivery)",
    "out_of_order": "periodic message: held back until after the device's next message",
    "late": "periodic message: delivered 30 min to 4 h after its timestamp",
    "clock_skew": "device: its clock is off by 5 s to max_skew_s (either way) for the whole run",
    "malformed": "periodic message: truncated, garbled, wrongly typed or out of range (must be refused)",
    "oversized": "canonical ap.clients message: a runaway client table above the collector's payload limit",
    "burst": "site and day: the site's gateway loses the broker for 10-60 min, queues, then flushes at once",
    "dfs": "5 GHz radio on a DFS channel, per day: radar detected, the radio moves to channel 36 (event)",
}


@dataclass(frozen=True, slots=True)
class FaultConfig:
    outage: float = 0.02
    silent_outage: float = 0.25
    reboot: float = 0.05
    counter32: float = 0.25
    duplicate: float = 0.004
    out_of_order: float = 0.003
    late: float = 0.002
    clock_skew: float = 0.03
    malformed: float = 0.001
    oversized: float = 0.0005
    burst: float = 0.03
    dfs: float = 0.1
    max_skew_s: float = 300.0

    @classmethod
    def none(cls) -> FaultConfig:
        return cls(**{f.name: 0.0 for f in fields(cls) if f.name != "max_skew_s"})

    @classmethod
    def parse(cls, text: str) -> FaultConfig:
        """``default``, ``none``, or comma-separated ``name=rate`` changes, optionally after one of those:
        ``none,reboot=0.5`` (only reboots), ``duplicate=0.01`` (defaults, more duplicates)."""
        config = cls()
        names = {f.name for f in fields(cls)}
        for part in (p.strip() for p in text.split(",")):
            if not part or part == "default":
                continue
            if part == "none":
                config = cls.none()
                continue
            name, sep, value = part.partition("=")
            name = name.strip().replace("-", "_")
            if not sep or name not in names:
                raise ValueError(f"fault {part!r}: expected name=rate with a name among {', '.join(sorted(names))}")
            try:
                rate = float(value)
            except ValueError:
                raise ValueError(f"fault {part!r}: {value!r} is not a number") from None
            if name != "max_skew_s" and not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault {part!r}: a rate is between 0 and 1")
            if name == "max_skew_s" and not 5.0 <= rate <= 3600.0:
                raise ValueError(f"fault {part!r}: max_skew_s is between 5 and 3600")
            config = replace(config, **{name: rate})
        if config.duplicate + config.out_of_order + config.late + config.malformed > 1.0:
            raise ValueError("duplicate + out_of_order + late + malformed must not exceed 1")
        return config

    def describe(self) -> str:
        return ",".join(f"{f.name}={getattr(self, f.name):g}" for f in fields(self))
