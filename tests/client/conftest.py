from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.client.stack_thread import StackThread
from tests.stack import Stack


@pytest.fixture
def threaded_stack() -> Iterator[Stack]:
    """The real stack on its own thread and loop, so blocking clients can talk to it."""
    with StackThread() as stack:
        yield stack
