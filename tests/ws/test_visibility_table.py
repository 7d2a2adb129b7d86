"""Every action of api_docs/PROTOCOL.md §2 and §5-§7 against a private room, as a non-member, over both transports.

To a non-member a private room does not exist: each action answers exactly what it
answers for a pk no room has (the same status and the same errors), and lists never
include it. §7's actions (reactions, search) come from another branch: their rows are in
SECTION_7_WS / SECTION_7_HTTP and run once the server has them; extend those lists there.
"""

from typing import Any

import pytest
from django.urls import Resolver404, resolve

from chat.models import Message, Room, RoomKind, User
from chat.ws.consumer import RoomConsumer
from tests.conftest import client_for
from tests.factories import UserFactory
from tests.private_rooms import add_async, make_room_async, post_async, user_factory
from tests.ws import connect

MISSING = 10**9

# action -> parameters; "{room}" and "{message}" are replaced by the private room's pk and one of its messages' id.
SECTION_2_5_6_WS: dict[str, dict[str, Any]] = {
    "retrieve": {"pk": "{room}"},
    "patch": {"pk": "{room}", "data": {"name": "taken over"}},
    "update": {"pk": "{room}", "data": {"name": "taken over"}},
    "delete": {"pk": "{room}"},
    "join_room": {"pk": "{room}"},
    "leave_room": {"pk": "{room}"},
    "typing": {"pk": "{room}"},
    "create_message": {"room": "{room}", "message": "let me in"},
    "update_message": {"pk": "{message}", "message": "edited"},
    "delete_message": {"pk": "{message}"},
    "list_messages": {"pk": "{room}"},
    "subscribe_to_messages_in_room": {"pk": "{room}", "request_id": "s"},
    "unsubscribe_from_messages_in_room": {"pk": "{room}", "request_id": "s"},
    "subscribe_instance": {"pk": "{room}", "request_id": "i"},
    "unsubscribe_instance": {"pk": "{room}", "request_id": "i"},
    "list_members": {"pk": "{room}"},
    "add_member": {"pk": "{room}", "user_id": "{me}"},
    "remove_member": {"pk": "{room}", "user_id": "{owner}"},
    "ban_member": {"pk": "{room}", "user_id": "{owner}"},
    "unban_member": {"pk": "{room}", "user_id": "{owner}"},
    "set_role": {"pk": "{room}", "user_id": "{owner}", "role": "moderator"},
    "mark_read": {"pk": "{room}", "seq": 1},
}
# §7 (branch `social`): run when the consumer has them. Extend here.
SECTION_7_WS: dict[str, dict[str, Any]] = {
    "add_reaction": {"pk": "{message}", "emoji": "👍"},
    "remove_reaction": {"pk": "{message}", "emoji": "👍"},
    "search_messages": {"pk": "{room}", "query": "secret"},
}
# Actions with no room or message parameter: covered by the list tests below, or not about a room.
NOT_ABOUT_ONE_ROOM = {"list", "create", "open_direct", "list_my_rooms", "subscribe_to_my_rooms", "subscribe_to_online_users"}

WS_CASES = {**SECTION_2_5_6_WS, **{name: params for name, params in SECTION_7_WS.items() if name in RoomConsumer.available_actions}}

# (method, path, body)
SECTION_2_5_6_HTTP: list[tuple[str, str, dict[str, Any] | None]] = [
    ("get", "/api/rooms/{room}/", None),
    ("patch", "/api/rooms/{room}/", {"name": "taken over"}),
    ("delete", "/api/rooms/{room}/", None),
    ("post", "/api/rooms/{room}/join/", None),
    ("post", "/api/rooms/{room}/leave/", None),
    ("get", "/api/rooms/{room}/messages/", None),
    ("post", "/api/rooms/{room}/messages/", {"text": "let me in"}),
    ("patch", "/api/messages/{message}/", {"text": "edited"}),
    ("delete", "/api/messages/{message}/", None),
    ("get", "/api/rooms/{room}/members/", None),
    ("post", "/api/rooms/{room}/members/", {"user_id": "{me}"}),
    ("patch", "/api/rooms/{room}/members/{owner}/", {"role": "moderator"}),
    ("delete", "/api/rooms/{room}/members/{owner}/", None),
    ("post", "/api/rooms/{room}/bans/{owner}/", None),
    ("delete", "/api/rooms/{room}/bans/{owner}/", None),
    ("post", "/api/rooms/{room}/read/", {"seq": 1}),
]
SECTION_7_HTTP: list[tuple[str, str, dict[str, Any] | None]] = [
    ("post", "/api/messages/{message}/reactions/", {"emoji": "👍"}),
    ("delete", "/api/messages/{message}/reactions/", {"emoji": "👍"}),
    ("get", "/api/messages/search/?q=secret&room={room}", None),
]


