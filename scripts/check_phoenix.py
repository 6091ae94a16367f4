#!/usr/bin/env python3
"""End-to-end check that Uniwizard's traces arrive in Arize Phoenix and read back whole.

Not part of ``make test`` or CI (Phoenix is a large optional install). Run it from the
repository with the project's own environment:

    .venv/bin/python scripts/check_phoenix.py            # or: make check-phoenix
    .venv/bin/python scripts/check_phoenix.py --tree 7   # also print task 7's span tree

What it does:

1. Uses the Phoenix already answering on ``--phoenix-url`` (default http://127.0.0.1:6006),
   or else starts one with ``scripts/phoenix.sh`` (its own venv in ``.envs/phoenix``, installed
   on first use) on free ports with a temporary working directory.
2. Starts the stack on the simulator, ``uniwizard up --sim``, on free ports with a temporary
   data directory and the standard OTEL_* variables pointing its exporter at Phoenix (OTLP over
   gRPC by default, ``--protocol http/protobuf`` for OTLP over HTTP).
3. Runs the ten seed tasks of the routing corpus (``tests/data/tasks.jsonl``, ``"seed": true``)
   through ``uniwizard think --json``: the 40,000-token treaty document is generated, the photo
   task gets a small generated PNG with ``--attach``.
4. Stops the stack with SIGTERM (every service flushes its batch span exporter on the way out),
   then reads the spans back through Phoenix's REST API,
   ``GET /v1/projects/{project}/spans?trace_id=...``.
5. Prints, per task, the trace id (the one ``think`` returned), the services whose spans are in
   the trace, the backend that answered and the cost recorded on the caller's ``chat <model>``
   span, and exits 1 if a trace is missing, lacks the router's or the caller's spans, lacks a
   cost, or disagrees with what ``think`` said.

Phoenix keeps no OpenTelemetry *resource* attributes (only ``openinference.project.name``, which
picks the project), so the services also put ``service.name`` on every span as a span attribute
(``uniwizard.telemetry``), which Phoenix keeps and shows.

The caller's outcome reports to the registry are batched and deliberately belong to no single
request's trace, so registry_svc spans (``ReportOutcomes`` batches and health probes) are
checked as traces of their own in the same project and time window.

Everything this script starts (Phoenix, the stack) is stopped when it exits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "tasks.jsonl"
PHOENIX_SH = ROOT / "scripts" / "phoenix.sh"
UNIWIZARD = ROOT / ".venv" / "bin" / "uniwizard"
REQUIRED_SERVICES = ("router_svc", "caller_svc")
COST = "gen_ai.usage.cost.amount"


# ── small helpers ─────────────────────────────────────────────────────────────────────────


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def phoenix_up(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1.0) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def phoenix_version(url: str) -> str:
    try:
        with urllib.request.urlopen(f"{url}/arize_phoenix_version", timeout=2.0) as resp:
            return str(resp.read().decode().strip())
    except (urllib.error.URLError, OSError):
        return "?"


def png(width: int = 8, height: int = 8) -> bytes:
    """A small valid RGB PNG (a red/blue checkerboard), made with the standard library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(
        b"\x00"
        + b"".join(b"\xd0\x30\x30" if (x + y) % 2 else b"\x30\x30\xd0" for x in range(width))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def build_document(tokens: int, kind: str) -> str:
    """The same generated document as the routing tests use (about ``tokens`` tokens)."""
    sys.path.insert(0, str(ROOT))
    from tests.router.helpers import build_document as build

    return build(tokens, kind)


def stop(proc: subprocess.Popen[bytes] | None, name: str, timeout: float = 20.0) -> None:
    """SIGTERM the process group this script started for ``proc``; SIGKILL it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"check_phoenix: {name} did not stop in {timeout:.0f} s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ── seed tasks ────────────────────────────────────────────────────────────────────────────


@dataclass
class Seed:
    n: int
    raw: dict[str, Any]
    text: str
    attach: list[Path] = field(default_factory=list)

    @property
    def label(self) -> str:
        first = str(self.raw["text"]).splitlines()[0]
        return first if len(first) <= 40 else first[:39] + "…"


def seed_tasks(workdir: Path) -> list[Seed]:
    seeds: list[Seed] = []
    for line in CORPUS.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        if not raw.get("seed"):
            continue
        text = raw["text"]
        if raw.get("input_tokens_hint"):
            text += "\n\n" + build_document(int(raw["input_tokens_hint"]), raw.get("document", ""))
        attach = []
        for a in raw.get("attachments", []):
            if not str(a["media_type"]).startswith("image/"):
                raise SystemExit(f"check_phoenix: cannot generate a {a['media_type']} attachment")
            path = workdir / (Path(a["name"]).stem + ".png")
            path.write_bytes(png())
            attach.append(path)
        seeds.append(Seed(len(seeds) + 1, raw, text, attach))
    if len(seeds) != 10:
        raise SystemExit(f"check_phoenix: expected 10 seed tasks in {CORPUS}, found {len(seeds)}")
    return seeds


# ── processes ─────────────────────────────────────────────────────────────────────────────


@contextlib.contextmanager
def phoenix(args: argparse.Namespace, workdir: Path) -> Iterator[tuple[str, str]]:
    """(UI/REST URL, OTLP gRPC endpoint) of a running Phoenix; starts one if none answers."""
    if phoenix_up(args.phoenix_url):
        version = phoenix_version(args.phoenix_url)
        print(f"Phoenix {version}: using the one already running at {args.phoenix_url}")
        yield args.phoenix_url, args.otlp_grpc
        return
    http_port, grpc_port = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        PHOENIX_HOST="127.0.0.1",
        PHOENIX_PORT=str(http_port),
        PHOENIX_GRPC_PORT=str(grpc_port),
        PHOENIX_WORKING_DIR=str(workdir / "phoenix"),
    )
    for name in [k for k in env if k.startswith("OTEL_")]:
        env.pop(name)  # Phoenix's own (disabled) telemetry must not pick up ours
    url = f"http://127.0.0.1:{http_port}"
    log = (workdir / "phoenix.log").open("wb")
    print(f"Phoenix: starting {PHOENIX_SH.relative_to(ROOT)} on {url} (gRPC :{grpc_port})")
    proc = subprocess.Popen(
        ["bash", str(PHOENIX_SH), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + args.phoenix_timeout
        while not phoenix_up(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "phoenix.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"check_phoenix: Phoenix did not start; its log ends:\n{tail}")
            time.sleep(0.5)
        print(f"Phoenix {phoenix_version(url)}: serving at {url}")
        yield url, f"http://127.0.0.1:{grpc_port}"
        if args.keep_phoenix:
            print(f"Phoenix: left running at {url} (pid {proc.pid}); stop it with kill {proc.pid}")
            proc = None  # type: ignore[assignment]
    finally:
        stop(proc, "Phoenix")
        log.close()


@dataclass
class Stack:
    env: dict[str, str]
    proc: subprocess.Popen[bytes]


@contextlib.contextmanager
def stack(args: argparse.Namespace, workdir: Path, url: str, otlp_grpc: str) -> Iterator[Stack]:
    env = dict(os.environ)
    for name in [k for k in env if k.startswith("OTEL_")]:
        env.pop(name)
    env.update(
        UNIWIZARD_DATA_DIR=str(workdir / "data"),
        UNIWIZARD_REGISTRY_ADDR=f"127.0.0.1:{free_port()}",
        UNIWIZARD_ROUTER_ADDR=f"127.0.0.1:{free_port()}",
        UNIWIZARD_CALLER_ADDR=f"127.0.0.1:{free_port()}",
        UNIWIZARD_SIM_ADDR=f"127.0.0.1:{free_port()}",
        OTEL_RESOURCE_ATTRIBUTES=f"openinference.project.name={args.project}",
        OTEL_METRICS_EXPORTER="none",  # Phoenix takes traces only
        OTEL_BSP_SCHEDULE_DELAY="500",
    )
    if args.protocol == "grpc":
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp_grpc
    else:
        env["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = f"{url}/v1/traces"
    shown = {k: v for k, v in env.items() if k.startswith("OTEL_")}
    print("Stack: uniwizard up --sim with " + " ".join(f"{k}={v}" for k, v in shown.items()))
    log = (workdir / "up.log").open("wb")
    proc = subprocess.Popen(
        [str(UNIWIZARD), "up", "--sim"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while b"all services serving" not in (workdir / "up.log").read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (workdir / "up.log").read_text(errors="replace")[-2000:]
                raise SystemExit(f"check_phoenix: the stack did not start; its log ends:\n{tail}")
            time.sleep(0.2)
        yield Stack(env, proc)
    finally:
        # SIGTERM to `uniwizard up` alone: it stops each service with SIGTERM, and each one
        # drains and flushes its span exporter before exiting.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop(proc, "the stack")
        log.close()


def think(st: Stack, seed: Seed) -> dict[str, Any]:
    cmd = [str(UNIWIZARD), "think", "--json"]
    for path in seed.attach:
        cmd += ["--attach", str(path)]
    cmd.append("-")
    done = subprocess.run(
        cmd, input=seed.text.encode(), env=st.env, cwd=ROOT, capture_output=True, timeout=180
    )
    try:
        out: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        out = {"error": {"class": f"exit {done.returncode}", "message": done.stderr.decode()}}
    return out


# ── reading Phoenix back ──────────────────────────────────────────────────────────────────


def project_spans(url: str, project: str, **query: Any) -> list[dict[str, Any]]:
    """Every span of ``project`` matching ``query``, through GET /v1/projects/{p}/spans."""
    spans: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {**query, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        qs = urllib.parse.urlencode(params, doseq=True)
        page_url = f"{url}/v1/projects/{urllib.parse.quote(project)}/spans?{qs}"
        try:
            page = http_json(page_url, 30.0)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # no span has reached the project yet
                return []
            raise
        spans.extend(page["data"])
        cursor = page.get("next_cursor")
        if not cursor:
            return spans


def service_of(span: dict[str, Any]) -> str:
    return str(span["attributes"].get("service.name", "?"))


@dataclass
class Row:
    seed: Seed
    result: dict[str, Any]
    spans: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def trace_id(self) -> str:
        return str(self.result.get("trace_id", ""))

    def services(self) -> list[str]:
        return sorted({service_of(s) for s in self.spans})

    def chat_spans(self) -> list[dict[str, Any]]:
        return [s for s in self.spans if s["name"].startswith("chat ")]

    def answered(self) -> dict[str, Any] | None:
        ok = [s for s in self.chat_spans() if s["attributes"].get("uniwizard.outcome") == "success"]
        return ok[-1] if ok else None


def fetch(url: str, project: str, rows: list[Row], timeout: float) -> None:
    """Poll Phoenix until every trace has its router and caller spans with a cost, or time out."""
    deadline = time.monotonic() + timeout
    while True:
        ids = [r.trace_id for r in rows if r.trace_id]
        by_trace: dict[str, list[dict[str, Any]]] = {}
        for start in range(0, len(ids), 20):
            for s in project_spans(url, project, trace_id=ids[start : start + 20]):
                by_trace.setdefault(s["context"]["trace_id"], []).append(s)
        for r in rows:
            r.spans = by_trace.get(r.trace_id, [])
        complete = all(
            r.answered() is not None and COST in (r.answered() or {}).get("attributes", {})
            for r in rows
            if r.trace_id
        )
        if complete or time.monotonic() > deadline:
            return
        time.sleep(1.0)


def judge(row: Row) -> None:
    p = row.problems
    if "error" in row.result or not row.trace_id:
        p.append(f"think failed: {row.result.get('error')}")
        return
    if not row.spans:
        p.append("trace not found in Phoenix")
        return
    services = row.services()
    for svc in REQUIRED_SERVICES:
        if svc not in services:
            p.append(f"no {svc} span")
    answered = row.answered()
    if answered is None:
        p.append("no successful 'chat <model>' span")
        return
    attrs = answered["attributes"]
    if COST not in attrs:
        p.append(f"the caller's span has no {COST}")
    if service_of(answered) not in ("caller_svc", "?"):
        p.append(f"'{answered['name']}' comes from {service_of(answered)}, not caller_svc")
    if attrs.get("uniwizard.backend") != row.result.get("backend"):
        p.append(f"trace says {attrs.get('uniwizard.backend')}, think says {row.result['backend']}")
    total = sum(float(s["attributes"].get(COST, 0.0)) for s in row.chat_spans())
    if abs(total - float(row.result.get("cost_usd", 0.0))) > 1e-6:
        p.append(f"span costs add up to {total:.8f}, think says {row.result['cost_usd']}")
    roots = [s for s in row.spans if not s.get("parent_id")]
    if [s["name"] for s in roots] != ["/uniwizard.v1.Router/Dispatch"]:
        p.append(f"roots are {[s['name'] for s in roots]}, not the router's Dispatch")


# ── output ────────────────────────────────────────────────────────────────────────────────

TREE_KEYS = (
    "uniwizard.route.category",
    "uniwizard.route.backend",
    "uniwizard.route.chain",
    "uniwizard.route.estimated_input_tokens",
    "uniwizard.attempts",
    "uniwizard.outcome",
    "error.type",
    "rpc.grpc.status_code",
    "gen_ai.provider.name",
    "gen_ai.request.model",
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.output_tokens",
    "gen_ai.response.finish_reasons",
    COST,
    "gen_ai.usage.cost.source",
)


def _collapse(attrs: dict[str, Any]) -> dict[str, Any]:
    """Phoenix flattens lists into key.0, key.1, ...: fold them back for display."""
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        head, _, tail = k.rpartition(".")
        if head and tail.isdigit():
            out.setdefault(head, []).append(v)
        else:
            out[k] = v
    return out


def print_tree(row: Row) -> None:
    spans = sorted(row.spans, key=lambda s: s["start_time"])
    children: dict[str | None, list[dict[str, Any]]] = {}
    ids = {s["context"]["span_id"] for s in spans}
    for s in spans:
        parent = s.get("parent_id") if s.get("parent_id") in ids else None
        children.setdefault(parent, []).append(s)
    print(f"\ntrace {row.trace_id} — task {row.seed.n}: {row.seed.label}")

    def walk(parent: str | None, prefix: str) -> None:
        kids = children.get(parent, [])
        for i, s in enumerate(kids):
            last = i == len(kids) - 1
            start = datetime.fromisoformat(s["start_time"])
            end = datetime.fromisoformat(s["end_time"])
            ms = (end - start) / timedelta(milliseconds=1)
            attrs = _collapse(s["attributes"])
            keys = [f"{k}={attrs[k]}" for k in TREE_KEYS if k in attrs]
            kind = f" [{s['span_kind']}]" if s.get("span_kind") not in (None, "UNKNOWN") else ""
            print(
                f"{prefix}{'└─ ' if last else '├─ '}{s['name']}{kind}"
                f"  ({service_of(s)}, {ms:.0f} ms)"
            )
            more = prefix + ("   " if last else "│  ")
            for k in keys:
                print(f"{more}    {k}")
            walk(s["context"]["span_id"], more)

    walk(None, "")


def print_table(rows: list[Row]) -> None:
    print(
        f"\n{'#':>2}  {'task':<40}  {'backend':<7}  {'cost (chat span)':>16}  "
        f"{'trace id':<32}  services"
    )
    for r in rows:
        answered = r.answered()
        cost = answered["attributes"].get(COST) if answered else None
        backend = answered["attributes"].get("uniwizard.backend", "?") if answered else "-"
        fallback = len(r.chat_spans()) - 1
        if fallback > 0:
            backend += f" (+{fallback})"
        cost_s = f"${cost:.6f}" if isinstance(cost, (int, float)) else "-"
        print(
            f"{r.seed.n:>2}  {r.seed.label:<40}  {backend:<7}  {cost_s:>16}  "
            f"{r.trace_id or '-':<32}  {', '.join(r.services()) or '-'}"
            f"  ({len(r.spans)} spans)"
        )
        for problem in r.problems:
            print(f"    ✗ {problem}")
        expected = r.seed.raw.get("expected_backend")
        if r.result.get("backend") and expected and r.result["backend"] != expected:
            print(f"    note: the corpus expects {expected}")


# ── main ──────────────────────────────────────────────────────────────────────────────────


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--phoenix-url",
        default="http://127.0.0.1:6006",
        help="a running Phoenix to use (default: %(default)s); else one is started",
    )
    ap.add_argument(
        "--otlp-grpc",
        default="http://127.0.0.1:4317",
        help="OTLP gRPC endpoint of an already-running Phoenix (default: %(default)s)",
    )
    ap.add_argument(
        "--protocol",
        choices=("grpc", "http/protobuf"),
        default="grpc",
        help="how the stack exports spans (default: %(default)s)",
    )
    ap.add_argument(
        "--project",
        default="uniwizard",
        help="Phoenix project the spans go to (default: %(default)s)",
    )
    ap.add_argument(
        "--tree",
        type=int,
        nargs="?",
        const=7,
        metavar="TASK",
        help="print the span tree of task TASK (1-10, default 7; 0 for every task)",
    )
    ap.add_argument(
        "--keep-phoenix",
        action="store_true",
        help="leave a Phoenix this script started running, to browse the traces",
    )
    ap.add_argument(
        "--phoenix-timeout",
        type=float,
        default=180.0,
        help="seconds to wait for Phoenix to start (default: %(default)s)",
    )
    ap.add_argument(
        "--flush-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for the spans to show up (default: %(default)s)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not UNIWIZARD.exists():
        print(f"check_phoenix: {UNIWIZARD} is missing; run `make setup` first", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="uniwizard-phoenix-"))
    try:
        seeds = seed_tasks(workdir)
        with phoenix(args, workdir) as (url, otlp_grpc):
            started = datetime.now(UTC) - timedelta(seconds=1)
            rows: list[Row] = []
            with stack(args, workdir, url, otlp_grpc) as st:
                for seed in seeds:
                    if st.proc.poll() is not None:
                        break
                    rows.append(Row(seed, think(st, seed)))
                    print(
                        f"  think {seed.n:>2}: {rows[-1].result.get('backend', 'FAILED'):<7}"
                        f" trace {rows[-1].trace_id}"
                    )
            if len(rows) < len(seeds) or any("error" in r.result for r in rows):
                tail = (workdir / "up.log").read_text(errors="replace")[-3000:]
                print(f"check_phoenix: a task failed; the stack's log ends:\n{tail}")
                rows += [Row(s, {"error": "the stack had exited"}) for s in seeds[len(rows) :]]
            print(
                "Stack stopped (spans flushed); reading them back from Phoenix "
                f"{url}/v1/projects/{args.project}/spans"
            )
            fetch(url, args.project, rows, args.flush_timeout)
            for r in rows:
                judge(r)
            print_table(rows)

            window = project_spans(url, args.project, start_time=started.isoformat())
            registry = [s for s in window if service_of(s) == "registry_svc"]
            kinds = sorted({s["name"].rsplit("/", 1)[-1].split(" ")[0] for s in registry})
            print(
                f"\nregistry_svc: {len(registry)} spans in "
                f"{len({s['context']['trace_id'] for s in registry})} traces of their own "
                f"({', '.join(kinds) or 'none'}): outcome reports are batched outside"
                " request traces"
            )
            failed = [r for r in rows if r.problems]
            if not registry:
                print("    ✗ no registry_svc span in the project")
            if args.tree is not None:
                for r in rows:
                    if args.tree in (0, r.seed.n) and r.spans:
                        print_tree(r)
            ok = not failed and bool(registry)
            print(
                f"\ncheck_phoenix: {'OK' if ok else 'FAILED'} — "
                f"{len(rows) - len(failed)}/{len(rows)} traces complete in Phoenix "
                f"(project {args.project!r}, {args.protocol})"
            )
            return 0 if ok else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
