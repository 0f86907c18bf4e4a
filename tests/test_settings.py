from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from collector.cli import main
from collector.settings import Settings, setting_fields

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    for name, env, _help, cli, _multiple in setting_fields():
        assert env in text, f"{env} ({name}) is not in the README"
        if cli:
            assert cli in text, f"{cli} ({name}) is not in the README"


def test_every_setting_is_a_serve_option() -> None:
    out = CliRunner().invoke(main, ["serve", "--help"]).output
    for _name, env, _help, cli, _multiple in setting_fields():
        assert cli is not None and cli in out
        assert env in out


def test_env_then_overrides() -> None:
    env = {
        "COLLECTOR_PORT": "9001",
        "COLLECTOR_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1/32",
        "COLLECTOR_DEMO": "yes",
    }
    s = Settings.from_env(env, port=9002)
    assert s.port == 9002
    assert s.trusted_proxies == ("10.0.0.0/8", "127.0.0.1/32")
    assert s.demo is True
    assert Settings.from_env(s.to_env()) == s


def test_bad_values_are_refused() -> None:
    with pytest.raises(ValueError):
        Settings.from_env({"COLLECTOR_TRUSTED_PROXIES": "not-a-cidr"})
    with pytest.raises(ValueError):
        Settings.from_env({"COLLECTOR_WORKERS": "0"})
