"""Route decision time in-process: ``classify`` + ``build_chain`` on the ten seed tasks.

The token estimate is computed once per task outside the timed region (the router computes it
once per request and hands it to both); ``with_estimate`` times the whole of
``RouterCore.decide`` (estimate + classify + build_chain) as a second figure.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from benchmarks.seeds import helpers, seed_cases
from router_svc.chain import build_chain
from router_svc.classify import classify
from uniwizard.providers.tokens import estimate_task_tokens


def measure(rounds: int) -> dict[str, Any]:
    h = helpers()
    policy = h.policy()
    backends = h.BACKENDS
    health = h.healthy()
    cases = seed_cases()
    tasks = [(c, c.task, estimate_task_tokens(c.task)) for c in cases]
    now = time.time()
    clock = time.perf_counter_ns
    # warm-up: compiled regexes, caches
    for _ in range(20):
        for _c, t, est in tasks:
            build_chain(
                t, classify(t, policy, est), policy, backends, health, estimate=est, now=now
            )
    decide_us: list[float] = []
    full_us: list[float] = []
    per_task: dict[str, list[float]] = {}
    wrong: list[str] = []
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for c, t, est in tasks:
                t0 = clock()
                d = build_chain(
                    t, classify(t, policy, est), policy, backends, health, estimate=est, now=now
                )
                t1 = clock()
                e = estimate_task_tokens(t)
                build_chain(
                    t, classify(t, policy, e), policy, backends, health, estimate=e, now=now
                )
                t2 = clock()
                decide_us.append((t1 - t0) / 1000.0)
                full_us.append((t2 - t1) / 1000.0)
                per_task.setdefault(c.expected_category + f" (line {c.line})", []).append(
                    (t1 - t0) / 1000.0
                )
                if d.category != c.expected_category and c.label not in wrong:
                    wrong.append(c.label)
    finally:
        if gc_was:
            gc.enable()
    return {
        "decide_us": decide_us,
        "with_estimate_us": full_us,
        "per_task_us": per_task,
        "misrouted": wrong,
        "tasks": len(tasks),
        "rounds": rounds,
    }
