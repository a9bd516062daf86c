"""Typed configuration: a TOML file, then environment overrides, validated once at start-up.

Environment variables ``CITY_TELEMETRY__<SECTION>__<KEY>`` override the file (values are parsed as
TOML scalars, so ``CITY_TELEMETRY__BATCH__MAX_LINES=2000`` is an integer; a key that takes only
text keeps the text as written, so ``CITY_TELEMETRY__INFLUXDB__DATABASE=2026`` is the database
"2026", and a password or token is never parsed at all, quotes included). Secrets can be given as
``password_file``/``token_file``: the file is read at start-up and its content never logged.
Every error names the bad key, e.g. ``influxdb.url: Input should be a valid URL``.

Each section is declared by the layer it configures; this module assembles the whole file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

from paho.mqtt.client import topic_matches_sub
from pydantic import BaseModel, SecretStr, ValidationError, model_validator

from collector.delivery.config import BatchConfig, DeadLetterConfig, SpoolConfig
from collector.ingest.config import InventoryConfig, LimitsConfig, TopicConfig
from collector.ingest.routing import RoutingConfig, subscriptions
from collector.ingest.topics import TopicPattern
from collector.kpi.config import KpiSection
from collector.ops.config import HealthConfig, LogConfig, OpsConfig
from collector.settings import Section
from collector.sink.config import InfluxConfig
from collector.source.config import MqttConfig

ENV_PREFIX = "CITY_TELEMETRY__"


class ConfigError(Exception):
    """Raised with a message that names every bad key."""


class Config(Section):
    mqtt: MqttConfig = MqttConfig()
    topics: TopicConfig = TopicConfig()
    influxdb: InfluxConfig = InfluxConfig()
    batch: BatchConfig = BatchConfig()
    dead_letter: DeadLetterConfig = DeadLetterConfig()
    limits: LimitsConfig = LimitsConfig()
    spool: SpoolConfig = SpoolConfig()
    inventory: InventoryConfig = InventoryConfig()
    health: HealthConfig = HealthConfig()
    log: LogConfig = LogConfig()
    ops: OpsConfig = OpsConfig()
    routing: RoutingConfig = RoutingConfig()
    kpi: KpiSection = KpiSection()

    @property
    def subscriptions(self) -> list[str]:
        """``mqtt.topics`` if given, else the canonical root and every route's (collector/ingest/routing.py)."""
        return self.mqtt.topics or subscriptions(TopicPattern(self.topics.pattern).subscription, self.routing)

    @model_validator(mode="after")
    def _dead_letters_not_subscribed(self) -> Config:
        topic = self.dead_letter.topic
        if topic is not None:
            for subscription in self.subscriptions:
                if topic_matches_sub(subscription, topic):
                    raise ValueError(
                        f"dead_letter.topic {topic!r} is inside the subscription {subscription!r}: "
                        "the collector would read its own rejections"
                    )
        return self


# Secrets are taken from the environment as given: a password may look like a number or a date.
_RAW_STRING_KEYS = frozenset({"password", "token"})


def _kinds(annotation: Any) -> set[Any]:
    """The types a field accepts: the members of a union, ``Annotated`` unwrapped, ``None`` left out."""
    members = get_args(annotation) if get_origin(annotation) in (Union, type(int | None)) else (annotation,)
    return {get_args(m)[0] if get_origin(m) is Annotated else m for m in members} - {type(None)}


def _takes_only_text(path: list[str]) -> bool:
    """Whether the config key at ``path`` (section, key) accepts text and nothing else (``str``, a
    path, ``str | None``): for those an environment value is text even when it reads as a TOML
    number, boolean or date (a database named 2026, a user named true, a folder named 2026)."""
    kinds: set[Any] = {Config}
    for part in path:
        sections = [k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)]  # [mqtt.tls]: optional
        if len(sections) != 1 or part not in sections[0].model_fields:
            return False
        kinds = _kinds(sections[0].model_fields[part].annotation)
    return bool(kinds) and kinds <= {str, SecretStr, Path}


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX) :].split("__")]
        value: Any = raw
        if path[-1] not in _RAW_STRING_KEYS:  # a secret is taken as it is, never parsed
            try:
                value = tomllib.loads(f"v = {raw}")["v"]
            except tomllib.TOMLDecodeError:
                value = raw  # a bare string
            if not isinstance(value, str) and _takes_only_text(path):
                value = raw  # text as written: a quoted value ('"2026"') still loses its quotes above
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: conflicts with another variable")
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def format_validation_error(error: ValidationError) -> str:
    lines = []
    for problem in error.errors(include_url=False):
        key = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"{key}: {message}")
    return "\n".join(lines)


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"{path}: {error.strerror}") from None
        except UnicodeDecodeError as error:
            line = path.read_bytes()[: error.start].count(b"\n") + 1
            raise ConfigError(f"{path}: line {line}: not UTF-8 text (TOML files are UTF-8; re-save it so)") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from None
    data = _merge(data, _env_overrides(os.environ if environ is None else environ))
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error)) from None
