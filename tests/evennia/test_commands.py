"""``route``, ``think`` and ``backends`` in Evennia's command harness, against the real services
(started in-process on the simulator, on a background thread)."""

from __future__ import annotations

import json
import socket
import threading
from typing import Any, ClassVar
from unittest.mock import Mock, patch

from evennia.utils import ansi
from evennia.utils.test_resources import EvenniaCommandTest

from tests.client.stack_thread import StackThread
from tests.evennia.fakes import ThreadedRunAsync
from tests.stack import Stack
from uniwizard_evennia import conf
from uniwizard_evennia.commands import CmdBackends, CmdRate, CmdRoute, CmdSetUniwizard, CmdThink
from uniwizard_evennia.scripts import BackendRouterScript

SEED_ROUTES = {
    "Read the file notes/todo.md and tell me what's on it": "local",
    "Analyze the trade-offs between event sourcing and CRUD for our inventory service": "claude",
    "Who was the first emperor of Rome?": "gpt",
    "Quick — one word: capital of Peru?": "grok",
}
ROME = "Who was the first emperor of Rome?"
SOUL = "Timmy is the Grand Timmy, the Uniwizard's agent, keeper of the Workshop."


def _plain(mock: Mock) -> str:
    texts = [c.args[0] if c.args else c.kwargs.get("text", "") for c in mock.call_args_list]
    return "\n".join(ansi.strip_ansi(str(t)) for t in texts)


class UniwizardCommandTest(EvenniaCommandTest):
    stack_thread: ClassVar[StackThread]
    stack: ClassVar[Stack]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls.stack_thread = StackThread()
        cls.stack = cls.stack_thread.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.stack_thread.stop()
        super().tearDownClass()

    def setUp(self) -> None:
        super().setUp()
        overrides = self.settings(UNIWIZARD_ROUTER_ADDR=self.stack.router.target,
                                  UNIWIZARD_REGISTRY_ADDR=self.stack.registry.target)
        overrides.enable()
        self.addCleanup(overrides.disable)
        self.run_async = ThreadedRunAsync()
        patcher = patch("uniwizard_evennia.background.run_async", self.run_async)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.addCleanup(self.run_async.close)

    def deliver(self, receiver: Any) -> str:
        """Let the pending background calls answer; what ``receiver`` was told meanwhile."""
        with patch.object(receiver, "msg") as msg:
            self.run_async.drain()
        return _plain(msg)


class TestRoute(UniwizardCommandTest):
    def test_route_shows_backend_category_reasons_and_chain(self) -> None:
        self.run_async.immediate = True
        for task, backend in SEED_ROUTES.items():
            out = self.call(CmdRoute(), task, f"[Uniwizard] route for: {task}")
            assert f"backend:  {backend}  (category:" in out, out
            assert "why:" in out and f"chain:    {backend} -> " in out
        assert self.stack.sim.requests() == []  # routing calls no provider

    def test_route_shows_skipped_backends(self) -> None:
        self.run_async.immediate = True
        self.stack_thread.run(self.stack.set_enabled("gpt", False, reason="maintenance"))
        try:
            self.stack_thread.run(self.stack.wait_router(
                lambda v: v.health["gpt"].state.value == "disabled"))
            out = self.call(CmdRoute(), ROME)
            assert "backend:  claude" in out
            assert "skipped:  gpt: disabled" in out
        finally:
            self.stack_thread.run(self.stack.set_enabled("gpt", True))

    def test_route_without_a_task_shows_usage(self) -> None:
        self.call(CmdRoute(), "   ", "Usage: route <task>")
        assert self.run_async.pending == []


