"""Every request/response action of api_docs/PROTOCOL.md §2 with its permissions and status codes."""

from typing import Any

import pytest
from django.test import override_settings

from chat.core import services
from chat.models import Message, Room
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

ROOM_KEYS = {"pk", "name", "host", "current_users", "last_message", "created_at", "kind", "member_count"}  # v2 adds kind, member_count
MESSAGE_KEYS = {"id", "room", "seq", "user", "text", "client_id", "created_at", "created_at_formatted", "edited_at"} | {
    "reply_to",
    "reactions",
}

user_factory = database_sync_to_async(UserFactory)
room_factory = database_sync_to_async(RoomFactory)
message_count = database_sync_to_async(lambda: Message.objects.count())


@database_sync_to_async
def store(room: Room, author: Any, text: str) -> Message:
    return services.message_store(room_id=room.pk, author=author, text=text)[0]


def assert_error(frame: dict[str, Any], status: int) -> None:
    assert frame["response_status"] == status, frame
    assert frame["errors"], frame
    assert frame["data"] is None or status == 429


async def test_room_crud_and_permissions() -> None:
    host, other = await user_factory(), await user_factory()
    async with connect(host) as h, connect(other) as o:
        created = await h.request("create", data={"name": " Room A "})
        assert created["response_status"] == 201 and set(created["data"]) == ROOM_KEYS
        assert created["data"]["name"] == "Room A"
        pk = created["data"]["pk"]
        assert_error(await h.bad_request("create", data={"name": "Room A"}), 400)
        for bad in [None, "x", {"name": ""}, {"name": "  "}, {"name": "x" * 256}, {"name": 3}]:
            assert_error(await h.bad_request("create", data=bad), 400)
        assert (await o.request("retrieve", pk=pk))["data"]["name"] == "Room A"
        assert_error(await o.bad_request("retrieve", pk=999999), 404)
        assert_error(await o.bad_request("retrieve", pk="abc"), 400)
        assert_error(await o.bad_request("retrieve"), 400)
        listed = await o.request("list", name="Room A")
        assert listed["data"]["count"] == 1 and listed["data"]["results"][0]["pk"] == pk
        assert (await o.request("list", page_size=1, page=5))["data"] == {"results": [], "count": 1}
        assert_error(await o.bad_request("list", page_size=201), 400)
        assert_error(await o.bad_request("patch", pk=pk, data={"name": "mine"}), 403)
        patched = await h.request("patch", pk=pk, data={"name": "Room B"})
        assert patched["response_status"] == 200 and patched["data"]["name"] == "Room B"
        assert_error(await h.bad_request("patch", pk=pk, data={"name": ""}), 400)
        assert_error(await o.bad_request("delete", pk=pk), 403)
        deleted = await h.request("delete", pk=pk)
        assert deleted["response_status"] == 204 and deleted["data"] is None and deleted["errors"] == []
        assert_error(await h.bad_request("delete", pk=pk), 404)
    assert not await database_sync_to_async(Room.objects.exists)()


