"""A closed connection's consumer is freed at once, by reference counting, not left for the garbage collector.

The collector's full passes walk every live object: with 10,000 connections open each took
0.3-0.6 s of the event loop (bench/README.md, session 9). A consumer that refers to itself
(Channels stores `base_send` per instance as a bound method) is a reference cycle that only
those passes free, together with its user, scope and state.
"""

import gc
import weakref

import pytest

from chat.ws.consumer import RoomConsumer
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def consumers_alive() -> list[RoomConsumer]:
    # type(), not isinstance(): a dead weak proxy among the objects raises on isinstance().
    return [obj for obj in gc.get_objects() if type(obj) is RoomConsumer]


async def test_a_closed_connection_leaves_no_consumer_for_the_collector() -> None:
    alice = await database_sync_to_async(UserFactory)(username="alice")
    room = await database_sync_to_async(RoomFactory)(host=alice)
    gc.collect()
    gc.disable()  # from here on only reference counting frees anything
    try:
        earlier = {id(obj) for obj in consumers_alive()}  # another test's, still held by that test's leftovers
        async with connect(alice) as client:
            await client.request("join_room", pk=room.pk)
            await client.request("subscribe_to_messages_in_room", pk=room.pk)
            await client.request("create_message", message="hello", room=room.pk)
            ours = [weakref.ref(obj) for obj in consumers_alive() if id(obj) not in earlier]
            assert len(ours) == 1
        del client
        assert ours[0]() is None, "the closed connection's consumer is only reachable through a reference cycle"
    finally:
        gc.enable()
