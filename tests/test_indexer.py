"""The indexer's CPU gate: the share of the machine's CPU that was idle, from /proc/stat
counters, recomputed once per window."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector import indexer


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
