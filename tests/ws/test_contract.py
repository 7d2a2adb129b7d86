"""The contract helper (tests/contract.py) and a full session checked frame by frame against asyncapi.yaml."""

import copy
from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.authtoken.models import Token

from chat.ws.consumer import RoomConsumer
from mysite.asgi import application
from tests.contract import (
    ContractCommunicator,
    asyncapi_document,
    request_and_response_messages,
    validate_client_frame,
    validate_server_frame,
)
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory

USER = {"id": 5, "username": "alice"}
MESSAGE = {
    "id": 42,
    "room": 7,
    "seq": 3,
    "user": USER,
    "text": "hello",
    "client_id": None,
    "created_at": "2026-11-23T09:20:00.123456Z",
    "created_at_formatted": "23-11-2026 09:20:00",
    "edited_at": None,
    "reply_to": None,
    "reactions": [],
}
ROOM = {
    "pk": 7,
    "name": "lobby",
    "host": USER,
    "current_users": [USER],
    "last_message": MESSAGE,
    "created_at": "2026-11-23T09:00:00Z",
    "kind": "public",
    "member_count": 1,
}


def response(action: str, status: int = 200, data: Any = None, errors: list[Any] | None = None, request_id: Any = 1) -> dict[str, Any]:
    return {"action": action, "request_id": request_id, "response_status": status, "errors": errors or [], "data": data}


# --- hand-built frames: the helper accepts valid ones and rejects invalid ones -------------------


@pytest.mark.parametrize(
    "frame",
    [
        {"action": "list", "request_id": 1},
        {"action": "list", "request_id": "a", "name": "lobby", "page": 2, "page_size": 200},
        {"action": "create", "request_id": 1, "data": {"name": "lobby"}},
        {"action": "create_message", "request_id": 1, "message": "hi"},
        {"action": "create_message", "request_id": 1.5, "message": "hi", "room": 7, "client_id": "c-1"},
        {"action": "list_messages", "request_id": 1, "pk": 7, "before_seq": 9, "limit": 10},
        {"action": "subscribe_to_messages_in_room", "request_id": "s", "pk": 7, "after_seq": 0},
        {"action": "subscribe_to_online_users", "request_id": "o"},
    ],
)
def test_valid_client_frames_pass(frame: dict[str, Any]) -> None:
    validate_client_frame(frame)


@pytest.mark.parametrize(
    ("frame", "complaint"),
    [
        ({"action": "fly", "request_id": 1}, "unknown action"),
        ({"request_id": 1}, "unknown action"),
        ({"action": "retrieve", "request_id": 1}, "'pk' is a required property"),
        ({"action": "retrieve", "request_id": 1, "pk": "7"}, "'7' is not of type 'integer'"),
        ({"action": "retrieve", "request_id": True, "pk": 7}, "True is not of type"),
        ({"action": "create_message", "request_id": 1, "text": "hi"}, "'message' is a required property"),
        ({"action": "create_message", "request_id": 1, "message": "x" * 501}, "is too long"),
        ({"action": "list", "request_id": 1, "page_size": 201}, "201 is greater than the maximum of 200"),
        ({"action": "list_messages", "request_id": 1, "pk": 7, "after_seq": 1, "before_seq": 5}, "should not be valid"),
        ({"action": "create", "request_id": 1, "data": {"name": "x", "host": 1}}, "Additional properties"),
    ],
)
def test_invalid_client_frames_fail_with_the_reason(frame: dict[str, Any], complaint: str) -> None:
    with pytest.raises(AssertionError, match="client frame violates") as raised:
        validate_client_frame(frame)
    assert complaint in str(raised.value)


@pytest.mark.parametrize(
    "frame",
    [
        response("list", data={"results": [ROOM], "count": 1}),
        response("retrieve", data={**ROOM, "last_message": None, "current_users": []}),
        response("create", 201, ROOM),
        response("delete", 204),
        response("create_message", 201, MESSAGE),
        response("create_message", 200, {**MESSAGE, "client_id": "c-1"}),
        response("create_message", 429, {"retry_after": 3}, ["Too many messages: retry in 3 s."]),
        response("patch", 400, errors=[{"name": ["A room with this name already exists."]}]),
        response("update_message", 403, errors=["Only the message's author may do this."]),
        response("list_messages", data={"results": [MESSAGE], "has_more": False}),
        response("subscribe_to_online_users", data={"users": [USER]}),
        response("fly", 405, errors=['Method "fly" not allowed.']),
        {"action": None, "request_id": None, "response_status": 400, "errors": ["Invalid JSON."], "data": None},
        {"action": "create", "request_id": "s", "pk": 42, "data": MESSAGE},
        {"action": "update", "request_id": "s", "pk": 7, "data": ROOM},
        {"action": "delete", "request_id": 3, "pk": 42, "data": MESSAGE},
        {"action": "presence", "room": 7, "data": {"users": [USER]}},
        {"action": "typing", "room": 7, "data": {"user": USER}},
        {"action": "user_status", "request_id": "o", "data": {"user": USER, "online": False}},
    ],
)
def test_valid_server_frames_pass(frame: dict[str, Any]) -> None:
    validate_server_frame(frame)


