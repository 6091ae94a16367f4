"""``tests.stack.running_stack`` on a background thread with its own event loop, for blocking
clients (the sync ``BackendRouter``, Evennia's synchronous tests)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from tests.stack import Stack, running_stack

T = TypeVar("T")


class StackThread:
    """Start with :meth:`start`, stop with :meth:`stop` (or use it as a context manager)."""

    def __init__(self, **stack_kwargs: Any):
        self._kwargs = stack_kwargs
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="uniwizard-stack",
                                        daemon=True)
        self._tmp = Path(tempfile.mkdtemp(prefix="uniwizard-stack-"))
        self._stop: asyncio.Event | None = None
        self._done: asyncio.Future[None] | None = None
        self.stack: Stack | None = None

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the stack's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _serve(self, ready: asyncio.Future[Stack]) -> None:
        self._stop = asyncio.Event()
        try:
            async with running_stack(self._tmp, **self._kwargs) as stack:
                ready.set_result(stack)
                await self._stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    def start(self, timeout: float = 30.0) -> Stack:
        self._thread.start()

        async def begin() -> Stack:
            ready: asyncio.Future[Stack] = self._loop.create_future()
            self._done = asyncio.ensure_future(self._serve(ready))
            return await ready

        self.stack = self.run(begin(), timeout)
        return self.stack

    def stop(self, timeout: float = 30.0) -> None:
        async def end() -> None:
            if self._stop is not None:
                self._stop.set()
            if self._done is not None:
                await self._done
            # whatever the services left behind (watch streams, pollers) ends here, not in GC
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in rest:
                t.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await self._loop.shutdown_asyncgens()

        try:
            if self._thread.is_alive():
                self.run(end(), timeout)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
            self._loop.close()
            shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
