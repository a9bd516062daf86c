"""The shipped access rules (deploy/mosquitto/city-telemetry.acl, wired in by city-telemetry.conf) on
the real mosquitto 2.0.11, with the real collector storing into the real influxd.

Accounts as docs/security.md names them: a device's account is its device id, the collector's is
``city-telemetry``. A publish the ACL refuses is answered "Not authorized" (0x87) to an MQTT 5 client;
each test also checks what reached the collector and InfluxDB, which does not depend on the protocol.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from collector.harness.localservers import InfluxDB, Mosquitto, free_port, write_password_file
from tests import samples
from tests.conftest import DATABASE, collector_config, running_collector, wait_until
from tests.security.conftest import new_secret
from tests.security.shipped import COLLECTOR_ACCOUNT, SHIPPED_ACL, local_copy

pytestmark = pytest.mark.servers

SUCCESS, NO_SUBSCRIBERS, NOT_AUTHORIZED = 0, 0x10, 0x87  # MQTT 5 PUBACK reason codes
DEVICE = "ap-21009-0001"  # the device under test, at place-flagey in Ixelles (21009)
NEIGHBOUR = "ap-21009-0002"  # another device of the same site
FAR = "ap-21004-0003"  # a device of another municipality (City of Brussels, 21004)
PLACES = {DEVICE: ("21009", "place-flagey"), NEIGHBOUR: ("21009", "place-flagey"), FAR: ("21004", "gare-du-midi")}
DEAD_LETTER_TOPIC = "city-telemetry/dead-letter"  # the one topic the shipped ACL lets the collector write


def reading(device: str, seq: int, *, nis: str | None = None, site: str | None = None) -> tuple[str, str]:
    """An ap.clients message as ``device`` publishes it, under its place unless told otherwise."""
    home_nis, home_site = PLACES[device]
    _, payload, _ = samples.ap_clients(seq, samples.recent(offset_s=seq * 0.01))
    payload["device_id"] = device
    return samples.topic(nis or home_nis, site or home_site, "ap", device, "clients"), json.dumps(payload)


class Account:
    """A plain MQTT client logged in as one account; remembers each PUBACK's reason code and what it
    receives."""

    def __init__(
        self,
        port: int,
        user: str,
        password: str,
        client_id: str | None = None,
        protocol: MQTTProtocolVersion = mqtt.MQTTv5,
        persistent: bool = False,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or user,
            protocol=protocol,
            clean_session=None if protocol == mqtt.MQTTv5 else not persistent,
        )
        self.client.username_pw_set(user, password)
        self.acks: dict[int, int] = {}
        self.subacks: list[int] = []
        self.received: list[str] = []
        self.connected = threading.Event()
        self.client.on_connect = lambda c, u, flags, reason, p: self.connected.set() if not reason.is_failure else None
        self.client.on_publish = lambda c, u, mid, reason, p: self.acks.__setitem__(mid, reason.value)
        self.client.on_subscribe = lambda c, u, mid, reasons, p: self.subacks.extend(r.value for r in reasons)
        self.client.on_message = lambda c, u, message: self.received.append(message.topic)
        if protocol == mqtt.MQTTv5:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
            properties.SessionExpiryInterval = 3600 if persistent else 0
            self.client.connect("127.0.0.1", port, clean_start=not persistent, properties=properties)
        else:
            self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.connected.wait(10), f"{user} could not connect"

    def publish(self, topic: str, payload: str) -> int:
        """The broker's answer to one QoS 1 publish (MQTT 3.1.1: always 0, refused or not)."""
        info = self.client.publish(topic, payload, qos=1)
        deadline = time.monotonic() + 10
        while info.mid not in self.acks:
            assert time.monotonic() < deadline, f"no PUBACK for {topic}"
            time.sleep(0.01)
        return self.acks[info.mid]

    def subscribe(self, *topics: str) -> None:
        self.client.subscribe([(topic, 1) for topic in topics])
        deadline = time.monotonic() + 10
        while len(self.subacks) < len(topics):
            assert time.monotonic() < deadline, "no SUBACK"
            time.sleep(0.01)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Broker:
    server: Mosquitto
    passwords: dict[str, str]

    @property
    def port(self) -> int:
        return self.server.port

    def account(self, user: str, **options: Any) -> Account:
        return Account(self.port, user, self.passwords[user], **options)

    def collector_settings(self) -> dict[str, str]:
        return {
            "MQTT__USERNAME": json.dumps(COLLECTOR_ACCOUNT),
            "MQTT__PASSWORD": self.passwords[COLLECTOR_ACCOUNT],  # secrets: taken as given
            "MQTT__CLIENT_ID": json.dumps(COLLECTOR_ACCOUNT),  # as shipped (deploy/collector.toml)
            "MQTT__RECONNECT_MAX_S": "1.0",
        }


