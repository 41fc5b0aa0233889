"""A YAML section's keys are the fields of what it builds: a setting added to the model
is a key the loader takes, with no list of keys to keep in step by hand."""

from __future__ import annotations

from dataclasses import dataclass

from ctm_pbx.adapters.config_loader import parse_config
from ctm_pbx.adapters.config_sections.base import yaml_keys
from ctm_pbx.adapters.config_sections.routes import ROUTE_KEYS
from ctm_pbx.adapters.config_sections.settings import WEB_KEYS
from ctm_pbx.core.model import WebSettings


@dataclass
class _A:
    name: str
    first: int = 0
    dial_string: str = ""


@dataclass
class _B:
    first: int = 0
    second: int = 0


def test_keys_follow_the_fields_in_order_renamed_and_once() -> None:
    assert yaml_keys(_A) == ("first", "dial_string")
    assert yaml_keys(_A, rename={"dial_string": "dial"}) == ("first", "dial")
    assert yaml_keys(_A, _B, drop=()) == ("name", "first", "dial_string", "second")


def test_every_web_setting_is_a_key() -> None:
    assert set(WEB_KEYS) == set(WebSettings.__dataclass_fields__)


def test_route_keys_cover_every_kind() -> None:
    assert {"order", "rules", "ask_zip", "options", "timeout", "strategy", "max_wait"} <= set(
        ROUTE_KEYS
    )
    assert "name" not in ROUTE_KEYS and "queue" not in ROUTE_KEYS


def test_an_unknown_key_is_still_reported_with_its_path() -> None:
    import pytest

    from ctm_pbx.adapters.yaml_source import ConfigError

    with pytest.raises(ConfigError, match=r"web\.colour"):
        parse_config("web: {colour: blue}\n", env={})
