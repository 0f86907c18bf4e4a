"""bench/ua_corpora.py reads each project's labels as documented, and bench/ua_bench.py
finds the corpora it builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import ua_corpora
from bench.ua_bench import DATA, corpora, load


def test_browscap_reads_bots_and_browsers_by_browser_type(tmp_path: Path) -> None:
    issues = tmp_path / "tests" / "issues"
    issues.mkdir(parents=True)
    (issues / "issue-1.php").write_text(
        """<?php
return [
    'a' => ['ua' => 'Mozilla/5.0 (X11) Firefox/1.0', 'properties' => [
        'Browser' => 'Firefox', 'Browser_Type' => 'Browser']],
    'b' => ['ua' => 'ExampleBot/1.0 (it\\'s a bot)', 'properties' => [
        'Browser_Type' => 'Bot/Crawler']],
    'c' => ['ua' => 'Outlook/16.0', 'properties' => ['Browser_Type' => 'Email Client']],
    'd' => ['ua' => 'NoType/1.0', 'properties' => ['Browser' => 'x']],
    'e' => ['ua' => 'Mozilla/5.0 (X11) Firefox/1.0', 'properties' => [
        'Browser_Type' => 'Browser']],
];
""",
        encoding="utf-8",
    )
    bots, browsers = ua_corpora.browscap(tmp_path)
    assert bots == ["ExampleBot/1.0 (it's a bot)"]
    assert browsers == ["Mozilla/5.0 (X11) Firefox/1.0"]  # once, and no other type


def test_ua_parser_js_reads_its_files(tmp_path: Path) -> None:
    base = tmp_path / "test" / "data" / "ua"
    (base / "extension").mkdir(parents=True)
    (base / "browser").mkdir()
    files = {
        ("extension", "crawler.json"): ["Googlebot/2.1"],
        ("extension", "fetcher.json"): ["Slackbot 1.0"],
        ("extension", "inapp.json"): ["Instagram 1.0 (iPhone)"],
        ("browser", "browser-all.json"): ["Firefox/1.0", " ", "Line\nbreak"],
    }
    for parts, uas in files.items():
        base.joinpath(*parts).write_text(json.dumps([{"ua": ua} for ua in uas]))
    bots, browsers = ua_corpora.ua_parser_js(tmp_path)
    assert bots == ["Googlebot/2.1", "Slackbot 1.0"]
    assert browsers == ["Firefox/1.0", "Instagram 1.0 (iPhone)"]


def test_whichbrowser_header_forms() -> None:
    assert ua_corpora._whichbrowser_ua("User-Agent: Foo/1.0") == "Foo/1.0"
    assert ua_corpora._whichbrowser_ua("X-Wap-Profile: http://x") is None
    assert ua_corpora._whichbrowser_ua({"user-agent": "Bar/2", "Accept": "*/*"}) == "Bar/2"


def test_fake_useragent_is_browsers_only(tmp_path: Path) -> None:
    data = tmp_path / "fake_useragent" / "data"
    data.mkdir(parents=True)
    rows = [{"useragent": "A/1"}, {"useragent": "B/2"}, {"useragent": "A/1"}]
    (data / "browsers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert ua_corpora.fake_useragent(tmp_path) == ([], ["A/1", "B/2"])


def test_folder_corpora_are_found_and_kept_apart(tmp_path: Path) -> None:
    if not (DATA / "bots.txt").is_file():
        pytest.skip(
            f"UA corpus {DATA / 'bots.txt'} not found (shared/ must sit beside the repository)"
        )
    known = load("bots")[0]  # in the shared corpus, so dropped from a later one
    (tmp_path / "whichbrowser-bots.txt").write_text(f"NewBot/1.0 (test)\n{known}\n")
    (tmp_path / "whichbrowser-browsers.txt").write_text("Brand-new browser/1.0 (test)\n")
    keys = [c.key for c in corpora(tmp_path)]
    # the third and fourth passes' shipped corpora come from bench/data/ when the folder
    # lacks them
    shipped = ["top_user_agents", "bowser", "php_user_agent", "agent", "well_known_bots"]
    shipped += ["opawg_v2", "browser_gem", "winfuture"]
    assert keys == ["shared", "packages", "woothee", "whichbrowser", *shipped]
    which = next(c for c in corpora(tmp_path) if c.key == "whichbrowser")
    assert which.crawlers == ["NewBot/1.0 (test)"]
    assert which.browsers == ["Brand-new browser/1.0 (test)"]
    # Strings an earlier corpus has are dropped: none appears in two corpora.
    seen: set[str] = set()
    for corpus in corpora(tmp_path):
        strings = set(corpus.crawlers) | set(corpus.browsers)
        assert not strings & seen
        seen |= strings


def test_mobile_detect_keeps_the_mobile_strings(tmp_path: Path) -> None:
    vendors = tmp_path / "tests" / "providers" / "vendors"
    vendors.mkdir(parents=True)
    (vendors / "Acme.php").write_text(
        """<?php
