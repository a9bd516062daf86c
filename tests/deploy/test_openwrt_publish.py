"""deploy/openwrt/city-telemetry-publish, run as an access point would run it: POSIX sh under
busybox (else dash, to catch bashisms), with busybox's sed/awk/tr/cat/date when busybox is there,
stub `ubus`/`jsonfilter` answering with hostapd/iwinfo/system data (tests/deploy/openwrt_ap/), a
fake /sys/class/net and /proc/stat, and the REAL mosquitto_pub against a real mosquitto (TLS,
client certificate, password) read by the real collector into a real InfluxDB."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collector.harness.localservers import BrokerTls, InfluxDB, Mosquitto, write_password_file
from tests.conftest import collector_config, points, running_collector, wait_until
from tests.security.conftest import mqtt_security
from tests.security.pki import make_pki

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "openwrt" / "city-telemetry-publish"
STUBS = Path(__file__).parent / "openwrt_ap"
SHELL = ["busybox", "sh"] if shutil.which("busybox") else ["dash"]
APPLETS = ("sed", "awk", "tr", "cat", "date", "cp")
# interface -> (rx_bytes, tx_bytes, rx_packets, tx_packets, rx_errors, tx_errors, rx_dropped, tx_dropped)
COUNTERS = {
    "eth0": (55_555_555_555, 4_444_444_444, 40_000_000, 9_000_000, 4, 0, 10, 2),
    "wlan0": (600_000_000, 3_000_000_000, 1_500_000, 2_500_000, 0, 0, 0, 0),
    "wlan1": (2_000_000_000, 20_000_000_000, 4_000_000, 16_000_000, 0, 1, 1, 0),
}
NAMES = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors", "tx_errors", "rx_dropped", "tx_dropped")
CLIENT_MACS = ("a4:83:e7:10:20:30", "da:a1:19:40:50:60", "2a:1a:ec:4a:c0:df", "82:e0:6b:a2:f6:84")


@dataclass
class AccessPoint:
    folder: Path
    env: dict[str, str]
    config: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SHELL, str(SCRIPT), "-c", str(self.config), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def settings(self, **values: str) -> None:
        text = self.config.read_text()
        self.config.write_text(text + "".join(f"{k}={v}\n" for k, v in values.items()))

    def syslog(self) -> str:
        path = self.folder / "syslog"
        return path.read_text() if path.exists() else ""


@pytest.fixture
def ap(tmp_path: Path) -> AccessPoint:
    folder = tmp_path / "ap"
    bin_dir = folder / "bin"
    bin_dir.mkdir(parents=True)
    if SHELL[0] == "busybox":
        busybox = shutil.which("busybox")
        assert busybox is not None
        for applet in APPLETS:
            (bin_dir / applet).symlink_to(busybox)
    for stub in ("ubus", "jsonfilter", "sleep", "logger"):
        shutil.copy2(STUBS / "bin" / stub, bin_dir / stub)
    ubus = folder / "ubus"
    shutil.copytree(STUBS / "ubus", ubus)
    for name, values in COUNTERS.items():
        stats = folder / "sys" / "class" / "net" / name / "statistics"
        stats.mkdir(parents=True)
        (stats.parent / "operstate").write_text("up\n")
        for counter, value in zip(NAMES, values, strict=True):
            (stats / counter).write_text(f"{value}\n")
    proc = folder / "proc"
    proc.mkdir()
    # /proc/stat's cpu line before and after the sample: 300 ticks of user, 100 system, 100 softirq, 1500 idle
    (proc / "stat").write_text("cpu  1000 0 500 8000 100 0 400 0 0 0\ncpu0 1000 0 500 8000 100 0 400 0 0 0\n")
    (folder / "stat.after").write_text("cpu  1300 0 600 9500 100 0 500 0 0 0\ncpu0 1300 0 600 9500 100 0 500 0 0 0\n")
    config = folder / "publish.conf"
    config.write_text(
        "NIS=21009\nSITE=flagey\nDEVICE=ap-21009-flagey-02\nBROKER_HOST=127.0.0.1\n"
        f"PROC_DIR={proc}\nSYS_DIR={folder / 'sys'}\nCAFILE=\n"
    )
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(folder),
        "STUB_UBUS": str(ubus),
        "STUB_UBUS_LOG": str(folder / "ubus.log"),
        "STUB_PROC": str(proc),
        "STUB_STAT_AFTER": str(folder / "stat.after"),
        "STUB_SYSLOG": str(folder / "syslog"),
    }
    return AccessPoint(folder, env, config)


def interface(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "type": kind, "up": True, "statistics": dict(zip(NAMES, COUNTERS[name], strict=True))}


def test_help() -> None:
    done = subprocess.run([*SHELL, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0 and done.stdout.startswith("Usage: city-telemetry-publish")
    assert "--print" in done.stdout and "--loop SECONDS" in done.stdout


def test_the_document_read_from_ubus_sysfs_and_proc(ap: AccessPoint) -> None:
    before = int(time.time())
    done = ap.run("--print")
    after = int(time.time())
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert before <= document["general"].pop("local_time") <= after
    assert document == {
        "type": "DeviceMonitoring",
        "general": {"hostname": "ap-21009-flagey-02", "uptime": 432_000},
        "resources": {
            "memory": {
                "total": 134_217_728,
                "free": 40_000_000,
                "shared": 1_000_000,
                "buffered": 4_000_000,
                "available": 70_000_000,
                "cached": 30_000_000,
            },
            "cpu": {
                "user": 15.0,
                "nice": 0.0,
                "system": 5.0,
                "idle": 75.0,
                "iowait": 0.0,
                "irq": 0.0,
                "softirq": 5.0,
            },
        },
        "interfaces": [
            interface("eth0", "ethernet"),
            {
                **interface("wlan0", "wireless"),
                "wireless": {
                    "ssid": "wifi.brussels",
                    "mode": "access_point",
                    "channel": 11,
                    "frequency": 2462,
                    "tx_power": 18,
                    "noise": -95,
                    "htmode": "HT20",
                    "clients": [{"signal": -58}, {"signal": -81}],
                },
            },
            {
                **interface("wlan1", "wireless"),
                "wireless": {
                    "ssid": 'wifi.brussels "guest"',  # escaped on the way
                    "mode": "access_point",
                    "channel": 36,
                    "frequency": 5180,
                    "tx_power": 23,  # noise 0: not reported by the driver, left out
                    "htmode": "VHT80",
                    "clients": [{}, {}, {}, {}],  # hostapd without signal (openUF's capture)
                },
            },
        ],
    }
    for mac in CLIENT_MACS:
        assert mac not in done.stdout.lower()  # no client MAC leaves the AP
    calls = (ap.folder / "ubus.log").read_text().splitlines()
    assert calls == [
        "call system board",
        "call system info",
        "list hostapd.*",
        "call hostapd.wlan0 get_status",
        "call hostapd.wlan0 get_clients",
        'call iwinfo info {"device":"wlan0"}',
        "call hostapd.wlan1 get_status",
        "call hostapd.wlan1 get_clients",
        'call iwinfo info {"device":"wlan1"}',
    ]


def test_a_half_read_document_is_not_published(ap: AccessPoint) -> None:
    (ap.folder / "ubus" / "iwinfo.info.wlan1.json").unlink()  # rpcd's iwinfo does not answer for wlan1
    done = ap.run("--print")
    assert (done.returncode, done.stdout) == (1, "")
    assert "iwinfo info wlan1 failed" in ap.syslog()
    assert "not published: the monitoring could not be read whole" in done.stderr


def test_bad_settings_are_named(ap: AccessPoint) -> None:
    ap.settings(DEVICE="")
    done = ap.run("--print")
    assert done.returncode == 64 and "setting DEVICE is empty" in done.stderr


@pytest.mark.servers
async def test_published_with_mosquitto_pub_over_tls_and_stored(ap: AccessPoint, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    passwords = {"collector": "collector-secret-1", "ap-21009-flagey-02": "ap secret with spaces"}
    tls = BrokerTls(cert_file=pki.broker.cert, key_file=pki.broker.key, ca_file=pki.ca.cert)
    broker = Mosquitto(
        tmp_path / "mosquitto", tls=tls, password_file=write_password_file(tmp_path / "passwd", passwords)
    )
    influxdb = InfluxDB(tmp_path / "influxdb")
    broker.start()
    influxdb.start()
    try:
        credentials = ap.folder / "credentials"
        credentials.mkdir(mode=0o700)
        (credentials / "mosquitto_pub").write_text(f"-u ap-21009-flagey-02\n-P {passwords['ap-21009-flagey-02']}\n")
        ap.settings(
            BROKER_PORT=str(broker.port),
            CAFILE=str(pki.ca.cert),
            CERTFILE=str(pki.device.cert),
            KEYFILE=str(pki.device.key),
            CREDENTIALS_DIR=str(credentials),
        )
        security = mqtt_security(tmp_path, pki.ca.cert, pki.collector, password=passwords["collector"])
        config = collector_config(broker, influxdb, tmp_path, **security)
        async with running_collector(config) as collector:
            before = int(time.time())
            done = await asyncio.to_thread(ap.run)
            after = int(time.time())
            assert done.returncode == 0, done.stderr + ap.syslog()
            await wait_until(lambda: collector.counters["messages_committed"] == 1, what="commit")
            (credentials / "mosquitto_pub").write_text("-u ap-21009-flagey-02\n-P wrong\n")
            refused = await asyncio.to_thread(ap.run)
        assert refused.returncode == 2
        assert "mosquitto_pub to 127.0.0.1" in ap.syslog() and "wrong" not in ap.syslog()
        assert dict(collector.dead_letters.counts) == {}
        stored = {m: rows(influxdb, m) for m in ("ap", "ap_radio", "ap_clients", "netdev", "interface")}
    finally:
        broker.kill()
        influxdb.kill()
    (t,) = {row["time"] for found in stored.values() for row in found}  # one document, one time
    assert before * 10**9 <= t <= after * 10**9  # the AP's clock (general.local_time), whole seconds
    tags = {"time": t, "nis": "21009", "site": "flagey", "kind": "ap", "device": "ap-21009-flagey-02"}
    assert stored["ap"] == [
        {
            **tags,
            "uptime_s": 432_000,
            "cpu_pct": 25.0,  # 100 - idle 75 % of the sample
            "mem_pct": pytest.approx(100 * (134_217_728 - 70_000_000) / 134_217_728),
            "num_clients": 6,
            "uplink_rx_bytes": 55_555_555_555,  # eth0, the one ethernet interface
            "uplink_tx_bytes": 4_444_444_444,
            "uplink_rx_errors": 4,
            "uplink_tx_dropped": 2,
            "seq": 0,
        }
    ]
    radio = {**tags, "noise_floor_dbm": -95}
    assert stored["ap_radio"] == [
        {
            **radio,
            "band": "2.4",
            "channel": 11,
            "width_mhz": 20,
            "tx_power_dbm": 18,
            "num_clients": 2,
            "rx_bytes": 600_000_000,
            "tx_bytes": 3_000_000_000,
            "tx_total": 2_500_000,
        },
        {
            **tags,
            "band": "5",
            "channel": 36,
            "width_mhz": 80,
            "tx_power_dbm": 23,
            "num_clients": 4,
            "rx_bytes": 2_000_000_000,
            "tx_bytes": 20_000_000_000,
            "tx_total": 16_000_000,
        },  # no noise reported
    ]
    assert stored["ap_clients"] == [
        {
            **tags,
            "num_clients": 6,
            "rssi_avg_dbm": -69.5,
            "rssi_min_dbm": -81.0,
            "snr_avg_db": 25.5,
            "good_rf_clients": 1,
            "seq": 0,
        }  # signals -58 and -81 over noise -95; only -58 is good RF
    ]
    assert stored["netdev"] == [{**tags, "sys_uptime_s": 432_000, "interfaces_up": 3, "interfaces_total": 3, "seq": 0}]
    assert sorted(stored["interface"], key=lambda r: r["ifname"]) == [
        {
            **tags,
            "ifname": name,
            "counter_bits": 64,
            "oper_status": "up",
            "oper_up": 1,
            "in_octets": COUNTERS[name][0],
            "out_octets": COUNTERS[name][1],
            "in_errors": COUNTERS[name][4],
            "out_errors": COUNTERS[name][5],
            "in_discards": COUNTERS[name][6],
            "out_discards": COUNTERS[name][7],
        }
        for name in ("eth0", "wlan0", "wlan1")
    ]
    dump = json.dumps(stored).lower()
    for mac in CLIENT_MACS:
        assert mac not in dump


def rows(influxdb: InfluxDB, measurement: str) -> list[dict[str, Any]]:
    found = points(influxdb, f'SELECT * FROM "{measurement}"')
    return [{k: v for k, v in row.items() if v is not None and k != "_measurement"} for row in found]


def test_names_with_json_and_shell_characters_stay_valid_json(ap: AccessPoint) -> None:
    """An SSID and a hostname as people name them: quotes, a backslash, a dollar, a tab, non-ASCII."""
    ssid = 'Café "Wifi" \\ $HOME `x`\tgratuit 🙂'
    status = ap.folder / "ubus" / "hostapd.wlan0.get_status.json"
    doc = json.loads(status.read_text())
    doc["ssid"] = ssid
    status.write_text(json.dumps(doc, ensure_ascii=False))
    board = ap.folder / "ubus" / "system.board.json"
    doc = json.loads(board.read_text())
    doc["hostname"] = 'AP "hall" 1'
    board.write_text(json.dumps(doc))
    result = ap.run("--print")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["general"]["hostname"] == 'AP "hall" 1'
    wireless = [i["wireless"]["ssid"] for i in printed["interfaces"] if i["type"] == "wireless"]
    assert ssid.replace("\t", "") in wireless
