"""Replies (api_docs/PROTOCOL.md §7): `reply_to` on create_message and the HTTP POST, validated, kept after the target is deleted."""

from typing import Any

import pytest
from rest_framework.test import APIClient

from chat.core import services
from chat.models import Message, Room, User
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.social import http
from tests.ws import connect

user_factory = database_sync_to_async(UserFactory.create)
room_factory = database_sync_to_async(RoomFactory.create)
message_count = database_sync_to_async(lambda: Message.objects.count())


@database_sync_to_async
def store(room: Room, author: User, text: str = "hello") -> Message:
    return services.message_store(room_id=room.pk, author=author, text=text)[0]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_reply_over_websocket_is_announced_and_survives_deleting_its_target() -> None:
    host, member = await user_factory(), await user_factory()
    room = await room_factory(host=host)
    target = await store(room, host, "question?")
    async with connect(host) as h, connect(member) as m:
        await h.request("subscribe_to_messages_in_room", pk=room.pk, request_id="s")
        await m.request("join_room", pk=room.pk)
        plain = await m.request("create_message", message="no reply")
        assert plain["data"]["reply_to"] is None
        assert (await h.next_push())["data"]["reply_to"] is None
        reply = await m.request("create_message", message="answer", reply_to=target.pk)
        assert reply["response_status"] == 201 and reply["data"]["reply_to"] == target.pk
        push = await h.next_push()
        assert push["action"] == "create" and push["data"]["reply_to"] == target.pk
        assert (await h.request("delete_message", pk=target.pk))["response_status"] == 204
        assert (await h.next_push())["action"] == "delete"
        history = (await m.request("list_messages", pk=room.pk))["data"]["results"]
        assert [(msg["text"], msg["reply_to"]) for msg in history] == [("no reply", None), ("answer", target.pk)]
        # The target is gone: a new reply to it is refused, the old one keeps its id.
        gone = await m.bad_request("create_message", message="late", reply_to=target.pk)
        assert gone["response_status"] == 400 and "reply_to" in gone["errors"][0]
    assert await message_count() == 2


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_reply_into_another_room_or_nowhere_is_400_naming_the_field_over_websocket() -> None:
    host = await user_factory()
    room, elsewhere = await room_factory(host=host), await room_factory(host=host)
    foreign = await store(elsewhere, host, "over there")
    async with connect(host) as h:
        await h.request("join_room", pk=room.pk)
        bad_values: list[Any] = [foreign.pk, 999999, 0, -1, "x", 1.5, [1], 2**63]
        for reply_to in bad_values:
            frame = await h.bad_request("create_message", message="hi", reply_to=reply_to)
            assert frame["response_status"] == 400 and "reply_to" in frame["errors"][0], (reply_to, frame)
        # With a client_id too: a refused reply does not claim the client_id.
        assert (await h.bad_request("create_message", message="hi", reply_to=foreign.pk, client_id="c1"))["response_status"] == 400
        assert (await h.request("create_message", message="hi", reply_to=None, client_id="c1"))["response_status"] == 201
    assert await message_count() == 2


def test_reply_over_http(api: APIClient, room: Room, user: User) -> None:
    target = services.message_store(room_id=room.pk, author=user, text="q")[0]
    response = api.post(f"/api/rooms/{room.pk}/messages/", {"text": "a", "reply_to": target.pk}, format="json")
    assert response.status_code == 201 and response.json()["reply_to"] == target.pk
    assert api.delete(f"/api/messages/{target.pk}/").status_code == 204
    history = api.get(f"/api/rooms/{room.pk}/messages/").json()["results"]
    assert [(m["text"], m["reply_to"]) for m in history] == [("a", target.pk)]


@pytest.mark.parametrize("reply_to", ["elsewhere", 999999, 0, "x", True, 2**63])
def test_bad_reply_over_http_is_400_naming_the_field(api: APIClient, room: Room, user: User, reply_to: Any) -> None:
    other_room = Room.objects.create(name="other", host=user)
    foreign = services.message_store(room_id=other_room.pk, author=user, text="x")[0]
    before = Message.objects.count()
    response = api.post(
        f"/api/rooms/{room.pk}/messages/", {"text": "a", "reply_to": foreign.pk if reply_to == "elsewhere" else reply_to}, format="json"
    )
    assert response.status_code == 400 and "reply_to" in response.json()
    assert Message.objects.count() == before


def test_editing_keeps_reply_to(api: APIClient, room: Room, user: User) -> None:
    target = services.message_store(room_id=room.pk, author=user, text="q")[0]
    reply = api.post(f"/api/rooms/{room.pk}/messages/", {"text": "a", "reply_to": target.pk}, format="json").json()
    edited = api.patch(f"/api/messages/{reply['id']}/", {"text": "b"}, format="json").json()
    assert edited["reply_to"] == target.pk and edited["text"] == "b"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_reply_into_a_private_room_is_400_over_both_transports() -> None:
    owner, outsider = await user_factory(), await user_factory()
    public = await room_factory(host=outsider)
    async with connect(owner) as o:
        private = (await o.request("create", data={"name": "secret", "kind": "private"}))["data"]
        await o.request("join_room", pk=private["pk"])
        hidden = (await o.request("create_message", message="hush", room=private["pk"]))["data"]
    async with connect(outsider) as x:
        await x.request("join_room", pk=public.pk)
        frame = await x.bad_request("create_message", message="hi", room=public.pk, reply_to=hidden["id"])
        assert frame["response_status"] == 400 and "reply_to" in frame["errors"][0]
    status, body = await http(outsider, "post", f"/api/rooms/{public.pk}/messages/", {"text": "hi", "reply_to": hidden["id"]})
    assert status == 400 and "reply_to" in body
    assert await message_count() == 1
