"""``uniwizard``: a thin command line over the gRPC API (and ``up`` / ``serve`` / ``sim`` to run
things)."""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from uniwizard.cli_common import (  # the exit codes are part of the command line's contract
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    _client,
    _print_json,
    _rpc,
    _unreachable,
)
from uniwizard.cli_inputs import load_tools, response_format
from uniwizard.types import (
    Attachment,
    BlindRequest,
    Message,
    Role,
    Task,
)
from uniwizard_client import (
    AttemptFailed,
    AttemptInfo,
    BackendRouter,
    BackendState,
    BackendUsage,
    BudgetInfo,
    CallerClient,
    RegistryClient,
    RouteInfo,
    RouterError,
    RouterUnavailable,
    TextDelta,
    ThinkResult,
    ToolCalled,
)

__all__ = ["EXIT_FAILED", "EXIT_UNREACHABLE", "EXIT_USAGE", "CliError", "build_task", "main"]


def _read_text(text: str) -> str:
    if text == "-":
        text = sys.stdin.read()
    if not text.strip():
        raise CliError("the task text is empty")
    return text


def _attachments(paths: Sequence[str]) -> tuple[Attachment, ...]:
    out = []
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise CliError(f"--attach {p}: no such file")
        media, _ = mimetypes.guess_type(path.name)
        if media is None:
            raise CliError(f"--attach {p}: unknown media type (use a known file extension)")
        out.append(Attachment(name=path.name, media_type=media, data=path.read_bytes()))
    return tuple(out)


def build_task(args: argparse.Namespace) -> Task:
    text = _read_text(args.text)
    message = Message(role=Role.USER, text=text, attachments=_attachments(args.attach))
    tools_file = getattr(args, "tools", None)
    request = BlindRequest(
        messages=(message,),
        system_prompt=getattr(args, "system", "") or "",
        max_output_tokens=getattr(args, "max_tokens", 0) or 0,
        tools=load_tools(tools_file) if tools_file else (),
        response_format=response_format(args),
    )
    return Task(
        request=request,
        private=args.private,
        latency_budget_ms=getattr(args, "latency_budget_ms", 0) or 0,
    )


def _decision_dict(d: RouteInfo) -> dict[str, Any]:
    return {
        "backend": d.backend,
        "category": d.category,
        "chain": list(d.chain),
        "reasons": [{"rule": r.rule, "evidence": r.evidence} for r in d.reasons],
        "skipped": [
            {"backend": s.backend, "reason": s.reason, "detail": s.detail} for s in d.skipped
        ],
        "estimated_input_tokens": d.estimated_input_tokens,
    }


def _attempt_dict(a: AttemptInfo) -> dict[str, Any]:
    d: dict[str, Any] = {
        "backend": a.backend,
        "outcome": a.outcome,
        "latency_ms": round(a.latency_ms, 1),
        "input_tokens": a.input_tokens,
        "output_tokens": a.output_tokens,
        "cost_usd": round(a.cost_usd, 8),
        "cost_source": a.cost_source,
        # parts of input_tokens / output_tokens, as the provider reported them
        "cached_input_tokens": a.cached_input_tokens,
        "cache_write_tokens": a.cache_write_tokens,
        "reasoning_tokens": a.reasoning_tokens,
    }
    if a.error:
        d["error"] = a.error
    return d


def _print_decision(d: RouteInfo) -> None:
    if d.backend:
        print(f"backend:  {d.backend}   (category: {d.category})")
    else:
        print(f"backend:  none eligible   (category: {d.category})")
    for r in d.reasons:
        print(f"why:      {r.rule}: {r.evidence}")
    if d.chain:
        print(f"chain:    {' → '.join(d.chain)}")
    for s in d.skipped:
        print(f"skipped:  {s.backend}: {s.reason}" + (f" ({s.detail})" if s.detail else ""))
    print(f"input:    ~{d.estimated_input_tokens:,} tokens (estimated)")


# -- commands --------------------------------------------------------------------------------


def cmd_route(args: argparse.Namespace) -> int:
    task = build_task(args)
    with _client(BackendRouter, args.router) as router:
        d = _rpc(lambda: router.decide(task, deadline=10))
    if args.json:
        _print_json(_decision_dict(d))
    else:
        _print_decision(d)
    return 0 if d.backend else EXIT_FAILED


