"""DCRF stream multiplexing and DCRF's conventional names (api_docs/PROTOCOL.md §8), through the full ASGI stack."""

from typing import Any

import pytest

from chat.core import services
from chat.models import Room
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import Client, connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

user_factory = database_sync_to_async(UserFactory)
room_factory = database_sync_to_async(RoomFactory)


@database_sync_to_async
def store(room: Room, author: Any, text: str) -> None:
    services.message_store(room_id=room.pk, author=author, text=text)


async def in_stream(client: Client, stream: str, action: str, request_id: Any, check: bool = True, **params: Any) -> dict[str, Any]:
    """Send a request wrapped in `stream`; return the response, which must come back in the same stream."""
    await client.send({"stream": stream, "payload": {"action": action, "request_id": request_id, **params}}, check=check)
    while True:
        frame = await client.receive()
        payload = frame.get("payload", frame)
        if "response_status" in payload and payload.get("request_id") == request_id:
            assert frame.get("stream") == stream and set(frame) == {"stream", "payload"}, frame
            return payload
        client.pushes = [*getattr(client, "pushes", []), frame]


async def next_non_presence(client: Client) -> dict[str, Any]:
    while True:
        frame = await client.next_push()
        if frame.get("action") != "presence":
            return frame


async def test_requests_in_a_stream_are_answered_in_it_and_plain_ones_stay_plain() -> None:
    host = await user_factory()
    async with connect(host) as h:
        created = await in_stream(h, "rooms", "create", "c1", data={"name": "muxed"})
        assert created["response_status"] == 201 and created["data"]["name"] == "muxed"
        retrieved = await in_stream(h, "other", "retrieve", 7, pk=created["data"]["pk"], data={})
        assert retrieved["data"]["pk"] == created["data"]["pk"]
        plain = await h.request("retrieve", pk=created["data"]["pk"])
        assert plain["response_status"] == 200 and "stream" not in plain
        unknown = await in_stream(h, "rooms", "fly", "u", check=False)
        assert unknown["response_status"] == 405


async def test_bad_envelopes_get_a_400() -> None:
    async with connect(await user_factory()) as h:
        await h.send({"stream": "rooms", "payload": [1, 2]}, check=False)
        frame = await h.receive()
        assert frame["stream"] == "rooms" and frame["payload"]["response_status"] == 400, frame
        await h.send({"stream": 5, "payload": {"action": "list", "request_id": 1}}, check=False)
        frame = await h.receive()
        assert "stream" not in frame and frame["response_status"] == 400, frame
        await h.send({"stream": "rooms", "payload": {"request_id": 2}}, check=False)
        frame = await h.receive()
        assert frame["stream"] == "rooms" and frame["payload"]["response_status"] == 400, frame
        assert frame["payload"]["request_id"] == 2


async def test_pushes_come_in_the_stream_their_subscription_was_made_through() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    async with connect(host) as h:
        await in_stream(h, "messages", "subscribe_to_messages_in_room", "m", pk=room.pk)
        await in_stream(h, "rooms", "subscribe_instance", "i", pk=room.pk)
        await h.request("subscribe_instance", pk=room.pk, request_id="plain")
        await store(room, host, "hello")
        push = await next_non_presence(h)
        assert push["stream"] == "messages" and push["payload"]["action"] == "create", push
        assert push["payload"]["request_id"] == "m" and push["payload"]["data"]["text"] == "hello"
        # A rename reaches both instance subscriptions, each in its own way.
        assert (await h.request("patch", pk=room.pk, data={"name": "renamed"}))["response_status"] == 200
        pushes = [await next_non_presence(h), await next_non_presence(h)]
        wrapped = next(p for p in pushes if "stream" in p)
        plain = next(p for p in pushes if "stream" not in p)
        assert wrapped["stream"] == "rooms" and wrapped["payload"]["request_id"] == "i"
        assert wrapped["payload"]["action"] == "update" and wrapped["payload"]["data"]["name"] == "renamed"
        assert plain["request_id"] == "plain" and plain["action"] == "update"