def start_broker(tmp_path: Path, more: dict[str, str] | None = None) -> Broker:
    passwords = {name: new_secret(f"mqtt-{name}") for name in (COLLECTOR_ACCOUNT, DEVICE, NEIGHBOUR, FAR)}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    folder, port = tmp_path / "mosquitto", free_port()
    server = Mosquitto(folder, port, config_file=local_copy(folder, port, password_file, more=more))
    server.start()
    return Broker(server, passwords)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    started = start_broker(tmp_path)
    yield started
    started.server.kill()


def stored(influxdb: InfluxDB) -> list[tuple[str, int]]:
    """(device, seq) of every stored ap_clients point."""
    try:
        rows = influxdb.rows('SELECT "seq", "device" FROM ap_clients', DATABASE)
    except RuntimeError:  # no database yet: nothing stored
        return []
    return sorted((row["device"], row["seq"]) for row in rows)


async def test_a_device_publishes_only_under_its_own_device_level(
    broker: Broker, influxdb: InfluxDB, tmp_path: Path
) -> None:
    config = collector_config(broker.server, influxdb, tmp_path, **broker.collector_settings())
    async with running_collector(config) as collector:
        device = broker.account(DEVICE)
        refused = {
            "another device of its site": reading(NEIGHBOUR, 100),
            "a device of another municipality": reading(FAR, 101),
            "another device's level, under its own municipality and site": reading(
                NEIGHBOUR, 102, nis="21009", site="place-flagey"
            ),
            "the collector's dead-letter topic": (DEAD_LETTER_TOPIC, "{}"),
            "the broker's own topics": ("$SYS/broker/publish/messages/dropped", "0"),
            "outside every telemetry root": ("city/announcements", "x"),
            "another device under a vendor root": (f"unifi/21009/place-flagey/{NEIGHBOUR}/stat", "{}"),
        }
        answers = {what: device.publish(topic, payload) for what, (topic, payload) in refused.items()}
        assert answers == dict.fromkeys(refused, NOT_AUTHORIZED)
        # Its own readings go through, under the canonical root and under a vendor root.
        own = [reading(DEVICE, seq) for seq in range(5)]
        assert [device.publish(topic, payload) for topic, payload in own] == [SUCCESS] * 5
        assert device.publish(f"unifi/21009/place-flagey/{DEVICE}/stat", "{}") == SUCCESS
        # A 3.1.1 device gets no refusal code, but its message is thrown away all the same.
        legacy = broker.account(NEIGHBOUR, client_id="legacy", protocol=mqtt.MQTTv311)
        assert legacy.publish(*reading(FAR, 103)) == SUCCESS
        legacy.publish(*reading(NEIGHBOUR, 7))  # allowed: sent last, so the refused ones had their turn
        legacy.close()
        device.close()
        await wait_until(lambda: collector.counters["acked"] == 7, what="the allowed messages")
        await asyncio.sleep(0.5)
        assert collector.counters["received"] == 7  # 5 + 1 canonical + the vendor one (dead-lettered: "{}")
    assert stored(influxdb) == [(DEVICE, seq) for seq in range(5)] + [(NEIGHBOUR, 7)]


