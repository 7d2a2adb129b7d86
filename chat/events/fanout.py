"""Fan-out inside the process: one channel-layer membership per group, local delivery to consumers.

Stock Channels gives every consumer its own layer channel: an event for a room of
1,000 connections is decoded 1,000 times, queued 1,000 times and wakes 1,000 consumer
tasks before a single frame is written. Here each process joins a group once, on one
channel of its own, and a single reader task hands each event to the group's local
consumers by calling their handler (the same `type` -> method dispatch Channels does).
Handlers called this way must not wait on anything but the socket: database work they
need goes to a task of their own (see chat.ws.streams.MessageStream.deliver). A handler
may be a plain function: the busiest one (a message to every subscriber of a room) is,
so a frame costs no coroutine (chat.ws.protocol.ProtocolConsumer.push).

Events of one group reach each consumer in the order the layer delivered them, as
with a channel per consumer. Works with any channel layer (in-memory, core, pub/sub).
"""

import asyncio
import logging
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from channels.consumer import get_handler_name
from channels.layers import BaseChannelLayer, get_channel_layer

from chat.ops import metrics

logger = logging.getLogger(__name__)


class Member(Protocol):
    """What the fan-out needs of a consumer: Channels' own handler lookup by message type."""

    channel_name: str


class LocalFanout:
    """This process's (event loop's) layer memberships and the consumers behind each group."""

    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer
        self.members: dict[str, dict[Member, None]] = {}  # an ordered set per group
        # group -> the group_add in flight or done: later joiners wait for it too, so
        # nobody returns before events of the group really reach this process.
        self.joined: dict[str, asyncio.Task[None]] = {}
        self.channel: str | None = None
        self.reader: asyncio.Task[None] | None = None  # held here so the task is not garbage-collected
        self.channel_ready: asyncio.Lock = asyncio.Lock()
        # Event type -> a function of this process (not of a consumer) called once per such event.
        self.listeners: dict[str, Callable[[dict[str, Any]], None]] = {}

    async def add(self, group: str, member: Member) -> None:
        members = self.members.setdefault(group, {})
        members[member] = None
        if group not in self.joined:
            self.joined[group] = asyncio.ensure_future(self._join(group))
        try:
            await asyncio.shield(self.joined[group])
        except BaseException:
            self._forget(group, member)
            raise

    async def discard(self, group: str, member: Member) -> None:
        if self._forget(group, member) and self.channel is not None:
            await self.layer.group_discard(group, self.channel)

    def _forget(self, group: str, member: Member) -> bool:
        """Drop the member; True when the group has no local member left."""
        members = self.members.get(group)
        if members is None or member not in members:
            return False
        del members[member]
        if members:
            return False
        del self.members[group]
        join = self.joined.pop(group, None)
        if join is not None and not join.done():
            join.cancel()
        return True

    async def _join(self, group: str) -> None:
        await self.layer.group_add(group, await self._channel())

    async def _channel(self) -> str:
        async with self.channel_ready:
            if self.channel is None:
                self.channel = await self.layer.new_channel("fanout.")
                self.reader = asyncio.ensure_future(self._read(self.channel))
        return self.channel

    async def _read(self, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("fan-out receive failed")
                await asyncio.sleep(1)
                continue
            await self.deliver(message)

    async def deliver(self, message: dict[str, Any]) -> None:
        """Hand one layer message to every local member of its group."""
        listener = self.listeners.get(message.get("type", ""))
        if listener is not None:
            try:
                listener(message)
            except Exception:
                logger.exception("the process's listener of %s failed", message["type"])
        members = self.members.get(message.get("group", ""))
        if not members:
            return
        handler_name = get_handler_name(message)
        sent = 0
        for member in list(members):
            try:
                # A handler may return how many frames it sent: those are counted here, once per event.
                frames = getattr(member, handler_name)(message)
                if frames is not None and frames.__class__ is not int:  # a coroutine handler's
                    frames = await frames
                sent += frames or 0
            except Exception:
                # One broken connection must not cost the others their events.
                logger.exception("delivering %s to %s failed", message["type"], member.channel_name)
        if sent:
            try:
                # Per event, not per frame: a histogram observation per frame cost ~5% of a fan-out.
                metrics.events_sent(message.get("action", ""), sent, message.get("committed_at"))
            except Exception:  # a metric must never stop the reader (and so every later event)
                logger.exception("counting %s failed", message["type"])


_fanouts: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LocalFanout]" = weakref.WeakKeyDictionary()


def local_fanout() -> LocalFanout:
    """The fan-out of this event loop, on the default channel layer (tests run one loop per test)."""
    loop = asyncio.get_running_loop()
    if loop not in _fanouts:
        _fanouts[loop] = LocalFanout(get_channel_layer())
    return _fanouts[loop]
