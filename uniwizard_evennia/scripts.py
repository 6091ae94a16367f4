"""``BackendRouterScript``: keeps backend health current on the room it is attached to.

Every ``interval`` seconds it asks the registry (``ListBackends``, off the reactor thread),
stores ``self.db.health = {key: {state, reason, ...}}`` and tells the room when a backend goes
down, is disabled, cools down, or comes back.

    py here.scripts.add("uniwizard_evennia.scripts.BackendRouterScript")
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from typing import Any

from evennia.scripts.scripts import DefaultScript
from evennia.utils import logger

from uniwizard_client import BackendState, fetch_health
from uniwizard_evennia import conf, text
from uniwizard_evennia.background import off_reactor

SCRIPT_KEY = "uniwizard_backend_router"

# Injectable for tests: the registry fetch and the clock.
fetch: Callable[..., Mapping[str, BackendState]] = fetch_health
clock: Callable[[], float] = time.time


def _row(state: BackendState) -> dict[str, Any]:
    row = dataclasses.asdict(state)
    row["routable"] = state.routable
    return row


class BackendRouterScript(DefaultScript):  # type: ignore[misc]
    """Polls the registry and announces backend health changes to its room."""

    def at_script_creation(self) -> None:
        self.key = SCRIPT_KEY
        self.desc = "Keeps Uniwizard backend health current"
        self.interval = conf.health_interval()
        self.start_delay = False  # first poll right away
        self.persistent = True
        self.db.health = {}
        self.db.checked_at = 0.0
        self.db.error = ""

    def at_repeat(self, **kwargs: Any) -> None:
        self.poll()

    def poll(self) -> None:
        """Ask the registry in a worker thread; :meth:`update` or :meth:`failed` gets the answer."""
        target, deadline, token = conf.registry_addr(), min(conf.deadline(), 10.0), conf.token()
        off_reactor(lambda: fetch(target, deadline=deadline, token=token),
                    on_result=self.update, on_error=self.failed)

    def update(self, snapshot: Mapping[str, BackendState]) -> list[str]:
        """Store a fresh snapshot and announce what changed. Returns the announcements."""
        now = clock()
        old = {k: dict(v) for k, v in (self.db.health or {}).items()}
        new = {key: _row(state) for key, state in snapshot.items()}
        lines = text.health_changes(old, new, now)
        if self.db.error:
            lines.insert(0, f"{text.PREFIX} the backend registry answers again.")
        self.db.health = new
        self.db.checked_at = now
        self.db.error = ""
        for line in lines:
            self.announce(line)
        return lines

    def failed(self, exc: BaseException) -> None:
        """The registry could not be asked: keep the last known health, say so once."""
        message = str(exc)
        if not self.db.error:
            self.announce(f"{text.PREFIX} |rcannot check the backends: {text.one_line(message)}|n")
        self.db.error = message or type(exc).__name__

    def announce(self, line: str) -> None:
        if self.obj is not None:
            self.obj.msg_contents(line)
        else:
            logger.log_info(text.one_line(line))


def find_health_script(location: Any) -> BackendRouterScript | None:
    """The script on ``location`` if there is one, else any BackendRouterScript in the game."""
    if location is not None:
        for script in location.scripts.get(SCRIPT_KEY):
            return script  # type: ignore[no-any-return]
    from evennia.utils.search import search_script

    found = search_script(SCRIPT_KEY)
    return found[0] if found else None
