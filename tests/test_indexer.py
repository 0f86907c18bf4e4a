"""The indexer's CPU gate: the share of the machine's CPU that was idle, from /proc/stat
counters, recomputed once per window."""

from __future__ import annotations

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


def test_reads_this_machine() -> None:
    cpu = indexer.SpareCpu(window=0.0)
    assert 0.0 <= cpu.spare() <= 1.0