async def test_messages_post_edit_delete_and_history() -> None:
    host, member, stranger = await user_factory(), await user_factory(), await user_factory()
    room = await room_factory(host=host)
    async with connect(host) as h, connect(member) as m, connect(stranger) as s:
        assert_error(await m.bad_request("create_message", message="hi"), 400)  # no room joined yet
        assert_error(await m.bad_request("create_message", message="hi", room=room.pk), 403)
        assert_error(await m.bad_request("create_message", message="hi", room=999999), 404)
        assert (await m.request("join_room", pk=room.pk))["response_status"] == 200
        posted = await m.request("create_message", message=" hi ")
        assert posted["response_status"] == 201 and set(posted["data"]) == MESSAGE_KEYS
        assert posted["data"]["text"] == "hi" and posted["data"]["room"] == room.pk
        bad_params: list[dict[str, Any]] = [
            {},
            {"message": ""},
            {"message": " \t"},
            {"message": "x" * 501},
            {"message": 5},
            {"message": None},
            {"message": "ok", "client_id": ""},
            {"message": "ok", "client_id": "c" * 65},
            {"message": "a\x00b"},
            {"message": "ok", "room": "one"},
        ]
        for bad in bad_params:
            frame = await m.bad_request("create_message", **bad)
            assert_error(frame, 400)
        assert await message_count() == 1
        message_id = posted["data"]["id"]
        assert_error(await h.bad_request("update_message", pk=message_id, message="edited by host"), 403)
        assert_error(await m.bad_request("update_message", pk=message_id, message=""), 400)
        assert_error(await m.bad_request("update_message", pk=999999, message="x"), 404)
        edited = await m.request("update_message", pk=message_id, message="edited")
        assert edited["data"]["text"] == "edited" and edited["data"]["edited_at"] is not None
        history = await s.request("list_messages", pk=room.pk)
        assert history["response_status"] == 200
        assert [msg["text"] for msg in history["data"]["results"]] == ["edited"] and history["data"]["has_more"] is False
        assert_error(await s.bad_request("list_messages", pk=room.pk, after_seq=1, before_seq=3), 400)
        assert_error(await s.bad_request("list_messages", pk=room.pk, limit=0), 400)
        assert_error(await s.bad_request("list_messages", pk=999999), 404)
        assert_error(await s.bad_request("delete_message", pk=message_id), 403)
        deleted = await h.request("delete_message", pk=message_id)  # the host moderates
        assert deleted["response_status"] == 204 and deleted["data"] is None
        assert_error(await m.bad_request("delete_message", pk=message_id), 404)


async def test_history_slices_over_websocket() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    for i in range(1, 8):
        await store(room, host, f"m{i}")
    async with connect(host) as h:

        async def seqs(**params: Any) -> tuple[list[int], bool]:
            data = (await h.request("list_messages", pk=room.pk, **params))["data"]
            return [m["seq"] for m in data["results"]], data["has_more"]

        assert await seqs(limit=3) == ([5, 6, 7], True)
        assert await seqs(before_seq=5, limit=3) == ([2, 3, 4], True)
        assert await seqs(after_seq=5) == ([6, 7], False)
        assert await seqs(after_seq=0, limit=2) == ([1, 2], True)


async def test_repeated_client_id_is_200_and_stores_nothing() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    async with connect(host) as h:
        await h.request("join_room", pk=room.pk)
        first = await h.request("create_message", message="once", client_id="c-1")
        again = await h.request("create_message", message="once", client_id="c-1")
        assert first["response_status"] == 201 and again["response_status"] == 200
        assert again["data"] == first["data"]
    assert await message_count() == 1


@override_settings(CHAT_MESSAGE_RATE_LIMIT=2, CHAT_MESSAGE_RATE_PERIOD=30)
async def test_flood_limit_over_websocket() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    async with connect(host) as h:
        await h.request("join_room", pk=room.pk)
        for i in range(2):
            assert (await h.request("create_message", message=f"m{i}"))["response_status"] == 201
        limited = await h.request("create_message", message="too many")
        assert limited["response_status"] == 429 and limited["errors"]
        assert 1 <= limited["data"]["retry_after"] <= 30
    assert await message_count() == 2


async def test_leave_room_needs_membership() -> None:
    host, other = await user_factory(), await user_factory()
    room = await room_factory(host=host)
    async with connect(other) as o:
        assert_error(await o.bad_request("leave_room", pk=room.pk), 403)
        assert_error(await o.bad_request("join_room", pk=999999), 404)
        await o.request("join_room", pk=room.pk)
        left = await o.request("leave_room", pk=room.pk)
        assert left["response_status"] == 200 and left["data"] is None
        assert_error(await o.bad_request("create_message", message="hi", room=room.pk), 403)
    assert not await database_sync_to_async(lambda: room.members.filter(pk=other.pk).exists())()


async def test_unexpected_exception_is_500_and_connection_survives(monkeypatch: pytest.MonkeyPatch) -> None:
    host = await user_factory()

    def broken(**kwargs: Any) -> None:
        raise RuntimeError("database exploded")

    monkeypatch.setattr("chat.core.selectors.room_list", broken)
    async with connect(host) as h:
        frame = await h.request("list")
        assert frame["response_status"] == 500
        assert frame["errors"] == ["Internal server error."]
        assert "exploded" not in str(frame)
        assert (await h.request("create", data={"name": "still here"}))["response_status"] == 201
