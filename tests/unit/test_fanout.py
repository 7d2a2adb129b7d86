"""The process fan-out (chat/events/fanout.py) and the database boundary (chat/core/db.py), below the consumer."""

import asyncio
import time
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

from chat.core.db import db_thread
from chat.events.fanout import LocalFanout

pytestmark = pytest.mark.asyncio


class Member:
    def __init__(self, name: str, *, broken: bool = False) -> None:
        self.channel_name = name
        self.broken = broken
        self.received: list[dict[str, Any]] = []

    async def room_event(self, message: dict[str, Any]) -> None:
        if self.broken:
            raise RuntimeError("this connection's handler fails")
        self.received.append(message)


async def until(condition: Any, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_one_layer_membership_per_group_and_every_local_member_gets_each_event() -> None:
    layer = InMemoryChannelLayer()
    fanout = LocalFanout(layer)
    first, broken, last = Member("a"), Member("b", broken=True), Member("c")
    for member in (first, broken, last):
        await fanout.add("room.1", member)
    assert list(layer.groups["room.1"]) == [fanout.channel]  # one layer channel, not three

    for n in range(3):
        await layer.group_send("room.1", {"type": "room.event", "group": "room.1", "n": n})
    # A member whose handler raises costs the others nothing, and order is kept.
    await until(lambda: len(last.received) == 3)
    assert [m["n"] for m in first.received] == [m["n"] for m in last.received] == [0, 1, 2]

    await fanout.discard("room.1", first)
    assert list(layer.groups["room.1"]) == [fanout.channel]  # others still listen
    await fanout.discard("room.1", broken)
    await fanout.discard("room.1", last)
    assert "room.1" not in layer.groups  # the last one out leaves the group
    await layer.group_send("room.1", {"type": "room.event", "group": "room.1", "n": 9})
    await asyncio.sleep(0.05)
    assert len(first.received) == 3


async def test_members_that_join_together_wait_for_the_one_group_add() -> None:
    layer = InMemoryChannelLayer()
    fanout = LocalFanout(layer)
    members = [Member(str(n)) for n in range(20)]
    await asyncio.gather(*(fanout.add("room.2", member) for member in members))
    await layer.group_send("room.2", {"type": "room.event", "group": "room.2"})
    await until(lambda: all(member.received for member in members))


async def test_database_calls_from_async_code_overlap() -> None:
    """Channels' thread-sensitive database_sync_to_async would run these one after the other (0.6 s)."""

    @db_thread
    def slow_query() -> None:
        time.sleep(0.3)

    started = time.monotonic()
    await asyncio.gather(slow_query(), slow_query())
    assert time.monotonic() - started < 0.5
