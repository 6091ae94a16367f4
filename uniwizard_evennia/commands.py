"""In-game commands: ``route``, ``think``, ``rate`` and ``backends``, and a cmdset holding them.

The agent's identity (name, description, memory) never leaves Evennia: only the task's text and
the task-scoped system prompt (``UNIWIZARD_SYSTEM_PROMPT``) go to the router.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from evennia.commands.cmdset import CmdSet
from evennia.commands.command import Command

from uniwizard.ratings import InvalidRating, parse_score, rating
from uniwizard_client import Rated, RouteInfo, Task, ThinkResult
from uniwizard_evennia import conf, text
from uniwizard_evennia.background import off_reactor

# Time for "checked N s ago"; tests replace it.
clock: Callable[[], float] = time.time


class _UniwizardCommand(Command):  # type: ignore[misc]
    help_category = "uniwizard"
    locks = "cmd:all()"
    usage = ""

    def task_text(self) -> str | None:
        task = (self.args or "").strip()
        if not task:
            self.caller.msg(f"Usage: {self.usage}")
            return None
        return task


class CmdRoute(_UniwizardCommand):
    """
    Show which LLM backend would take a task, and why.

    Usage:
      route <task>

    Shows the chosen backend, the task's category, the rules that fired, the fallback chain
    and any backends skipped (disabled, down, cooling down, too small, ...). Calls nothing.
    """

    key = "route"
    usage = "route <task>"

    def func(self) -> None:
        task = self.task_text()
        if task is None:
            return
        caller, router = self.caller, conf.router()
        request = Task(task, system_prompt=conf.system_prompt())

        def show(info: RouteInfo) -> None:
            caller.msg(text.route_text(task, info))

        off_reactor(lambda: router.decide(request), on_result=show,
                    on_error=lambda exc: caller.msg(text.error_text("route", exc)))


class CmdThink(_UniwizardCommand):
    """
    Think about a task with whichever LLM backend fits it best.

    Usage:
      think <task>

    The router picks the backend (and falls back if it fails); the answer arrives as your
    thought a moment later, with the backend that gave it and what it cost. Only the task
    itself is sent: never your name, description or memories.
    """

    key = "think"
    aliases = ["ponder"]
    usage = "think <task>"

    def func(self) -> None:
        task = self.task_text()
        if task is None:
            return
        caller, router = self.caller, conf.router()
        name = str(caller.key)  # shown in the game only; never sent
        request = Task(task, system_prompt=conf.system_prompt())

        def answered(result: ThinkResult) -> None:
            caller.db.uniwizard_last_request = result.request_id  # what ``rate`` rates
            caller.msg(text.thought_text(name, result))

        caller.msg(f"{text.PREFIX} {name} turns the question over...")
        off_reactor(lambda: router.dispatch(request), on_result=answered,
                    on_error=lambda exc: caller.msg(text.error_text("think", exc)))


class CmdRate(_UniwizardCommand):
    """
    Rate the answer to your last thought, so the router learns which backend serves you best.

    Usage:
      rate <score> [label]

    The score is 0 to 1 (e.g. 0.8) or stars out of 5 (e.g. 4/5); the optional label is one
    short word such as wrong, unhelpful or great. Each answer can be rated once.
    """

    key = "rate"
    usage = "rate <score> [label]"

    def func(self) -> None:
        words = (self.args or "").split()
        if not 1 <= len(words) <= 2:
            self.caller.msg(f"Usage: {self.usage}")
            return
        caller = self.caller
        last = caller.db.uniwizard_last_request
        if not last:
            caller.msg(f"{text.PREFIX} nothing to rate yet: think about something first.")
            return
        try:
            score, five_point = parse_score(words[0])
            label = words[1].lower() if len(words) == 2 else ""
            rating(last, "", score, label, five_point=five_point)  # check before sending
        except InvalidRating as exc:
            caller.msg(f"{text.PREFIX} |r{exc}|n")
            return
        router = conf.router()

        def rated(result: Rated) -> None:
            caller.msg(text.rated_text(result))

        off_reactor(
            lambda: router.rate(last, score, label=label, five_point=five_point),
            on_result=rated,
            on_error=lambda exc: caller.msg(text.error_text("rate", exc)),
        )


class CmdBackends(_UniwizardCommand):
    """
    Show the LLM backends' health, as the Workshop's BackendRouter script last saw it.

    Usage:
      backends
    """

    key = "backends"
    usage = "backends"

    def func(self) -> None:
        from uniwizard_evennia.scripts import find_health_script

        script = find_health_script(self.caller.location)
        if script is None:
            self.caller.msg(
                f"{text.PREFIX} no BackendRouter script is running. A builder can add one to "
                "the Workshop with: py here.scripts.add("
                "'uniwizard_evennia.scripts.BackendRouterScript')"
            )
            return
        health: Any = script.db.health or {}
        self.caller.msg(text.health_table(health, clock(), script.db.checked_at or 0.0,
                                          script.db.error or ""))


class CmdSetUniwizard(CmdSet):  # type: ignore[misc]
    """``route``, ``think``, ``rate`` and ``backends``: add to the character cmdset."""

    key = "uniwizard"

    def at_cmdset_creation(self) -> None:
        self.add(CmdRoute())
        self.add(CmdThink())
        self.add(CmdRate())
        self.add(CmdBackends())
