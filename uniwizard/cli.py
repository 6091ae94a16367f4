"""``uniwizard``: a thin command line over the gRPC API (and ``up`` / ``sim`` to run things)."""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_status import rpc_status

from uniwizard.convert import outcome_from_pb, task_to_pb
from uniwizard.net import CHANNEL_OPTIONS, address
from uniwizard.security import SecurityError, sync_channel
from uniwizard.types import Attachment, BlindRequest, Message, Role, Task
from uniwizard.v1 import (
    caller_pb2,
    caller_pb2_grpc,
    common_pb2,
    registry_pb2,
    registry_pb2_grpc,
    router_pb2,
    router_pb2_grpc,
)

EXIT_FAILED = 1  # the request failed (a typed error)
EXIT_USAGE = 2  # bad arguments or input
EXIT_UNREACHABLE = 3  # a service could not be reached


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


# -- helpers ---------------------------------------------------------------------------------


def _channel(service: str) -> grpc.Channel:
    try:
        return sync_channel(address(service), options=CHANNEL_OPTIONS)
    except SecurityError as exc:
        raise CliError(str(exc)) from None


def _rpc(service: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        if code in (grpc.StatusCode.UNAVAILABLE,) and "connect" in (exc.details() or "").lower():  # type: ignore[attr-defined]
            raise CliError(
                f"cannot reach {service}_svc at {address(service)}: is the stack running? "
                "(start it with: uniwizard up --sim)",
                EXIT_UNREACHABLE,
            ) from None
        raise


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
    request = BlindRequest(
        messages=(message,),
        system_prompt=getattr(args, "system", "") or "",
        max_output_tokens=getattr(args, "max_tokens", 0) or 0,
    )
    return Task(
        request=request,
        private=args.private,
        latency_budget_ms=getattr(args, "latency_budget_ms", 0) or 0,
    )


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _decision_dict(d: router_pb2.RouteDecision) -> dict[str, Any]:
    return {
        "backend": d.backend or None,
        "category": d.category,
        "chain": list(d.chain),
        "reasons": [{"rule": r.rule, "evidence": r.evidence} for r in d.reasons],
        "skipped": [
            {"backend": s.backend, "reason": s.reason, "detail": s.detail} for s in d.skipped
        ],
        "estimated_input_tokens": d.estimated_input_tokens,
    }


def _attempt_dict(a: common_pb2.Attempt) -> dict[str, Any]:
    outcome = outcome_from_pb(a.outcome)
    d: dict[str, Any] = {
        "backend": a.backend,
        "outcome": outcome.value if outcome else "unknown",
        "latency_ms": round(a.latency_ms, 1),
        "input_tokens": a.usage.input_tokens,
        "output_tokens": a.usage.output_tokens,
        "cost_usd": round(a.cost_usd, 8),
        "cost_source": a.cost_source,
    }
    if a.error_message:
        d["error"] = a.error_message
    return d


def _failure(exc: grpc.RpcError) -> router_pb2.DispatchFailure | None:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        failure = router_pb2.DispatchFailure()
        if detail.Unpack(failure):
            return failure
    return None


def _print_decision(d: router_pb2.RouteDecision) -> None:
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
    with _channel("router") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        d = _rpc(
            "router", lambda: stub.Route(router_pb2.RouteRequest(task=task_to_pb(task)), timeout=10)
        )
    if args.json:
        _print_json(_decision_dict(d))
    else:
        _print_decision(d)
    return 0 if d.backend else EXIT_FAILED


def _result_dict(r: router_pb2.DispatchResult, text: str) -> dict[str, Any]:
    return {
        "text": text,
        "backend": r.backend,
        "model": r.model,
        "category": r.decision.category,
        "finish_reason": r.finish_reason,
        "tool_calls": [
            {"id": c.id, "name": c.name, "arguments": c.arguments_json} for c in r.tool_calls
        ],
        "attempts": [_attempt_dict(a) for a in r.attempts],
        "cost_usd": round(r.cost_usd, 8),
        "trace_id": r.trace_id,
        "request_id": r.request_id,
    }


def cmd_think(args: argparse.Namespace) -> int:
    task = build_task(args)
    req = router_pb2.DispatchRequest(task=task_to_pb(task), backend=args.backend or "")
    with _channel("router") as ch:
        stub = router_pb2_grpc.RouterStub(ch)
        try:
            if args.stream:
                result, text = _think_stream(stub, req, args)
            else:
                result = _rpc("router", lambda: stub.Dispatch(req, timeout=args.deadline))
                text = result.text
        except grpc.RpcError as exc:
            return _print_failure(exc, args)
    if args.json:
        _print_json(_result_dict(result, text))
        return 0
    if not args.stream:
        print(text)
    failed = len(result.attempts) - 1
    note = f", after {failed} failed attempt{'s' * (failed != 1)}" if failed else ""
    print(
        f"— {result.backend} ({result.model}), {result.decision.category}, "
        f"${result.cost_usd:.6f}{note}, trace {result.trace_id}",
        file=sys.stderr,
    )
    return 0


def _think_stream(
    stub: router_pb2_grpc.RouterStub, req: router_pb2.DispatchRequest, args: argparse.Namespace
) -> tuple[router_pb2.DispatchResult, str]:
    parts: list[str] = []
    call = _rpc("router", lambda: stub.DispatchStream(req, timeout=args.deadline))
    for ev in call:
        which = ev.WhichOneof("event")
        if which == "text_delta":
            parts.append(ev.text_delta)
            if not args.json:
                print(ev.text_delta, end="", flush=True)
        elif which == "attempt_failed" and not args.json:
            a = _attempt_dict(ev.attempt_failed)
            print(f"[{a['backend']}: {a['outcome']}; trying the next backend]", file=sys.stderr)
        elif which == "done":
            if not args.json:
                print()
            return ev.done, "".join(parts)
    raise CliError("the router ended the stream without a result", EXIT_FAILED)


def _print_failure(exc: grpc.RpcError, args: argparse.Namespace) -> int:
    code = exc.code()  # type: ignore[attr-defined]
    failure = _failure(exc)
    if failure is None:
        if code == grpc.StatusCode.UNAVAILABLE:
            raise CliError(
                f"cannot reach router_svc at {address('router')}: is the stack running? "
                "(start it with: uniwizard up --sim)",
                EXIT_UNREACHABLE,
            ) from None
        cls = {
            grpc.StatusCode.INVALID_ARGUMENT: "bad_request",
            grpc.StatusCode.DEADLINE_EXCEEDED: "timeout",
        }.get(code, code.name.lower())
        data: dict[str, Any] = {
            "error": {"class": cls, "message": exc.details()},  # type: ignore[attr-defined]
            "attempts": [],
        }
    else:
        outcome = outcome_from_pb(failure.outcome)
        data = {
            "error": {"class": outcome.value if outcome else "unknown", "message": failure.message},
            "attempts": [_attempt_dict(a) for a in failure.attempts],
            "trace_id": failure.trace_id,
        }
    if args.json:
        _print_json(data)
    else:
        print(f"error: {data['error']['class']}: {data['error']['message']}", file=sys.stderr)
        for a in data["attempts"]:
            print(f"  attempt {a['backend']}: {a['outcome']} {a.get('error', '')}", file=sys.stderr)
    return EXIT_FAILED


def _health_dict(s: common_pb2.BackendStatus, now: float) -> dict[str, Any]:
    h, b = s.health, s.backend
    state = common_pb2.HealthState.Name(h.state).removeprefix("HEALTH_STATE_").lower()
    last = outcome_from_pb(h.last_outcome)
    return {
        "key": b.key,
        "provider": b.provider,
        "model": b.model,
        "url": b.url,
        "state": state,
        "reason": h.reason,
        "cooldown_left_s": round(max(0.0, h.cooldown_until - now), 1)
        if state == "cooling_down"
        else 0,
        "disabled_by": h.disabled_by,
        "disabled_reason": h.disabled_reason,
        "last_probe_ok": h.last_probe_ok if h.HasField("last_probe_ok") else None,
        "last_probe_latency_ms": round(h.last_probe_latency_ms, 1),
        "last_outcome": last.value if last else None,
        "failures_in_window": h.failures_in_window,
        "private": b.private,
        "max_context": b.max_context,
        "cost_per_1k_input": b.cost_per_1k_input,
        "cost_per_1k_output": b.cost_per_1k_output,
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
    with _channel("registry") as ch:
        stub = registry_pb2_grpc.RegistryStub(ch)
        resp = _rpc(
            "registry", lambda: stub.ListBackends(registry_pb2.ListBackendsRequest(), timeout=10)
        )
    now = time.time()
    rows = [_health_dict(s, now) for s in resp.backends]
    if args.json:
        _print_json({"config": resp.config_path, "backends": rows})
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
    return 0


def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    by = args.by or os.environ.get("USER") or "operator"
    with _channel("registry") as ch:
        stub = registry_pb2_grpc.RegistryStub(ch)
        try:
            s = _rpc(
                "registry",
                lambda: stub.SetEnabled(
                    registry_pb2.SetEnabledRequest(
                        key=args.key, enabled=enabled, by=by, reason=args.reason or ""
                    ),
                    timeout=10,
                ),
            )
        except grpc.RpcError as exc:
            raise CliError(exc.details() or exc.code().name, EXIT_FAILED) from None  # type: ignore[attr-defined]
    d = _health_dict(s, time.time())
    if args.json:
        _print_json(d)
    else:
        print(f"{d['key']}: {_state_text(d)}")
    return 0


def cmd_usage(args: argparse.Namespace) -> int:
    since = time.time() - args.hours * 3600 if args.hours else 0.0
    with _channel("caller") as ch:
        stub = caller_pb2_grpc.CallerStub(ch)
        resp = _rpc("caller", lambda: stub.Usage(caller_pb2.UsageRequest(since=since), timeout=10))

    def row(u: caller_pb2.BackendUsage) -> dict[str, Any]:
        return {
            "backend": u.backend,
            "attempts": u.attempts,
            "successes": u.successes,
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cost_usd": round(u.cost_usd, 8),
            "estimated_rows": u.estimated_rows,
        }

    rows = [row(u) for u in resp.backends]
    total = row(resp.total)
    if args.json:
        _print_json({"since": since, "backends": rows, "total": total})
        return 0
    print(
        f"{'BACKEND':<10} {'ATTEMPTS':>8} {'OK':>6} {'IN TOK':>10} {'OUT TOK':>10} {'COST USD':>12}"
    )
    for r in [*rows, total]:
        print(
            f"{r['backend']:<10} {r['attempts']:>8} {r['successes']:>6} {r['input_tokens']:>10}"
            f" {r['output_tokens']:>10} {r['cost_usd']:>12.6f}"
        )
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    with _channel("registry") as ch:
        stub = registry_pb2_grpc.RegistryStub(ch)
        r = _rpc("registry", lambda: stub.Reload(registry_pb2.ReloadRequest(), timeout=10))
    if not r.ok:
        print(f"reload rejected, old configuration kept: {r.error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"reloaded: added {list(r.added)}, changed {list(r.changed)}, removed {list(r.removed)}")
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from uniwizard.up import run_up

    return run_up(args.config, sim=args.sim, demo=args.demo)


def cmd_sim(args: argparse.Namespace) -> int:
    from uniwizard_sim.__main__ import main as sim_main

    return sim_main(["--host", args.host, "--port", str(args.port)])


# -- parser ----------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="uniwizard", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start registry, router and caller (and the simulator)")
    up.add_argument("--config", default=os.environ.get("UNIWIZARD_CONFIG", "configs/backends.yaml"))
    up.add_argument("--sim", action="store_true", help="run the provider simulator and use it")
    up.add_argument("--demo", action="store_true", help="once serving, route and think a few tasks")
    up.set_defaults(fn=cmd_up)

    def task_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("text", help="the task, or - to read it from standard input")
        sp.add_argument("--json", action="store_true")
        sp.add_argument("--attach", action="append", default=[], metavar="FILE")
        sp.add_argument("--private", action="store_true", help="private backends only")
        sp.add_argument("--latency-budget-ms", type=int, default=0)

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

    usage = sub.add_parser("usage", help="the cost ledger, per backend and in total")
    usage.add_argument("--json", action="store_true")
    usage.add_argument("--hours", type=float, default=0.0, help="only the last N hours")
    usage.set_defaults(fn=cmd_usage)

    reload_ = sub.add_parser("reload", help="re-read backends.yaml in the registry")
    reload_.set_defaults(fn=cmd_reload)

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
    except grpc.RpcError as exc:
        print(f"uniwizard: {exc.code().name}: {exc.details()}", file=sys.stderr)  # type: ignore[attr-defined]
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