@pytest.mark.parametrize(
    ("frame", "complaint"),
    [
        (response("retrieve", data={**ROOM, "host": {**USER, "email": "a@example.com"}}), "'email' was unexpected"),
        (response("retrieve", data={k: v for k, v in ROOM.items() if k != "current_users"}), "'current_users' is a required"),
        (response("create_message", 201, {**MESSAGE, "created_at_formatted": "2026-11-23 09:20"}), "does not match"),
        (response("create_message", 429, None, ["slow down"]), "is not of type 'object'"),
        (response("create_message", 400), "should be non-empty"),
        (response("list", errors=["oops"], data={"results": [], "count": 0}), "is expected to be empty"),
        (response("delete", 204, {"pk": 1}), "is not of type 'null'"),
        (response("subscribe_to_online_users", 404, errors=["x"]), "404 is not one of"),
        ({**response("list", data={"results": [], "count": 0}), "extra": 1}, "'extra' was unexpected"),
        ({"action": "create", "request_id": "s", "pk": 42, "data": {**MESSAGE, "text": ""}}, "should be non-empty"),
        ({"action": "presence", "room": 7, "data": {"users": [USER]}, "request_id": 1}, "'request_id' was unexpected"),
        ({"action": "shout", "data": {}}, "unknown push"),
    ],
)
def test_invalid_server_frames_fail_with_the_reason(frame: dict[str, Any], complaint: str) -> None:
    with pytest.raises(AssertionError, match="server frame violates") as raised:
        validate_server_frame(frame)
    assert complaint in str(raised.value)


def test_a_response_must_answer_its_request() -> None:
    request = {"action": "retrieve", "request_id": 1, "pk": 7}
    validate_server_frame(response("retrieve", data=ROOM), request)
    with pytest.raises(AssertionError, match="request_id: expected 1, got 2"):
        validate_server_frame(response("retrieve", data=ROOM, request_id=2), request)
    with pytest.raises(AssertionError, match="action: expected 'retrieve', got 'list'"):
        validate_server_frame(response("list", data={"results": [], "count": 0}), request)


def test_a_push_is_checked_against_its_subscriptions_stream() -> None:
    subscribe_instance = {"action": "subscribe_instance", "request_id": "i", "pk": 7}
    room_update = {"action": "update", "request_id": "i", "pk": 7, "data": ROOM}
    assert validate_server_frame(room_update, subscribe_instance) == "roomUpdated"
    with pytest.raises(AssertionError, match="as roomUpdated"):
        validate_server_frame({**room_update, "data": MESSAGE}, subscribe_instance)
    with pytest.raises(AssertionError, match="not tagged with its subscription"):
        validate_server_frame({**room_update, "request_id": "other"}, subscribe_instance)


def test_every_consumer_action_is_documented_and_nothing_more() -> None:
    documented = set(request_and_response_messages())
    assert documented == set(RoomConsumer.available_actions), documented ^ set(RoomConsumer.available_actions)


def test_objects_are_strict_so_added_fields_are_caught() -> None:
    schemas = asyncapi_document()["components"]["schemas"]
    for name in ("User", "Room", "Message"):
        assert schemas[name]["additionalProperties"] is False
        assert set(schemas[name]["required"]) == set(schemas[name]["properties"])


def test_the_document_is_not_tautological() -> None:
    """A copy of a valid frame with one field changed in type must fail: the schemas constrain something."""
    frame = response("retrieve", data=copy.deepcopy(ROOM))
    frame["data"]["pk"] = "7"
    with pytest.raises(AssertionError):
        validate_server_frame(frame)


# --- a real session, every frame checked by ContractCommunicator ------------------------------


@database_sync_to_async
def _setup() -> tuple[Any, Any, str, str, Any]:
    alice, bob = UserFactory.create(), UserFactory.create()
    room = RoomFactory.create(host=alice)
    return alice, bob, Token.objects.create(user=alice).key, Token.objects.create(user=bob).key, room


