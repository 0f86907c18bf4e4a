"""Build the labelled User-Agent corpora that bench/ua_bench.py reads from a folder.

Run from the repository root, with a checkout (or an export) of the source project:

    python -m bench.ua_corpora device-detector SRC OUT
    python -m bench.ua_corpora woothee SRC OUT
    python -m bench.ua_corpora browscap SRC OUT
    python -m bench.ua_corpora ua-parser-js SRC OUT
    python -m bench.ua_corpora whichbrowser SRC OUT
    python -m bench.ua_corpora fake-useragent SRC OUT

Each writes ``OUT/<name>-bots.txt`` and ``OUT/<name>-browsers.txt``: one string a line,
stripped, in the source's order, blanks and repeats dropped. Which of a project's labels
count as a bot and which as a browser is fixed below, from each project's schema (its
file names and label values), before any of its strings were read; nothing is relabelled
by hand. device-detector and woothee are YAML, which needs PyYAML (not one of Telltale's
packages: run it with a Python that has it). The sources, commits and licences are in
bench/data/README.md and docs/enrichment.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _unique(strings: Iterable[object]) -> list[str]:
    """Stripped, blanks and repeats dropped; a string with a line break (no User-Agent
    header can carry one) is dropped too, as it would not fit on one line."""
    out: dict[str, None] = {}
    for s in strings:
        if isinstance(s, str) and s.strip() and not re.search(r"[\r\n]", s.strip()):
            out.setdefault(s.strip(), None)
    return list(out)


def _yaml(path: Path) -> Any:
    import yaml  # only this script needs it, and only for YAML sources

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open(encoding="utf-8") as f:
        return yaml.load(f, Loader=loader)  # a safe loader either way


def device_detector(src: Path) -> tuple[list[str], list[str]]:
    """matomo-org/device-detector's Tests/fixtures/*.yml: every `user_agent` of bots.yml is
    a bot, every one (in the other files) whose `client.type` is `browser` a browser."""
    bots: list[object] = []
    browsers: list[object] = []
    for path in sorted((src / "Tests" / "fixtures").glob("*.yml")):
        for entry in _yaml(path) or []:
            if path.name == "bots.yml":
                bots.append(entry.get("user_agent"))
            elif isinstance(entry.get("client"), dict) and entry["client"].get("type") == "browser":
                browsers.append(entry.get("user_agent"))
    return _unique(bots), _unique(browsers)


# woothee's categories: `crawler` is a bot; `pc`, `smartphone`, `mobilephone` (feature
# phones) and `appliance` (consoles, TVs) are people's browsers; `misc` (feed readers,
# tools) and `UNKNOWN` (blank strings) are neither and left out.
_WOOTHEE_BROWSERS = frozenset({"pc", "smartphone", "mobilephone", "appliance"})


def woothee(src: Path) -> tuple[list[str], list[str]]:
    """woothee/woothee's testsets/*.yaml, by each entry's `category`."""
    bots: list[object] = []
    browsers: list[object] = []
    for path in sorted((src / "testsets").glob("*.yaml")):
        for entry in _yaml(path) or []:
            if entry.get("category") == "crawler":
                bots.append(entry.get("target"))
            elif entry.get("category") in _WOOTHEE_BROWSERS:
                browsers.append(entry.get("target"))
    return _unique(bots), _unique(browsers)


_PHP_UA = re.compile(r"'ua' => '((?:[^'\\]|\\.)*)'")
_PHP_TYPE = re.compile(r"'Browser_Type' => '([^']*)'")
_PHP_ESCAPE = re.compile(r"\\([\\'])")
# browscap's Browser_Type: `Bot` and `Bot/Crawler` are bots, `Browser` is a browser;
# applications, mail clients, feed readers, media players, offline browsers, tools and
# `unknown` are neither and left out, as are test entries without a Browser_Type.
_BROWSCAP_BOTS = frozenset({"Bot", "Bot/Crawler"})


def browscap(src: Path) -> tuple[list[str], list[str]]:
    """browscap/browscap's tests/issues/*.php, by each entry's `Browser_Type`."""
    bots: list[str] = []
    browsers: list[str] = []
    for path in sorted((src / "tests" / "issues").glob("*.php")):
        text = path.read_text(encoding="utf-8")
        matches = list(_PHP_UA.finditer(text))
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
            kind = _PHP_TYPE.search(text, m.end(), end)
            if kind is None:
                continue
            ua = _PHP_ESCAPE.sub(r"\1", m.group(1))
            if kind.group(1) in _BROWSCAP_BOTS:
                bots.append(ua)
            elif kind.group(1) == "Browser":
                browsers.append(ua)
    return _unique(bots), _unique(browsers)


def ua_parser_js(src: Path) -> tuple[list[str], list[str]]:
    """faisalman/ua-parser-js's test data: test/data/ua/extension/crawler.json and
    fetcher.json are bots; test/data/ua/browser/browser-all.json and extension/inapp.json
    (in-app browsers) are browsers. CLI tools, libraries, mail clients, media players and
    vehicles are left out."""
    base = src / "test" / "data" / "ua"

    def uas(*parts: str) -> list[object]:
        data = json.loads(base.joinpath(*parts).read_text(encoding="utf-8"))
        return [entry.get("ua") for entry in data]

    bots = uas("extension", "crawler.json") + uas("extension", "fetcher.json")
    browsers = uas("browser", "browser-all.json") + uas("extension", "inapp.json")
    return _unique(bots), _unique(browsers)


# WhichBrowser's device types that are people's devices; `bot` is a bot; `emulator`,
# `devboard`, `gps` and entries without a type are left out.
_WHICHBROWSER_PEOPLE = frozenset(
    {
        "desktop",
        "mobile",
        "tablet",
        "television",
        "gaming",
        "ereader",
        "pda",
        "media",
        "watch",
        "car",
        "appliance",
        "headset",
        "signage",
        "printer",
        "camera",
    }
)


def _whichbrowser_ua(headers: object) -> object:
    if isinstance(headers, str):
        name, _, value = headers.partition(": ")
        return value if name.lower() == "user-agent" else None
    if isinstance(headers, dict):
        return next((v for k, v in headers.items() if str(k).lower() == "user-agent"), None)
    return None


def whichbrowser(src: Path) -> tuple[list[str], list[str]]:
    """WhichBrowser/Parser-PHP's tests/data/*/*.yaml: the User-Agent header of each entry
    whose `result.device.type` is `bot` is a bot; of each with a `result.browser` and a
    person's device type, outside tests/data/bots/, a browser. Entries run with
    `detectBots` set are left out."""
    bots: list[object] = []
    browsers: list[object] = []
    for path in sorted((src / "tests" / "data").glob("*/*.yaml")):
        for entry in _yaml(path) or []:
            if "detectBots" in entry:
                continue
            result = entry.get("result") or {}
            kind = (result.get("device") or {}).get("type")
            ua = _whichbrowser_ua(entry.get("headers"))
            if kind == "bot":
                bots.append(ua)
            elif (
                kind in _WHICHBROWSER_PEOPLE and "browser" in result and path.parent.name != "bots"
            ):
                browsers.append(ua)
    return _unique(bots), _unique(browsers)


def fake_useragent(src: Path) -> tuple[list[str], list[str]]:
    """The fake-useragent package's fake_useragent/data/browsers.jsonl (SRC is the unpacked
    wheel): every `useragent` is a browser (each has a browser, an OS and a device type);
    there are no bots."""
    path = src / "fake_useragent" / "data" / "browsers.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [], _unique(json.loads(line).get("useragent") for line in lines if line.strip())


SOURCES = {
    "device-detector": device_detector,
    "woothee": woothee,
    "browscap": browscap,
    "ua-parser-js": ua_parser_js,
    "whichbrowser": whichbrowser,
    "fake-useragent": fake_useragent,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", choices=sorted(SOURCES))
    parser.add_argument("src", type=Path, help="the source project's checkout")
    parser.add_argument("out", type=Path, help="folder to write <name>-bots.txt and -browsers.txt")
    args = parser.parse_args(argv)
    bots, browsers = SOURCES[args.source](args.src)
    args.out.mkdir(parents=True, exist_ok=True)
    for kind, strings in (("bots", bots), ("browsers", browsers)):
        path = args.out / f"{args.source}-{kind}.txt"
        path.write_text("".join(f"{s}\n" for s in strings), encoding="utf-8")
        print(f"{path}: {len(strings)} strings")


if __name__ == "__main__":
    main(sys.argv[1:])
