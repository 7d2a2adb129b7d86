"""The sync/async boundary: how async code (consumers, background tasks) reaches the database.

Channels' `database_sync_to_async` is thread-sensitive: every call of every connection
in the process runs on one shared thread, one after the other, so a crowd joining a
room waits for each other's round trips to PostgreSQL. The calls here run on the
event loop's worker pool instead, each on a pooled connection (mysite/settings.py),
so their waits overlap. Each call is self-contained (it opens and ends its own
transactions), which is what makes this safe; a connection's own calls still run one
at a time, since a consumer awaits each before handling its next frame.
"""

from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar

from channels.db import DatabaseSyncToAsync
from djangochannelsrestframework.decorators import action

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def db_thread(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`func` as a coroutine function running on a worker thread (with Django's connection hygiene)."""
    run: Callable[P, Coroutine[Any, Any, R]] = DatabaseSyncToAsync(func, thread_sensitive=False)
    return run


def db_action(
    **kwargs: Any,
) -> Callable[[Callable[Concatenate[S, P], R]], Callable[Concatenate[S, P], Coroutine[Any, Any, R]]]:
    """DCRF's `@action()` for a sync action, run through db_thread rather than the shared thread."""

    def decorator(func: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
        run = db_thread(func)

        async def run_action(self: S, *args: P.args, **params: P.kwargs) -> R:
            return await run(self, *args, **params)

        run_action.__name__, run_action.__qualname__, run_action.__doc__ = func.__name__, func.__qualname__, func.__doc__
        # DCRF's action() marks an async function and returns it unchanged (untyped library).
        marked: Callable[Concatenate[S, P], Coroutine[Any, Any, R]] = action(**kwargs)(run_action)
        return marked

    return decorator


# While PostgreSQL is down, psycopg's pool retries a lost connection after 1, 2, 4, 8...
# seconds: after an outage of 7 s the next try may come 8 s after the database is back.
# §3 wants presence exact within 5 s of its return, so the pool retries every second.
POOL_RECONNECT_INTERVAL_SECONDS = 1.0


def retry_pool_connections_steadily() -> None:
    """Make the PostgreSQL pool retry lost connections at a steady interval instead of backing off."""
    from psycopg_pool.base import AttemptWithBackoff

    AttemptWithBackoff.INITIAL_DELAY = POOL_RECONNECT_INTERVAL_SECONDS
    AttemptWithBackoff.DELAY_BACKOFF = 1.0