async def _connect(token: str) -> ContractCommunicator:
    communicator = ContractCommunicator(application, "/ws/chat/room/", headers=[(b"authorization", f"Token {token}".encode())])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def _request(ws: ContractCommunicator, frame: dict[str, Any], *, check: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Send a request; return its response and the pushes that came before it (all checked)."""
    await ws.send_json_to(frame, check=check)
    pushes: list[dict[str, Any]] = []
    while True:
        received = await ws.receive_json_from(timeout=5)
        if "response_status" in received and received["request_id"] == frame.get("request_id"):
            return received, pushes
        pushes.append(received)


async def _receive_push(ws: ContractCommunicator, wanted: Callable[[dict[str, Any]], bool]) -> None:
    while not wanted(await ws.receive_json_from(timeout=5)):
        pass


async def _drain(ws: ContractCommunicator) -> list[dict[str, Any]]:
    frames = []
    while not await ws.receive_nothing(timeout=0.3):
        frames.append(await ws.receive_json_from())
    return frames


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_every_action_and_push_of_a_real_session_matches_the_document() -> None:
    alice, bob, alice_token, bob_token, room = await _setup()
    b = await _connect(bob_token)
    a: ContractCommunicator | None = None
    try:
        seen: set[str] = set()

        async def ok(ws: ContractCommunicator, frame: dict[str, Any], status: int = 200) -> dict[str, Any]:
            reply, _ = await _request(ws, frame)
            assert reply["response_status"] == status, reply
            seen.add(frame["action"])
            return reply

        async def ok_then(ws: ContractCommunicator, frame: dict[str, Any], status: int, push: str) -> None:
            """A request, and the push it causes (which may arrive before or after its response)."""
            reply, pushes = await _request(ws, frame)
            assert reply["response_status"] == status, reply
            seen.add(frame["action"])
            if not any(received["action"] == push for received in pushes):
                await _receive_push(ws, lambda received: received["action"] == push)

        await ok(b, {"action": "subscribe_to_online_users", "request_id": "online"})
        a = await _connect(alice_token)  # alice comes online: a user_status push for bob
        await ok(a, {"action": "list", "request_id": 1, "page_size": 5})
        await ok(a, {"action": "retrieve", "request_id": 2, "pk": room.pk})
        created = (await ok(a, {"action": "create", "request_id": 3, "data": {"name": "contract-room"}}, 201))["data"]
        await ok(b, {"action": "subscribe_instance", "request_id": "inst", "pk": created["pk"]})
        await ok(a, {"action": "patch", "request_id": 4, "pk": created["pk"], "data": {"name": "contract-room-2"}})
        await ok(a, {"action": "update", "request_id": 41, "pk": created["pk"], "data": {"name": "contract-room-2b"}})
        await ok(b, {"action": "subscribe_to_messages_in_room", "request_id": "msgs", "pk": room.pk, "after_seq": 0})
        await ok(a, {"action": "join_room", "request_id": 5, "pk": room.pk})
        await ok(b, {"action": "join_room", "request_id": 6, "pk": room.pk})
        await ok(a, {"action": "typing", "request_id": 7, "pk": room.pk})
        posted = (await ok(a, {"action": "create_message", "request_id": 8, "message": "hi", "client_id": "c1"}, 201))["data"]
        await ok(a, {"action": "create_message", "request_id": 9, "message": "hi", "client_id": "c1", "room": room.pk}, 200)
        await ok(a, {"action": "update_message", "request_id": 10, "pk": posted["id"], "message": "hi!"})
        reply = {"action": "create_message", "request_id": "reply", "message": "re", "reply_to": posted["id"]}
        await ok(a, reply, 201)
        await ok(a, {"action": "add_reaction", "request_id": "react", "pk": posted["id"], "emoji": "\U0001f44d"}, 201)
        await ok(a, {"action": "remove_reaction", "request_id": "unreact", "pk": posted["id"], "emoji": "\U0001f44d"})
        await ok(a, {"action": "search_messages", "request_id": "search", "query": "hi", "pk": room.pk, "limit": 5})
        await ok(a, {"action": "list_messages", "request_id": 11, "pk": room.pk, "after_seq": 0})
        await ok(a, {"action": "delete_message", "request_id": 12, "pk": posted["id"]}, 204)
        # As for the room's delete below: unsubscribing before the push arrives would (rightly) drop it.
        await _receive_push(b, lambda push: push["action"] == "delete" and push.get("pk") == posted["id"])
        await ok(b, {"action": "unsubscribe_from_messages_in_room", "request_id": "msgs", "pk": room.pk})
        await ok(b, {"action": "leave_room", "request_id": 13, "pk": room.pk})
        await ok(a, {"action": "delete", "request_id": 14, "pk": created["pk"]}, 204)
        # The push travels through the channel layer; unsubscribing before it arrives would (rightly) drop it.
        await _receive_push(b, lambda push: push["action"] == "delete" and push["data"].get("pk") == created["pk"])
        await ok(b, {"action": "unsubscribe_instance", "request_id": "inst", "pk": created["pk"]})
        # Version 2 (§5-§6): private rooms, moderation, read state and the inbox's pushes.
        await ok(b, {"action": "subscribe_to_my_rooms", "request_id": "inbox"})
        private = (await ok(a, {"action": "create", "request_id": 30, "data": {"name": "contract-private", "kind": "private"}}, 201))[
            "data"
        ]
        await ok(a, {"action": "add_member", "request_id": 31, "pk": private["pk"], "user_id": bob.pk}, 201)
        await _receive_push(b, lambda push: push["action"] == "membership")
        await ok(b, {"action": "subscribe_to_messages_in_room", "request_id": "priv", "pk": private["pk"]})
        await ok(a, {"action": "list_members", "request_id": 32, "pk": private["pk"]})
        await ok(a, {"action": "set_role", "request_id": 33, "pk": private["pk"], "user_id": bob.pk, "role": "moderator"})
        await ok(a, {"action": "create_message", "request_id": 34, "room": private["pk"], "message": "secret"}, 201)
        await _receive_push(b, lambda push: push["action"] == "room_message")
        await ok_then(b, {"action": "mark_read", "request_id": 35, "pk": private["pk"], "seq": 1}, 200, "read")
        await ok(b, {"action": "list_my_rooms", "request_id": 36})
        await ok(a, {"action": "remove_member", "request_id": 37, "pk": private["pk"], "user_id": bob.pk}, 204)
        await _receive_push(b, lambda push: push["action"] == "subscription_ended")
        await ok(a, {"action": "ban_member", "request_id": 38, "pk": private["pk"], "user_id": bob.pk}, 204)
        await ok(a, {"action": "unban_member", "request_id": 39, "pk": private["pk"], "user_id": bob.pk})
        await ok(a, {"action": "open_direct", "request_id": 40, "user_id": bob.pk}, 201)
        assert seen == set(RoomConsumer.available_actions)

        # Errors, each checked against its action's error schema or the frame-error message.
        action_errors: list[tuple[dict[str, Any], int]] = [
            ({"action": "retrieve", "request_id": 20, "pk": 10**9}, 404),
            ({"action": "patch", "request_id": 21, "pk": room.pk, "data": {"name": "taken"}}, 403),
            ({"action": "create", "request_id": 22, "data": {"name": "contract-room-3" + "x" * 300}}, 400),
            ({"action": "typing", "request_id": 23, "pk": created["pk"]}, 404),
            ({"action": "unsubscribe_instance", "request_id": 24, "pk": room.pk}, 403),
        ]
        for frame, status in action_errors:
            reply, _ = await _request(b, frame, check=frame["action"] != "create")
            assert reply["response_status"] == status, reply
        frame_errors: list[tuple[dict[str, Any], int]] = [
            ({"action": "fly", "request_id": 25}, 405),
            ({"request_id": 26}, 400),
            ({"action": "retrieve", "request_id": 27}, 400),
        ]
        for frame, status in frame_errors:
            reply, _ = await _request(b, frame, check=False)
            assert reply["response_status"] == status, reply
        await b.send_to(text_data="{not json")
        assert (await b.receive_json_from())["response_status"] == 400

        await _drain(a)
        await _drain(b)
        kinds = {
            (frame["action"], "room" if "pk" in frame.get("data", {}) else "message")
            for direction, frame in a.checker.frames + b.checker.frames
            if direction == "received" and "response_status" not in frame
        }
        assert {("create", "message"), ("update", "message"), ("delete", "message"), ("update", "room"), ("delete", "room")} <= kinds, kinds
        assert {"presence", "typing", "user_status"} <= {action for action, _ in kinds}, kinds
        assert {"room_message", "membership", "read", "subscription_ended"} <= {action for action, _ in kinds}, kinds
    finally:
        if a is not None:
            await a.disconnect()
        await b.disconnect()
