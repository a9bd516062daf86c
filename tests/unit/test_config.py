from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import get_args, get_origin

import pytest
from pydantic import BaseModel

from collector.app.config import Config, ConfigError, _takes_only_text, load_config


def test_defaults_are_valid() -> None:
    config = load_config(None, {})
    assert config.subscriptions == ["bxl/#", "meraki/#", "openwrt/#", "telegraf/#", "unifi/#"]  # + vendor routes
    assert config.mqtt.qos == 1 and config.influxdb.api == "v1"


def test_file_then_environment(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[influxdb]\nurl = "http://db:8086"\ndatabase = "x"\n[batch]\nmax_lines = 100\n')
    config = load_config(path, {"CITY_TELEMETRY__BATCH__MAX_LINES": "250", "CITY_TELEMETRY__MQTT__HOST": "broker"})
    assert config.influxdb.url == "http://db:8086"
    assert config.influxdb.database == "x"
    assert config.batch.max_lines == 250  # parsed as an integer
    assert config.mqtt.host == "broker"  # a bare string


def test_secrets_from_files_are_not_shown(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("top-secret\n")
    config = load_config(
        None,
        {
            "CITY_TELEMETRY__INFLUXDB__API": '"v2"',
            "CITY_TELEMETRY__INFLUXDB__ORG": "o",
            "CITY_TELEMETRY__INFLUXDB__BUCKET": "b",
            "CITY_TELEMETRY__INFLUXDB__TOKEN_FILE": str(secret),
        },
    )
    assert config.influxdb.token is not None and config.influxdb.token.get_secret_value() == "top-secret"
    assert "top-secret" not in config.model_dump_json()
    assert "top-secret" not in repr(config)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[influxdb]\nurl = 'ftp://x'\n", "influxdb.url"),
        ("[batch]\nmax_linez = 3\n", "batch.max_linez: unknown key"),
        ("[mqtt]\nport = 70000\n", "mqtt.port"),
        ("[mqtt]\nqos = 2\n", "mqtt.qos"),
        ("[influxdb]\napi = 'v2'\n", "needs org, bucket, token"),
        ("[topics]\npattern = 'a/{nis}/{message}'\n", "must contain {device}"),
        ("[dead_letter]\ntopic = 'bxl/dead'\n", "inside the subscription 'bxl/#'"),
        ("[mqtt]\npassword_file = '/nonexistent/pw'\n", "cannot read mqtt.password_file"),
        ("[mqtt\n", "not valid TOML"),
        ("[limits]\nmax_future_s = -1\n", "limits.max_future_s"),
        ("[influxdb]\ngzip = 'always'\n", "influxdb.gzip"),
        ("[health]\nlisten = '127.0.0.1:99999'\n", "health.listen: '127.0.0.1:99999': a port is 0 to 65535"),
        ("# Etterbeek \xe9t\xe9\n[mqtt]\n", "line 1: not UTF-8 text"),
    ],
)
def test_bad_config_names_the_key(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(toml.encode("latin-1"))  # as an editor set to Latin-1 would save it
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}").replace("/", ".")):
        load_config(path, {})


def test_check_config_command_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[batch]\nmax_lines = 10\n")
    bad = tmp_path / "bad.toml"
    bad.write_text("[batch]\nmax_lines = 0\n[nope]\nx = 1\n")
    command = [sys.executable, "-m", "collector.app.cli", "check-config", "-c"]
    ok = subprocess.run([*command, str(good)], capture_output=True, text=True, check=False)
    assert ok.returncode == 0, ok.stderr
    failed = subprocess.run([*command, str(bad)], capture_output=True, text=True, check=False)
    assert failed.returncode == 2
    assert "batch.max_lines" in failed.stderr and "nope: unknown key" in failed.stderr


def test_shipped_sample_config_is_valid() -> None:
    sample = Path(__file__).parents[2] / "deploy" / "collector.toml"
    config = load_config(sample, {})
    assert config.subscriptions