return [
    'Acme' => [
        'Acme Phone/1.0 (it\\'s mobile)' => ['isMobile' => true, 'isTablet' => false],
        "Acme Tab/2.0" => [
            'isMobile' => true, 'isTablet' => true, 'version' => ['Android' => '4.0'],
        ],
        'Acme Desktop/3.0' => ['isMobile' => false, 'isTablet' => false],
    ],
];
""",
        encoding="utf-8",
    )
    assert ua_corpora.mobile_detect(tmp_path) == (
        [],
        ["Acme Phone/1.0 (it's mobile)", "Acme Tab/2.0"],
    )


def test_bowser_by_platform_type(tmp_path: Path) -> None:
    base = tmp_path / "test" / "acceptance"
    base.mkdir(parents=True)
    (base / "useragentstrings.yml").write_text(
        """Chrome:
  - ua: "Chrome/1.0 (tv)"
    spec: {browser: {name: Chrome}, platform: {type: tv}}
  - ua: "Chrome/2.0 (no type)"
    spec: {browser: {name: Chrome}, platform: {}}
Googlebot:
  - ua: "Googlebot/2.1"
    spec: {browser: {name: Googlebot}, platform: {type: bot}}
PhantomJS:
  - ua: "PhantomJS/2.1"
    spec: {browser: {name: PhantomJS}, platform: {type: desktop}}
""",
        encoding="utf-8",
    )
    assert ua_corpora.bowser(tmp_path) == (["Googlebot/2.1"], ["Chrome/1.0 (tv)"])


def test_php_user_agent_by_class(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    data = {
        "Firefox/1.0": {"platform": "X", "browser": "Firefox", "version": "1.0"},
        "HeadlessChrome/1.0": {"platform": "X", "browser": "HeadlessChrome", "version": "1"},
        "Googlebot/2.1": {"browser": "Googlebot", "class": ["Bots", "Browsers"]},
        "AhrefsBot/7.0": {"browser": "AhrefsBot", "class": ["Bots"]},
        "FlipboardProxy/1.0": {"browser": "FlipboardProxy", "class": []},
    }
    (tmp_path / "tests" / "user_agents.dist.json").write_text(json.dumps(data))
    assert ua_corpora.php_user_agent(tmp_path) == (
        ["Googlebot/2.1", "AhrefsBot/7.0"],
        ["Firefox/1.0"],
    )


def test_agent_reads_robots_and_the_other_arrays(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "AgentTest.php").write_text(
        """<?php
class AgentTest extends TestCase
{
    private $browsers = [
        'Firefox/1.0 (X11)' => 'Firefox',
    ];

    private $robots = [
        'Twitterbot/1.0' => 'Twitterbot',
    ];

