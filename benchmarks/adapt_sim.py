"""Routing v2 measured: ``python -m benchmarks.adapt_sim`` (a routing simulation, not a test).

    python -m benchmarks.adapt_sim [--tasks N] [--quick] [--scenario NAME]... [--out DIR]

Each scenario (``benchmarks/scenarios/*.yaml``) gives every backend a hidden quality per category
(and optionally a drop after some share of the tasks, or budgets). The same stream of tasks,
drawn with replacement from the labelled corpus (``tests/data/tasks.jsonl``), goes through the
real stack (simulator, registry, caller and router over real gRPC, in this process) once per
policy, each on a fresh stack that has learned nothing:

* ``v1`` — the rule-based router: the shipped routing.yaml with ``adapt: off``;
* ``v2`` — the shipped routing.yaml (``adapt:`` on), learning from the judge's ratings;
* ``cheapest`` — every task pinned to the cheapest backend its route allows;
* ``oracle`` — every task pinned to the allowed backend with the best hidden quality for the
  task's true category (at that moment, drift included).

A judge rates every answer as an agent would: the answering backend's hidden quality for the
task's labelled category plus Gaussian noise, clipped to [0, 1], sent back through ``Rate``.
Prints and writes (``DIR/adapt.md``, ``DIR/adapt.json``, ``DIR/adapt.png``) the quality and cost
per policy and the targets of issue 14 with the gap to each.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
import os
import random
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import yaml

from benchmarks.seeds import helpers
from caller_svc.server import build_caller
from registry_svc.server import build_registry
from router_svc.chain import upper_cost
from router_svc.server import RouterService, build_router
from uniwizard.config import dump_config, load_config, rewrite_urls
from uniwizard.config_types import Budget, Config
from uniwizard.convert import task_to_pb
from uniwizard.net import aio_channel
from uniwizard.types import Task
from uniwizard.v1 import common_pb2, router_pb2, router_pb2_grpc
from uniwizard_sim.app import running_simulator
from uniwizard_sim.urls import base_url

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = Path(__file__).resolve().parent / "scenarios"
POLICIES = ("v1", "v2", "cheapest", "oracle")
SIM_KEY = "sim-bench-key"
WARM = 300  # "after 300 rated tasks"
MOVING = 100  # the plot's moving average


@dataclasses.dataclass(frozen=True)
class Drift:
    at: float  # share of the tasks after which it applies
    category: str
    backend: str
    quality: float


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    noise: float
    quality: dict[str, dict[str, float]]
    drift: tuple[Drift, ...] = ()
    budget: dict[str, Budget] = dataclasses.field(default_factory=dict)

    def hidden(self, category: str, backend: str, index: int, total: int) -> float:
        q = self.quality.get(category, {}).get(backend, 0.5)
        for d in self.drift:
            if (d.category, d.backend) == (category, backend) and index >= d.at * total:
                q = d.quality
        return q


def load_scenario(name: str) -> Scenario:
    data = yaml.safe_load((SCENARIOS / f"{name}.yaml").read_text(encoding="utf-8"))
    quality: dict[str, dict[str, float]] = {}
    if "base" in data:
        quality = {c: dict(v) for c, v in load_scenario(data["base"]).quality.items()}
    for category, values in (data.get("quality") or {}).items():
        quality[category] = {**quality.get(category, {}), **values}
    return Scenario(
        name=data["name"],
        description=data["description"],
        noise=float(data.get("noise", 0.1)),
        quality=quality,
        drift=tuple(Drift(**d) for d in data.get("drift", ())),
        budget={k: Budget(**v) for k, v in (data.get("budget") or {}).items()},
    )


@dataclasses.dataclass
class Step:
    index: int
    category: str  # the labelled (true) category
    routed: str  # the router's category
    backend: str
    score: float  # the judge's rating
    hidden: float  # the hidden quality of the answer (no noise)
    cost: float
    explored: bool = False
    over_budget: bool = False
    failed: str = ""


@dataclasses.dataclass
class Run:
    scenario: str
    policy: str
    steps: list[Step]
    seconds: float
    spent: dict[str, float]  # from the ledger (Usage), per backend
    decide_us: list[float] = dataclasses.field(default_factory=list)

    def quality(self, start: int = 0) -> float:
        start = min(start, len(self.steps) // 5)  # short (smoke) runs: the last 80%
        scored = [s.score for s in self.steps[start:] if not s.failed]
        return statistics.fmean(scored) if scored else 0.0

    def cost(self) -> float:
        return sum(s.cost for s in self.steps)


# -- the stack ---------------------------------------------------------------------------------


def _policy_file(tmp: Path, adapt: bool) -> Path:
    data = yaml.safe_load((ROOT / "configs" / "routing.yaml").read_text(encoding="utf-8"))
    if not adapt:
        data["adapt"] = False
    out = tmp / ("routing-v2.yaml" if adapt else "routing-v1.yaml")
    out.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return out


@asynccontextmanager
async def stack(tmp: Path, scenario: Scenario, adapt: bool) -> AsyncIterator[RouterService]:
    """Simulator, registry, caller and router in this process, on free ports."""
    saved = dict(os.environ)
    async with running_simulator() as sim:
        base = load_config(ROOT / "configs" / "backends.yaml")
        config: Config = rewrite_urls(base, lambda b: base_url(sim.url, b.key, b.provider))
        config = dataclasses.replace(
            config,
            backends={
                k: dataclasses.replace(b, budget=scenario.budget.get(k, b.budget))
                for k, b in config.backends.items()
            },
        )
        path = tmp / "backends.yaml"
        path.write_text(dump_config(config), encoding="utf-8")
        for b in config.backends.values():
            if b.api_key_env:
                os.environ[b.api_key_env] = SIM_KEY
        registry = await build_registry(
            str(path), "127.0.0.1:0", state_path=str(tmp / "ops.json"), probes=False
        )
        await registry.start()
        caller = await build_caller(
            str(path), "127.0.0.1:0", ledger_path=str(tmp / "ledger.db"), registry=registry.target
        )
        await caller.start()
        router = await build_router(
            str(path),
            str(_policy_file(tmp, adapt)),
            "127.0.0.1:0",
            registry=registry.target,
            caller=caller.target,
        )
        await router.start()
        try:
            await router.view.wait_for(lambda v: v.connected, 10)
            yield router
        finally:
            for service in (router, caller, registry):
                await service.stop(grace=1.0)
            os.environ.clear()
            os.environ.update(saved)


# -- one policy on one scenario ----------------------------------------------------------------


async def run_policy(scenario: Scenario, policy: str, cases: list[Any], seed: int) -> Run:
    judge = random.Random(seed)
    total = len(cases)
    steps: list[Step] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"adapt-{scenario.name}-{policy}-") as tmp:
        async with stack(Path(tmp), scenario, adapt=policy == "v2") as router:
            channel = aio_channel(router.target, "bench")
            stub = router_pb2_grpc.RouterStub(channel)
            backends = router.view.backends
            try:
                for i, case in enumerate(cases):
                    steps.append(
                        await _one(stub, scenario, policy, case, i, total, backends, judge)
                    )
                decide_us = _decide_times(router, cases) if policy == "v2" else []
                spent = await _spent(router)
            finally:
                await channel.close()
    return Run(scenario.name, policy, steps, time.monotonic() - started, spent, decide_us)


async def _one(
    stub: router_pb2_grpc.RouterStub,
    scenario: Scenario,
    policy: str,
    case: Any,
    index: int,
    total: int,
    backends: dict[str, Any],
    judge: random.Random,
) -> Step:
    task: Task = case.task
    pb = task_to_pb(task)
    category = case.expected_category
    pin = ""
    if policy in ("cheapest", "oracle"):
        decision = await stub.Route(router_pb2.RouteRequest(task=pb), timeout=30)
        chain = list(decision.chain)
        if chain:
            if policy == "cheapest":
                est = decision.estimated_input_tokens
                pin = min(chain, key=lambda k: upper_cost(backends[k], est, 0))
            else:
                pin = max(chain, key=lambda k: scenario.hidden(category, k, index, total))
    try:
        result = await stub.Dispatch(router_pb2.DispatchRequest(task=pb, backend=pin), timeout=60)
    except grpc.aio.AioRpcError as exc:  # a typed failure: counted, not fatal to the run
        why = f"{exc.code().name}: {(exc.details() or '')[:160]}"
        return Step(index, category, "", "", 0.0, 0.0, 0.0, failed=why)
    hidden = scenario.hidden(category, result.backend, index, total)
    score = min(1.0, max(0.0, judge.gauss(hidden, scenario.noise)))
    await stub.Rate(common_pb2.RateRequest(request_id=result.request_id, score=score), timeout=30)
    reasons = {r.rule for r in result.decision.reasons}
    first = _first_choice(result.decision.category)
    skipped = {s.reason for s in result.decision.skipped if s.backend == first}
    return Step(
        index,
        category,
        result.decision.category,
        result.backend,
        score,
        hidden,
        result.cost_usd,
        explored="exploring" in reasons,
        over_budget="over_budget" in skipped,
    )


@functools.cache
def _first_choice(category: str) -> str:
    """The category's first preferred backend in the shipped policy."""
    from router_svc.policy import load_policy

    policy = load_policy(ROOT / "configs" / "routing.yaml")
    return policy.rule(category).prefer[0] if category in policy.names else ""


