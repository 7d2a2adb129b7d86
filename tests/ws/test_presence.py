"""Presence per user, typing and online-user pushes (api_docs/PROTOCOL.md §2 Pushes, §3 Presence)."""

from typing import Any

import pytest

from chat.models import Connection, Presence
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import Client, connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

user_factory = database_sync_to_async(UserFactory)
room_factory = database_sync_to_async(RoomFactory)


async def presence_users(client: Client, room_id: int) -> list[str]:
    push = await client.next_push()
    assert push["action"] == "presence" and push["room"] == room_id, push
    assert set(push) == {"action", "room", "data"}
    return [user["username"] for user in push["data"]["users"]]


async def test_presence_is_per_user_across_connections() -> None:
    alice, bob = await user_factory(username="alice"), await user_factory(username="bob")
    room = await room_factory(host=alice)
    async with connect(alice) as a1:
        await a1.request("join_room", pk=room.pk)
        assert await presence_users(a1, room.pk) == ["alice"]
        async with connect(bob) as b:
            joined = await b.request("join_room", pk=room.pk)
            assert [u["username"] for u in joined["data"]["current_users"]] == ["alice", "bob"]
            assert await presence_users(a1, room.pk) == ["alice", "bob"]
            assert await presence_users(b, room.pk) == ["alice", "bob"]
            async with connect(alice) as a2:
                await a2.request("join_room", pk=room.pk)  # alice was present already: no change, no push
                await b.assert_silent()
            await b.assert_silent()  # a2 closed but a1 still holds alice's presence
        assert await presence_users(a1, room.pk) == ["alice"]  # bob disconnected
        await a1.request("leave_room", pk=room.pk)
        await a1.assert_silent()
    assert not await database_sync_to_async(Presence.objects.exists)()
    assert not await database_sync_to_async(Connection.objects.exists)()


async def test_message_subscribers_get_presence_and_typing_but_typist_does_not() -> None:
    alice, bob, carol = await user_factory(username="alice"), await user_factory(username="bob"), await user_factory(username="carol")
    room = await room_factory(host=alice)
    async with connect(alice) as a, connect(alice) as a_other, connect(bob) as b, connect(carol) as watcher:
        assert (await a.request("typing", pk=room.pk))["response_status"] == 403  # not present yet
        assert (await a.request("typing", pk=999999))["response_status"] == 404
        await watcher.request("subscribe_to_messages_in_room", pk=room.pk, request_id="w")
        await a.request("join_room", pk=room.pk)
        await a_other.request("join_room", pk=room.pk)
        await b.request("join_room", pk=room.pk)
        for client in (a, a_other, b, watcher):
            while True:  # drain presence pushes until bob is listed
                if "bob" in await presence_users(client, room.pk):
                    break
        assert (await a.request("typing", pk=room.pk))["response_status"] == 200
        for client in (b, watcher):
            push = await client.next_push()
            assert push == {"action": "typing", "room": room.pk, "data": {"user": {"id": alice.pk, "username": "alice"}}}
        await a.assert_silent()
        await a_other.assert_silent()


async def test_online_users_subscription() -> None:
    alice, bob = await user_factory(username="alice"), await user_factory(username="bob")
    async with connect(alice) as a:
        response = await a.request("subscribe_to_online_users", request_id="online")
        assert response["data"] == {"users": [{"id": alice.pk, "username": "alice"}]}
        async with connect(bob):
            push = await a.next_push()
            assert push == {
                "action": "user_status",
                "request_id": "online",
                "data": {"user": {"id": bob.pk, "username": "bob"}, "online": True},
            }
            async with connect(bob):
                await a.assert_silent()  # bob's second connection changes nothing
            await a.assert_silent()
        push = await a.next_push()
        assert push["data"] == {"user": {"id": bob.pk, "username": "bob"}, "online": False}


async def test_presence_shows_in_room_objects(django_user_model: Any) -> None:
    alice = await user_factory(username="alice")
    room = await room_factory(host=alice)
    async with connect(alice) as a:
        await a.request("join_room", pk=room.pk)
        listed = await a.request("list")
        assert listed["data"]["results"][0]["current_users"] == [{"id": alice.pk, "username": "alice"}]
    async with connect(alice) as a:
        retrieved = await a.request("retrieve", pk=room.pk)
        assert retrieved["data"]["current_users"] == []


