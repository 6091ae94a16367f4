"""The caller's spend watcher: the ledger is read at start and every PERIOD_S; attempts in
between are added to the snapshot as they are recorded and reported soon after."""

from __future__ import annotations

import asyncio

import pytest

from caller_svc import spend as spend_mod
from caller_svc.ledger import LedgerUnavailable
from caller_svc.spend import SpendWatcher


class FakeLedger:
    def __init__(self) -> None:
        self.totals: dict[str, tuple[float, float]] = {"claude": (1.0, 10.0)}
        self.reads: list[tuple[float, float]] = []
        self.broken = False

    async def spend(self, day_start: float, month_start: float) -> dict[str, tuple[float, float]]:
        self.reads.append((day_start, month_start))
        if self.broken:
            raise LedgerUnavailable("disk gone")
        return dict(self.totals)


class FakeReporter:
    def __init__(self) -> None:
        self.snapshots: list[dict[str, tuple[float, float]]] = []

    def spent(self, as_of: float, spend: dict[str, tuple[float, float]]) -> None:
        self.snapshots.append(spend)


async def settle() -> None:
    await asyncio.sleep(spend_mod.DEBOUNCE_S * 3)


async def test_reads_at_start_then_counts_attempts_without_reading() -> None:
    ledger, reporter = FakeLedger(), FakeReporter()
    watcher = SpendWatcher(ledger, reporter)  # type: ignore[arg-type]
    watcher.start()
    await settle()
    assert reporter.snapshots == [{"claude": (1.0, 10.0)}]
    for _ in range(5):  # a burst: one report
        watcher.spent("claude", 0.25)
    watcher.spent("gpt", 0.5)
    await settle()
    assert len(ledger.reads) == 1
    assert reporter.snapshots[-1] == {"claude": (2.25, 11.25), "gpt": (0.5, 0.5)}
    assert len(reporter.snapshots) == 2
    await watcher.aclose()


async def test_the_periodic_read_replaces_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spend_mod, "PERIOD_S", 0.3)
    ledger, reporter = FakeLedger(), FakeReporter()
    watcher = SpendWatcher(ledger, reporter)  # type: ignore[arg-type]
    watcher.start()
    await settle()
    watcher.spent("claude", 0.5)
    ledger.totals = {"claude": (3.0, 12.0)}  # another caller spent too (a shared ledger)
    await asyncio.sleep(0.5)
    assert len(ledger.reads) >= 2
    assert reporter.snapshots[-1] == {"claude": (3.0, 12.0)}
    await watcher.aclose()


async def test_a_new_day_is_read_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger, reporter = FakeLedger(), FakeReporter()
    watcher = SpendWatcher(ledger, reporter)  # type: ignore[arg-type]
    watcher.start()
    await settle()
    day, _ = ledger.reads[0]
    tomorrow = day + 86400 + 60
    monkeypatch.setattr(spend_mod.time, "time", lambda: tomorrow)
    ledger.totals = {}
    watcher.spent("claude", 0.5)
    await settle()
    assert ledger.reads[-1][0] == day + 86400  # the new day's window
    assert reporter.snapshots[-1] == {}
    await watcher.aclose()


async def test_an_unreadable_ledger_is_a_warning_and_counting_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger, reporter = FakeLedger(), FakeReporter()
    ledger.broken = True
    watcher = SpendWatcher(ledger, reporter)  # type: ignore[arg-type]
    watcher.start()
    await settle()
    assert "could not read spending from the ledger: disk gone" in caplog.text
    watcher.spent("claude", 0.5)
    await settle()
    assert reporter.snapshots[-1] == {"claude": (0.5, 0.5)}
    await watcher.aclose()


async def test_without_the_ledger_a_new_day_starts_at_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    ledger, reporter = FakeLedger(), FakeReporter()
    watcher = SpendWatcher(ledger, reporter)  # type: ignore[arg-type]
    watcher.start()
    await settle()
    day, _ = ledger.reads[0]
    ledger.broken = True
    monkeypatch.setattr(spend_mod.time, "time", lambda: day + 86400 + 60)
    watcher.spent("claude", 0.5)
    await settle()
    today, month = reporter.snapshots[-1]["claude"]
    assert today == 0.5
    assert month in (10.5, 0.5)  # 0.5 only when the new day is also a new month
    await watcher.aclose()