def _decide_times(router: RouterService, cases: list[Any]) -> list[float]:
    """RouterCore.decide in-process with adaptation on and what this run learned."""
    core = router.core
    tasks = [c.task for c in cases[:500]]
    for t in tasks[:50]:
        core.decide(t)
    out = []
    for t in tasks:
        t0 = time.perf_counter_ns()
        core.decide(t)
        out.append((time.perf_counter_ns() - t0) / 1000.0)
    return out


async def _spent(router: RouterService) -> dict[str, float]:
    """Spend per backend as the ledger holds it, via the registry's budget view (all callers)."""
    view = router.view
    await asyncio.sleep(0.3)  # the last spend snapshot
    return {k: h.budget.spent_today_usd for k, h in view.health.items()}


# -- analysis ----------------------------------------------------------------------------------


def recovery(run: Run, scenario: Scenario, total: int) -> int | None:
    """Tasks from a drift until the drifted backend stops answering its category (at most 10% of
    the next 20 tasks of that category); None when it never does."""
    if not scenario.drift:
        return None
    d = scenario.drift[0]
    drop = int(d.at * total)
    steps = [s for s in run.steps if s.index >= drop and s.category == d.category]
    for i, s in enumerate(steps):
        window = steps[i : i + 20]
        if len(window) == 20 and sum(w.backend == d.backend for w in window) <= 2:
            return s.index - drop
    return None


