"""The WebSocket room API through the full ASGI stack: actions, statuses, pushes."""

import pytest

from chat.models import Message, Room, User
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.ws import connect

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@database_sync_to_async
def make_user() -> User:
    return UserFactory.create()


@database_sync_to_async
def make_room(host: User) -> Room:
    return RoomFactory.create(host=host)


async def test_create_join_post_and_stream() -> None:
    alice, bob = await make_user(), await make_user()
    async with connect(alice) as a, connect(bob) as b:
        created = await a.request("create", data={"name": "lobby"})
        assert created["response_status"] == 201, created
        pk = created["data"]["pk"]
        sub = await b.request("subscribe_to_messages_in_room", pk=pk, request_id="sub-1")
        assert sub["response_status"] == 200 and sub["data"] is None and sub["errors"] == []
        joined = await a.request("join_room", pk=pk)
        assert joined["response_status"] == 200
        assert [u["username"] for u in joined["data"]["current_users"]] == [alice.username]
        posted = await a.request("create_message", message="hello")
        assert posted["response_status"] == 201
        assert posted["data"]["seq"] == 1
        event = await b.next_push()
        while event["action"] == "presence":
            event = await b.next_push()
        assert event == {"action": "create", "request_id": "sub-1", "pk": posted["data"]["id"], "data": posted["data"]}


async def test_unknown_action_bad_frames_keep_connection() -> None:
    user = await make_user()
    async with connect(user) as c:
        assert (await c.bad_request("nope"))["response_status"] == 405
        await c.communicator.send_to(text_data="{bad json")
        frame = await c.receive()
        assert frame["response_status"] == 400 and frame["action"] is None
        await c.communicator.send_to(text_data="[1, 2]")
        assert (await c.receive())["response_status"] == 400
        await c.send({"request_id": 7}, check=False)
        frame = await c.receive()
        assert frame["response_status"] == 400 and frame["request_id"] == 7
        await c.communicator.send_to(bytes_data=b"\x00\x01")
        assert (await c.receive())["response_status"] == 400
        await c.communicator.send_to(text_data='{"action": "list", "pad": "' + "x" * 70000 + '"}')
        assert (await c.receive())["response_status"] == 413
        await c.send({"action": "retrieve", "request_id": 8, "self": 1, "pk": "abc"}, check=False)
        frame = await c.receive()
        assert frame["response_status"] == 400, frame
        listed = await c.request("list")
        assert listed["response_status"] == 200 and listed["data"] == {"results": [], "count": 0}


async def test_anonymous_handshake_is_refused() -> None:
    from channels.testing import WebsocketCommunicator

    from mysite.asgi import application

    for headers in ([], [(b"authorization", b"Token nope")], [(b"origin", b"http://evil.example")]):
        communicator = WebsocketCommunicator(application, "/ws/chat/room/", headers=headers)
        connected, _ = await communicator.connect()
        assert not connected
    assert not await database_sync_to_async(Room.objects.exists)()
    assert not await database_sync_to_async(Message.objects.exists)()
