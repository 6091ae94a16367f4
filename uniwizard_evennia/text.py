"""What the commands and the Workshop script say. Pure functions: no Evennia, no I/O.

Evennia colour markup (``|g``, ``|n``, ...) is used; tests strip it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from uniwizard_client import AttemptInfo, Rated, RouteInfo, RouterError, ThinkResult

PREFIX = "|w[Uniwizard]|n"
ROUTABLE = frozenset({"unknown", "healthy", "half_open"})


def one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def route_text(task: str, info: RouteInfo) -> str:
    lines = [f"{PREFIX} route for: {one_line(task, 80)}"]
    if info.backend:
        lines.append(f"  backend:  |g{info.backend}|n  (category: {info.category})")
    else:
        lines.append(f"  backend:  |rnone eligible|n  (category: {info.category})")
    lines.extend(f"  why:      {r.rule}: {r.evidence}" for r in info.reasons)
    if info.chain:
        lines.append(f"  chain:    {' -> '.join(info.chain)}")
    lines.extend(
        f"  skipped:  {s.backend}: {s.reason}" + (f" ({s.detail})" if s.detail else "")
        for s in info.skipped
    )
    return "\n".join(lines)


def thought_text(name: str, result: ThinkResult) -> str:
    attempts = len(result.attempts)
    failed = [a for a in result.attempts if a.outcome != "success"]
    after = ("; after " + ", ".join(f"{a.backend} {a.outcome}" for a in failed)) if failed else ""
    footer = (f"  |x(via {result.backend} · {result.model} · {result.category} · "
              f"${result.cost_usd:.6f} · {attempts} attempt{'s' * (attempts != 1)}{after})|n")
    return f"|c{name} thinks:|n {result.text.strip()}\n{footer}"


def rated_text(result: Rated) -> str:
    label = f" ({result.label})" if result.label else ""
    return (f"{PREFIX} you rate the last answer {result.score:.2f}{label}; "
            f"{result.backend} gave it, on a {result.category} task.")


def tried_text(attempts: Sequence[AttemptInfo], limit: int = 6) -> str:
    """``gpt rate_limited x2, claude overloaded``: attempts in order, repeats folded."""
    groups: list[list[Any]] = []
    for a in attempts:
        if groups and groups[-1][0] == (a.backend, a.outcome):
            groups[-1][1] += 1
        else:
            groups.append([(a.backend, a.outcome), 1])
    parts = [f"{b} {o}" + (f" x{n}" if n > 1 else "") for (b, o), n in groups[:limit]]
    return ", ".join(parts) + (", …" if len(groups) > limit else "")


def error_text(verb: str, exc: BaseException) -> str:
    """One clear line: which outcome class, what happened, what was tried."""
    if isinstance(exc, RouterError):
        tried = f" [tried {tried_text(exc.attempts)}]" if exc.attempts else ""
        return f"{PREFIX} |r{verb} failed ({exc.outcome}):|n {one_line(exc.message, 120)}{tried}"
    return f"{PREFIX} |r{verb} failed (internal):|n {type(exc).__name__}: {one_line(str(exc))}"


def state_text(row: Mapping[str, Any], now: float) -> str:
    state = str(row.get("state", "unknown"))
    if state == "disabled":
        who = row.get("disabled_by") or "an operator"
        why = row.get("disabled_reason") or ""
        return f"disabled by {who}" + (f": {why}" if why else "")
    if state == "cooling_down":
        left = max(0.0, float(row.get("cooldown_until", 0.0)) - now)
        return f"cooling down ({left:.0f} s left)" + (f": {row['reason']}" if row.get("reason")
                                                      else "")
    if state == "down":
        return "down" + (f": {row['reason']}" if row.get("reason") else "")
    return state.replace("_", "-")


def health_changes(old: Mapping[str, Mapping[str, Any]], new: Mapping[str, Mapping[str, Any]],
                   now: float) -> list[str]:
    """Announcements for backends that stopped being routable, or came back.

    A backend not seen before counts as previously available, so a first poll announces only
    the backends that are already out.
    """
    lines = []
    for key, row in new.items():
        was = str(old[key]["state"]) if key in old else "unknown"
        is_ = str(row["state"])
        if is_ not in ROUTABLE and (was in ROUTABLE or was != is_):
            lines.append(f"{PREFIX} |rbackend {key} is {state_text(row, now)}.|n")
        elif is_ in ROUTABLE and was not in ROUTABLE:
            lines.append(f"{PREFIX} |gbackend {key} is back ({state_text(row, now)}).|n")
    lines.extend(f"{PREFIX} backend {key} is no longer configured." for key in old
                 if key not in new)
    for key, row in new.items():
        line = budget_change(key, (old.get(key) or {}).get("budget") or {}, row.get("budget") or {})
        if line:
            lines.append(line)
    return lines


def budget_change(key: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What to say when a backend's budget state changes (warning, over, room again)."""
    was, is_ = str(old.get("state") or "none"), str(new.get("state") or "none")
    if was == is_:
        return ""
    kind, spent, cap = _binding_cap(new)
    if is_ == "warning":
        return (f"{PREFIX} |y{key}'s {kind} budget is {spent / cap:.0%} spent "
                f"(${spent:.2f} of ${cap:.2f}).|n")
    if is_ == "over":
        return (f"{PREFIX} |r{key}'s {kind} budget is spent (${spent:.2f} of ${cap:.2f}): "
                "tasks go to other backends.|n")
    if was in ("warning", "over") and is_ == "ok":
        return f"{PREFIX} |g{key}'s budget has room again.|n"
    return ""


def _binding_cap(b: Mapping[str, Any]) -> tuple[str, float, float]:
    """(daily or monthly, spent, cap) of the cap closest to being used up."""
    caps = []
    if float(b.get("daily_usd") or 0) > 0:
        caps.append(("daily", float(b.get("spent_today_usd") or 0), float(b["daily_usd"])))
    if float(b.get("monthly_usd") or 0) > 0:
        caps.append(("monthly", float(b.get("spent_month_usd") or 0), float(b["monthly_usd"])))
    if not caps:
        return "", 0.0, 1.0
    return max(caps, key=lambda c: c[1] / c[2])


def health_table(health: Mapping[str, Mapping[str, Any]], now: float, checked_at: float,
                 error: str = "") -> str:
    if not health and not error:
        return f"{PREFIX} no backend health yet: the first poll has not come back."
    age = f"{max(0.0, now - checked_at):.0f} s ago" if checked_at else "never"
    lines = [f"{PREFIX} backend health (checked {age})"]
    if error:
        lines.append(f"  |rregistry unreachable: {one_line(error)}|n "
                     "(showing the last known state)")
    rows = [("BACKEND", "STATE", "LAST OUTCOME", "MODEL")]
    for key in sorted(health):
        row = health[key]
        rows.append((key, state_text(row, now), str(row.get("last_outcome") or "-"),
                     str(row.get("model", ""))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)
