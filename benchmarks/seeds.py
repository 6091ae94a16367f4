"""The ten seed tasks and the router tests' fixture backends (tests/router/helpers.py).

Loaded by file path: a ``tests`` package installed in site-packages by some dependency can
shadow the repository's ``tests`` namespace package.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

HELPERS = Path(__file__).resolve().parent.parent / "tests" / "router" / "helpers.py"


@cache
def helpers() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_uniwizard_router_test_helpers", HELPERS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def seed_cases() -> list[Any]:
    """The corpus lines marked ``"seed": true`` (the seed's ten example tasks)."""
    return [c for c in helpers().load_corpus() if c.raw.get("seed")]


def seed_tasks() -> list[Any]:
    return [c.task for c in seed_cases()]
