"""The sync/async boundary: how async code (consumers, background tasks) reaches the database.

Channels' `database_sync_to_async` is thread-sensitive: every call of every connection
in the process runs on one shared thread, one after the other, so a crowd joining a
room waits for each other's round trips to PostgreSQL. The calls here run on the
event loop's worker pool instead, each on a pooled connection (mysite/settings.py),
so their waits overlap. Each call is self-contained (it opens and ends its own
transactions), which is what makes this safe; a connection's own calls still run one
at a time, since a consumer awaits each before handling its next frame.
"""

import asyncio
import contextlib
import contextvars
import functools
import os
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from asgiref.sync import SyncToAsync, async_to_sync
from django.db import close_old_connections, connection, transaction
from djangochannelsrestframework.decorators import action
from psycopg import pq

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def db_thread(func: Callable[P, R]) -> Callable[P, Coroutine[Any, Any, R]]:
    """`func` as a coroutine function running on a worker thread (with Django's connection hygiene)."""

    @functools.wraps(func)
    def with_connection_hygiene(loop: asyncio.AbstractEventLoop, *args: P.args, **kwargs: P.kwargs) -> R:
        # What asgiref's SyncToAsync tells a worker thread, so that async_to_sync() in
        # there (and served_loop) finds the loop that called it, and no task of an
        # earlier call of asgiref's on this thread takes its cancellation.
        SyncToAsync.threadlocal.main_event_loop = loop
        SyncToAsync.threadlocal.main_event_loop_pid = os.getpid()
        SyncToAsync.threadlocal.task_context = None
        # Here, not around the call as Channels' DatabaseSyncToAsync does: `func` runs in
        # a copy of the caller's context, and Django's connections are context-local, so
        # a connection opened in there was invisible to a close_old_connections() outside
        # it. Each such call left its worker thread holding a pooled connection it never
        # gave back.
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    @functools.wraps(func)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        # The loop's executor, in a copy of the caller's context, as SyncToAsync(thread_sensitive=False)
        # runs it, without what we do not use of it (the context copied back, the shield, the
        # task bookkeeping): a quarter of the CPU of a thread hop (bench/README.md, session 7).
        loop = asyncio.get_running_loop()
        call = functools.partial(contextvars.copy_context().run, with_connection_hygiene, loop, *args, **kwargs)
        return await loop.run_in_executor(None, call)

    return run


def on_commit(callback: Callable[[], None]) -> None:
    """transaction.on_commit, without a database connection for it when none is open.

    Outside an atomic block whatever was written is committed already (Django's
    autocommit), so the callback runs now, as Django's would; but Django's asks the
    connection whether it autocommits first, which checks a pooled connection out (and the
    thread hop gives it back) for nothing: statements run by fetch_prepared leave
    Django's connection closed.
    """
    if connection.in_atomic_block:
        transaction.on_commit(callback)
    else:
        callback()


# The coroutines a db_action's thread left for its event loop to await (await_after_thread).
_after_thread: contextvars.ContextVar[list[Coroutine[Any, Any, None]] | None] = contextvars.ContextVar("after_thread", default=None)


def await_after_thread(coroutine_function: Callable[P, Coroutine[Any, Any, None]], *args: P.args, **kwargs: P.kwargs) -> None:
    """From sync code, have a coroutine run on the served loop, and wait for it.

    In a db_action's thread the action awaits it on its loop as soon as the thread is
    done, before it answers: the client still waits for it (so a connection cannot
    outrun the publishing of its own events), without the thread waiting on the loop in
    between: that round trip of hand-overs was a third of the loop's samples in a profile
    of the post (bench/README.md, session 5). An HTTP request's view, the same before its
    response starts (publishing_before_response).
    Anywhere else: run_on_loop, now.
    """
    pending = _after_thread.get()
    if pending is None:
        run_on_loop(coroutine_function, *args, **kwargs)
    else:
        pending.append(coroutine_function(*args, **kwargs))


@contextlib.contextmanager
def collecting_after_thread() -> Iterator[list[Coroutine[Any, Any, None]]]:
    """Within it (and in the threads it calls into, which run in copies of its context), await_after_thread collects."""
    pending: list[Coroutine[Any, Any, None]] = []
    token = _after_thread.set(pending)
    try:
        yield pending
    finally:
        _after_thread.reset(token)


async def await_collected(pending: list[Coroutine[Any, Any, None]]) -> None:
    """Await what await_after_thread collected, in order (shielded by the caller where it must finish)."""
    while pending:
        await pending.pop(0)


def _collecting_after_thread(func: Callable[P, R]) -> Callable[P, tuple[R | None, BaseException | None, list[Coroutine[Any, Any, None]]]]:
    """`func`, answering (its result or None, its exception or None, what it left for the loop)."""

    def run(*args: P.args, **kwargs: P.kwargs) -> tuple[R | None, BaseException | None, list[Coroutine[Any, Any, None]]]:
        with collecting_after_thread() as pending:
            try:
                return func(*args, **kwargs), None, pending
            except Exception as exc:  # what was committed before it still gets its events
                return None, exc, pending

    return run


