"""``[kpi]``: the KPI engine (docs/kpis.md) and its privacy settings (docs/privacy.md)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from collector.kpi.pseudonym import PseudonymError, load_secret
from collector.kpi.windows import GRAINS, Grain
from collector.settings import PositiveSeconds, Section


class KpiSection(Section):
    enabled: bool = Field(True, description="compute KPIs live from what is stored")
    pseudonym_key_file: Path | None = Field(
        None,
        description="secret for client pseudonyms (>= 16 bytes, readable by the collector only); "
        "unset: a random key per day in memory (one process only)",
    )
    report_period_s: PositiveSeconds = Field(60.0, description="how often devices report")
    missed_reports: int = Field(3, ge=1, le=100, description="a device silent this many periods is down")
    clients_every_s: PositiveSeconds = Field(300.0, description="how often APs list their clients")
    clients_bucket_s: PositiveSeconds = Field(
        300.0, description="concurrent clients are summed over APs per bucket of this length (peak, mean)"
    )
    grains: tuple[Grain, ...] = Field(
        GRAINS, min_length=1, description='the windows computed: any of "5m", "1h", "day" (local Europe/Brussels day)'
    )
    every_s: PositiveSeconds = Field(30.0, description="how often due windows are computed")
    day_every_s: PositiveSeconds = Field(
        900.0, description="a day whose readings keep coming (the open day) is recomputed at most this often"
    )
    late_every_s: PositiveSeconds = Field(
        300.0,
        description="a closed 5-minute or hourly window that late readings keep touching is recomputed at most "
        "this often (and once more when they stop)",
    )
    lateness_s: PositiveSeconds = Field(4 * 3600.0 + 600.0, description="a window is final this long after its end")
    process_nice: int = Field(
        10,
        ge=0,
        le=19,
        description="added to the collector's niceness for its KPI process: when both wait for the CPU, "
        "ingest gets the larger share and the KPIs come later (0: the same priority as ingest)",
    )
    day_reads: int = Field(
        8,
        ge=1,
        le=1000,
        description="a day's KPIs read its readings back in this many parts of the devices, one at a time: "
        "the KPI process holds a part's readings and the day's per-device figures, not the whole day's readings",
    )
    state_file: Path | None = Field(None, description="the windows still to compute; default: in spool.folder")
    presence_retention_days: int = Field(
        30, ge=1, le=400, description="client pseudonyms (ap_client_presence) are deleted after this"
    )
    k_anonymity: int = Field(
        10,
        ge=1,
        description="client and session counts below this are hidden in what leaves the team",
    )

    @model_validator(mode="after")
    def _key_readable(self) -> KpiSection:
        if self.pseudonym_key_file is not None:
            try:
                load_secret(self.pseudonym_key_file)
            except PseudonymError as error:
                raise ValueError(str(error)) from None
        return self
