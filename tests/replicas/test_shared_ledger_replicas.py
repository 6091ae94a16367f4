"""Issue 17 end to end, every part a real process: two routers and three callers sharing one
registry and one PostgreSQL ledger (each caller under its own UNIWIZARD_CALLER_ID), on the
provider simulator. Clients load both routers; one caller is SIGKILLed mid-load.

What must hold, and why exactly so:

* every request ends in an answer or a typed error within its deadline, and the router accounts
  for every one (its attempts are known to the client);
* the survivors take the load: everything started after the kill is answered, by them;
* the ledger and the client agree row by row: each row is one attempt the client was told of
  (same request id and attempt number), with the client's outcome and cost, except the killed
  caller's rows that the kill cut off from the router (the client saw ``network``): a row still
  ``in_flight`` (no cost: nothing came back), or, if the kill fell between committing the row and
  answering, a completed row the client never heard of;
* so ``uniwizard usage`` (through any caller) totals the costs the clients were told (answers
  and the billed attempts of failures) plus those cut-off completed rows, usually none;
* the ledger has one row per provider attempt the simulator saw: per request, the simulator
  received at least the completed rows that were sent and at most every sent row (a killed
  caller's ``in_flight`` row is committed before its request leaves, so the kill may fall between
  the two);
* restarted under its name, the killed caller marks its own rows ``interrupted`` and no other.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.replicas.procs import Cluster, Load, cluster, sim_requests_per_request
from tests.stack import ROOT
from uniwizard_client import AsyncBackendRouter

pytestmark = pytest.mark.slow

ROW = "SELECT caller_id, request_id, attempt, outcome, sent, cost_usd FROM attempts ORDER BY id"


async def test_two_routers_three_callers_one_postgres_ledger_survive_a_killed_caller(
    tmp_path: Path, pg_url: str
) -> None:
    async with cluster(tmp_path, ledger_url=pg_url) as c:
        registry = await c.registry("127.0.0.1:0").start()
        callers = await asyncio.gather(*(c.caller(i, registry.target).start() for i in range(3)))
        all_callers = ",".join(p.target for p in callers)
        routers = await asyncio.gather(
            *(c.router(i, registry.target, all_callers).start() for i in range(2))
        )
        async with (
            AsyncBackendRouter(",".join(r.target for r in routers)) as over_both,
            AsyncBackendRouter(routers[0].target) as to_first,
            AsyncBackendRouter(routers[1].target) as to_second,
        ):
            load = Load(over_both, to_first, to_second)
            for _ in range(3):  # concurrently, so no caller is favoured by timing
                await asyncio.gather(*(load.one() for _ in range(9)))
            assert load.ends() == {"answer": 27}
            per_caller = [c.ledger_rows(i) for i in range(3)]
            assert sum(per_caller) == 27 and min(per_caller) >= 4, per_caller

            # Every provider call now takes 0.3 s, so each caller always has calls in flight.
            c.sim.add_fault("gpt", {"kind": "delay", "seconds": 0.3})
            running = asyncio.create_task(load.run(seconds=4.0, concurrency=12))
            await asyncio.sleep(1.5)
            killed_at, killed_wall = time.monotonic(), time.time()
            await callers[1].kill()
            await running

        assert load.untyped == [] and load.late() == []
        assert [e.request_id for e in load.ended if not e.reported] == []
        assert c.ledger_rows(1, "outcome = 'in_flight'") >= 1, "the kill hit no call in flight"
        after = load.ends(after=killed_at + 0.5)
        assert after.total() >= 10 and set(after) == {"answer"}, after
        survivors_after = [c.ledger_rows(i, f"ts > {killed_wall + 0.5}") for i in (0, 2)]
        assert min(survivors_after) >= 1 and sum(survivors_after) >= after.total()

        cut_off = ledger_agrees_with_clients(c, load)
        usage = await usage_cli(all_callers)  # the dead caller in the target too: skipped
        rows = c.shared_ledger(ROW)
        told = sum(a.cost_usd for e in load.ended for a in e.attempts)
        assert usage["attempts"] == len(rows)
        assert usage["successes"] == load.ends()["answer"] + cut_off["success"]
        assert usage["cost_usd"] == pytest.approx(told + sum(cut_off.values()), abs=1e-8)
        assert told > 0

        one_row_per_provider_attempt(c)

        others = "SELECT id, outcome FROM attempts WHERE caller_id <> 'caller1' ORDER BY id"
        before, left = c.shared_ledger(others), c.ledger_rows(1, "outcome = 'in_flight'")
        await c.caller(1, registry.target).start()  # the same name: it finds its own rows
        assert c.ledger_rows(1, "outcome = 'in_flight'") == 0
        assert c.ledger_rows(1, "outcome = 'interrupted'") == left
        assert c.shared_ledger(others) == before


def ledger_agrees_with_clients(c: Cluster, load: Load) -> Counter[str]:
    """Match every ledger row to the attempt the client was told of; returns the cost of the
    killed caller's completed rows whose answer the kill cut off, per outcome."""
    ended = load.by_id()
    keys: set[tuple[str, int]] = set()
    cut_off: Counter[str] = Counter()
    for caller_id, rid, n, outcome, _sent, cost in c.shared_ledger(ROW):
        assert caller_id in {"caller0", "caller1", "caller2"}
        assert (rid, n) not in keys, f"two rows for attempt {n} of {rid}"
        keys.add((rid, n))
        told = ended[rid].attempts  # KeyError: a row no client request made
        assert 1 <= n <= len(told), (rid, n, told)
        if caller_id == "caller1" and told[n - 1].outcome == "network":  # the kill cut it off
            if outcome == "in_flight":
                assert cost == 0.0
            else:
                cut_off[outcome] += cost
        else:
            assert (outcome, cost) == (told[n - 1].outcome, told[n - 1].cost_usd), (rid, n)
    for e in load.ended:
        if e.end == "answer":
            assert e.cost_usd == pytest.approx(sum(a.cost_usd for a in e.attempts), abs=1e-12)
        for n, a in enumerate(e.attempts, 1):  # only a kill's cut leaves an attempt without row
            assert (e.request_id, n) in keys or a.outcome == "network", (e.request_id, n, a)
    return cut_off


def one_row_per_provider_attempt(c: Cluster) -> None:
    sent, completed = Counter[str](), Counter[str]()
    for _caller, rid, _n, outcome, was_sent, _cost in c.shared_ledger(ROW):
        if was_sent:
            sent[rid] += 1
            completed[rid] += outcome != "in_flight"
    seen = sim_requests_per_request(c.sim)
    assert sum(seen.values()) >= 27 + 10
    for rid in set(seen) | set(sent):
        assert completed[rid] <= seen[rid] <= sent[rid], (rid, completed[rid], seen[rid])


async def usage_cli(caller_target: str) -> dict[str, float]:
    cli = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uniwizard.cli",
        "--caller",
        caller_target,
        "usage",
        "--json",
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(cli.communicate(), 30)
    assert cli.returncode == 0, err.decode(errors="replace")
    total: dict[str, float] = json.loads(out)["total"]
    return total
