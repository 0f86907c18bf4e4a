"""Server settings, declared once: name, default, help. Read from a TOML file
(`--config`), from `COLLECTOR_*` env vars and from `collector serve` options (see cli.py),
in that order of strength: options win over env vars, env vars over the file, the file
over the defaults."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_DB = "telltale.db"
# Events accepted but not indexed yet, at most: past this many, each group commit also
# indexes as many as it adds. A read indexes what is pending before it answers, so this
# bounds how long a read can wait during or right after a burst: ~0.4-0.5 s on a 2-core
# machine, where indexing 50-event batches for 100,000 users runs at ~25,000 events/s on
# SQLite and ~15,000-20,000 on PostgreSQL (docs/benchmarks.md). A larger bound buys no
# sustained rate, only a longer burst acknowledged before its indexing is paid.
DEFAULT_MAX_BACKLOG = 12_500


def _meta(help: str, env: str, cli: str | None = None, multiple: bool = False) -> dict[str, Any]:
    return {"help": help, "env": env, "cli": cli, "multiple": multiple}


@dataclass
class Settings:
    host: str = field(
        default="127.0.0.1", metadata=_meta("Interface to bind.", "COLLECTOR_HOST", "--host")
    )
    port: int = field(
        default=8000, metadata=_meta("Port to listen on.", "COLLECTOR_PORT", "--port")
    )
    db: str = field(
        default=DEFAULT_DB,
        metadata=_meta("SQLite database file, or a postgresql:// URL.", "COLLECTOR_DB", "--db"),
    )
    workers: int = field(
        default=1, metadata=_meta("Worker processes.", "COLLECTOR_WORKERS", "--workers")
    )
    trusted_proxies: tuple[str, ...] = field(
        default=(),
        metadata=_meta(
            "CIDR whose X-Forwarded-For and X-Forwarded-Proto are believed"
            " (repeatable; env: comma-separated).",
            "COLLECTOR_TRUSTED_PROXIES",
            "--trusted-proxy",
            multiple=True,
        ),
    )
    queue_size: int = field(
        default=50_000,
        metadata=_meta(
            "Events waiting for the writer before requests get 503.",
            "COLLECTOR_QUEUE_SIZE",
            "--queue-size",
        ),
    )
    commit_batch: int = field(
        default=5_000,
        metadata=_meta(
            "Most events written in one group-commit transaction.",
            "COLLECTOR_COMMIT_BATCH",
            "--commit-batch",
        ),
    )
    max_backlog: int = field(
        default=DEFAULT_MAX_BACKLOG,
        metadata=_meta(
            "Most events accepted but not yet indexed; past it, commits index as they go.",
            "COLLECTOR_MAX_BACKLOG",
            "--max-backlog",
        ),
    )
    indexer_idle: float = field(
        default=0.2,
        metadata=_meta(
            "Index in the background only while this share of the CPU is idle (0: always).",
            "COLLECTOR_INDEXER_IDLE",
            "--indexer-idle",
        ),
    )
    demo: bool = field(
        default=False,
        metadata=_meta(
            "Create a demo app on first run and serve the demo page at /.",
            "COLLECTOR_DEMO",
            "--demo",
        ),
    )
    header_timeout: float = field(
        default=10.0,
        metadata=_meta(
            "Seconds a client has to send a request's line and headers (0: no limit).",
            "COLLECTOR_HEADER_TIMEOUT",
            "--header-timeout",
        ),
    )
    body_timeout: float = field(
        default=30.0,
        metadata=_meta(
            "Seconds a client has to send a request's body once its headers are in (0: no limit).",
            "COLLECTOR_BODY_TIMEOUT",
            "--body-timeout",
        ),
    )
    max_connections_per_ip: int = field(
        default=256,
        metadata=_meta(
            "Open connections one client address may hold in each worker process "
            "(trusted proxies are exempt).",
            "COLLECTOR_MAX_CONNECTIONS_PER_IP",
            "--max-connections-per-ip",
        ),
    )
    log_level: str = field(
        default="info", metadata=_meta("Log level.", "COLLECTOR_LOG_LEVEL", "--log-level")
    )
    access_log: bool = field(
        default=False,
        metadata=_meta(
            "Log every request as a JSON line on stderr (no query string, no secrets).",
            "COLLECTOR_ACCESS_LOG",
            "--access-log",
        ),
    )
    retention_interval: float = field(
        default=3600.0,
        metadata=_meta(
            "Seconds between background passes that delete events past each app's "
            "retention_days (0: never in the background).",
            "COLLECTOR_RETENTION_INTERVAL",
            "--retention-interval",
        ),
    )

    @classmethod
    def from_env(
        cls,
        env: dict[str, str] | None = None,
        *,
        config: str | os.PathLike[str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Defaults, then the TOML file `config`, then `COLLECTOR_*` variables, then
        explicit overrides (CLI options)."""
        source = os.environ if env is None else env
        values: dict[str, Any] = read_config(config) if config else {}
        for f in fields(cls):
            raw = source.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _convert(f.default, raw)
            except ValueError as exc:
                raise ValueError(f"{f.metadata['env']}={raw!r}: {exc}") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        for cidr in self.trusted_proxies:
            ipaddress.ip_network(cidr, strict=False)
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.max_backlog < 0:
            raise ValueError("max_backlog must be 0 or more")
        if self.retention_interval < 0:
            raise ValueError("retention_interval must be 0 or more")
        if not 0 <= self.indexer_idle <= 1:
            raise ValueError("indexer_idle must be between 0 and 1")
        if self.header_timeout < 0 or self.body_timeout < 0:
            raise ValueError("header_timeout and body_timeout must be 0 or more")
        if self.max_connections_per_ip < 1:
            raise ValueError("max_connections_per_ip must be at least 1")

    def to_env(self) -> dict[str, str]:
        """The settings as env vars, so worker processes read the same values."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                out[f.metadata["env"]] = ",".join(value)
            elif isinstance(value, bool):
                out[f.metadata["env"]] = "1" if value else "0"
            else:
                out[f.metadata["env"]] = str(value)
        return out


CONFIG_ENV = "COLLECTOR_CONFIG"


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The settings in a TOML file: top-level keys named as the settings (`port = 8000`,
    `trusted_proxies = ["10.0.0.0/8"]`). ValueError names an unknown key or a value of
    the wrong type; OSError if the file cannot be read."""
    with open(path, "rb") as fh:
        try:
            data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: {exc}") from None
    known = {f.name: f for f in fields(Settings)}
    values: dict[str, Any] = {}
    for name, value in data.items():
        f = known.get(name.replace("-", "_"))
        if f is None:
            raise ValueError(f"{path}: unknown setting {name!r} (known: {', '.join(known)})")
        values[f.name] = _typed(f.default, value, f"{path}: {name}")
    return values


def _typed(default: Any, value: Any, where: str) -> Any:
    """A TOML value checked against the setting's type (an int is a valid float)."""
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where} must be a list of strings")
        return tuple(value)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ValueError(f"{where} must be a {type(default).__name__}, not {value!r}")
    return value


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _convert(default: Any, raw: str) -> Any:
    """An env variable's text as the setting's type; ValueError says what it must be (a
    typo such as `ture` must not pass for false)."""
    if isinstance(default, bool):
        word = raw.strip().lower()
        if word not in _TRUE | _FALSE:
            raise ValueError("must be one of 1, true, yes, on, 0, false, no, off")
        return word in _TRUE
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
    if isinstance(default, tuple):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def setting_fields() -> list[tuple[str, str, str, str | None, bool]]:
    """(name, env, help, cli option, multiple) for each setting: the CLI and docs use it."""
    return [
        (f.name, f.metadata["env"], f.metadata["help"], f.metadata["cli"], f.metadata["multiple"])
        for f in fields(Settings)
    ]
