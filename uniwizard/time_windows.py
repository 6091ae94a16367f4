"""The windows budgets count in: UTC days and UTC months."""

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
