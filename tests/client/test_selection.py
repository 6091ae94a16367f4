"""The client's side of choosing a chain: ``category=``, ``catalog()``, the ``Answering`` stream
event, and a router client over a channel made elsewhere — on both routers, real services."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tests.stack import Stack, running_stack
from uniwizard.net import aio_channel
from uniwizard_client import (
    Answering,
    AsyncBackendRouter,
    AttemptFailed,
    BackendRouter,
    RouterError,
    TextDelta,
    ThinkResult,
)

ROME = "Who was the first emperor of Rome?"  # knowledge → gpt first


def test_sync_category_catalog_and_answering(threaded_stack: Stack) -> None:
    with BackendRouter(threaded_stack.router.target, deadline=20) as router:
        assert router.decide(ROME, category="quick").chain[0] == "grok"
        result = router.dispatch(ROME, category="reasoning")
        assert (result.backend, result.category) == ("claude", "reasoning")
        with pytest.raises(RouterError) as err:
            router.dispatch(ROME, category="poetry")
        assert err.value.outcome == "bad_request" and "poetry" in err.value.message

        catalog = router.catalog()
        assert catalog.category("private") is not None
        assert catalog.default_category == "knowledge"
        gpt = catalog.backend("gpt")
        assert gpt is not None and gpt.model == "gpt-4o" and gpt.state in ("unknown", "healthy")

        threaded_stack.sim.add_fault("gpt", {"kind": "refusal_text"}, times=1)
        events = list(router.dispatch_stream(ROME))
        names = [type(e).__name__ for e in events]
        assert names.index("AttemptFailed") < names.index("Answering") < names.index("TextDelta")
        answering = next(e for e in events if isinstance(e, Answering))
        result = events[-1]
        assert isinstance(result, ThinkResult) and answering.backend == result.backend != "gpt"


async def test_async_router_over_a_given_channel_leaves_it_open(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        channel = aio_channel(stack.router.target, "tests")
        try:
            router = AsyncBackendRouter(stack.router.target, channel=channel, deadline=20)
            events = [e async for e in router.dispatch_stream(ROME, category="quick")]
            assert any(isinstance(e, TextDelta) for e in events)
            assert not any(isinstance(e, AttemptFailed) for e in events)
            answering = next(e for e in events if isinstance(e, Answering))
            assert answering == Answering("grok", "grok-3-mini")
            assert (await router.catalog()).backend("grok") is not None
            await router.close()
            # the channel belongs to whoever made it: still usable after the client closed
            again = AsyncBackendRouter(stack.router.target, channel=channel)
            assert (await again.dispatch(ROME)).backend == "gpt"
            assert channel.get_state() is not grpc.ChannelConnectivity.SHUTDOWN
        finally:
            await channel.close()