async def test_replay_after_seq_comes_in_the_subscriptions_stream() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    await store(room, host, "one")
    await store(room, host, "two")
    async with connect(host) as h:
        await in_stream(h, "messages", "subscribe_to_messages_in_room", "m", pk=room.pk, after_seq=0)
        replayed = [await next_non_presence(h), await next_non_presence(h)]
        assert [p["stream"] for p in replayed] == ["messages", "messages"]
        assert [p["payload"]["data"]["seq"] for p in replayed] == [1, 2]


async def test_online_users_pushes_come_in_their_stream() -> None:
    watcher = await user_factory()
    async with connect(watcher) as w:
        response = await in_stream(w, "presence", "subscribe_to_online_users", "o")
        assert response["response_status"] == 200
        async with connect(await user_factory()):
            push = await w.next_push()
            assert push["stream"] == "presence" and push["payload"]["action"] == "user_status", push


async def test_update_is_a_full_update_with_patchs_rules() -> None:
    host, other = await user_factory(), await user_factory()
    room = await room_factory(host=host)
    async with connect(host) as h, connect(other) as o:
        updated = await h.request("update", pk=room.pk, data={"name": "full"})
        assert updated["response_status"] == 200 and updated["data"]["name"] == "full"
        missing = await h.bad_request("update", pk=room.pk, data={})
        assert missing["response_status"] == 400 and "name" in missing["errors"][0]
        assert (await o.request("update", pk=room.pk, data={"name": "mine"}))["response_status"] == 403
        assert (await h.request("update", pk=10**9, data={"name": "gone"}))["response_status"] == 404


async def test_list_and_retrieve_take_parameters_inside_data() -> None:
    host = await user_factory()
    room = await room_factory(host=host, name="needle")
    await room_factory(host=host, name="haystack")
    async with connect(host) as h:
        found = await h.request("list", data={"name": "needle", "page_size": 5})
        assert [r["pk"] for r in found["data"]["results"]] == [room.pk]
        # Unknown parameters are ignored; known ones of the wrong type are a 400.
        found = await h.bad_request("list", data={"name": "needle", "colour": "blue"}, flavour=1)
        assert found["response_status"] == 200 and found["data"]["count"] == 1
        assert (await h.bad_request("list", data={"page_size": "many"}))["response_status"] == 400
        assert (await h.bad_request("list", data=[1]))["response_status"] == 400
        # Top-level parameters win over those in data.
        both = await h.request("list", name="haystack", data={"name": "needle"})
        assert [r["name"] for r in both["data"]["results"]] == ["haystack"]
        retrieved = await h.request("retrieve", data={"pk": room.pk})
        assert retrieved["data"]["name"] == "needle"
        assert (await h.bad_request("retrieve", data={"pk": "x"}))["response_status"] == 400


async def test_inbox_pushes_and_subscription_ended_come_in_their_stream() -> None:
    owner, member = await user_factory(), await user_factory()
    room = await database_sync_to_async(services.room_create)(host=owner, name="muxed-private", kind="private")
    await database_sync_to_async(services.member_add)(room_id=room.pk, actor=owner, user=member)
    async with connect(member) as m:
        assert (await in_stream(m, "inbox", "subscribe_to_my_rooms", "box"))["response_status"] == 200
        assert (await in_stream(m, "messages", "subscribe_to_messages_in_room", "s", pk=room.pk))["response_status"] == 200
        await store(room, owner, "for the inbox")
        pushes = [await next_non_presence(m), await next_non_presence(m)]
        by_stream = {push["stream"]: push["payload"] for push in pushes}
        assert by_stream["inbox"]["action"] == "room_message" and by_stream["inbox"]["request_id"] == "box", pushes
        assert by_stream["messages"]["action"] == "create" and by_stream["messages"]["request_id"] == "s", pushes
        await database_sync_to_async(services.member_remove)(room_id=room.pk, actor=owner, user_id=member.pk)
        pushes = [await next_non_presence(m), await next_non_presence(m)]
        by_stream = {push["stream"]: push["payload"] for push in pushes}
        assert by_stream["messages"] == {"action": "subscription_ended", "request_id": "s", "room": room.pk, "reason": "removed"}
        assert by_stream["inbox"]["action"] == "membership" and by_stream["inbox"]["data"] == {"room": None, "role": None}
