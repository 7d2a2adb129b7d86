"""Layer events out of a server process in commit order, without holding up the thread that committed them.

Used by every event a service sends after its commit: the model observers' message and
room events (chat.events.observers) and the membership, read-state and room-end events
(chat.events.access).
"""

import asyncio
import logging
import os
import weakref
from collections import deque
from typing import Any

from asgiref.sync import SyncToAsync, async_to_sync
from channels.layers import get_channel_layer

from chat.ops import metrics

logger = logging.getLogger(__name__)


async def _group_send(group: str, message: dict[str, Any]) -> None:
    try:
        await get_channel_layer().group_send(group, {**message, "group": group})
    except Exception:  # the change is committed; a lost push must not turn it into an error
        metrics.channel_layer_error("group_send")
        logger.exception("group send to %s failed", group)


# Per event loop: events waiting to be sent, in commit order, and whether a task is sending them.
_outboxes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, deque[tuple[str, dict[str, Any]]]]" = weakref.WeakKeyDictionary()


def _enqueue(loop: asyncio.AbstractEventLoop, group: str, message: dict[str, Any]) -> None:
    """On the loop: queue the event; one task per loop sends the queue in order."""
    outbox = _outboxes.get(loop)
    if outbox is None:
        outbox = _outboxes[loop] = deque()
    outbox.append((group, message))
    if len(outbox) == 1:
        loop.create_task(_drain(outbox))


async def _drain(outbox: deque[tuple[str, dict[str, Any]]]) -> None:
    try:
        while outbox:
            group, message = outbox[0]
            await _group_send(group, message)
            outbox.popleft()  # only now: a new event meanwhile saw a non-empty queue and left the sending to us
    except asyncio.CancelledError:  # the loop is shutting down: what is left is lost with it
        outbox.clear()
        raise


def send(group: str, message: dict[str, Any]) -> None:
    """Send after the commit without holding up the caller.

    Services run on worker threads of a server process's event loop (chat.core.db, Django's
    sync views): the event is handed to that loop and the thread returns at once, where
    async_to_sync would hold a post, a join or a moderation request until the loop got to it. One
    sender per loop keeps the events of a process in commit order. Elsewhere (a management
    command, a sync test) the send is synchronous.
    """
    loop = getattr(SyncToAsync.threadlocal, "main_event_loop", None)
    if (
        loop is not None
        and getattr(SyncToAsync.threadlocal, "main_event_loop_pid", None) == os.getpid()
        and loop.is_running()
        and not loop.is_closed()
    ):
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # this thread runs no loop of its own: hand over
            loop.call_soon_threadsafe(_enqueue, loop, group, message)
            return
    async_to_sync(_group_send)(group, message)