async def test_a_device_reads_nothing_not_even_its_own_topics(
    broker: Broker, influxdb: InfluxDB, tmp_path: Path
) -> None:
    config = collector_config(broker.server, influxdb, tmp_path, **broker.collector_settings())
    async with running_collector(config) as collector:
        device = broker.account(DEVICE)
        device.subscribe(
            "#", "bxl/#", f"bxl/v1/21009/place-flagey/ap/{NEIGHBOUR}/+", f"bxl/v1/21009/place-flagey/ap/{DEVICE}/+"
        )
        neighbour = broker.account(NEIGHBOUR)
        for seq in range(3):
            assert neighbour.publish(*reading(NEIGHBOUR, seq)) == SUCCESS
        assert device.publish(*reading(DEVICE, 3)) == SUCCESS
        neighbour.close()
        await wait_until(lambda: collector.counters["acked"] == 4, what="the collector reads them")
        await asyncio.sleep(0.5)
        device.close()
    assert device.subacks == [1, 1, 1, 1]  # mosquitto 2.0.11 grants each subscription (QoS 1) ...
    assert device.received == []  # ... and then delivers nothing on it
    assert stored(influxdb) == sorted([(NEIGHBOUR, 0), (NEIGHBOUR, 1), (NEIGHBOUR, 2), (DEVICE, 3)])


def test_the_collector_account_publishes_only_its_dead_letters(broker: Broker) -> None:
    collector = broker.account(COLLECTOR_ACCOUNT)
    telemetry = {
        "a device's topic": reading(DEVICE, 1)[0],
        "as a device named like the collector": f"bxl/v1/21009/place-flagey/ap/{COLLECTOR_ACCOUNT}/clients",
        "a vendor root": f"unifi/21009/place-flagey/{COLLECTOR_ACCOUNT}/stat",
        "telegraf": f"telegraf/21009/place-flagey/{COLLECTOR_ACCOUNT}/interface",
        "openwrt": f"openwrt/21009/place-flagey/{COLLECTOR_ACCOUNT}/monitoring",
        "meraki": f"meraki/21009/place-flagey/{COLLECTOR_ACCOUNT}/alert",
        "the broker's counter": "$SYS/broker/publish/messages/dropped",
    }
    answers = {what: collector.publish(topic, "{}") for what, topic in telemetry.items()}
    assert answers == dict.fromkeys(telemetry, NOT_AUTHORIZED)
    assert collector.publish(DEAD_LETTER_TOPIC, "{}") == NO_SUBSCRIBERS  # taken (nobody reads it here)
    collector.close()


@pytest.mark.parametrize(
    ("shipped", "protocol"),
    [(True, "3.1.1"), (True, "5"), (False, "3.1.1")],
    ids=["shipped", "shipped, collector on MQTT 5", "without use_username_as_clientid"],
)
async def test_a_device_sending_the_collectors_client_id_does_not_take_its_session(
    shipped: bool, protocol: str, tmp_path: Path, influxdb: InfluxDB
) -> None:
    """Readings published before, during and after another account connects with the collector's
    client id (persistent, subscribed to everything, as a thief would): with the shipped config the
    collector is never disconnected and stores every one; without use_username_as_clientid the broker
    closes the collector's connection (issue 12), which is what makes this test able to fail."""
    broker = start_broker(tmp_path, more=None if shipped else {"use_username_as_clientid true": ""})
    per_phase = 20
    try:
        settings = {**broker.collector_settings(), "MQTT__PROTOCOL": json.dumps(protocol)}
        config = collector_config(broker.server, influxdb, tmp_path, **settings)
        async with running_collector(config) as collector:
            device = broker.account(DEVICE)
            for seq in range(per_phase):
                device.publish(*reading(DEVICE, seq))
            thief = broker.account(NEIGHBOUR, client_id=COLLECTOR_ACCOUNT, protocol=mqtt.MQTTv311, persistent=True)
            thief.subscribe("bxl/#")
            for seq in range(per_phase, 2 * per_phase):
                device.publish(*reading(DEVICE, seq))
            await asyncio.sleep(1.0)
            thief.close()
            for seq in range(2 * per_phase, 3 * per_phase):
                device.publish(*reading(DEVICE, seq))
            device.close()
            if not shipped:
                await wait_until(lambda: collector.source.disconnects >= 1, what="the collector thrown out")
                return
            await wait_until(lambda: collector.counters["acked"] == 3 * per_phase, what="every reading")
            assert (collector.source.connects, collector.source.disconnects) == (1, 0)
        assert thief.received == []
    finally:
        broker.server.kill()
    assert stored(influxdb) == [(DEVICE, seq) for seq in range(3 * per_phase)]


