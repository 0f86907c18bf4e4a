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
    assert keys == ["shared", "packages", "woothee", "whichbrowser"]
    which = corpora(tmp_path)[-1]
    assert which.crawlers == ["NewBot/1.0 (test)"]
    assert which.browsers == ["Brand-new browser/1.0 (test)"]
    # Strings an earlier corpus has are dropped: none appears in two corpora.
    seen: set[str] = set()
    for corpus in corpora(tmp_path):
        strings = set(corpus.crawlers) | set(corpus.browsers)
        assert not strings & seen
        seen |= strings
