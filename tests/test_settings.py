from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from collector.cli import main
from collector.settings import Settings, setting_fields
from tests.server import CollectorProcess, create_app

CONFIGURATION = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_setting_is_in_the_configuration_docs() -> None:
    text = CONFIGURATION.read_text()
    for name, env, _help, cli, _multiple in setting_fields():
        assert env in text, f"{env} ({name}) is not in docs/configuration.md"
        if cli:
            assert cli in text, f"{cli} ({name}) is not in docs/configuration.md"


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


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("COLLECTOR_PORT", "abc", "must be a whole number"),
        ("COLLECTOR_INDEXER_IDLE", "half", "must be a number"),
        # A typo must not pass for false.
        ("COLLECTOR_DEMO", "ture", "must be one of 1, true, yes, on, 0, false, no, off"),
        ("COLLECTOR_ACCESS_LOG", "maybe", "must be one of"),
    ],
)
def test_a_bad_variable_is_named_with_its_value(env: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{env}='{value}': {message}"):
        Settings.from_env({env: value})


def test_config_file_then_env_then_options(tmp_path: Path) -> None:
    config = tmp_path / "telltale.toml"
    config.write_text(
        'port = 9100\nhost = "0.0.0.0"\nworkers = 3\naccess_log = true\n'
        'trusted_proxies = ["10.0.0.0/8"]\nretention_interval = 60\n'
    )
    s = Settings.from_env({}, config=config)
    assert (s.port, s.host, s.workers, s.access_log) == (9100, "0.0.0.0", 3, True)
    assert s.trusted_proxies == ("10.0.0.0/8",) and s.retention_interval == 60.0
    assert s.db == Settings().db  # not in the file: the default
    # An env var wins over the file, an option over both.
    s = Settings.from_env({"COLLECTOR_PORT": "9200", "COLLECTOR_WORKERS": "2"}, config=config)
    assert (s.port, s.workers, s.host) == (9200, 2, "0.0.0.0")
    s = Settings.from_env({"COLLECTOR_PORT": "9200"}, config=config, port=9300)
    assert s.port == 9300


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("prot = 1\n", "unknown setting 'prot'"),
        ('port = "80"\n', "port must be a int"),
        ("access_log = 1\n", "access_log must be a bool"),
        ("trusted_proxies = [1]\n", "list of strings"),
        ("port = \n", "telltale.toml"),
        ("workers = 0\n", "workers must be at least 1"),
    ],
)
def test_a_bad_config_file_is_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "telltale.toml"
    config.write_text(text)
    with pytest.raises(ValueError, match=message):
        Settings.from_env({}, config=config)


def test_serve_reads_config_from_option_or_env(tmp_path: Path) -> None:
    config = tmp_path / "telltale.toml"
    config.write_text("prot = 1\n")
    runner = CliRunner()
    result = runner.invoke(main, ["serve", "--config", str(config)])
    assert result.exit_code == 1 and "unknown setting 'prot'" in result.output
    result = runner.invoke(main, ["serve"], env={"COLLECTOR_CONFIG": str(config)})
    assert result.exit_code == 1 and "unknown setting 'prot'" in result.output
    result = runner.invoke(main, ["serve", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 2 and "does not exist" in result.output


@pytest.mark.slow
def test_a_config_file_reaches_the_worker_processes(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    create_app(db)
    config = tmp_path / "telltale.toml"
    config.write_text("access_log = true\nport = 1\n")  # --port (the test's) wins
    with CollectorProcess(db, workers=2, extra=("--config", str(config))) as server:
        deadline = time.monotonic() + 30
        while '"route":"/healthz"' not in server.output():
            assert time.monotonic() < deadline, server.output()
            httpx.get(server.url + "/healthz")
