"""The documentation keeps up with the code: every command and option of the CLI, every
setting (option, environment variable, TOML key) and every HTTP route the app mounts is
named in README.md or docs/*.md; and every link from them to a local file (and heading)
resolves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
from starlette.routing import Mount, Route

from collector.cli import main
from collector.settings import Settings, setting_fields
from collector.web.app import create_app

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Pages that other work in progress writes, linked from the README before they land.
# While one is missing, links to it are not checked; once it exists it is checked like
# any other (and its line here can go).
PENDING: set[str] = set()


def _text() -> str:
    return "\n".join(path.read_text() for path in DOCS)


def _where(path: Path) -> str:
    return str(path.relative_to(ROOT))


# The command line -----------------------------------------------------------------


def _commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[str, click.Command]]:
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        yield " ".join(path), command
        if isinstance(command, click.Group):
            yield from _commands(command, path)


def test_every_command_and_option_is_documented() -> None:
    text = _text()
    missing = []
    for path, command in _commands(main):
        if f"collector {path}" not in text:
            missing.append(f"the command `collector {path}`")
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            for flag in [*param.opts, *param.secondary_opts]:
                if flag.startswith("--") and flag != "--help" and flag not in text:
                    missing.append(f"`{flag}` of `collector {path}`")
    assert not missing, (
        "Not in README.md or docs/*.md (add each to docs/configuration.md, "
        "'Command line'):\n  " + "\n  ".join(missing)
    )


def test_every_setting_is_documented_with_its_option_env_var_and_toml_key() -> None:
    text = _text()
    missing = []
    for name, env, _help, cli, _multiple in setting_fields():
        wanted = [env, f"`{name}`"]
        if cli:
            wanted.append(cli)
            if isinstance(getattr(Settings, name, None), bool):
                wanted.append(f"--no-{cli[2:]}")
        missing += [f"{w} (setting {name})" for w in wanted if w not in text]
    assert not missing, (
        "Not in README.md or docs/*.md (add each to the settings table of "
        "docs/configuration.md: option, env var, TOML key):\n  " + "\n  ".join(missing)
    )


# HTTP routes ----------------------------------------------------------------------

_CODE = re.compile(r"```.*?```|`[^`\n]+(?:\n[^`\n]+)?`", re.S)


def _documented_paths(text: str) -> set[str]:
    """Every path written in code, inline or fenced: `POST /v1/event`, `/v1/t`, a curl's
    URL; without a trailing slash or query string."""
    paths = set()
    for span in _CODE.findall(text):
        for token in re.split(r"[\s`'\"()\[\],|]+", span):
            if "://" in token:
                token = urlsplit(token).path
            if token.startswith("/"):
                paths.add(token.split("?")[0].rstrip("/") or "/")
    return paths


def _where_to_document(path: str) -> str:
    if path.startswith("/dashboard"):
        return "docs/dashboard.md"
    if path in ("/healthz", "/metrics"):
        return "docs/operations.md"
    if path.startswith(("/sdk", "/telltale")):
        return "docs/sdk.md"
    if re.match(r"/v1/(segments|funnels|users|stats|stream)", path):
        return "docs/query-api.md"
    return "docs/ingestion.md (or the README, for the demo page)"


def test_every_route_is_documented(tmp_path: Path) -> None:
    app = create_app(Settings(db=str(tmp_path / "t.db")))
    documented = _documented_paths(_text())
    undocumented: dict[str, set[str]] = {}
    text = _text()
    for route in app.routes:
        if isinstance(route, Mount):  # static files under a prefix: the prefix is named
            if route.path not in text:
                undocumented.setdefault(route.path + "/…", set()).add("GET")
            continue
        assert isinstance(route, Route), route
        # A parameter is written as the docs name it: {id} for {user_id:path}.
        pattern = re.sub(r"\\\{[^}]*\\\}", r"\\{[^}]+\\}", re.escape(route.path.rstrip("/")))
        if not any(re.fullmatch(pattern or "/", path) for path in documented):
            undocumented.setdefault(route.path, set()).update(route.methods or ())
    missing = [
        f"{','.join(sorted(methods))} {path}: in {_where_to_document(path)}"
        for path, methods in undocumented.items()
    ]
    assert not missing, (
        "Routes the app mounts that no README.md or docs/*.md names in code "
        "(`GET /path`):\n  " + "\n  ".join(missing)
    )


# Links ----------------------------------------------------------------------------

_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    heading = heading.strip().lower().replace("`", "")
    heading = re.sub(r"[^\w\- ]", "", heading)
    return heading.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    anchors: set[str] = set()
    fenced = False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6} (.+)", line)):
            slug = _slug(m.group(1))
            n, unique = 0, slug
            while unique in anchors:
                n += 1
                unique = f"{slug}-{n}"
            anchors.add(unique)
    return anchors


def _links(path: Path) -> Iterator[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    for target in _LINK.findall(text):
        if not re.match(r"[a-z]+:", target):
            yield target


@pytest.mark.parametrize("doc", DOCS, ids=_where)
def test_local_links_resolve(doc: Path) -> None:
    broken = []
    for target in _links(doc):
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            if _where(dest) not in PENDING:
                broken.append(f"{target}: no file {_where(dest)}")
            continue
        if anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {_where(dest)}")
    assert not broken, f"Broken links in {_where(doc)}:\n  " + "\n  ".join(broken)