def _result_dict(r: ThinkResult) -> dict[str, Any]:
    return {
        "text": r.text,
        "backend": r.backend,
        "model": r.model,
        "category": r.category,
        "finish_reason": r.finish_reason,
        "provider_finish_reason": r.provider_finish_reason,
        "tool_calls": [
            {
                "id": c.id,
                "name": c.name,
                "arguments": c.arguments_json,
                # opaque; send it back with the call on the next turn (Gemini, Claude thinking)
                "provider_state": c.provider_state,
            }
            for c in r.tool_calls
        ],
        "attempts": [_attempt_dict(a) for a in r.attempts],
        "cost_usd": round(r.cost_usd, 8),
        "trace_id": r.trace_id,
        "request_id": r.request_id,
    }


def cmd_think(args: argparse.Namespace) -> int:
    task = build_task(args)
    with _client(BackendRouter, args.router) as router:
        try:
            if args.stream:
                result = _think_stream(router, task, args)
            else:
                result = router.dispatch(task, backend=args.backend, deadline=args.deadline)
        except RouterError as err:
            return _print_failure(err, args)
    if args.json:
        _print_json(_result_dict(result))
        return 0
    if not args.stream:  # as the stream shows it: the text, then each tool call on its line
        if result.text or not result.tool_calls:
            print(result.text)
        for call in result.tool_calls:
            print(tool_call_line(call.name, call.arguments_json))
    failed = len(result.attempts) - 1
    note = f", after {failed} failed attempt{'s' * (failed != 1)}" if failed else ""
    print(
        f"— {result.backend} ({result.model}), {result.category}, "
        f"${result.cost_usd:.6f}{note}, trace {result.trace_id}",
        file=sys.stderr,
    )
    return 0


def tool_call_line(name: str, arguments_json: str) -> str:
    """How ``think --stream`` shows a tool call: ``[tool call get_weather {"city": "Lima"}]``."""
    try:
        arguments = json.dumps(json.loads(arguments_json or "{}"), ensure_ascii=False)
    except ValueError:
        arguments = arguments_json  # not JSON: shown as the backend sent it
    return f"[tool call {name} {arguments}]"


def _think_stream(router: BackendRouter, task: Task, args: argparse.Namespace) -> ThinkResult:
    line_open = False  # streamed text not yet ended by a newline
    after_tool_call = False
    for event in router.dispatch_stream(task, backend=args.backend, deadline=args.deadline):
        if isinstance(event, ThinkResult):
            if not args.json and not after_tool_call:
                print()
            return event
        if args.json:
            continue
        if isinstance(event, TextDelta):
            print(event.text, end="", flush=True)
            if event.text:
                line_open, after_tool_call = not event.text.endswith("\n"), False
        elif isinstance(event, ToolCalled):
            if line_open:
                print()
            print(tool_call_line(event.call.name, event.call.arguments_json), flush=True)
            line_open, after_tool_call = False, True
        elif isinstance(event, AttemptFailed):
            a = event.attempt
            print(f"[{a.backend}: {a.outcome}; trying the next backend]", file=sys.stderr)
    raise AssertionError("dispatch_stream ends with a ThinkResult or raises")  # pragma: no cover


# How `think` has always named a failure that the router did not explain (a bare gRPC status).
_STATUS_CLASS = {"INVALID_ARGUMENT": "bad_request", "DEADLINE_EXCEEDED": "timeout"}


def _print_failure(err: RouterError, args: argparse.Namespace) -> int:
    if isinstance(err, RouterUnavailable):
        raise _unreachable(err) from None
    if err.reported:  # the router's DispatchFailure: its outcome, attempts and trace
        data: dict[str, Any] = {
            "error": {"class": err.outcome, "message": err.message},
            "attempts": [_attempt_dict(a) for a in err.attempts],
            "trace_id": err.trace_id,
        }
    elif err.status:
        data = {
            "error": {
                "class": _STATUS_CLASS.get(err.status, err.status.lower()),
                "message": err.details,
            },
            "attempts": [],
        }
    else:  # found wrong on this side (a stream that ended without its result)
        data = {"error": {"class": err.outcome, "message": err.message}, "attempts": []}
    if args.json:
        _print_json(data)
    else:
        print(f"error: {data['error']['class']}: {data['error']['message']}", file=sys.stderr)
        for a in data["attempts"]:
            print(f"  attempt {a['backend']}: {a['outcome']} {a.get('error', '')}", file=sys.stderr)
    return EXIT_FAILED


