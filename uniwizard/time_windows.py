"""The windows budgets count in (UTC days and UTC months), and how their amounts read."""

from __future__ import annotations

import datetime as dt


def day_start(now: float) -> float:
    """The start of ``now``'s UTC day (Unix epoch seconds)."""
    t = dt.datetime.fromtimestamp(now, dt.UTC)
    return dt.datetime(t.year, t.month, t.day, tzinfo=dt.UTC).timestamp()


def month_start(now: float) -> float:
    """The start of ``now``'s UTC month (Unix epoch seconds)."""
    t = dt.datetime.fromtimestamp(now, dt.UTC)
    return dt.datetime(t.year, t.month, 1, tzinfo=dt.UTC).timestamp()


def next_day_start(now: float) -> float:
    """When the UTC day after ``now``'s starts (a daily budget's new window)."""
    return day_start(now) + 86400.0


def next_month_start(now: float) -> float:
    """When the UTC month after ``now``'s starts (a monthly budget's new window)."""
    t = dt.datetime.fromtimestamp(now, dt.UTC)
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return dt.datetime(year, month, 1, tzinfo=dt.UTC).timestamp()


def usd(amount: float) -> str:
    """Money in plain words: cents above a dollar, more digits below it ($0.0040, $12.50)."""
    return f"${amount:.2f}" if abs(amount) >= 1 else f"${amount:.4f}"
