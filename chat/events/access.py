"""Membership, access and read-state events (api_docs/PROTOCOL.md §5-§6), sent after commit by the services.

Each goes through the channel layer to every process, so every open connection of
the user learns at once that it gained or lost a room: a lost room ends that
connection's subscriptions (`subscription_ended`), a gained one joins its inbox.
Connections turn these into client pushes themselves (chat/ws/inbox.py).
"""

import asyncio
import logging
import weakref
from collections import deque
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from chat.core.db import on_commit, served_loop
from chat.events import groups
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


def _send(group: str, message: dict[str, Any]) -> None:
    """Send after the commit without holding up the caller.

    Services run on worker threads of a server process's event loop (chat.core.db, Django's
    sync views): the event is handed to that loop and the thread returns at once, where
    async_to_sync would hold a join or a moderation request for a Redis round trip. One
    sender per loop keeps the events of a process in commit order. Elsewhere (a management
    command, a sync test) the send is synchronous.
    """
    loop = served_loop()
    if loop is not None:  # hand over
        loop.call_soon_threadsafe(_enqueue, loop, group, message)
        return
    async_to_sync(_group_send)(group, message)


def _send_on_commit(group: str, message: dict[str, Any]) -> None:
    on_commit(lambda: _send(group, message))


def membership_changed(*, user_id: int, room_id: int, role: str | None, reason: str | None = None, visible: bool = True) -> None:
    """Tell the user's connections their role in the room changed (role None: no longer a member; visible: they can still see it)."""
    message = {"type": groups.MEMBERSHIP_EVENT, "room": room_id, "role": role, "reason": reason, "visible": visible}
    _send_on_commit(groups.user_group(user_id), message)


def read_moved(*, user_ids: list[int], room_id: int, reader: dict[str, Any], last_read_seq: int) -> None:
    """Tell these users' connections that `reader` has read the room up to last_read_seq."""
    message = {"type": groups.READ_EVENT, "room": room_id, "reader": reader, "last_read_seq": last_read_seq}
    for user_id in user_ids:
        _send_on_commit(groups.user_group(user_id), message)


def room_ended(*, room_id: int) -> None:
    """Tell every connection subscribed to the room's messages (streams and inboxes) that the room was deleted."""
    _send_on_commit(groups.room_messages_group(room_id), {"type": groups.ROOM_ENDED_EVENT, "room": room_id})