def _health_dict(b: BackendState, now: float) -> dict[str, Any]:
    return {
        "key": b.key,
        "provider": b.provider,
        "model": b.model,
        "url": b.url,
        "state": b.state,
        "reason": b.reason,
        "cooldown_left_s": round(max(0.0, b.cooldown_until - now), 1)
        if b.state == "cooling_down"
        else 0,
        "disabled_by": b.disabled_by,
        "disabled_reason": b.disabled_reason,
        "last_probe_ok": b.last_probe_ok,
        "last_probe_latency_ms": round(b.last_probe_latency_ms, 1),
        "last_outcome": b.last_outcome or None,
        "failures_in_window": b.failures_in_window,
        "private": b.private,
        "max_context": b.max_context,
        "cost_per_1k_input": b.cost_per_1k_input,
        "cost_per_1k_output": b.cost_per_1k_output,
        "budget": _budget_dict(b.budget),
    }


def _budget_dict(b: BudgetInfo) -> dict[str, Any]:
    return {
        "state": b.state,
        "detail": b.detail,
        "daily_usd": b.daily_usd,
        "monthly_usd": b.monthly_usd,
        "spent_today_usd": round(b.spent_today_usd, 6),
        "spent_month_usd": round(b.spent_month_usd, 6),
    }


def _state_text(d: dict[str, Any]) -> str:
    state = d["state"]
    if state == "cooling_down":
        return f"cooling down ({d['cooldown_left_s']:.0f} s left): {d['reason']}"
    if state == "disabled":
        why = f": {d['disabled_reason']}" if d["disabled_reason"] else ""
        return f"disabled by {d['disabled_by']}{why}"
    if state == "down":
        return f"down: {d['reason']}"
    if state == "half_open":
        return "half-open (one trial allowed)"
    return state