@pytest.mark.parametrize("shipped", [True, False], ids=["shipped", "without use_username_as_clientid"])
async def test_the_queue_of_an_absent_collector_stays_its_own(
    shipped: bool, tmp_path: Path, influxdb: InfluxDB
) -> None:
    """Issue 12's loss: the collector is away (restart, upgrade), its persistent session queues the
    readings, and another account connects with its client id and no clean session. With the shipped
    config that account gets a session of its own: it receives nothing, and the collector, back,
    stores every reading. Without use_username_as_clientid it is handed the collector's session, and
    readings are lost."""
    broker = start_broker(tmp_path, more=None if shipped else {"use_username_as_clientid true": ""})
    per_phase = 20
    try:
        config = collector_config(broker.server, influxdb, tmp_path, **broker.collector_settings())
        async with running_collector(config):
            pass  # its persistent session exists; the collector goes away
        device = broker.account(DEVICE)
        for seq in range(per_phase):
            device.publish(*reading(DEVICE, seq))
        thief = broker.account(NEIGHBOUR, client_id=COLLECTOR_ACCOUNT, protocol=mqtt.MQTTv311, persistent=True)
        thief.subscribe("bxl/#")
        await asyncio.sleep(1.0)
        thief.close()
        for seq in range(per_phase, 2 * per_phase):
            device.publish(*reading(DEVICE, seq))
        device.close()
        async with running_collector(config) as collector:
            if shipped:
                await wait_until(lambda: collector.counters["acked"] == 2 * per_phase, what="every queued reading")
            else:
                await asyncio.sleep(2.0)
    finally:
        broker.server.kill()
    if shipped:
        assert thief.received == []
        assert stored(influxdb) == [(DEVICE, seq) for seq in range(2 * per_phase)]
    else:
        # Issue 12's loss. With the ACL the thief cannot read them either: mosquitto checks read access
        # against the session's current account, so the queued readings are dropped at delivery and
        # the later ones never queued (measured: all 40 lost, none received by the thief).
        assert len(stored(influxdb)) < 2 * per_phase


BRIDGES = Path(__file__).resolve().parents[2] / "collector" / "bridges"


def gateway_examples() -> dict[str, list[str]]:
    """The ACL file's commented gateway examples, uncommented: account -> its lines."""
    blocks: dict[str, list[str]] = {}
    account = None
    for line in SHIPPED_ACL.read_text(encoding="utf-8").splitlines():
        if line.startswith("# user "):
            account = line.removeprefix("# user ").strip()
            blocks[account] = []
        elif account is not None and line.startswith("# topic write "):
            blocks[account].append(line.removeprefix("# "))
        else:
            account = None
    return blocks


def bridge_topics(vendor: str, nis: str, site: str, kind: str, device: str) -> list[str]:
    """Every topic the bridge's sample config publishes on, for one device."""
    with (BRIDGES / vendor / "sample.toml").open("rb") as handle:
        section = tomllib.load(handle)[vendor]
    templates = [value for key, value in section.items() if key.endswith("_topic")]
    assert templates, f"{vendor}: no *_topic in its sample.toml"
    return [t.format(nis=nis, site=site, kind=kind, device=device) for t in templates]


