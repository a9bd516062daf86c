"""Shared simulated runs (generated once per test session: the generator is pure, so they can be)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from simulators.city import FaultEvent, Item, SimConfig, Simulation
from simulators.faults import FaultConfig

# A fixed start keeps these runs identical across test sessions: Monday 2026-11-23 00:00 Brussels.
MONDAY = 1_795_388_400_000


@dataclass
class Run:
    simulation: Simulation
    items: list[Item]

    @property
    def events(self) -> list[FaultEvent]:
        return self.simulation.events


def run(**kwargs: object) -> Run:
    simulation = Simulation(SimConfig(**kwargs))  # type: ignore[arg-type]
    return Run(simulation, list(simulation.items()))


def within(count: int, n: int, p: float, sigmas: float = 4.5) -> bool:
    """Is ``count`` a plausible draw from Binomial(n, p)?"""
    mean = n * p
    return abs(count - mean) <= sigmas * math.sqrt(max(mean * (1 - p), 1.0)) + 1


@pytest.fixture(scope="session")
def clean_day() -> Run:
    """A fault-free weekday of a small city."""
    return run(start_ms=MONDAY, scale=0.1, period_s=900, clients_every=1, faults=FaultConfig.none())


FAULTY = FaultConfig.parse(
    "outage=0.2,reboot=0.2,duplicate=0.01,out_of_order=0.01,late=0.005,malformed=0.005,oversized=0.01,"
    "burst=0.2,clock_skew=0.1,dfs=0.5,counter32=0.5"
)


@pytest.fixture(scope="session")
def faulty_day() -> Run:
    """A day with every fault turned up, so that each shows often enough to be counted."""
    return run(start_ms=MONDAY, scale=0.3, period_s=900, clients_every=1, faults=FAULTY)