def cmd_backends(args: argparse.Namespace) -> int:
    with _client(RegistryClient, args.registry) as registry:
        listed = _rpc(lambda: registry.list_backends(deadline=10))
    now = time.time()
    rows = [_health_dict(b, now) for b in listed.backends]
    overall = _budget_dict(listed.overall_budget)
    if args.json:
        _print_json({"config": listed.config_path, "backends": rows, "overall_budget": overall})
        return 0
    table = [("BACKEND", "STATE", "PROBE", "LAST OUTCOME", "FAILS", "MODEL")]
    for d in rows:
        probe = (
            "-"
            if d["last_probe_ok"] is None
            else (
                f"{d['last_probe_latency_ms']:.0f} ms" + ("" if d["last_probe_ok"] else " (failed)")
            )
        )
        table.append(
            (
                d["key"],
                _state_text(d),
                probe,
                d["last_outcome"] or "-",
                str(d["failures_in_window"]),
                d["model"],
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    budgets = [(d["key"], d["budget"]) for d in rows] + [("overall", overall)]
    for key, b in budgets:
        if b["state"] != "none":
            print(f"budget:  {key}: {b['detail']} ({b['state']})")
    return 0


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    by = args.by or os.environ.get("USER") or "operator"
    with _client(RegistryClient, args.registry) as registry:
        try:
            b = _rpc(
                lambda: registry.set_enabled(
                    args.key, enabled, by=by, reason=args.reason or "", deadline=10
                )
            )
        except RouterError as err:
            raise CliError(err.details or err.status, EXIT_FAILED) from None
    d = _health_dict(b, time.time())
    if args.json:
        _print_json(d)
    else:
        print(f"{d['key']}: {_state_text(d)}")
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    since = time.time() - args.hours * 3600 if args.hours else 0.0
    by_caller = args.by == "caller"
    with _client(CallerClient, args.caller) as caller:
        report = _rpc(lambda: caller.usage(since=since, by_client=by_caller, deadline=10))

    def row(u: BackendUsage) -> dict[str, Any]:
        return {
            ("caller" if by_caller else "backend"): u.client if by_caller else u.backend,
            "attempts": u.attempts,
            "successes": u.successes,
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cost_usd": round(u.cost_usd, 8),
            "estimated_rows": u.estimated_rows,
            # parts of input_tokens (cache reads, cache writes) and of output_tokens (reasoning)
            "cached_input_tokens": u.cached_input_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "reasoning_tokens": u.reasoning_tokens,
        }

    group = "callers" if by_caller else "backends"
    rows = [row(u) for u in (report.clients if by_caller else report.backends)]
    total = row(report.total)
    key = "caller" if by_caller else "backend"
    total[key] = "total"
    if args.json:
        _print_json({"since": since, group: rows, "total": total})
        return 0
    width = max([10, *(len(r[key] or "(unnamed)") for r in rows)])
    print(
        f"{key.upper():<{width}} {'ATTEMPTS':>8} {'OK':>6} {'IN TOK':>10} {'CACHE RD':>10}"
        f" {'CACHE WR':>10} {'OUT TOK':>10} {'REASONING':>10} {'COST USD':>12}"
    )
    for r in [*rows, total]:
        print(
            f"{r[key] or '(unnamed)':<{width}} {r['attempts']:>8} {r['successes']:>6}"
            f" {r['input_tokens']:>10} {r['cached_input_tokens']:>10}"
            f" {r['cache_write_tokens']:>10} {r['output_tokens']:>10}"
            f" {r['reasoning_tokens']:>10} {r['cost_usd']:>12.6f}"
        )
    print("(CACHE RD and CACHE WR are part of IN TOK; REASONING is part of OUT TOK)")
    if by_caller and any(not r["caller"] for r in rows):
        print("((unnamed): attempts made with no token configured)")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    with _client(RegistryClient, args.registry) as registry:
        r = _rpc(lambda: registry.reload(deadline=10))
    if not r.ok:
        print(f"reload rejected, old configuration kept: {r.error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"reloaded: added {list(r.added)}, changed {list(r.changed)}, removed {list(r.removed)}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from uniwizard.up import run_up

    return run_up(args.config, sim=args.sim, demo=args.demo, split=args.split)


def cmd_serve(args: argparse.Namespace) -> int:
    from uniwizard.serve import StackOptions, TargetError, parse_targets, run_serve

    try:
        targets = parse_targets(args.target)
    except TargetError as exc:
        raise CliError(str(exc)) from None
    opts = StackOptions(
        args.config,
        policy_path=args.policy,
        content_policy=args.content_policy,
        probes=not args.no_probes,
        ledger_path=args.ledger,
        state_path=args.state,
    )
    return run_serve(targets, opts)


def cmd_sim(args: argparse.Namespace) -> int:
    from uniwizard_sim.__main__ import main as sim_main

    return sim_main(["--host", args.host, "--port", str(args.port)])


# -- parser ----------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="uniwizard", description=__doc__)
    for service in ("router", "registry", "caller"):
        p.add_argument(
            f"--{service}",
            metavar="TARGET",
            help=f"the {service}: host:port, dns:///host:port or ADDR:PORT,ADDR:PORT (calls go "
            f"round robin to the replicas serving; default: $UNIWIZARD_{service.upper()}_ADDR)",
        )
    sub = p.add_subparsers(dest="command", required=True)

    config = os.environ.get("UNIWIZARD_CONFIG", "configs/backends.yaml")
    up = sub.add_parser(
        "up", help="start registry, router, caller and the HTTP edge (and the simulator)"
    )
    up.add_argument("--config", default=config)
    up.add_argument("--sim", action="store_true", help="run the provider simulator and use it")
    up.add_argument("--demo", action="store_true", help="once serving, route and think a few tasks")
    up.add_argument(
        "--split", action="store_true", help="four processes linked over gRPC (default: one)"
    )
    up.set_defaults(fn=cmd_up)

    serve = sub.add_parser(
        "serve", help="run components: all in this process, or one (or some) of them"
    )
    serve.add_argument(
        "--target",
        default="all",
        help="all (default), or registry, caller, router, edge, comma-separated; components in "
        "this process are linked in-process, the others reached at UNIWIZARD_<NAME>_ADDR (the "
        "edge listens on UNIWIZARD_HTTP_ADDR)",
    )
    serve.add_argument("--config", default=config)
    serve.add_argument(
        "--policy", default=os.environ.get("UNIWIZARD_POLICY", "configs/routing.yaml")
    )
    serve.add_argument(
        "--content-policy",
        choices=["propagate", "fallback"],
        default=os.environ.get("UNIWIZARD_CONTENT_POLICY", "propagate"),
    )
    serve.add_argument("--no-probes", action="store_true", help="registry: no active probes")
    serve.add_argument(
        "--ledger",
        default=None,
        help="caller: SQLite path or postgresql:// URL (default: UNIWIZARD_LEDGER, else data dir)",
    )
    serve.add_argument("--state", default=None, help="registry: operator state file")
    serve.set_defaults(fn=cmd_serve)

    def task_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("text", help="the task, or - to read it from standard input")
        sp.add_argument("--json", action="store_true")
        sp.add_argument("--attach", action="append", default=[], metavar="FILE")
        sp.add_argument("--private", action="store_true", help="private backends only")
        sp.add_argument("--latency-budget-ms", type=int, default=0)
        sp.add_argument(
            "--tools",
            metavar="FILE",
            help="tools the answer may call: a JSON list of {name, description, parameters}",
        )
        shape = sp.add_mutually_exclusive_group()
        shape.add_argument(
            "--json-object",
            action="store_true",
            help="the answer must be a JSON object (only backends that can return one)",
        )
        shape.add_argument(
            "--json-schema",
            metavar="FILE",
            help="the answer must be JSON valid against this JSON Schema (structured output)",
        )

    route = sub.add_parser("route", help="which backend would take a task, and why")
    task_args(route)
    route.set_defaults(fn=cmd_route)

    think = sub.add_parser("think", help="dispatch a task with fallback and print the answer")
    task_args(think)
    think.add_argument("--stream", action="store_true")
    think.add_argument("--backend", help="straight to this backend, no fallback")
    think.add_argument("--system", default="", help="a task-scoped system prompt")
    think.add_argument("--max-tokens", type=int, default=0)
    think.add_argument("--deadline", type=float, default=120.0, help="seconds (default 120)")
    think.set_defaults(fn=cmd_think)

    backends = sub.add_parser("backends", help="configuration and live health of every backend")
    backends.add_argument("--json", action="store_true")
    backends.set_defaults(fn=cmd_backends)

    for name, enabled in (("disable", False), ("enable", True)):
        sp = sub.add_parser(name, help=f"{name} a backend (survives a registry restart)")
        sp.add_argument("key")
        sp.add_argument("--reason", default="")
        sp.add_argument("--by", default="")
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(fn=lambda a, e=enabled: _set_enabled(a, e))

    usage = sub.add_parser("usage", help="the cost ledger, per backend (or caller) and in total")
    usage.add_argument("--json", action="store_true")
    usage.add_argument("--hours", type=float, default=0.0, help="only the last N hours")
    usage.add_argument(
        "--by",
        choices=["backend", "caller"],
        default="backend",
        help="one row per backend (default) or per caller: the name of the token that spent",
    )
    usage.set_defaults(fn=cmd_usage)

    reload_ = sub.add_parser("reload", help="re-read backends.yaml in the registry")
    reload_.set_defaults(fn=cmd_reload)

    from uniwizard import cli_learning, cli_tokens  # their own modules; they import helpers here

    cli_learning.add_commands(sub)
    cli_tokens.add_commands(sub)

    sim = sub.add_parser("sim", help="the provider simulator on its own")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8090)
    sim.set_defaults(fn=cmd_sim)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except CliError as exc:
        print(f"uniwizard: {exc}", file=sys.stderr)
        return exc.code
    except RouterError as err:  # a service's own error status, outside `think`
        print(
            f"uniwizard: {err.status}: {err.details}" if err.status else f"uniwizard: {err}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
