"""join_room's current_users from the per-process presence cache (chat/events/presence_cache.py): reused, yet exact."""

import asyncio
import json
from typing import Any

import pytest
from channels.layers import get_channel_layer

from chat.events import groups, realtime
from chat.models import Connection, Presence
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import Client, connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

user_factory = database_sync_to_async(UserFactory)
room_factory = database_sync_to_async(RoomFactory)


async def joined_users(client: Client, room_id: int) -> list[str]:
    response = await client.request("join_room", pk=room_id)
    assert response["response_status"] == 200, response
    return [user["username"] for user in response["data"]["current_users"]]


async def test_join_responses_follow_local_joins_and_leaves() -> None:
    alice, bob, carol = [await user_factory(username=name) for name in ("alice", "bob", "carol")]
    room = await room_factory(host=await user_factory(username="host"))  # an owner may not leave (§5)
    async with connect(alice) as a, connect(bob) as b, connect(carol) as c:
        assert await joined_users(a, room.pk) == ["alice"]
        assert await joined_users(b, room.pk) == ["alice", "bob"]
        assert (await a.request("leave_room", pk=room.pk))["response_status"] == 200
        assert await joined_users(c, room.pk) == ["bob", "carol"]
        assert await joined_users(a, room.pk) == ["alice", "bob", "carol"]


@database_sync_to_async
def _other_process_joins(room_id: int, user: Any) -> None:
    """What another server process's join leaves in the database."""
    from django.utils import timezone

    other = Connection.objects.create(channel_name="conn.other-process", user=user, server_id="other", seen_at=timezone.now())
    Presence.objects.create(connection=other, room_id=room_id, user=user)


async def test_another_process_change_shows_once_its_push_arrives() -> None:
    alice, bob, dave = [await user_factory(username=name) for name in ("alice", "bob", "dave")]
    room = await room_factory(host=alice)
    async with connect(alice) as a, connect(bob) as b:
        assert await joined_users(a, room.pk) == ["alice"]
        await _other_process_joins(room.pk, dave)
        # The other process's presence push: its origin is not this process.
        users = [{"id": alice.pk, "username": "alice"}, {"id": dave.pk, "username": "dave"}]
        text = json.dumps({"action": "presence", "room": room.pk, "data": {"users": users}})
        push = {"type": groups.PRESENCE_EVENT, "text": text, "room": room.pk, "origin": "other", "group": groups.room_group(room.pk)}
        await get_channel_layer().group_send(groups.room_group(room.pk), push)
        while "dave" not in str(await a.next_push()):  # this process's own presence push may come first
            pass
        assert await joined_users(b, room.pk) == ["alice", "bob", "dave"]


def count_present_user_queries(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rooms whose present users are queried from here on, in order."""
    queried: list[int] = []
    original = realtime._present_users_of

    async def counting(room_id: int) -> Any:
        queried.append(room_id)
        return await original(room_id)

    monkeypatch.setattr(realtime, "_present_users_of", counting)
    return queried


async def test_a_join_reuses_the_list_instead_of_querying_it(monkeypatch: pytest.MonkeyPatch) -> None:
    users = [await user_factory(username=f"user{n}") for n in range(4)]
    room = await room_factory(host=users[0])
    queried = count_present_user_queries(monkeypatch)
    async with connect(users[0]) as a, connect(users[1]) as b, connect(users[2]) as c, connect(users[3]) as d:
        for n, client in enumerate((a, b, c, d)):
            assert await joined_users(client, room.pk) == [f"user{k}" for k in range(n + 1)]
    assert queried == [room.pk]  # the first join's; later joins add themselves to the kept list


async def test_joins_that_miss_the_list_together_share_one_query(monkeypatch: pytest.MonkeyPatch) -> None:
    users = [await user_factory(username=f"user{n}") for n in range(3)]
    room = await room_factory(host=users[0])
    queried: list[int] = []
    original = realtime._present_users_of

    async def slow_counting(room_id: int) -> Any:
        queried.append(room_id)
        await asyncio.sleep(0.2)  # the other joins arrive while this query runs
        return await original(room_id)

    async with connect(users[0]) as a, connect(users[1]) as b, connect(users[2]) as c:
        assert await joined_users(a, room.pk) == ["user0"]
        realtime._presence_cache().drop([room.pk])  # as another process's presence push does
        monkeypatch.setattr(realtime, "_present_users_of", slow_counting)
        for client, request_id in ((b, "join-b"), (c, "join-c")):
            await client.send({"action": "join_room", "request_id": request_id, "pk": room.pk})
        responses = [await b.response_to("join-b"), await c.response_to("join-c")]
        lists = [[user["username"] for user in response["data"]["current_users"]] for response in responses]
        assert lists[0] in (["user0", "user1"], ["user0", "user1", "user2"]) and lists[1] == ["user0", "user1", "user2"]
        assert queried == [room.pk]


async def test_joins_in_any_order_keep_the_list_in_user_order(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kept list takes each join at its place (in order of user id, as a query lists them), not only at the end.
    users = [await user_factory(username=f"user{n}") for n in range(5)]
    room = await room_factory(host=users[0])
    queried = count_present_user_queries(monkeypatch)
    async with connect(users[2]) as c, connect(users[0]) as a, connect(users[4]) as e, connect(users[1]) as b, connect(users[3]) as d:
        assert await joined_users(c, room.pk) == ["user2"]
        assert await joined_users(a, room.pk) == ["user0", "user2"]
        assert await joined_users(e, room.pk) == ["user0", "user2", "user4"]
        assert await joined_users(b, room.pk) == ["user0", "user1", "user2", "user4"]
        assert await joined_users(d, room.pk) == [f"user{n}" for n in range(5)]
        assert await joined_users(c, room.pk) == [f"user{n}" for n in range(5)]  # a repeated join changes nothing
    assert queried == [room.pk]
