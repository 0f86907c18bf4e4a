"""The indexer's CPU gate: the share of the machine's CPU that was idle, from /proc/stat
counters, recomputed once per window."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector import indexer
from collector.errors import StorageFailed


def test_spare_is_the_idle_share_of_the_last_window(monkeypatch: pytest.MonkeyPatch) -> None:
    readings = iter([(100, 1_000), (150, 1_100), (150, 1_300)])  # (idle, all) ticks
    monkeypatch.setattr(indexer.SpareCpu, "_read", staticmethod(lambda: next(readings)))
    clock = iter([0.0, 0.05, 0.2, 0.45])
    monkeypatch.setattr(indexer.time, "monotonic", lambda: next(clock))
    cpu = indexer.SpareCpu(window=0.1)  # reads (100, 1000) at t=0
    assert cpu.spare() == 1.0  # t=0.05: inside the first window, nothing measured yet
    assert cpu.spare() == pytest.approx(0.5)  # t=0.2: 50 idle of 100 ticks
    assert cpu.spare() == 0.0  # t=0.45: no idle tick in 200: busy, the indexer waits


def test_without_proc_stat_the_gate_stays_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(indexer.SpareCpu, "_read", staticmethod(lambda: None))
    cpu = indexer.SpareCpu(window=0.0)
    assert cpu.spare() == 1.0


class FakeStore:
    """What the indexer's loop asks of a store: the backlog, and indexing."""

    def __init__(self, backlog: int) -> None:
        self.pending = backlog
        self.calls: list[tuple[int, bool]] = []

    def backlog(self) -> int:
        return self.pending

    def index_some(self, chunk: int, *, wait: bool = True) -> int:
        self.calls.append((chunk, wait))
        done = min(chunk, self.pending)
        self.pending -= done
        return done


class BusyCpu(indexer.SpareCpu):
    def __init__(self) -> None:
        pass

    def spare(self) -> float:
        return 0.0


def test_a_busy_cpu_holds_the_indexer_back_below_half_the_bound() -> None:
    store = FakeStore(backlog=400)
    pressure = indexer.Pressure(store, threshold=500)  # type: ignore[arg-type]
    pause = indexer.step(store, BusyCpu(), pressure, 0.2, 0.05)  # type: ignore[arg-type]
    assert pause == indexer.BUSY_S
    assert store.calls == []


def test_past_half_the_bound_it_indexes_in_large_chunks_whatever_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [0.0]
    monkeypatch.setattr(indexer.time, "monotonic", lambda: clock[0])
    store = FakeStore(backlog=12_000)
    pressure = indexer.Pressure(store, threshold=6_000)  # type: ignore[arg-type]
    cpu = BusyCpu()
    for _ in range(2):
        assert indexer.step(store, cpu, pressure, 0.2, 0.05) == indexer.YIELD_S  # type: ignore[arg-type]
    # Two large chunks took the backlog from 12,000 to 2,000, below the threshold: the
    # next count turns the pressure off, and the busy CPU holds the indexer back again.
    assert store.calls == [(indexer.PRESSED_CHUNK, False), (indexer.PRESSED_CHUNK, False)]
    assert indexer.step(store, cpu, pressure, 0.2, 0.05) == indexer.BUSY_S  # type: ignore[arg-type]
    assert store.pending == 2_000 and len(store.calls) == 2


def test_reads_the_idle_and_total_ticks_of_proc_stat(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # user nice system idle iowait irq softirq steal (guest ticks are already in user)
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 20 30 400 50 6 7 8 9 10\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
    monkeypatch.setattr(indexer, "PROC_STAT", str(stat))
    assert indexer.SpareCpu._read() == (450, 621)
    stat.write_text("garbage\n")
    assert indexer.SpareCpu._read() is None  # unreadable: the gate stays open


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="Linux only")
def test_this_machines_counters_are_read_and_only_grow() -> None:
    first = indexer.SpareCpu._read()
    sum(i * i for i in range(200_000))  # some CPU time between the two readings
    second = indexer.SpareCpu._read()
    assert first is not None and second is not None
    assert 0 <= first[0] <= first[1] and 0 <= second[0] <= second[1]
    assert second[0] >= first[0] and second[1] >= first[1]


def test_failures_are_logged_once_then_a_line_a_minute_then_the_recovery(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    failures = indexer.Failures(clock=lambda: now[0])
    caplog.set_level("WARNING", logger="collector.indexer")
    waits = []
    for _ in range(100):  # 59 s of a database that errs on every try
        waits.append(failures.failed(RuntimeError("disk I/O error"), 0.05))
        now[0] += 0.59
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert caplog.records[0].exc_info is not None  # the first in full
    assert waits[:3] == [0.05, 0.1, 0.2] and waits[-1] == indexer.Failures.MAX_WAIT_S
    now[0] = 61.0
    failures.failed(RuntimeError("disk I/O error"), 0.05)
    failures.succeeded()
    failures.succeeded()  # a success after a success says nothing
    lines = [r.getMessage() for r in caplog.records[1:]]
    assert lines == [
        "indexing still failing after 101 tries: disk I/O error",
        "indexing resumed after 101 failed tries",
    ]


def test_a_database_away_pauses_indexing_in_one_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="collector.indexer")
    failures = indexer.Failures(clock=lambda: 0.0)
    for _ in range(50):
        failures.failed(StorageFailed(1, "Database unavailable, retry later"), 0.05)
    (record,) = caplog.records
    assert record.getMessage() == "indexing paused: Database unavailable, retry later"
    assert record.exc_info is None
