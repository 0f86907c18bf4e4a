"""Build the labelled User-Agent corpora that bench/ua_bench.py reads from a folder.

Run from the repository root, with a checkout (or an export) of the source project:

    python -m bench.ua_corpora device-detector SRC OUT
    python -m bench.ua_corpora woothee SRC OUT
    python -m bench.ua_corpora browscap SRC OUT
    python -m bench.ua_corpora ua-parser-js SRC OUT
    python -m bench.ua_corpora whichbrowser SRC OUT
    python -m bench.ua_corpora fake-useragent SRC OUT
    python -m bench.ua_corpora top-user-agents GITDIR OUT
    python -m bench.ua_corpora intoli-older SRC OUT
    python -m bench.ua_corpora mobile-detect SRC OUT
    python -m bench.ua_corpora bowser SRC OUT
    python -m bench.ua_corpora php-user-agent SRC OUT
    python -m bench.ua_corpora agent SRC OUT
    python -m bench.ua_corpora well-known-bots SRC OUT
    python -m bench.ua_corpora uap-core SRC OUT
    python -m bench.ua_corpora cloudflare-bots SRC OUT
    python -m bench.ua_corpora opawg-v2 SRC OUT
    python -m bench.ua_corpora opawg SRC OUT
    python -m bench.ua_corpora browser-gem SRC OUT
    python -m bench.ua_corpora top-crawler-agents GITDIR OUT
    python -m bench.ua_corpora winfuture GITDIR OUT
    python -m bench.ua_corpora yauaa SRC OUT
    python -m bench.ua_corpora http-browserdetect SRC OUT

Each writes ``OUT/<name>-bots.txt`` and ``OUT/<name>-browsers.txt``: one string a line,
stripped, in the source's order, blanks and repeats dropped. Which of a project's labels
count as a bot and which as a browser is fixed below, from each project's schema (its
file names and label values), before any of its strings were read; nothing is relabelled
by hand. device-detector, woothee, WhichBrowser, bowser, uap-core and YAUAA are YAML, read with
PyYAML (a development package: `make install` has it, the collector does not need it). The sources,
commits and licences are in bench/data/README.md and docs/enrichment.md.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
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
    import yaml  # a development package: the collector never imports this module

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


# Third pass (docs/enrichment.md, "Third pass"). Each label rule below was fixed from the
# project's schema (file names, keys, label values, group names), printed without the
# strings, before any string of the project was read.


def top_user_agents(src: Path) -> tuple[list[str], list[str]]:
    """microlinkhq/top-user-agents (SRC is a git directory of it): every string of
    `src/index.json` in every commit that changed it, a browser. Each commit is that week's
    100 most frequent User-Agents of microlink.io's traffic after isbot and a short
    exclusion list dropped bots (bin/util.js), so isbot's false positives cannot show in it;
    there are no bots."""
    log = subprocess.run(
        ["git", "-C", str(src), "log", "--format=%H", "--reverse", "--", "src/index.json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    browsers: list[object] = []
    for commit in log:
        shown = subprocess.run(
            ["git", "-C", str(src), "show", f"{commit}:src/index.json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        browsers += json.loads(shown)
    return [], _unique(browsers)


def intoli_older(src: Path) -> tuple[list[str], list[str]]:
    """Older releases of intoli's user-agents package (the shipped intoli-browsers.txt is
    2.1.198's), each unpacked under SRC (`SRC/*/package/dist/user-agents.json`, in name
    order): every `userAgent` a browser (seen on real sites, after isbot's filter); no
    bots."""
    browsers: list[object] = []
    for path in sorted(src.glob("*/package/dist/user-agents.json")):
        browsers += [entry.get("userAgent") for entry in json.loads(path.read_text("utf-8"))]
    return [], _unique(browsers)


_PHP_STRING = r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\""
_PHP_KEY_ARRAY = re.compile(rf"(?:{_PHP_STRING})\s*=>\s*\[")
_PHP_IS_MOBILE = re.compile(r"'isMobile'\s*=>\s*(true|false)")


def _php_unescape(m: re.Match[str]) -> str:
    if m.group(1) is not None:
        return _PHP_ESCAPE.sub(r"\1", m.group(1))
    return re.sub(r"\\([\\\"$])", r"\1", m.group(2))


def mobile_detect(src: Path) -> tuple[list[str], list[str]]:
    """serbanghita/Mobile-Detect's tests/providers/vendors/*.php: each User-Agent key
    whose array says `'isMobile' => true` is a browser (a person's phone or tablet); the
    others (`isMobile` false: desktops, anything else) are left out. The project detects
    no bots."""
    browsers: list[str] = []
    for path in sorted((src / "tests" / "providers" / "vendors").glob("*.php")):
        text = path.read_text(encoding="utf-8")
        keys = list(_PHP_KEY_ARRAY.finditer(text))
        for i, m in enumerate(keys):
            end = keys[i + 1].start() if i + 1 < len(keys) else len(text)
            flag = _PHP_IS_MOBILE.search(text, m.end(), end)
            if flag is not None and flag.group(1) == "true":
                browsers.append(_php_unescape(m))
    return [], _unique(browsers)


# bowser's platform types: `bot` is a bot; `desktop`, `mobile`, `tablet` and `tv` are
# people's devices. Entries without a type are left out, and so are the PhantomJS and
# SlimerJS groups (headless engines, which bowser types `desktop`).
_BOWSER_PEOPLE = frozenset({"desktop", "mobile", "tablet", "tv"})
_BOWSER_AUTOMATION = frozenset({"PhantomJS", "SlimerJS"})


def bowser(src: Path) -> tuple[list[str], list[str]]:
    """lancedikson/bowser's test/acceptance/useragentstrings.yml, by each entry's
    `spec.platform.type`."""
    bots: list[object] = []
    browsers: list[object] = []
    for group, entries in (_yaml(src / "test" / "acceptance" / "useragentstrings.yml")).items():
        for entry in entries or []:
            kind = ((entry.get("spec") or {}).get("platform") or {}).get("type")
            if kind == "bot":
                bots.append(entry.get("ua"))
            elif kind in _BOWSER_PEOPLE and group not in _BOWSER_AUTOMATION:
                browsers.append(entry.get("ua"))
    return _unique(bots), _unique(browsers)


def php_user_agent(src: Path) -> tuple[list[str], list[str]]:
    """donatj/PhpUserAgent's tests/user_agents.dist.json: a string whose `class` holds
    `Bots` is a bot; one without a `class` a browser, except the `HeadlessChrome` browser
    (automation). The one with an empty `class` (FlipboardProxy) is left out."""
    data = json.loads((src / "tests" / "user_agents.dist.json").read_text(encoding="utf-8"))
    bots: list[object] = []
    browsers: list[object] = []
    for ua, entry in data.items():
        kind = entry.get("class")
        if isinstance(kind, list) and "Bots" in kind:
            bots.append(ua)
        elif kind is None and entry.get("browser") != "HeadlessChrome":
            browsers.append(ua)
    return _unique(bots), _unique(browsers)


_PHP_PROPERTY = re.compile(r"private \$(\w+) = \[(.*?)\n    \];", re.S)
_PHP_ANY_STRING = re.compile(_PHP_STRING)


def agent(src: Path) -> tuple[list[str], list[str]]:
    """jenssegers/agent's tests/AgentTest.php: the keys of `$robots` are bots; the keys of
    `$operatingSystems`, `$browsers`, `$mobileDevices`, `$desktopDevices`,
    `$browserVersions` and `$operatingSystemVersions`, and the items of `$desktops` and
    `$phones`, browsers. Its robot detection is Crawler-Detect's list, one of our layers."""
    text = (src / "tests" / "AgentTest.php").read_text(encoding="utf-8")
    bots: list[str] = []
    browsers: list[str] = []
    for prop in _PHP_PROPERTY.finditer(text):
        name, body = prop.group(1), prop.group(2)
        if name in ("desktops", "phones"):
            browsers += [_php_unescape(m) for m in _PHP_ANY_STRING.finditer(body)]
        else:
            keys = [_php_unescape(m) for m in _PHP_KEY_ARROW.finditer(body)]
            (bots if name == "robots" else browsers).extend(keys)
    return _unique(bots), _unique(browsers)


_PHP_KEY_ARROW = re.compile(rf"(?:{_PHP_STRING})\s*=>")


def well_known_bots(src: Path) -> tuple[list[str], list[str]]:
    """arcjet/well-known-bots' well-known-bots.json: every string of every entry's
    `instances.accepted` a bot (each entry is a bot, its `categories` say which kind,
    `programmatic` the HTTP libraries); `instances.rejected` (strings that entry's pattern
    must not match, which may be other bots) is left out; no browsers. A fork of
    crawler-user-agents with more entries: the corpora before it drop the shared strings."""
    data = json.loads((src / "well-known-bots.json").read_text(encoding="utf-8"))
    accepted = (ua for e in data for ua in (e.get("instances") or {}).get("accepted", []))
    return _unique(accepted), []


def uap_core_devices(src: Path) -> tuple[list[str], list[str]]:
    """ua-parser/uap-core's tests/test_device.yaml, as the shared corpora were drawn from
    it: a `family` of `Spider` is a bot, any other a browser. The shared browsers.txt is a
    sample of 5,000 of its non-Spider strings; the corpora before it drop those. uap-core's
    Spider device is one of our layers, written against these strings."""
    cases = _yaml(src / "tests" / "test_device.yaml")["test_cases"]
    bots = [c.get("user_agent_string") for c in cases if c.get("family") == "Spider"]
    browsers = [c.get("user_agent_string") for c in cases if c.get("family") != "Spider"]
    return _unique(bots), _unique(browsers)


# Fourth pass (docs/enrichment.md, "Fourth pass"), for crawlers above all. As in the third,
# each label rule below was fixed from the project's schema (file names, keys, label
# values), printed without the strings, and committed before any string was read.


def _git_versions(src: Path, path: str) -> list[str]:
    """The text of `path` in every commit of the git directory `src` that changed it,
    oldest first."""
    log = subprocess.run(
        ["git", "--git-dir", str(src), "log", "--format=%H", "--reverse", "--", path],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    return [
        subprocess.run(
            ["git", "--git-dir", str(src), "show", f"{commit}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        for commit in log
    ]


def cloudflare_bots(src: Path) -> tuple[list[str], list[str]]:
    """Cloudflare Radar's verified-bots directory as the cloudflare-bot-directory package
    repackages it, each release unpacked under SRC (`SRC/*/package/src/index.json`, in
    name order): every `userAgents` string of an entry whose `kind` is `BOT` is a bot,
    whatever its `category`; entries of kind `AGENT` (signed agents acting for a person)
    are left out; no browsers."""
    bots: list[object] = []
    for path in sorted(src.glob("*/package/src/index.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")):
            if entry.get("kind") == "BOT":
                bots += entry.get("userAgents") or []
    return _unique(bots), []


def opawg_v2(src: Path) -> tuple[list[str], list[str]]:
    """opawg/user-agents-v2's src/*.json (podcast clients): the `examples` of every entry
    of bots.json, and of each entry of libraries.json whose `category` is `bot`, are bots;
    the `examples` of browsers.json are browsers. apps.json (podcast apps), the other
    libraries and devices.json are left out."""

    def entries(name: str) -> list[dict[str, Any]]:
        data = json.loads((src / "src" / f"{name}.json").read_text(encoding="utf-8"))
        return list(data.get("entries") or [])

    bots = [ua for e in entries("bots") for ua in e.get("examples") or []]
    bots += [
        ua
        for e in entries("libraries")
        if e.get("category") == "bot"
        for ua in e.get("examples") or []
    ]
    browsers = [ua for e in entries("browsers") for ua in e.get("examples") or []]
    return _unique(bots), _unique(browsers)


def opawg(src: Path) -> tuple[list[str], list[str]]:
    """opawg/user-agents' src/user-agents.json (the first version of the list above): the
    `examples` of each entry with `bot` true are bots; the others (podcast apps and
    services) are left out, as the schema has no label for a browser."""
    data = json.loads((src / "src" / "user-agents.json").read_text(encoding="utf-8"))
    bots = [ua for e in data if e.get("bot") is True for ua in e.get("examples") or []]
    return _unique(bots), []


def browser_gem(src: Path) -> tuple[list[str], list[str]]:
    """fnando/browser (the Ruby gem)'s test strings, as its lib/browser/testing.rb names
    them: the values of test/ua_bots.yml (`bot_user_agents`, each asserted a bot) and of
    test/ua_search_engines.yml (`search_engine_user_agents`) are bots; the values of
    test/ua.yml (`browser_user_agents`) browsers."""
    test = src / "test"
    bots = list((_yaml(test / "ua_bots.yml") or {}).values())
    bots += list((_yaml(test / "ua_search_engines.yml") or {}).values())
    browsers = list((_yaml(test / "ua.yml") or {}).values())
    return _unique(bots), _unique(browsers)


def top_crawler_agents(src: Path) -> tuple[list[str], list[str]]:
    """Kikobeats/top-crawler-agents (SRC is a git directory of it): every string of
    `index.json` in every commit that changed it, a bot. Each is a crawler-user-agents
    instance or a well-known-bots accepted instance that sites answered with rich
    metadata (scripts/generate.mjs), so its strings come from two corpora already counted;
    only those since removed from them are new. No browsers."""
    bots: list[object] = []
    for text in _git_versions(src, "index.json"):
        bots += json.loads(text)
    return _unique(bots), []


def winfuture(src: Path) -> tuple[list[str], list[str]]:
    """WinFuture23/real-world-user-agents (SRC is a git directory of it): every `ua` of
    `user_agents` in `user-agents.json`, in every commit that changed it, a browser: each
    48 hours' User-Agents of winfuture.de's human traffic, after five gates (a verified
    AJAX heartbeat, clean sessions, 5 or more residential IPs, IP reputation, and a
    commercial parser rejecting tools, libraries, robots and emulators). No bots."""
    browsers: list[object] = []
    for text in _git_versions(src, "user-agents.json"):
        browsers += [e.get("ua") for e in json.loads(text).get("user_agents") or []]
    return [], _unique(browsers)


# Fifth pass (docs/enrichment.md, "Fifth pass"): crawlers and browsers from parsers whose
# test strings none of our lists was written from. As before, each label rule was fixed
# from the project's schema and committed before any string was read.

# YAUAA's DeviceClass values (its documentation/content/expect/FieldValues.md): `Robot`,
# `Robot Mobile` and `Robot Imitator` (robots claiming to be another robot, "in most cases
# they ARE Robots") are bots; the classes of a person's device are browsers; `Hacker`
# (script injected into the string), `Cloud` (server-side applications such as Mastodon
# instances), `Anonymized`, `Unknown` and tests without a class are left out.
_YAUAA_BOTS = frozenset({"Robot", "Robot Mobile", "Robot Imitator"})
_YAUAA_PEOPLE = frozenset(
    {
        "Desktop",
        "Mobile",
        "Tablet",
        "Phone",
        "Watch",
        "Virtual Reality",
        "Augmented Reality",
        "eReader",
        "Set-top box",
        "TV",
        "Game Console",
        "Handheld Game Console",
        "Voice",
        "Car",
        "Home Appliance",
        "Smart Display",
    }
)


def yauaa(src: Path) -> tuple[list[str], list[str]]:
    """nielsbasjes/yauaa's analyzer/src/main/resources/UserAgents/*.yaml: each `test` of a
    file's `config`, by its expected `DeviceClass` (above). The User-Agent is the input's
    `user_agent_string` or `User-Agent` header; client hints beside it are ignored."""
    bots: list[object] = []
    browsers: list[object] = []
    for path in sorted(
        (src / "analyzer" / "src" / "main" / "resources" / "UserAgents").glob("*.yaml")
    ):
        for item in (_yaml(path) or {}).get("config") or []:
            test = item.get("test") if isinstance(item, dict) else None
            if not isinstance(test, dict):
                continue
            given = test.get("input") or {}
            ua = given.get("user_agent_string", given.get("User-Agent"))
            kind = (test.get("expected") or {}).get("DeviceClass")
            if kind in _YAUAA_BOTS:
                bots.append(ua)
            elif kind in _YAUAA_PEOPLE:
                browsers.append(ua)
    return _unique(bots), _unique(browsers)


def http_browserdetect(src: Path) -> tuple[list[str], list[str]]:
    """oalders/http-browserdetect (Perl's HTTP::BrowserDetect)'s t/useragents.json and
    t/more-useragents.json, each an object keyed by User-Agent whose `match` lists the
    methods asserted true: a string whose `match` has `robot` is a bot; one with neither
    `robot` nor `lib` (an HTTP library) a browser."""
    bots: list[object] = []
    browsers: list[object] = []
    for name in ("useragents.json", "more-useragents.json"):
        data = json.loads((src / "t" / name).read_text(encoding="utf-8"))
        for ua, test in data.items():
            match = test.get("match") or []
            if "robot" in match:
                bots.append(ua)
            elif "lib" not in match:
                browsers.append(ua)
    return _unique(bots), _unique(browsers)


SOURCES = {
    "device-detector": device_detector,
    "woothee": woothee,
    "browscap": browscap,
    "ua-parser-js": ua_parser_js,
    "whichbrowser": whichbrowser,
    "fake-useragent": fake_useragent,
    "top-user-agents": top_user_agents,
    "intoli-older": intoli_older,
    "mobile-detect": mobile_detect,
    "bowser": bowser,
    "php-user-agent": php_user_agent,
    "agent": agent,
    "well-known-bots": well_known_bots,
    "uap-core": uap_core_devices,
    "cloudflare-bots": cloudflare_bots,
    "opawg-v2": opawg_v2,
    "opawg": opawg,
    "browser-gem": browser_gem,
    "top-crawler-agents": top_crawler_agents,
    "winfuture": winfuture,
    "yauaa": yauaa,
    "http-browserdetect": http_browserdetect,
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
