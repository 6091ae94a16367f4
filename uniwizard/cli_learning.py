"""``uniwizard rate`` and ``uniwizard stats``: the agent's ratings in, what was learned out."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from uniwizard.cli_common import EXIT_FAILED, CliError, _client, _print_json, _rpc
from uniwizard.ratings import InvalidRating, parse_score
from uniwizard_client import BackendRouter, RegistryClient, RouterError, StatsRow


def cmd_rate(args: argparse.Namespace) -> int:
    try:
        score, five_point = parse_score(args.score)
    except InvalidRating as exc:
        raise CliError(str(exc)) from None
    request_id, trace_id = ("", args.id) if args.trace else (args.id, "")
    with _client(BackendRouter, args.router) as router:
        try:
            rated = _rpc(
                lambda: router.rate(
                    request_id,
                    score,
                    label=args.label,
                    trace_id=trace_id,
                    five_point=five_point,
                    deadline=10,
                )
            )
        except InvalidRating as exc:
            raise CliError(str(exc)) from None
        except RouterError as err:
            if args.json:
                _print_json({"error": {"class": err.outcome, "message": err.message}})
            else:
                print(f"error: {err.outcome}: {err.message}", file=sys.stderr)
            return EXIT_FAILED
    data = {
        "request_id": rated.request_id,
        "trace_id": rated.trace_id,
        "backend": rated.backend,
        "category": rated.category,
        "score": round(rated.score, 4),
        "label": rated.label,
    }
    if args.json:
        _print_json(data)
    else:
        label = f" ({rated.label})" if rated.label else ""
        print(
            f"rated {rated.score:.2f}{label}: {rated.backend}'s answer to a {rated.category} task"
        )
    return 0


def _stats_dict(r: StatsRow) -> dict[str, Any]:
    return {
        "category": r.category,
        "backend": r.backend,
        "rated_quality": round(r.rated_quality, 4) if r.ratings else None,
        "ratings": round(r.ratings, 2),
        "attempts": round(r.attempts, 2),
        "success_rate": round(r.success_rate, 4),
        "outcomes": {k: round(v, 2) for k, v in r.outcomes},
        "latency_p50_ms": round(r.latency_p50_ms, 1),
        "latency_p90_ms": round(r.latency_p90_ms, 1),
        "ttft_p50_ms": round(r.ttft_p50_ms, 1),
        "cost_per_answer_usd": round(r.cost_per_answer_usd, 8),
        "answers": round(r.answers, 2),
        "updated_at": r.updated_at,
    }


def cmd_stats(args: argparse.Namespace) -> int:
    with _client(RegistryClient, args.registry) as registry:
        table = _rpc(
            lambda: registry.stats(category=args.category, backend=args.backend, deadline=10)
        )
    rows = [_stats_dict(r) for r in table.rows]
    if args.json:
        _print_json(
            {"window": table.window, "half_life_hours": table.half_life_hours, "stats": rows}
        )
        return 0
    if not rows:
        print("nothing learned yet: no attempts or ratings reported to the registry")
        return 0
    head = ("CATEGORY", "BACKEND", "RATED", "N", "OK", "P50", "P90", "TTFT", "$/ANSWER", "ATT")
    lines = [head]
    for d in rows:
        rated = "-" if d["rated_quality"] is None else f"{d['rated_quality']:.2f}"
        lines.append(
            (
                d["category"],
                d["backend"],
                rated,
                f"{d['ratings']:.1f}",
                f"{d['success_rate']:.0%}",
                _ms(d["latency_p50_ms"]),
                _ms(d["latency_p90_ms"]),
                _ms(d["ttft_p50_ms"]),
                f"{d['cost_per_answer_usd']:.6f}",
                f"{d['attempts']:.1f}",
            )
        )
    widths = [max(len(r[i]) for r in lines) for i in range(len(head))]
    for r in lines:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    print(
        f"(counts decay: about {table.window:.0f} recent observations count, and every weight "
        f"halves in {table.half_life_hours:g} h; as of {time.strftime('%H:%M:%S')})"
    )
    return 0


def _ms(value: float) -> str:
    return f"{value:.0f} ms" if value else "-"


def add_commands(sub: Any) -> None:
    rate = sub.add_parser(
        "rate", help="rate an answer (0 to 1, or stars like 4/5) so routing learns from it"
    )
    rate.add_argument("id", metavar="REQUEST_ID", help="the answer's request id (think --json)")
    rate.add_argument("score", metavar="SCORE", help="0 to 1 (e.g. 0.8), or stars (e.g. 4/5)")
    rate.add_argument("--label", default="", help="a short token: wrong, unhelpful, great ...")
    rate.add_argument("--trace", action="store_true", help="REQUEST_ID is a trace id")
    rate.add_argument("--json", action="store_true")
    rate.set_defaults(fn=cmd_rate)

    stats = sub.add_parser("stats", help="what routing learned per category and backend")
    stats.add_argument("--json", action="store_true")
    stats.add_argument("--category", default="", help="only this category")
    stats.add_argument("--backend", default="", help="only this backend")
    stats.set_defaults(fn=cmd_stats)
