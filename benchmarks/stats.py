"""Percentiles and small formatting helpers."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return math.nan
    s = sorted(values)
    if len(s) == 1:
        return float(s[0])
    pos = (len(s) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (pos - lo))


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "mean": (sum(values) / len(values)) if values else math.nan,
        "max": max(values) if values else math.nan,
    }


def fmt_ms(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    if abs(v) >= 100:
        return f"{v:.0f} ms"
    if abs(v) >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


def fmt_us(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    return f"{v:.0f} µs" if abs(v) >= 10 else f"{v:.1f} µs"


def fmt_mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def fmt_rate(v: float) -> str:
    if math.isnan(v):
        return "n/a"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"