class TestThink(UniwizardCommandTest):
    def test_think_returns_at_once_and_the_answer_arrives_through_the_callback(self) -> None:
        self.char1.key = "Timmy"
        self.char1.db.desc = SOUL
        before = len(self.stack.sim.requests())

        # The command returns with only the acknowledgement: the answer is still pending.
        self.call(CmdThink(), ROME, "[Uniwizard] Timmy turns the question over...",
                  use_assertequal=True)
        assert len(self.run_async.pending) == 1

        thought = self.deliver(self.char1)
        assert thought.startswith("Timmy thinks: Simulated answer from gpt-4o"), thought
        assert "(via gpt · gpt-4o · knowledge · $0.000" in thought
        assert "1 attempt)" in thought
        assert threading.get_ident() not in self.run_async.worker_threads

        # Blind cognition: only the task and a task-scoped system prompt left Evennia.
        sent = self.stack.sim.requests()[before:]
        assert len(sent) == 1
        body = json.dumps(sent[0]["body"])
        assert ROME in body and conf.system_prompt() in body
        for leak in ("Timmy", "Grand Timmy", "Uniwizard", "Workshop"):
            assert leak not in body, leak

    def test_think_failure_is_one_clear_line_with_the_outcome_class(self) -> None:
        self.stack.sim.add_fault("gpt", {"kind": "status", "status": 400}, times=1)
        self.call(CmdThink(), ROME, "[Uniwizard] Char turns the question over...")
        err = self.deliver(self.char1)
        assert err.startswith("[Uniwizard] think failed (bad_request):"), err
        assert "[tried gpt bad_request]" in err
        assert "\n" not in err

    def test_unreachable_router_is_reported_not_raised(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with self.settings(UNIWIZARD_ROUTER_ADDR=f"127.0.0.1:{port}"):
            self.call(CmdThink(), ROME)
            err = self.deliver(self.char1)
        assert err.startswith(f"[Uniwizard] think failed (unavailable): cannot reach router_svc"
                              f" at 127.0.0.1:{port}"), err

    def test_a_list_of_routers_in_the_settings_skips_the_dead_one(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            dead = f"127.0.0.1:{s.getsockname()[1]}"
        routers = f"{dead},{self.stack.router.target}"
        with self.settings(UNIWIZARD_ROUTER_ADDR=routers):
            assert conf.router().target == f"ipv4:{routers}"
            for _ in range(3):  # every call answered: none goes to the dead address
                self.call(CmdThink(), ROME)
                thought = self.deliver(self.char1)
                assert thought.startswith("Char thinks: Simulated answer from gpt-4o"), thought

    def test_cmdset_holds_the_commands(self) -> None:
        self.char1.cmdset.add(CmdSetUniwizard, persistent=False)
        keys = {c.key for c in self.char1.cmdset.current.commands}
        assert {"route", "think", "rate", "backends"} <= keys


class TestRate(UniwizardCommandTest):
    def test_rate_rates_the_last_thought_once(self) -> None:
        self.call(CmdRate(), "0.9", "[Uniwizard] nothing to rate yet: think about something first.")
        self.call(CmdThink(), ROME)
        assert self.deliver(self.char1).startswith("Char thinks:")
        assert self.char1.db.uniwizard_last_request

        self.call(CmdRate(), "4/5 great")
        said = self.deliver(self.char1)
        assert said == (
            "[Uniwizard] you rate the last answer 0.75 (great); gpt gave it, on a knowledge task."
        ), said
        self.call(CmdRate(), "1.0")
        again = self.deliver(self.char1)
        assert again.startswith("[Uniwizard] rate failed (already_exists):"), again

    def test_a_bad_rating_is_explained_and_nothing_is_sent(self) -> None:
        self.char1.db.uniwizard_last_request = "some-request"
        self.call(CmdRate(), "", "Usage: rate <score> [label]")
        self.call(CmdRate(), "7/5", "[Uniwizard] score on the 1-5 scale must be from 1 to 5")
        self.call(CmdRate(), "0.5 that was wrong", "Usage: rate <score> [label]")
        self.call(CmdRate(), "0.5 Wrong!", "[Uniwizard] label must be a short token")
        assert self.run_async.pending == []


class TestBackends(UniwizardCommandTest):
    def test_backends_shows_the_scripts_table(self) -> None:
        self.call(CmdBackends(), "", "[Uniwizard] no BackendRouter script is running.")
        self.run_async.immediate = True
        with patch("uniwizard_evennia.scripts.clock", return_value=1000.0):
            self.room1.scripts.add(BackendRouterScript)  # polls at once (start_delay False)
        with patch("uniwizard_evennia.commands.clock", return_value=1012.0):
            out = self.call(CmdBackends(), "", "[Uniwizard] backend health (checked 12 s ago)")
        assert "BACKEND" in out and "STATE" in out
        for key in SEED_ROUTES.values():
            assert f"\n  {key} " in out