def _routed(path: str) -> bool:
    try:
        match = resolve(path.split("?")[0].format(room=1, message=1, owner=1, me=1))
    except Resolver404:
        return False
    return match.url_name != "message-detail"  # /api/messages/search/ would otherwise pass as message "search"


HTTP_CASES = SECTION_2_5_6_HTTP + [case for case in SECTION_7_HTTP if _routed(case[1])]


def _fill(value: Any, ids: dict[str, int]) -> Any:
    if isinstance(value, dict):
        return {key: _fill(item, ids) for key, item in value.items()}
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]
    if isinstance(value, str):
        return value.format(**ids) if "{" in value else value
    return value


def test_every_ws_action_about_a_room_is_in_the_table() -> None:
    assert set(RoomConsumer.available_actions) - NOT_ABOUT_ONE_ROOM == set(WS_CASES)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", sorted(WS_CASES))
async def test_ws_non_member_gets_exactly_the_missing_room_answer(action: str) -> None:
    owner, me = await user_factory(), await user_factory()
    room = await make_room_async(owner, RoomKind.PRIVATE)
    message = await post_async(room, owner, "secret")
    real = {"room": room.pk, "message": message.pk, "owner": owner.pk, "me": me.pk}
    missing = {**real, "room": MISSING, "message": MISSING}
    async with connect(me) as c:
        hidden = await c.bad_request(action, **_fill(WS_CASES[action], real))
        absent = await c.bad_request(action, **_fill(WS_CASES[action], missing))
    assert hidden["response_status"] >= 400, hidden
    assert (hidden["response_status"], hidden["errors"]) == (absent["response_status"], absent["errors"]), (hidden, absent)
    if action not in ("unsubscribe_from_messages_in_room", "unsubscribe_instance"):  # 403 "no such subscription" for any pk
        assert hidden["response_status"] == 404
    assert await _unchanged(room, message)


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path", "body"), HTTP_CASES, ids=[f"{m.upper()} {p}" for m, p, _ in HTTP_CASES])
def test_http_non_member_gets_exactly_the_missing_room_answer(method: str, path: str, body: dict[str, Any] | None) -> None:
    owner, me = UserFactory.create(), UserFactory.create()
    room = Room.objects.create(name="hq", host=owner, kind=RoomKind.PRIVATE)
    room.memberships.create(user=owner, role="owner")
    from chat.core import services

    message = services.message_store(room_id=room.pk, author=owner, text="secret")[0]
    real = {"room": room.pk, "message": message.pk, "owner": owner.pk, "me": me.pk}
    missing = {**real, "room": MISSING, "message": MISSING}
    api = client_for(me)
    hidden = getattr(api, method)(_fill(path, real), _fill(body, real), format="json")
    absent = getattr(api, method)(_fill(path, missing), _fill(body, missing), format="json")
    assert hidden.status_code == absent.status_code == 404, (hidden.content, absent.content)
    assert hidden.json() == absent.json()
    assert Room.objects.filter(pk=room.pk, name="hq").exists() and Message.objects.filter(pk=message.pk, text="secret").exists()
    assert list(room.memberships.values_list("user_id", "role")) == [(owner.pk, "owner")]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_lists_and_counts_never_include_a_private_room_of_others() -> None:
    owner, me = await user_factory(), await user_factory()
    room = await make_room_async(owner, RoomKind.PRIVATE)
    async with connect(me) as c:
        listed = (await c.request("list", page_size=200))["data"]
        assert room.pk not in [r["pk"] for r in listed["results"]] and listed["count"] == 0
        assert (await c.request("list", name=room.name))["data"]["count"] == 0
        assert (await c.request("list_my_rooms"))["data"] == {"results": [], "count": 0}
        await add_async(room, me)
        assert (await c.request("list", name=room.name))["data"]["count"] == 1
        assert (await c.request("list_my_rooms"))["data"]["count"] == 1


@pytest.mark.django_db
def test_http_lists_never_include_a_private_room_of_others(user: User) -> None:
    room = Room.objects.create(name="hidden", host=UserFactory.create(), kind=RoomKind.PRIVATE)
    api = client_for(user)
    assert api.get("/api/rooms/").json() == {"results": [], "count": 0}
    assert api.get("/api/rooms/", {"name": room.name}).json()["count"] == 0
    assert api.get("/api/users/me/rooms/").json() == {"results": [], "count": 0}


async def _unchanged(room: Room, message: Message) -> bool:
    from tests.db import database_sync_to_async

    @database_sync_to_async
    def check() -> bool:
        fresh = Room.objects.filter(pk=room.pk).first()
        kept = Message.objects.filter(pk=message.pk).values_list("text", flat=True).first()
        return fresh is not None and fresh.name == room.name and kept == "secret" and fresh.memberships.count() == 1

    return await check()
