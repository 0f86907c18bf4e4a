"""The storage benchmark writes what it says: every event new and stored, and its
"time-ordered" ids are version 7 UUIDs like the SDK's."""

from __future__ import annotations

import re
import sys
import time

import pytest

from bench import store_bench

UUID7 = r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def test_uuid7_is_version_7_with_the_time_first() -> None:
    before = int(time.time() * 1000)
    first = store_bench.uuid7()
    first_ms = int(first.replace("-", "")[:12], 16)
    # The millisecond after the first id's (not after `before`: a slow machine may have
    # made the first id a millisecond later already), without sleeping.
    while int(time.time() * 1000) <= first_ms:
        pass
    second = store_bench.uuid7()
    after = int(time.time() * 1000)
    assert re.fullmatch(UUID7, first) and re.fullmatch(UUID7, second)
    ms = [int(u.replace("-", "")[:12], 16) for u in (first, second)]
    assert before <= ms[0] < ms[1] <= after
    assert first < second


def test_store_bench_reports_each_shape_and_stores_every_event(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(
        sys, "argv", ["store_bench", "--warm", "2000", "--events", "2000", "--rounds", "2"]
    )
    store_bench.main()
    out = capsys.readouterr().out
    for shape in store_bench.SHAPES:
        line = next(row for row in out.splitlines() if row.startswith(shape.name))
        cpu, wall, index = (float(x) for x in line[len(shape.name) :].split()[:3])
        assert cpu > 0 and wall > 0 and index > 0
    assert re.search(r"random vs time-ordered ids, browser events: x\d+\.\d\d CPU", out)
    # Warm-up plus two rounds, in whole groups: 22-event groups give 1980 + 2 × 1980.
    assert "rows stored: 5940, 5940, 6000 (every event written)" in out