def moving(run: Run, width: int = MOVING) -> list[float]:
    scores = [s.score for s in run.steps]
    out, acc = [], 0.0
    for i, v in enumerate(scores):
        acc += v
        if i >= width:
            acc -= scores[i - width]
        out.append(acc / min(i + 1, width))
    return out


def targets(runs: dict[tuple[str, str], Run], total: int) -> list[tuple[str, str, str, bool]]:
    """(measurement, result, target, met) for issue 14's table."""
    rows = []

    def r(s: str, p: str) -> Run:
        return runs[(s, p)]

    if ("v1_wrong", "v2") in runs:
        v2, v1, oracle = r("v1_wrong", "v2"), r("v1_wrong", "v1"), r("v1_wrong", "oracle")
        share = v2.quality(WARM) / oracle.quality(WARM)
        rows.append(
            (
                "v1 wrong for two categories: v2's quality after 300 tasks / oracle's",
                f"{share:.1%} ({v2.quality(WARM):.3f} vs {oracle.quality(WARM):.3f})",
                ">= 95%",
                share >= 0.95,
            )
        )
        gain = (v2.quality(WARM) - v1.quality(WARM)) * 100
        rows.append(
            (
                "v1 wrong: v2 - v1 quality after 300 tasks",
                f"{gain:+.1f} points ({v2.quality(WARM):.3f} vs {v1.quality(WARM):.3f})",
                ">= +10 points",
                gain >= 10,
            )
        )
    if ("v1_right", "v2") in runs:
        v2, v1 = r("v1_right", "v2"), r("v1_right", "v1")
        loss = (v1.quality() - v2.quality()) * 100
        rows.append(
            (
                "v1 right: v1 - v2 quality (exploration's cost)",
                f"{loss:.1f} points ({v2.quality():.3f} vs {v1.quality():.3f})",
                "<= 2 points",
                loss <= 2,
            )
        )
    if ("drift", "v2") in runs:
        scen = load_scenario("drift")
        tasks = recovery(r("drift", "v2"), scen, total)
        rows.append(
            (
                "drift: tasks until the ranking recovers",
                "never" if tasks is None else f"{tasks} tasks",
                "<= 150",
                tasks is not None and tasks <= 150,
            )
        )
    if ("cheap_as_good", "v2") in runs:
        v2, v1 = r("cheap_as_good", "v2"), r("cheap_as_good", "v1")
        ratio = v2.cost() / v1.cost() if v1.cost() else 0.0
        rows.append(
            (
                "cheaper backend as good: v2's cost / v1's (quality within 2 points)",
                f"{ratio:.0%} (${v2.cost():.4f} vs ${v1.cost():.4f}; quality "
                f"{v2.quality():.3f} vs {v1.quality():.3f})",
                "<= 60%",
                ratio <= 0.6 and v1.quality() - v2.quality() <= 0.02,
            )
        )
    if ("budget", "v2") in runs:
        scen = load_scenario("budget")
        worst = []
        for p in POLICIES:
            if ("budget", p) not in runs:
                continue
            for key, cap in scen.budget.items():
                worst.append((runs[("budget", p)].spent.get(key, 0.0), cap.daily_usd, p, key))
        over = [w for w in worst if w[0] > w[1] + 1e-9]
        skipped = sum(s.over_budget for s in r("budget", "v2").steps)
        failed = sum(s.failed.count("over_budget") for s in r("budget", "v2").steps)
        top = max(worst) if worst else (0.0, 0.0, "", "")
        rows.append(
            (
                "budget: spend against the cap (every policy); over-budget tasks",
                f"max {top[3]} ${top[0]:.4f} of ${top[1]:.2f}; {skipped} tasks skipped it, "
                f"{failed} failed",
                "never exceeded; fall to the next backend",
                not over and failed == 0,
            )
        )
    decide = [u for run in runs.values() for u in run.decide_us]
    if decide:
        p50 = statistics.median(decide)
        rows.append(
            (
                "decision time with adaptation on, p50 (in-process)",
                f"{p50:.0f} µs",
                "<= 150 µs",
                p50 <= 150,
            )
        )
    return rows


