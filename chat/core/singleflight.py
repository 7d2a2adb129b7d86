"""Concurrent identical reads share one call, and nobody gets a read older than their request.

When 2,000 clients reconnect at once with the same `after_seq`, each would read and
encode the same page of missed messages: the reconnect storm's cost was almost all
that. Sharing the read of a call already in flight would be wrong, though: it may
have begun before the caller subscribed, and then miss a message stored in between
(a gap the contract forbids). So a caller only ever joins a call that has not begun
yet: while one runs, the callers arriving meanwhile wait for the next one, which
starts as soon as the running one ends. Every caller thus gets what a read of its
own, made a little later, would have returned.
"""

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Calls(Generic[K, V]):
    """The calls of one event loop: the one running per key, and the one queued behind it."""

    def __init__(self) -> None:
        self.running: dict[K, asyncio.Task[V]] = {}
        self.queued: dict[K, asyncio.Future[V]] = {}


class SingleFlight(Generic[K, V]):
    """`fetch(key)` shared by the concurrent callers of a key, each served by a call begun after it asked."""

    def __init__(self, fetch: Callable[[K], Awaitable[V]]) -> None:
        self._fetch = fetch
        # Per event loop: futures belong to one, and a loop closed mid-call (a test's)
        # must not leave behind a "running" call that never ends.
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Calls[K, V]] = weakref.WeakKeyDictionary()

    async def __call__(self, key: K) -> V:
        loop = asyncio.get_running_loop()
        calls = self._loops.get(loop)
        if calls is None:
            calls = self._loops[loop] = _Calls()
        result = calls.queued.get(key)
        if result is None:
            result = loop.create_future()
            if key in calls.running:
                calls.queued[key] = result
            else:
                self._start(calls, key, result)
        # Shielded: one caller going away (its connection closed) must not cancel the others' read.
        return await asyncio.shield(result)

    def _start(self, calls: _Calls[K, V], key: K, result: asyncio.Future[V]) -> None:
        task: asyncio.Task[V] = asyncio.ensure_future(self._fetch(key))
        calls.running[key] = task
        task.add_done_callback(lambda _: self._finished(calls, key, task, result))

    def _finished(self, calls: _Calls[K, V], key: K, task: asyncio.Task[V], result: asyncio.Future[V]) -> None:
        del calls.running[key]
        if task.cancelled():
            result.cancel()
        elif (error := task.exception()) is not None:
            result.set_exception(error)
        else:
            result.set_result(task.result())
        queued = calls.queued.pop(key, None)
        if queued is not None:
            self._start(calls, key, queued)
