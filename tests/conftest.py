"""Both ways of linking the stack, for every end-to-end test.

A test that runs the stack — it calls ``tests.stack.running_stack``, or takes a stack fixture (a
parameter typed ``Stack``) — runs twice: ``[inproc]``, the components linked in-process as one
process runs them (``uniwizard up``), and ``[grpc]``, linked over real gRPC channels as three
processes run them (``uniwizard up --split``). The test itself is written once. A test that only
makes sense one way (restarting the registry alone, which one process cannot do) says so:
``@pytest.mark.links("grpc")``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest

from tests import stack


@pytest.fixture(autouse=True, scope="module")
def stack_links(request: pytest.FixtureRequest) -> Iterator[stack.Links]:
    """How ``running_stack`` links the components in this test. Module-scoped, so a module's
    tests run all one way then all the other; a module-scoped stack fixture takes it as an
    argument (and passes ``links=stack_links``) so that it is built once per way."""
    links: stack.Links = getattr(request, "param", stack.default_links)
    saved, stack.default_links = stack.default_links, links
    try:
        yield links
    finally:
        stack.default_links = saved


def runs_the_stack(test: object) -> bool:
    if not callable(test):
        return False
    if "running_stack(" in inspect.getsource(test):
        return True
    params = inspect.signature(test).parameters.values()
    return any(p.annotation in ("Stack", stack.Stack) for p in params)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if not runs_the_stack(metafunc.function):
        return
    marker = metafunc.definition.get_closest_marker("links")
    modes = list(marker.args) if marker else stack.LINKS
    metafunc.parametrize("stack_links", modes, indirect=True, scope="module")
