"""The Workshop's ``BackendRouterScript``: health on every repeat, announcements on change."""

from __future__ import annotations

import socket
import threading
from typing import Any, ClassVar
from unittest.mock import Mock, patch

from evennia.utils import ansi
from evennia.utils.test_resources import BaseEvenniaTest

from tests.client.stack_thread import StackThread
from tests.evennia.fakes import ThreadedRunAsync
from tests.stack import Stack
from uniwizard_client import BackendState, set_enabled
from uniwizard_evennia.scripts import SCRIPT_KEY, BackendRouterScript, find_health_script

BACKENDS = {"local", "claude", "kimi", "gpt", "gemini", "grok"}


def _said(mock: Mock) -> list[str]:
    return [ansi.strip_ansi(str(c.args[0] if c.args else c.kwargs.get("text")))
            for c in mock.call_args_list]


class TestWorkshopScript(BaseEvenniaTest):
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
                                  UNIWIZARD_REGISTRY_ADDR=self.stack.registry.target,
                                  UNIWIZARD_HEALTH_INTERVAL=30)
        overrides.enable()
        self.addCleanup(overrides.disable)
        self.run_async = ThreadedRunAsync(immediate=True)
        for target, value in (("uniwizard_evennia.background.run_async", self.run_async),
                              ("uniwizard_evennia.scripts.clock", Mock(return_value=1000.0))):
            patcher = patch(target, value)
            patcher.start()
            self.addCleanup(patcher.stop)
        self.addCleanup(self.run_async.close)
        self.workshop = self.room1
        self.script: Any = self.workshop.scripts.add(BackendRouterScript)

    def repeat(self, now: float = 1030.0) -> list[str]:
        """One tick of the script; what the Workshop was told."""
        with patch.object(self.workshop, "msg_contents") as said, \
                patch("uniwizard_evennia.scripts.clock", return_value=now):
            self.script.at_repeat()
        return _said(said)

    def set_enabled(self, key: str, enabled: bool) -> None:
        set_enabled(key, enabled, by="tester", reason="maintenance" if not enabled else "",
                    target=self.stack.registry.target)

    def test_script_polls_on_creation_off_the_calling_thread(self) -> None:
        assert self.script.key == SCRIPT_KEY and self.script.interval == 30
        assert self.script.obj == self.workshop
        assert set(self.script.db.health) == BACKENDS
        assert all(row["routable"] for row in self.script.db.health.values())
        assert self.script.db.checked_at == 1000.0
        assert self.run_async.worker_threads and \
            threading.get_ident() not in self.run_async.worker_threads
        assert find_health_script(self.workshop) == self.script
        assert find_health_script(None) == self.script

    def test_repeat_announces_a_disabled_backend_and_its_return(self) -> None:
        self.set_enabled("gpt", False)
        try:
            assert self.repeat() == ["[Uniwizard] backend gpt is disabled by tester: maintenance."]
            assert self.script.db.health["gpt"]["state"] == "disabled"
            assert self.script.db.health["gpt"]["disabled_reason"] == "maintenance"
            assert self.script.db.checked_at == 1030.0
            assert self.repeat(1060.0) == []  # nothing changed: nothing said
        finally:
            self.set_enabled("gpt", True)
        back = self.repeat(1090.0)
        assert len(back) == 1 and back[0].startswith("[Uniwizard] backend gpt is back ("), back
        assert self.script.db.health["gpt"]["routable"] is True

    def test_unreachable_registry_is_announced_once_and_health_kept(self) -> None:
        known = dict(self.script.db.health)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with self.settings(UNIWIZARD_REGISTRY_ADDR=f"127.0.0.1:{port}"):
            first = self.repeat()
            assert self.repeat() == []  # said once
        assert len(first) == 1
        assert first[0].startswith("[Uniwizard] cannot check the backends: unavailable: cannot "
                                   f"reach registry_svc at 127.0.0.1:{port}"), first
        assert set(self.script.db.health) == set(known)
        assert self.script.db.error
        assert self.repeat() == ["[Uniwizard] the backend registry answers again."]
        assert self.script.db.error == ""

    def test_fetch_and_clock_are_injectable(self) -> None:
        cooling = {"grok": BackendState(key="grok", state="cooling_down", reason="rate limited",
                                        cooldown_until=1060.0, model="grok-3-mini")}
        with patch("uniwizard_evennia.scripts.fetch", return_value=cooling) as fetch:
            said = self.repeat(now=1000.0)
        fetch.assert_called_once()
        assert fetch.call_args.args == (self.stack.registry.target,)
        assert "[Uniwizard] backend grok is cooling down (60 s left): rate limited." in said
        assert "[Uniwizard] backend gpt is no longer configured." in said
        assert set(self.script.db.health) == {"grok"}