def test_secrets_from_the_environment_are_taken_as_written() -> None:
    environ = {
        "CITY_TELEMETRY__MQTT__USERNAME": "collector",
        "CITY_TELEMETRY__MQTT__PASSWORD": "1979-05-27",
        "CITY_TELEMETRY__INFLUXDB__PASSWORD": '"quoted"',
    }
    config = load_config(None, environ)
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == "1979-05-27"
    assert config.influxdb.password is not None and config.influxdb.password.get_secret_value() == '"quoted"'


def test_credentials_in_the_influxdb_url_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"influxdb\.url: credentials in the URL"):
        load_config(None, {"CITY_TELEMETRY__INFLUXDB__URL": "http://admin:secret@db:8086"})


def test_an_old_batch_section_still_loads(tmp_path: Path) -> None:
    """``batch.max_interval_s`` no longer has an effect (docs/delivery.md, "Batching"), but files that set it load."""
    path = tmp_path / "old.toml"
    path.write_text("[batch]\nmax_lines = 5000\nmax_interval_s = 0.5\n")
    config = load_config(path, {})
    assert config.batch.max_interval_s == 0.5 and config.batch.linger_s == 0.0
    with pytest.raises(ConfigError, match=r"batch\.linger_s"):
        load_config(None, {"CITY_TELEMETRY__BATCH__LINGER_S": "-1"})


@pytest.mark.parametrize(
    ("url", "gzip", "compressed"),
    [
        ("http://127.0.0.1:8086", "auto", False),  # the default url
        ("http://127.3.2.1:8086", "auto", False),  # all of 127.0.0.0/8 is the loopback
        ("http://[::1]:8086", "auto", False),
        ("http://localhost:8086", "auto", False),
        ("http://localhost.:8086", "auto", False),  # the same name, fully qualified
        ("http://[::ffff:127.0.0.1]:8086", "auto", False),  # IPv4 loopback written as IPv6
        ("https://influx.localhost", "auto", False),  # RFC 6761: a .localhost name is the loopback
        ("http://10.20.0.5:8086", "auto", True),
        ("https://influx.bric.brussels", "auto", True),  # a name may point anywhere: compress
        ("http://localhost.bric.brussels:8086", "auto", True),
        ("http://[::ffff:10.0.0.1]:8086", "auto", True),
        ("http://127.0.0.1:8086", "true", True),  # set: as set
        ("https://influx.bric.brussels", "false", False),
    ],
)
def test_gzip_auto_is_off_for_influxdb_on_this_machine_only(url: str, gzip: str, compressed: bool) -> None:
    environ = {"CITY_TELEMETRY__INFLUXDB__URL": f'"{url}"'}
    if gzip != "auto":
        environ["CITY_TELEMETRY__INFLUXDB__GZIP"] = gzip
    config = load_config(None, environ).influxdb
    assert config.gzip == (gzip if gzip == "auto" else gzip == "true")
    assert config.compresses() is compressed


def test_environment_text_keys_keep_text_that_reads_as_a_toml_number_boolean_or_date() -> None:
    config = load_config(
        None,
        {
            "CITY_TELEMETRY__INFLUXDB__DATABASE": "2026",
            "CITY_TELEMETRY__MQTT__USERNAME": "true",
            "CITY_TELEMETRY__MQTT__CLIENT_ID": "2026-01-01",
            "CITY_TELEMETRY__INFLUXDB__RETENTION_POLICY": '"one_year"',  # quoted TOML text: the quotes go
            "CITY_TELEMETRY__BATCH__MAX_LINES": "2000",  # not a text key: a TOML integer
            "CITY_TELEMETRY__KPI__ENABLED": "false",
            "CITY_TELEMETRY__MQTT__PASSWORD": '"s3cret"',  # a secret: as written, quotes and all
            "CITY_TELEMETRY__SPOOL__FOLDER": "2026",  # a path
            "CITY_TELEMETRY__INFLUXDB__GZIP": "false",  # bool | "auto": still TOML
        },
    )
    assert config.influxdb.database == "2026" and config.mqtt.username == "true"
    assert config.mqtt.client_id == "2026-01-01" and config.influxdb.retention_policy == "one_year"
    assert config.batch.max_lines == 2000 and config.kpi.enabled is False and config.influxdb.gzip is False
    assert config.spool.folder == Path("2026")
    # A path in an optional section ([mqtt.tls] reads its files, so the rule is checked alone).
    assert _takes_only_text(["mqtt", "tls", "ca_file"])
    assert not _takes_only_text(["mqtt", "tls", "insecure_skip_verify"])
    assert config.mqtt.password is not None and config.mqtt.password.get_secret_value() == '"s3cret"'
    with pytest.raises(ConfigError, match=r"batch\.max_lines"):
        load_config(None, {"CITY_TELEMETRY__BATCH__MAX_LINES": "many"})  # a number key still wants a number