@pytest.mark.parametrize("vendor", ["unifi", "meraki"])
def test_the_acls_gateway_example_lets_each_bridge_publish_everything_it_sends(vendor: str, tmp_path: Path) -> None:
    """A bridge publishes under its vendor root and, for client reports, states and events, under the
    canonical root (its sample.toml). With MQTT 3.1.1, the bridges' protocol, mosquitto acknowledges and
    drops what the ACL refuses: an account set up from the ACL's example must be granted every one of
    those topics, or the bridge's client reports vanish without a trace."""
    examples = {name: lines for name, lines in gateway_examples().items() if vendor in name}
    assert examples, f"the ACL has no commented example account for the {vendor} bridge"
    ((account, lines),) = examples.items()
    passwords = {name: new_secret(f"mqtt-{name}") for name in (COLLECTOR_ACCOUNT, account)}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    folder, port = tmp_path / "mosquitto", free_port()
    acl_extra = "\n" + "\n".join([f"user {account}", *lines]) + "\n"
    server = Mosquitto(folder, port, config_file=local_copy(folder, port, password_file, acl_extra=acl_extra))
    server.start()
    try:
        broker = Broker(server, passwords)
        collector = broker.account(COLLECTOR_ACCOUNT)
        collector.subscribe("bxl/#", f"{vendor}/#")
        bridge = broker.account(account)
        nis = next(line.split("/")[1] for line in lines if line.startswith(f"topic write {vendor}/"))
        topics = bridge_topics(vendor, nis, "gare-du-midi", "ap", "ap-21004-0042")
        answers = {topic: bridge.publish(topic, "{}") for topic in topics}
        assert answers == dict.fromkeys(topics, SUCCESS)
        deadline = time.monotonic() + 10
        while len(collector.received) < len(topics) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(collector.received) == sorted(topics)
        # ... and only for its own municipalities.
        elsewhere = bridge_topics(vendor, "21001", "somewhere", "ap", "ap-21001-0001")
        assert {t: bridge.publish(t, "{}") for t in elsewhere} == dict.fromkeys(elsewhere, NOT_AUTHORIZED)
        bridge.close()
        collector.close()
    finally:
        server.kill()


def test_the_acls_telegraf_example_takes_every_topic_of_the_shipped_telegraf_conf(tmp_path: Path) -> None:
    """deploy/telegraf/telegraf.conf logs in as its outputs.mqtt username and publishes each input's
    metrics on its topic template: the ACL's commented Telegraf account, uncommented, lets every one of
    those topics through (MQTT 5 PUBACK 0) to the collector's account."""
    from tests.adapters.telegraf.test_deploy_conf import CONF, render

    with CONF.open("rb") as handle:
        conf = tomllib.load(handle)
    (output,) = conf["outputs"]["mqtt"]
    account = output["username"]
    examples = gateway_examples()
    assert account in examples, f"the ACL has no commented example for telegraf.conf's account {account!r}"
    topics = sorted(
        {
            render(output["topic"], name, plugin["tags"])
            for name in ("snmp", "interface")
            for plugin in conf["inputs"]["snmp"]
        }
        | {render(output["topic"], "ping", plugin["tags"]) for plugin in conf["inputs"]["ping"]}
    )
    passwords = {name: new_secret(f"mqtt-{name}") for name in (COLLECTOR_ACCOUNT, account)}
    password_file = write_password_file(tmp_path / "passwd", passwords)
    folder, port = tmp_path / "mosquitto", free_port()
    acl_extra = "\n" + "\n".join([f"user {account}", *examples[account]]) + "\n"
    server = Mosquitto(folder, port, config_file=local_copy(folder, port, password_file, acl_extra=acl_extra))
    server.start()
    try:
        broker = Broker(server, passwords)
        collector = broker.account(COLLECTOR_ACCOUNT)
        collector.subscribe("telegraf/#")
        telegraf = broker.account(account, client_id=output["client_id"])
        assert {t: telegraf.publish(t, "x") for t in topics} == dict.fromkeys(topics, SUCCESS)
        deadline = time.monotonic() + 10
        while len(collector.received) < len(topics) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(collector.received) == topics
        telegraf.close()
        collector.close()
    finally:
        server.kill()