async def test_join_room_answers_the_room_as_retrieve_does() -> None:
    """join_room's Room (read with the join's checks in one query) is §1 Room as `retrieve` gives it, after the join."""
    from chat.core import services

    host, alice, bob = [await user_factory(username=name) for name in ("host", "alice", "bob")]
    room = await room_factory(host=host)
    async with connect(alice) as a, connect(bob) as b:
        joined = await a.request("join_room", pk=room.pk)  # an empty room; alice is a newcomer
        assert joined["data"] == (await a.request("retrieve", pk=room.pk))["data"]
        assert joined["data"]["member_count"] == 2 and joined["data"]["last_message"] is None
        message, _ = await database_sync_to_async(services.message_store)(room_id=room.pk, author=host, text="first")
        joined = await b.request("join_room", pk=room.pk)  # a last message without reactions
        assert joined["data"]["last_message"]["id"] == message.pk and joined["data"]["last_message"]["reactions"] == []
        assert joined["data"] == (await b.request("retrieve", pk=room.pk))["data"]
        await database_sync_to_async(services.reaction_add)(message_id=message.pk, user=bob, emoji="👍")
        joined = await a.request("join_room", pk=room.pk)  # a member again: member_count unchanged
        assert joined["data"]["last_message"]["reactions"] == [{"emoji": "👍", "count": 1, "user_ids": [bob.pk]}]
        assert joined["data"]["member_count"] == 3
        assert joined["data"] == (await a.request("retrieve", pk=room.pk))["data"]
        # The newest message deleted: the last message is the one before it, not the room's last seq.
        newest, _ = await database_sync_to_async(services.message_store)(room_id=room.pk, author=host, text="second")
        await database_sync_to_async(services.message_delete)(message=newest, user=host)
        joined = await b.request("join_room", pk=room.pk)
        assert joined["data"]["last_message"]["id"] == message.pk
        assert joined["data"] == (await b.request("retrieve", pk=room.pk))["data"]


async def test_a_status_change_from_a_process_of_the_earlier_version_is_pushed_too() -> None:
    """Before batching, a users.status layer event carried one change as "data" (a rolling restart mixes both)."""
    from channels.layers import get_channel_layer

    from chat.events import groups

    alice, bob = await user_factory(username="alice"), await user_factory(username="bob")
    async with connect(alice) as a:
        await a.request("subscribe_to_online_users", request_id="online")
        data = {"user": {"id": bob.pk, "username": "bob"}, "online": True}
        event = {"type": groups.USER_STATUS_EVENT, "data": data, "group": groups.ONLINE_USERS_GROUP}
        await get_channel_layer().group_send(groups.ONLINE_USERS_GROUP, event)
        assert await a.next_push() == {"action": "user_status", "request_id": "online", "data": data}


@database_sync_to_async
def presence_of_a_dead_process(user: Any, room_id: int) -> None:
    """What a process that crashed leaves until the sweep: a presence on a connection it stopped renewing."""
    from datetime import timedelta

    from django.utils import timezone

    stale = Connection.objects.create(channel_name="conn.dead", user=user, server_id="dead", seen_at=timezone.now() - timedelta(hours=1))
    Presence.objects.create(connection=stale, room_id=room_id, user=user)


async def test_a_presence_left_by_a_dead_process_does_not_make_a_join_a_non_change() -> None:
    alice, bob = await user_factory(username="alice"), await user_factory(username="bob")
    room = await room_factory(host=bob)
    await presence_of_a_dead_process(alice, room.pk)
    async with connect(bob) as b:
        await b.request("join_room", pk=room.pk)
        assert await presence_users(b, room.pk) == ["bob"]  # the dead connection's alice is not shown
        async with connect(alice) as a:
            await a.request("join_room", pk=room.pk)
            assert await presence_users(b, room.pk) == ["alice", "bob"]  # so her join is a change, and pushed
