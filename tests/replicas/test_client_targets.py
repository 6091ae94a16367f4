"""Clients name several routers: ``uniwizard_client`` spreads over them and skips one that stops;
the CLI's ``--router/--registry/--caller`` and the ``UNIWIZARD_*_ADDR`` variables take the same
targets, and a target that is not one is a usage error naming where it came from."""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from router_svc.server import build_router
from tests.client.stack_thread import StackThread
from tests.stack import running_stack, v1_policy
from uniwizard.cli import main
from uniwizard_client import AsyncBackendRouter, BackendRouter

ROME = "Who was the first emperor of Rome?"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def counting(seen: Counter[str], name: str, fn: Callable[..., Awaitable[Any]]) -> Any:
    async def counted(*args: Any, **kwargs: Any) -> Any:
        seen[name] += 1
        return await fn(*args, **kwargs)

    return counted


async def test_the_client_spreads_over_routers_and_skips_one_that_stops(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        second = await build_router(
            stack.config_path,
            str(v1_policy(tmp_path)),
            "127.0.0.1:0",
            registry=stack.registry.target,
            caller=stack.caller.target,
        )
        await second.start()
        seen: Counter[str] = Counter()
        for name, router in (("first", stack.router), ("second", second)):
            router.core.dispatch = counting(seen, name, router.core.dispatch)  # type: ignore[method-assign]
        target = f"{stack.router.target},{second.target}"
        try:
            async with AsyncBackendRouter(target, deadline=20) as client:
                assert client.target == f"ipv4:{target}"
                for _ in range(12):
                    assert (await client.dispatch(ROME)).backend == "gpt"
                assert seen["first"] >= 4 and seen["second"] >= 4, seen

                await second.stop(grace=1.0)  # SIGTERM's shutdown: drains, then goes away
                seen.clear()
                for _ in range(6):
                    assert (await client.dispatch(ROME)).text
                assert seen == Counter({"first": 6})
        finally:
            await second.stop(grace=0)


def test_the_cli_takes_a_list_of_replicas_for_each_service(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"127.0.0.1:{closed_port()}"
    with StackThread() as stack:
        routers = f"{dead},{stack.router.target}"
        assert main(["--router", routers, "think", ROME]) == 0
        assert "Simulated answer from gpt-4o" in capsys.readouterr().out
        assert main(["--registry", f"{stack.registry.target},{dead}", "backends"]) == 0
        assert "gpt" in capsys.readouterr().out
        assert main(["--caller", f"dns:///localhost:{stack.caller.target.split(':')[1]}",
                     "usage", "--json"]) == 0  # fmt: skip
        assert '"attempts": 1' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "env", "says"),
    [
        (
            ["--router", "router-a:1,router-b:1", "route", "x"],
            None,
            "uniwizard: router target: 'router-a:1' in a list must be an IP address",
        ),
        (
            ["route", "x"],
            "router",
            "uniwizard: UNIWIZARD_ROUTER_ADDR: 'router': no port (host:port)",
        ),
        (
            ["--registry", "http://registry:50051", "backends"],
            None,
            "uniwizard: registry target: 'http://registry:50051': unknown scheme 'http'",
        ),
    ],
)
def test_a_bad_target_is_a_usage_error_naming_it(
    argv: list[str],
    env: str | None,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if env is not None:
        monkeypatch.setenv("UNIWIZARD_ROUTER_ADDR", env)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(says) and err.count("\n") == 1, err


def test_the_library_names_a_bad_target_too(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"^router target: 'a:1' in a list must be an IP"):
        BackendRouter("a:1,a:1")
    monkeypatch.setenv("UNIWIZARD_ROUTER_ADDR", "dns:///router:50052")
    assert BackendRouter().target == "dns:///router:50052"