def db_action(
    **kwargs: Any,
) -> Callable[[Callable[Concatenate[S, P], R]], Callable[Concatenate[S, P], Coroutine[Any, Any, R]]]:
    """DCRF's `@action()` for a sync action, run through db_thread rather than the shared thread.

    What the action's thread left for the loop (await_after_thread: the events of what it
    committed) is awaited before the action answers, even when it failed.
    """

    def decorator(func: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
        run = db_thread(_collecting_after_thread(func))

        async def run_then_await_pending(self: S, *args: P.args, **params: P.kwargs) -> R:
            result, error, pending = await run(self, *args, **params)
            await await_collected(pending)
            if error is not None:
                raise error
            return result  # type: ignore[return-value]  # None only with an error

        async def run_action(self: S, *args: P.args, **params: P.kwargs) -> R:
            # Shielded: a connection closing mid-action must not strand the events of what it committed.
            return await asyncio.shield(run_then_await_pending(self, *args, **params))

        run_action.__name__, run_action.__qualname__, run_action.__doc__ = func.__name__, func.__qualname__, func.__doc__
        # DCRF's action() marks an async function and returns it unchanged (untyped library).
        marked: Callable[Concatenate[S, P], Coroutine[Any, Any, R]] = action(**kwargs)(run_action)
        return marked

    return decorator


def served_loop() -> asyncio.AbstractEventLoop | None:
    """The running event loop of this process that this worker thread serves (db_thread, Django's sync views), if any."""
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if (
        loop is None
        or getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) != os.getpid()
        or not loop.is_running()
        or loop.is_closed()
    ):
        return None
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # this thread runs no loop of its own
        return loop
    return None


def run_on_loop(coroutine_function: Callable[P, Coroutine[Any, Any, R]], *args: P.args, **kwargs: P.kwargs) -> R:
    """From sync code, run a coroutine on the served loop and wait for its result (async_to_sync elsewhere).

    async_to_sync does the same with more machinery (an executor for callbacks into this
    thread, context copied both ways), which none of our calls need: per event of a busy
    room that machinery cost as much as the publish itself.
    """
    loop = served_loop()
    if loop is None:
        return async_to_sync(coroutine_function)(*args, **kwargs)
    return asyncio.run_coroutine_threadsafe(coroutine_function(*args, **kwargs), loop).result()


def fetch_prepared(sql: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """The first row of a PostgreSQL statement prepared once per connection and sent with its parameters apart.

    Django's psycopg cursors bind parameters into the SQL text on the client and never
    prepare: for a hot statement, such as the post (chat_post_message), that doubled its
    client CPU. Errors are Django's, as from a Django cursor.
    """
    rows = fetch_all_prepared(sql, params)
    return rows[0] if rows else None


def fetch_all_prepared(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """Every row of a statement prepared as fetch_prepared's (and like it, not in Django's query log).

    Outside a transaction, and when this thread has no connection open, the statement
    borrows a connection from Django's pool for itself: opening and closing Django's
    connection around one statement (its parameters rebuilt, its autocommit and time zone
    checked, its state reset) cost the server as much CPU as the statement itself.
    """
    pool = getattr(connection, "pool", None)
    with connection.wrap_database_errors:
        if pool is None or connection.in_atomic_block or connection.connection is not None:
            connection.ensure_connection()
            return _fetch_all(connection.connection, sql, params)
        pool.open()  # as Django's first checkout does, if nothing opened it yet
        borrowed = pool.getconn()
        try:
            # Django sets autocommit as it checks a connection out; one it never checked out
            # may not have it yet, and the pool would roll its statement back.
            if not borrowed.autocommit:
                borrowed.autocommit = True
            return _fetch_all(borrowed, sql, params)
        finally:
            pool.putconn(borrowed)


def _fetch_all(db: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    # Django's connection has ClientCursor as its cursor factory: ask for a server-binding one.
    with psycopg.Cursor(db) as cursor:
        cursor.execute(sql, params, prepare=True)
        # Not `cursor.description`, which builds a Column object per column on each call.
        result = cursor.pgresult
        return cursor.fetchall() if result is not None and result.status == pq.ExecStatus.TUPLES_OK else []


# While PostgreSQL is down, psycopg's pool retries a lost connection after 1, 2, 4, 8...
# seconds: after an outage of 7 s the next try may come 8 s after the database is back.
# §3 wants presence exact within 5 s of its return, so the pool retries every second.
POOL_RECONNECT_INTERVAL_SECONDS = 1.0


def retry_pool_connections_steadily() -> None:
    """Make the PostgreSQL pool retry lost connections at a steady interval instead of backing off."""
    from psycopg_pool.base import AttemptWithBackoff

    AttemptWithBackoff.INITIAL_DELAY = POOL_RECONNECT_INTERVAL_SECONDS
    AttemptWithBackoff.DELAY_BACKOFF = 1.0