def render(runs: dict[tuple[str, str], Run], total: int, seed: int) -> str:
    lines = [
        f"# Routing v2: adaptive vs rule-based ({total} tasks per policy and scenario, "
        f"seed {seed}, {time.strftime('%Y-%m-%d')})",
        "",
        "| scenario | policy | quality (all) | quality after 300 | cost USD | explored | "
        "over-budget skips | failed | seconds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (scenario, policy), run in runs.items():
        lines.append(
            f"| {scenario} | {policy} | {run.quality():.3f} | {run.quality(WARM):.3f} | "
            f"{run.cost():.4f} | {sum(s.explored for s in run.steps)} | "
            f"{sum(s.over_budget for s in run.steps)} | "
            f"{sum(bool(s.failed) for s in run.steps)} | {run.seconds:.0f} |"
        )
    lines += ["", "| measurement | result | target | verdict |", "|---|---|---|---|"]
    for name, result, target, met in targets(runs, total):
        lines.append(f"| {name} | {result} | {target} | {'met' if met else '**MISSED**'} |")
    return "\n".join(lines) + "\n"


def plot(runs: dict[tuple[str, str], Run], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    scenarios = list(dict.fromkeys(s for s, _ in runs))
    fig, axes = plt.subplots(1, len(scenarios), figsize=(4.2 * len(scenarios), 3.4), sharey=True)
    if len(scenarios) == 1:
        axes = [axes]
    for ax, scenario in zip(axes, scenarios, strict=True):
        for policy in POLICIES:
            run = runs.get((scenario, policy))
            if run is not None:
                ax.plot(moving(run), label=policy, linewidth=1.2)
        ax.set_title(scenario)
        ax.set_xlabel("task")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"judged quality ({MOVING}-task moving mean)")
    axes[-1].legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# -- main --------------------------------------------------------------------------------------


def draw_tasks(total: int, seed: int) -> list[Any]:
    cases = helpers().load_corpus()
    rng = random.Random(seed)
    return [rng.choice(cases) for _ in range(total)]


async def main_async(args: argparse.Namespace) -> dict[tuple[str, str], Run]:
    scenarios = args.scenario or sorted(p.stem for p in SCENARIOS.glob("*.yaml"))
    cases = draw_tasks(args.tasks, args.seed)
    runs: dict[tuple[str, str], Run] = {}
    for name in scenarios:
        scenario = load_scenario(name)
        for policy in args.policy or POLICIES:
            run = await run_policy(scenario, policy, cases, args.seed)
            runs[(name, policy)] = run
            print(
                f"[adapt] {name:<14} {policy:<9} quality {run.quality():.3f} "
                f"(after {WARM}: {run.quality(WARM):.3f}) cost ${run.cost():.4f} "
                f"in {run.seconds:.0f} s",
                flush=True,
            )
    return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.adapt_sim", description=__doc__)
    p.add_argument("--tasks", type=int, default=3000)
    p.add_argument("--quick", action="store_true", help="600 tasks per run")
    p.add_argument("--scenario", action="append", help="only these scenarios (file stems)")
    p.add_argument("--policy", action="append", choices=POLICIES, help="only these policies")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks = 600
    runs = asyncio.run(main_async(args))
    report = render(runs, args.tasks, args.seed)
    print(report)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "adapt.md").write_text(report, encoding="utf-8")
    data = {
        f"{s}/{p}": {
            "quality": run.quality(),
            "quality_after_warmup": run.quality(WARM),
            "cost_usd": run.cost(),
            "spent": run.spent,
            "explored": sum(st.explored for st in run.steps),
            "over_budget": sum(st.over_budget for st in run.steps),
            "failed": sum(bool(st.failed) for st in run.steps),
            "decide_us_p50": statistics.median(run.decide_us) if run.decide_us else None,
            "backends": _counts(run),
            "cost_by_category": _costs(run),
            "failures": sorted({st.failed for st in run.steps if st.failed}),
        }
        for (s, p), run in runs.items()
    }
    (args.out / "adapt.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    if plot(runs, args.out / "adapt.png"):
        print(f"[adapt] wrote {args.out / 'adapt.png'}")
    return 0


def _costs(run: Run) -> dict[str, float]:
    out: dict[str, float] = {}
    for s in run.steps:
        out[s.category] = out.get(s.category, 0.0) + s.cost
    return {k: round(v, 6) for k, v in sorted(out.items())}


def _counts(run: Run) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for s in run.steps:
        out.setdefault(s.category, {}).setdefault(s.backend or "-", 0)
        out[s.category][s.backend or "-"] += 1
    return out


if __name__ == "__main__":
    raise SystemExit(main())
