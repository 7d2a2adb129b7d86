"""Message and room-instance streams: tagging, copies per request_id, resume with after_seq, HTTP fan-out."""

import asyncio
from typing import Any

import pytest

from chat.core import services
from chat.models import Room
from tests.conftest import client_for
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import Client, connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

user_factory = database_sync_to_async(UserFactory)
room_factory = database_sync_to_async(RoomFactory)


@database_sync_to_async
def store(room: Room, author: Any, text: str) -> dict[str, Any]:
    from chat.core.serializers import MessageSerializer

    return MessageSerializer(services.message_store(room_id=room.pk, author=author, text=text)[0]).data


def pooled_connections_held() -> int:
    """Connections of this process's PostgreSQL pool that are checked out (0 without a pool)."""
    from django.db import connection

    pool = getattr(connection, "pool", None)
    if pool is None:
        return 0
    stats = pool.get_stats()
    return int(stats["pool_size"] - stats.get("pool_available", 0))


async def message_events(client: Client, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < count:
        push = await client.next_push()
        if push["action"] != "presence":
            events.append(push)
    return events


async def test_two_subscriptions_on_one_connection_get_their_own_copies() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    async with connect(host) as h:
        await h.request("subscribe_to_messages_in_room", pk=room.pk, request_id="one")
        await h.request("subscribe_to_messages_in_room", pk=room.pk, request_id=2)
        stored = await store(room, host, "hi")
        events = await message_events(h, 2)
        assert sorted(str(e["request_id"]) for e in events) == ["2", "one"]
        assert all(e["data"] == stored and e["pk"] == stored["id"] and e["action"] == "create" for e in events)
        assert (await h.request("unsubscribe_from_messages_in_room", pk=room.pk, request_id="one"))["response_status"] == 200
        assert (await h.request("unsubscribe_from_messages_in_room", pk=room.pk, request_id="one"))["response_status"] == 403
        await store(room, host, "again")
        [event] = await message_events(h, 1)
        assert event["request_id"] == 2
        await h.assert_silent()


async def test_update_and_delete_events() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    async with connect(host) as h:
        await h.request("subscribe_to_messages_in_room", pk=room.pk, request_id="s")
        await h.request("join_room", pk=room.pk)
        posted = (await h.request("create_message", message="v1"))["data"]
        await h.request("update_message", pk=posted["id"], message="v2")
        await h.request("delete_message", pk=posted["id"])
        created, updated, deleted = await message_events(h, 3)
        assert created["action"] == "create" and created["data"]["text"] == "v1"
        assert updated["action"] == "update" and updated["data"]["text"] == "v2" and updated["data"]["edited_at"]
        assert deleted["action"] == "delete" and deleted["pk"] == posted["id"]
        assert {"id", "room", "seq"} <= set(deleted["data"])


async def test_resume_with_after_seq_replays_then_goes_live_without_gap_or_duplicate() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    for i in range(1, 6):
        await store(room, host, f"m{i}")
    async with connect(host) as h:
        response = await h.request("subscribe_to_messages_in_room", pk=room.pk, request_id="r", after_seq=2)
        assert response["response_status"] == 200
        replayed = await message_events(h, 3)
        assert [e["data"]["seq"] for e in replayed] == [3, 4, 5]
        await store(room, host, "m6")
        [live] = await message_events(h, 1)
        assert live["data"]["seq"] == 6
        await h.assert_silent()


async def test_subscription_without_after_seq_starts_at_now() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    await store(room, host, "old")
    async with connect(host) as h:
        await h.request("subscribe_to_messages_in_room", pk=room.pk, request_id="r")
        await h.assert_silent()
        await store(room, host, "new")
        [event] = await message_events(h, 1)
        assert event["data"]["text"] == "new"
        assert (await h.request("subscribe_to_messages_in_room", pk=999999, request_id="x"))["response_status"] == 404
        assert (await h.bad_request("subscribe_to_messages_in_room", pk=room.pk, request_id="y", after_seq=-1))["response_status"] == 400


async def test_dropped_events_are_filled_from_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the layer loses an event, the next one reveals the gap and the subscriber still gets everything in order."""
    from chat.ws.streams import MessageStream

    host = await user_factory()
    room = await room_factory(host=host)
    original = MessageStream.deliver
    dropped: list[int] = []

    def lossy(self: MessageStream, event: dict[str, Any], action: str) -> bool:
        if action == "create" and event["seq"] in (2, 3) and event["seq"] not in dropped:
            dropped.append(event["seq"])
            return False
        return original(self, event, action)

    monkeypatch.setattr(MessageStream, "deliver", lossy)
    async with connect(host) as h:
        await h.request("subscribe_to_messages_in_room", pk=room.pk, request_id="r")
        for i in range(1, 5):
            await store(room, host, f"m{i}")
        events = await message_events(h, 4)
        assert [e["data"]["seq"] for e in events] == [1, 2, 3, 4]
        assert dropped == [2, 3]
        await h.assert_silent()


async def test_messages_posted_over_http_reach_websocket_subscribers() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    api = await database_sync_to_async(client_for)(host)
    async with connect(host) as h:
        await h.request("subscribe_to_messages_in_room", pk=room.pk, request_id="r")
        response = await database_sync_to_async(api.post)(f"/api/rooms/{room.pk}/messages/", {"text": "from http"}, format="json")
        assert response.status_code == 201
        [event] = await message_events(h, 1)
        assert event["data"] == response.json()


async def test_room_instance_stream() -> None:
    host, watcher = await user_factory(), await user_factory()
    room = await room_factory(host=host)
    async with connect(host) as h, connect(watcher) as w:
        assert (await w.request("subscribe_instance", pk=999999, request_id="i"))["response_status"] == 404
        assert (await w.request("subscribe_instance", pk=room.pk, request_id="i"))["response_status"] == 200
        await h.request("patch", pk=room.pk, data={"name": "renamed"})
        update = await w.next_push()
        assert update["action"] == "update" and update["request_id"] == "i" and update["pk"] == room.pk
        assert update["data"]["name"] == "renamed"
        await store(room, host, "does not touch the room stream")
        await w.assert_silent()
        await w.request("join_room", pk=room.pk)  # nor do membership and presence
        await w.request("leave_room", pk=room.pk)
        while not await w.communicator.receive_nothing(timeout=0.5):
            assert (await w.next_push())["action"] == "presence"
        await h.request("delete", pk=room.pk)
        delete = await w.next_push()
        assert delete["action"] == "delete" and delete["pk"] == room.pk and delete["data"]["pk"] == room.pk
        assert (await w.request("unsubscribe_instance", pk=room.pk, request_id="i"))["response_status"] == 200
        assert (await w.request("unsubscribe_instance", pk=room.pk, request_id="i"))["response_status"] == 403


async def test_a_crowd_resuming_from_the_same_seq_shares_history_reads_and_misses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server restart's reconnect storm: each page of missed messages is read once for many subscribers, and a
    message stored while a shared read is under way still reaches everyone, once and in order."""
    import contextlib
    import threading
    import time

    from chat.core import selectors

    host = await user_factory()
    room = await room_factory(host=host)
    for i in range(1, 4):
        await store(room, host, f"m{i}")
    reads: list[int] = []
    first_read_began = threading.Event()
    original = selectors.message_history

    def slow_history(**query: Any) -> Any:
        reads.append(query["after_seq"])
        first_read_began.set()
        time.sleep(0.3)  # long enough for the crowd to arrive while it runs
        return original(**query)

    monkeypatch.setattr(selectors, "message_history", slow_history)
    held_before = pooled_connections_held()
    crowd = 12
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(host)) for _ in range(crowd)]
        subscribed = [
            asyncio.ensure_future(c.request("subscribe_to_messages_in_room", pk=room.pk, request_id="r", after_seq=1)) for c in clients
        ]
        await database_sync_to_async(first_read_began.wait)(5)
        await store(room, host, "m4")  # while the first read runs: a later read or the live event brings it
        assert all(r["response_status"] == 200 for r in await asyncio.gather(*subscribed))
        for client in clients:
            assert [e["data"]["seq"] for e in await message_events(client, 3)] == [2, 3, 4]
            await client.assert_silent(timeout=0.05)
    assert len(reads) < crowd / 2, reads  # without sharing: one read per subscriber
    # Worker threads gave their connections back (chat.core.db.db_thread: each of these
    # resumes used to leave one held by a thread, until the pool ran dry).
    assert pooled_connections_held() <= held_before + 1  # + the thread database_sync_to_async keeps