    private $phones = [
        'Phone/1.0 (Android)',
    ];
}
""",
        encoding="utf-8",
    )
    assert ua_corpora.agent(tmp_path) == (
        ["Twitterbot/1.0"],
        ["Firefox/1.0 (X11)", "Phone/1.0 (Android)"],
    )


def test_well_known_bots_takes_the_accepted_instances(tmp_path: Path) -> None:
    data = [
        {"id": "a", "instances": {"accepted": ["ABot/1.0", "ABot/2.0"], "rejected": ["Fx/1"]}},
        {"id": "b", "instances": {"accepted": ["ABot/1.0"], "rejected": []}},
    ]
    (tmp_path / "well-known-bots.json").write_text(json.dumps(data))
    assert ua_corpora.well_known_bots(tmp_path) == (["ABot/1.0", "ABot/2.0"], [])


def test_uap_core_by_device_family(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_device.yaml").write_text(
        """test_cases:
  - user_agent_string: "Googlebot/2.1"
    family: "Spider"
    brand: "Spider"
    model: "Desktop"
  - user_agent_string: "Phone/1.0"
    family: "Acme Phone"
    brand: "Acme"
    model: "Phone"
""",
        encoding="utf-8",
    )
    assert ua_corpora.uap_core_devices(tmp_path) == (["Googlebot/2.1"], ["Phone/1.0"])


def test_intoli_older_reads_every_release(tmp_path: Path) -> None:
    for version, uas in (("2.1.1", ["A/1", "B/2"]), ("2.1.100", ["B/2", "C/3"])):
        dist = tmp_path / version / "package" / "dist"
        dist.mkdir(parents=True)
        (dist / "user-agents.json").write_text(json.dumps([{"userAgent": u} for u in uas]))
    # in name order: "2.1.1" before "2.1.100"
    assert ua_corpora.intoli_older(tmp_path) == ([], ["A/1", "B/2", "C/3"])


def test_cloudflare_bots_takes_kind_bot_from_every_release(tmp_path: Path) -> None:
    releases = {
        "1.0.5": [{"kind": "BOT", "userAgents": ["ABot/1.0", "ABot/2.0"]}],
        "1.0.48": [
            {"kind": "BOT", "userAgents": ["ABot/2.0", "CBot/1.0"]},
            {"kind": "AGENT", "userAgents": ["Mozilla/5.0 (agent)"]},
            {"kind": "BOT", "userAgents": []},
        ],
    }
    for version, data in releases.items():
        src = tmp_path / version / "package" / "src"
        src.mkdir(parents=True)
        (src / "index.json").write_text(json.dumps(data))
    # in name order: "1.0.48" before "1.0.5"
    assert ua_corpora.cloudflare_bots(tmp_path) == (["ABot/2.0", "CBot/1.0", "ABot/1.0"], [])


def test_opawg_v2_by_file_and_library_category(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    files = {
        "bots": [{"name": "b", "pattern": "x", "examples": ["FeedBot/1.0"]}, {"name": "c"}],
        "libraries": [
            {"name": "l", "category": "bot", "examples": ["lib-fetch/2"]},
            {"name": "m", "examples": ["AppleCoreMedia/1.0"]},
        ],
        "browsers": [{"name": "f", "examples": ["Mozilla/5.0 Firefox/1.0"]}],
        "apps": [{"name": "a", "examples": ["Podcasts/1.0"]}],
    }
    for name, entries in files.items():
        (tmp_path / "src" / f"{name}.json").write_text(json.dumps({"entries": entries}))
    assert ua_corpora.opawg_v2(tmp_path) == (
        ["FeedBot/1.0", "lib-fetch/2"],
        ["Mozilla/5.0 Firefox/1.0"],
    )


def test_opawg_takes_the_bot_entries(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    data = [
        {"id": 1, "user_agents": ["^A"], "bot": True, "examples": ["ABot/1.0"]},
        {"id": 2, "user_agents": ["^B"], "app": "B", "examples": ["BApp/1.0"]},
        {"id": 3, "user_agents": ["^C"], "bot": True},
    ]
    (tmp_path / "src" / "user-agents.json").write_text(json.dumps(data))
    assert ua_corpora.opawg(tmp_path) == (["ABot/1.0"], [])


def test_browser_gem_reads_its_three_files(tmp_path: Path) -> None:
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "ua_bots.yml").write_text('GOOGLE_BOT: "Googlebot/2.1"\n')
    (tmp_path / "test" / "ua_search_engines.yml").write_text('BING: "bingbot/2.0"\n')
    (tmp_path / "test" / "ua.yml").write_text('CHROME: "Chrome/1.0"\nDUP: "Chrome/1.0"\n')
    assert ua_corpora.browser_gem(tmp_path) == (["Googlebot/2.1", "bingbot/2.0"], ["Chrome/1.0"])


def _git_repo(path: Path, name: str, versions: list[str]) -> Path:
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True)

    path.mkdir()
    git("init", "-q")
    for i, text in enumerate(versions):
        (path / name).write_text(text)
        git("add", name)
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", f"v{i}")
    return path / ".git"


def test_top_crawler_agents_reads_every_version(tmp_path: Path) -> None:
    versions = [json.dumps(["ABot/1.0", "BBot/1.0"]), json.dumps(["BBot/1.0", "CBot/1.0"])]
    gitdir = _git_repo(tmp_path / "repo", "index.json", versions)
    assert ua_corpora.top_crawler_agents(gitdir) == (["ABot/1.0", "BBot/1.0", "CBot/1.0"], [])


def test_winfuture_reads_every_version(tmp_path: Path) -> None:
    versions = [
        json.dumps({"user_agents": [{"ua": "A/1", "device_type": "mobile"}]}),
        json.dumps({"user_agents": [{"ua": "B/2"}, {"ua": "A/1"}]}),
    ]
    gitdir = _git_repo(tmp_path / "repo", "user-agents.json", versions)
    assert ua_corpora.winfuture(gitdir) == ([], ["A/1", "B/2"])


def test_yauaa_reads_tests_by_device_class(tmp_path: Path) -> None:
    folder = tmp_path / "analyzer" / "src" / "main" / "resources" / "UserAgents"
    folder.mkdir(parents=True)
    (folder / "Robots.yaml").write_text(
        """config:
