"""What devices say about their own counters and links, read back from the real InfluxDB by
``kpi recompute``, against figures computed by hand (docs/kpis.md, "Counters" and "Traffic").

No inventory: nothing but the stored readings says that a counter is 32 bits wide or that an
interface is down. Each case was found by an outside trial, where the KPIs were wrong:
- a CPE whose interface reports ``counter_bits: 32`` wraps; the wrap is traffic, not a reset;
- an AP whose uplink counter falls while its uptime keeps rising (cleared or rewritten): the value
  after the fall is not traffic;
- a school link whose interface is down while its probes are answered is down.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from collector.harness.localservers import InfluxDB
from collector.kpi.windows import NS, day_window, local_date
from tests.integration.test_influx_setup import run_cli

pytestmark = pytest.mark.servers

DATABASE = "city_telemetry"
MINUTE = 60 * NS
TAGS = "kind=cpe,nis=21004,site=school-1"


def cpe_lines(device: str, ten: int, octets: list[int], oper: list[int]) -> list[str]:
    """A school CPE reporting every minute: uptime, its wan0 (32-bit counters) and a probe answered."""
    lines = []
    for i, (value, up) in enumerate(zip(octets, oper, strict=True)):
        ts = ten + i * MINUTE
        status = "up" if up else "down"
        lines += [
            f"netdev,device={device},{TAGS} sys_uptime_s={1000 + 60 * i},interfaces_up={up}i,interfaces_total=1i {ts}",
            f'interface,device={device},ifname=wan0,{TAGS} oper_status="{status}",oper_up={up}i,'
            f"counter_bits=32i,in_octets={value}i,out_octets={1000 * i}i {ts}",
            f"link_probe,device={device},method=icmp,target=core,{TAGS} sent=5i,received=5i,loss_pct=0 {ts}",
        ]
    return lines


def test_counter_width_falls_and_interface_status_come_from_the_devices_reports(influxdb: InfluxDB) -> None:
    day = local_date(time.time_ns()) - timedelta(days=3)
    ten = day_window(day).start_ns + 10 * 3600 * NS  # 10:00 local
    lines = cpe_lines("cpe-wrap", ten, [4_000_000_000, 100_000_000, 200_000_000], [1, 1, 1])
    lines += cpe_lines("cpe-down", ten, [0, 1000, 2000, 3000, 4000, 5000], [1, 1, 0, 0, 0, 1])
    uplink = [50_000_000_000, 50_001_000_000, 5_000_000_000, 5_001_000_000]
    lines += [
        f"ap,device=ap-1,kind=ap,nis=21004,site=s1 uptime_s={86_400 + 60 * i},num_clients=1i,"
        f"uplink_rx_bytes={value}i,uplink_tx_bytes={value}i {ten + i * MINUTE}"
        for i, value in enumerate(uplink)
    ]
    influxdb.query(f"CREATE DATABASE {DATABASE}")
    influxdb.write(DATABASE, "\n".join(lines))

    done = run_cli(influxdb.url, "kpi", "recompute", "--from", day.isoformat(), "--grain", "1h")
    assert done.returncode == 0, done.stderr
    rows = {row["device"]: row for row in influxdb.rows(f'SELECT * FROM "kpi_device" WHERE time = {ten}', DATABASE)}
    # 4,000,000,000 -> 100,000,000 is one 32-bit wrap (394,967,296), then 100,000,000 more.
    assert rows["cpe-wrap"]["school_in_bytes"] == 2**32 - 4_000_000_000 + 100_000_000 + 100_000_000
    # 1 MB, an unknown interval where the counter fell by 45 GB with the uptime rising, then 1 MB.
    assert rows["ap-1"]["rx_bytes"] == 2_000_000 and rows["ap-1"]["tx_bytes"] == 2_000_000
    # wan0 reported down at 10:02, 10:03 and 10:04, up at 10:05, the probes answered throughout: the
    # link was down 3 of the minutes its CPE was up, 5 % of the hour.
    device = rows["cpe-down"]["school_availability_pct"]
    assert device > 5.0
    assert rows["cpe-down"]["school_link_availability_pct"] == pytest.approx(device - 100.0 * 3 / 60)
    assert rows["cpe-wrap"]["school_link_availability_pct"] == rows["cpe-wrap"]["school_availability_pct"]
