"""The sync/async boundary: how async code (consumers, background tasks) reaches the database.

Channels' `database_sync_to_async` is thread-sensitive: every call of every connection
in the process runs on one shared thread, one after the other, so a crowd joining a
room waits for each other's round trips to PostgreSQL. The calls here run on the
event loop's worker pool instead, each on a pooled connection (mysite/settings.py),
so their waits overlap. Each call is self-contained (it opens and ends its own
transactions), which is what makes this safe; a connection's own calls still run one
at a time, since a consumer awaits each before handling its next frame.
"""

from collections.abc import Callable
from typing import Any

from channels.db import DatabaseSyncToAsync
from djangochannelsrestframework.decorators import action


def db_thread(func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` as a coroutine function running on a worker thread (with Django's connection hygiene)."""
    return DatabaseSyncToAsync(func, thread_sensitive=False)


def db_action(**kwargs: Any) -> Callable[[Callable[..., Any]], Any]:
    """DCRF's `@action()` for a sync action, run through db_thread rather than the shared thread."""

    def decorator(func: Callable[..., Any]) -> Any:
        run = db_thread(func)

        async def run_action(self: Any, *args: Any, **params: Any) -> Any:
            return await run(self, *args, **params)

        run_action.__name__, run_action.__qualname__, run_action.__doc__ = func.__name__, func.__qualname__, func.__doc__
        return action(**kwargs)(run_action)

    return decorator