- matcher:
    extract: ['DeviceClass: 1: "Robot"']
- test:
    input:
      user_agent_string: 'ExampleBot/1.0'
    expected:
      DeviceClass: 'Robot'
- test:
    input:
      User-Agent: 'Imitator Googlebot/2.1'
      Sec-Ch-Ua: '"x";v="1"'
    expected:
      DeviceClass: 'Robot Imitator'
- test:
    input:
      user_agent_string: 'Mozilla/5.0 (Linux; Android 14) Mobile'
    expected:
      DeviceClass: 'Phone'
- test:
    input:
      user_agent_string: "Mozilla/5.0 '; DROP TABLE x"
    expected:
      DeviceClass: 'Hacker'
- test:
    input:
      user_agent_string: 'Mastodon/4.2'
    expected:
      DeviceClass: 'Cloud'
""",
        encoding="utf-8",
    )
    bots, browsers = ua_corpora.yauaa(tmp_path)
    assert bots == ["ExampleBot/1.0", "Imitator Googlebot/2.1"]
    assert browsers == ["Mozilla/5.0 (Linux; Android 14) Mobile"]  # no Hacker, no Cloud


def test_http_browserdetect_reads_match_lists(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    first = {
        "ExampleBot/1.0": {"match": ["robot"], "robot": "examplebot"},
        "curl/8.0": {"match": ["lib", "robot"]},
        "Mozilla/5.0 (Windows NT 10.0) Firefox/120.0": {"match": ["firefox", "windows"]},
    }
    more = {
        "libwww-perl/6.0": {"match": ["lib"]},
        "Mozilla/5.0 (iPhone) Safari/604.1": {"match": ["ios", "mobile"], "no_match": ["robot"]},
    }
    (tmp_path / "t" / "useragents.json").write_text(json.dumps(first))
    (tmp_path / "t" / "more-useragents.json").write_text(json.dumps(more))
    bots, browsers = ua_corpora.http_browserdetect(tmp_path)
    assert bots == ["ExampleBot/1.0", "curl/8.0"]
    assert browsers == [
        "Mozilla/5.0 (Windows NT 10.0) Firefox/120.0",
        "Mozilla/5.0 (iPhone) Safari/604.1",
    ]  # a library that is not asserted a robot is neither