def test_run_names_the_folder_it_cannot_create(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("")
    for key, toml in (
        ("spool.folder", f"[spool]\nfolder = '{in_the_way}/spool'\n"),
        ("dead_letter.file", f"[dead_letter]\nfile = '{in_the_way}/dl/dead.jsonl'\n"),
        # The trial's /proc/kpi-state.json: every acknowledgement would have waited on it, /readyz ready
        ("kpi.state_file", f"[kpi]\nstate_file = '{in_the_way}/kpi/state.json'\n"),
    ):
        path = tmp_path / "c.toml"
        path.write_text(toml)
        done = subprocess.run(
            [sys.executable, "-m", "collector.app.cli", "run", "-c", str(path)],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=tmp_path,  # the other relative default paths land here
        )
        assert done.returncode == 2, done.stderr
        assert f"cannot start: {key} = " in done.stderr and "Not a directory" in done.stderr
        assert "Traceback" not in done.stderr


def test_check_config_show_writes_the_json_alone_on_stdout() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "collector.app.cli", "check-config", "--show"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout)["batch"]["max_lines"] > 0
    assert done.stderr.strip() == "(defaults): ok"


def test_a_reader_that_went_away_is_not_answered_with_a_traceback() -> None:
    reader, writer = os.pipe()
    os.close(reader)  # as ``| head`` does once it has its lines
    try:
        done = subprocess.run(
            [sys.executable, "-m", "collector.app.cli", "check-config", "--show"],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(writer)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr


def _sections(text: str) -> dict[str, str]:
    """The sample's lines by the [section] they are under, commented-out headers and keys included."""
    blocks: dict[str, str] = {"": ""}
    current = ""
    for line in text.splitlines():
        header = re.match(r"^#?\s*\[\[?([a-z_.]+)\]\]?", line)
        if header:
            current = header.group(1)
            blocks.setdefault(current, "")
        else:
            blocks[current] = blocks.get(current, "") + line + "\n"
    return blocks


def _keys(model: type[BaseModel], section: str = "") -> Iterator[tuple[str, str, type[BaseModel] | None]]:
    for name, info in model.model_fields.items():
        # A section, or an optional one ([mqtt.tls]); a list of tables ([[routing.mappings]]) is one key.
        kinds = [] if get_origin(info.annotation) is list else get_args(info.annotation) or (info.annotation,)
        nested = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
        yield section, name, nested
        if nested is not None:
            yield from _keys(nested, f"{section}.{name}".lstrip("."))


def test_the_sample_config_mentions_every_key() -> None:
    """deploy/collector.toml says it has every key: a key added to a section must be added there too."""
    blocks = _sections((Path(__file__).parents[2] / "deploy" / "collector.toml").read_text())
    missing = []
    for section, name, nested in _keys(Config):
        if nested is not None:
            continue  # a nested section: its keys are checked under its own header
        as_table = f"{section}.{name}" in blocks  # [[routing.mappings]]
        if not as_table and not re.search(rf"^#?\s*{name}\s*=", blocks.get(section, ""), re.MULTILINE):
            missing.append(f"{section}.{name}")
    assert missing == []
