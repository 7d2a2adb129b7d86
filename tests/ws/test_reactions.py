"""Reactions (api_docs/PROTOCOL.md §7), over WebSocket and HTTP: one per user per emoji, the `update` event, limits, query counts."""

from typing import Any

import pytest
from django.test import override_settings
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from chat.core import services
from chat.models import Message, Reaction, Room, User
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.social import http, statements_on_every_thread
from tests.ws import connect

THUMBS, PARTY = "\U0001f44d", "\U0001f389"
BAD_EMOJIS: list[Any] = ["", " ", "a b", "\U0001f44d ", "\t", "x" * 33, "a\nb", 5, None, ["\U0001f44d"], {"e": 1}]

user_factory = database_sync_to_async(UserFactory.create)
room_factory = database_sync_to_async(RoomFactory.create)
reaction_count = database_sync_to_async(lambda: Reaction.objects.count())


@database_sync_to_async
def store(room: Room, author: User, text: str = "hello") -> Message:
    return services.message_store(room_id=room.pk, author=author, text=text)[0]


@database_sync_to_async
def join(room: Room, *users: User) -> None:
    room.members.add(*users)


# --- WebSocket ------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_add_and_remove_over_websocket_with_update_events_and_no_edit() -> None:
    host, member, watcher = await user_factory(), await user_factory(), await user_factory()
    room = await room_factory(host=host)
    await join(room, member)
    message = await store(room, host)
    async with connect(host) as h, connect(member) as m, connect(watcher) as w:
        await w.request("subscribe_to_messages_in_room", pk=room.pk, request_id="watch")

        added = await m.request("add_reaction", pk=message.pk, emoji=THUMBS)
        assert added["response_status"] == 201, added
        assert added["data"]["reactions"] == [{"emoji": THUMBS, "count": 1, "user_ids": [member.pk]}]
        assert added["data"]["edited_at"] is None
        push = await w.next_push()
        assert push["action"] == "update" and push["request_id"] == "watch" and push["pk"] == message.pk
        assert push["data"]["reactions"] == added["data"]["reactions"] and push["data"]["edited_at"] is None

        again = await m.request("add_reaction", pk=message.pk, emoji=THUMBS)  # one per user per emoji
        assert again["response_status"] == 200 and again["data"]["reactions"] == added["data"]["reactions"]
        await w.assert_silent()  # nothing changed, nothing sent

        await h.request("add_reaction", pk=message.pk, emoji=PARTY)
        await h.request("add_reaction", pk=message.pk, emoji=THUMBS)
        state = (await m.request("add_reaction", pk=message.pk, emoji=PARTY))["data"]
        # In order of each emoji's first use; user_ids in the order they reacted.
        assert state["reactions"] == [
            {"emoji": THUMBS, "count": 2, "user_ids": [member.pk, host.pk]},
            {"emoji": PARTY, "count": 2, "user_ids": [host.pk, member.pk]},
        ]
        for _ in range(3):
            assert (await w.next_push())["action"] == "update"

        removed = await m.request("remove_reaction", pk=message.pk, emoji=THUMBS)
        assert removed["response_status"] == 200
        # The first use among the reactions that remain: the host's party came before the host's thumbs.
        assert removed["data"]["reactions"] == [
            {"emoji": PARTY, "count": 2, "user_ids": [host.pk, member.pk]},
            {"emoji": THUMBS, "count": 1, "user_ids": [host.pk]},
        ]
        push = await w.next_push()
        assert push["action"] == "update" and push["data"]["reactions"] == removed["data"]["reactions"]
        assert push["data"]["edited_at"] is None

        missing = await m.bad_request("remove_reaction", pk=message.pk, emoji=THUMBS)
        assert missing["response_status"] == 404 and missing["errors"]
        await w.assert_silent()
        history = (await w.request("list_messages", pk=room.pk))["data"]["results"]
        assert history[0]["reactions"] == removed["data"]["reactions"] and history[0]["edited_at"] is None
    assert await reaction_count() == 3


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_reactions_need_membership_and_an_existing_message_over_websocket() -> None:
    host, stranger = await user_factory(), await user_factory()
    room = await room_factory(host=host)
    message = await store(room, host)
    async with connect(stranger) as s:
        refused = await s.bad_request("add_reaction", pk=message.pk, emoji=THUMBS)
        assert refused["response_status"] == 403 and refused["errors"]
        assert (await s.bad_request("add_reaction", pk=999999, emoji=THUMBS))["response_status"] == 404
        assert (await s.bad_request("remove_reaction", pk=999999, emoji=THUMBS))["response_status"] == 404
        assert (await s.bad_request("remove_reaction", pk=message.pk, emoji=THUMBS))["response_status"] == 403
    assert await reaction_count() == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_bad_emoji_is_400_naming_the_field_over_websocket() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    message = await store(room, host)
    async with connect(host) as h:
        for emoji in BAD_EMOJIS:
            frame = await h.bad_request("add_reaction", pk=message.pk, emoji=emoji)
            assert frame["response_status"] == 400 and "emoji" in frame["errors"][0], (emoji, frame)
        missing = await h.bad_request("add_reaction", pk=message.pk)
        assert missing["response_status"] == 400 and "emoji" in missing["errors"][0]
        assert (await h.bad_request("add_reaction", pk="x", emoji=THUMBS))["response_status"] == 400
        # 32 characters, or any non-space text, is fine: a short code or a multi-codepoint emoji.
        for emoji in ["y" * 32, ":+1:", "\U0001f468\u200d\U0001f469\u200d\U0001f467"]:
            assert (await h.request("add_reaction", pk=message.pk, emoji=emoji))["response_status"] == 201
    assert await reaction_count() == 3


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@override_settings(CHAT_MESSAGE_RATE_LIMIT=3, CHAT_MESSAGE_RATE_PERIOD=30)
async def test_reactions_share_the_message_flood_limit_over_websocket() -> None:
    host = await user_factory()
    room = await room_factory(host=host)
    message = await store(room, host)
    async with connect(host) as h:
        await h.request("join_room", pk=room.pk)
        assert (await h.request("create_message", message="one"))["response_status"] == 201
        assert (await h.request("add_reaction", pk=message.pk, emoji="a"))["response_status"] == 201
        assert (await h.request("remove_reaction", pk=message.pk, emoji="a"))["response_status"] == 200
        limited = await h.request("add_reaction", pk=message.pk, emoji="b")
        assert limited["response_status"] == 429 and 1 <= limited["data"]["retry_after"] <= 30
        assert (await h.request("remove_reaction", pk=message.pk, emoji="a"))["response_status"] == 429
        assert (await h.request("create_message", message="two"))["response_status"] == 429
    assert await reaction_count() == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_list_messages_reads_reactions_in_one_query_whatever_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    host, member = await user_factory(), await user_factory()
    room = await room_factory(host=host)
    await join(room, member)
    messages = [await store(room, host, f"m{i}") for i in range(12)]

    @database_sync_to_async
    def react_to_all() -> None:
        for message in messages:
            services.reaction_add(message_id=message.pk, user=member, emoji=THUMBS)
            services.reaction_add(message_id=message.pk, user=host, emoji=PARTY)

    await react_to_all()
    async with connect(host) as h:
        for limit in (2, 12):
            with statements_on_every_thread(monkeypatch) as statements:
                page = await h.request("list_messages", pk=room.pk, limit=limit)
            assert len(page["data"]["results"]) == limit
            assert all(len(message["reactions"]) == 2 for message in page["data"]["results"])
            assert len([sql for sql in statements if "chat_reaction" in sql]) == 1, statements


# --- HTTP -----------------------------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_http_reaction_reaches_websocket_subscribers_as_update() -> None:
    host, member = await user_factory(), await user_factory()
    room = await room_factory(host=host)
    await join(room, member)
    message = await store(room, host)
    async with connect(host) as h:
        await h.request("subscribe_to_messages_in_room", pk=room.pk, request_id="s")
        status, body = await http(member, "post", f"/api/messages/{message.pk}/reactions/", {"emoji": THUMBS})
        assert status == 201 and body["reactions"] == [{"emoji": THUMBS, "count": 1, "user_ids": [member.pk]}]
        push = await h.next_push()
        assert push["action"] == "update" and push["data"]["reactions"] == body["reactions"] and push["data"]["edited_at"] is None
        status, body = await http(member, "delete", f"/api/messages/{message.pk}/reactions/", {"emoji": THUMBS})
        assert status == 200 and body["reactions"] == []
        assert (await h.next_push())["data"]["reactions"] == []


def test_http_add_twice_remove_missing_and_permissions(api: APIClient, other_api: APIClient, room: Room, user: User) -> None:
    message = services.message_store(room_id=room.pk, author=user, text="hi")[0]
    url = f"/api/messages/{message.pk}/reactions/"
    first = api.post(url, {"emoji": THUMBS}, format="json")
    assert first.status_code == 201 and first.json()["reactions"][0]["user_ids"] == [user.pk]
    again = api.post(url, {"emoji": THUMBS}, format="json")
    assert again.status_code == 200 and again.json()["reactions"] == first.json()["reactions"]
    assert api.delete(url, {"emoji": PARTY}, format="json").status_code == 404
    assert other_api.post(url, {"emoji": THUMBS}, format="json").status_code == 403  # not a member
    assert api.post("/api/messages/999999/reactions/", {"emoji": THUMBS}, format="json").status_code == 404
    # A DELETE body is not always possible: the emoji may come as a query parameter.
    assert api.delete(f"{url}?emoji={THUMBS}").status_code == 200
    assert not Reaction.objects.exists()
    assert APIClient().post(url, {"emoji": THUMBS}, format="json").status_code in (401, 403)


@pytest.mark.parametrize("emoji", BAD_EMOJIS)
def test_http_bad_emoji_is_400_naming_the_field(api: APIClient, room: Room, user: User, emoji: Any) -> None:
    message = services.message_store(room_id=room.pk, author=user, text="hi")[0]
    response = api.post(f"/api/messages/{message.pk}/reactions/", {"emoji": emoji}, format="json")
    assert response.status_code == 400 and "emoji" in response.json()
    assert not Reaction.objects.exists()


@override_settings(CHAT_MESSAGE_RATE_LIMIT=2, CHAT_MESSAGE_RATE_PERIOD=30)
def test_http_reactions_share_the_message_flood_limit(api: APIClient, room: Room, user: User) -> None:
    message = services.message_store(room_id=room.pk, author=user, text="hi")[0]
    assert api.post(f"/api/rooms/{room.pk}/messages/", {"text": "one"}, format="json").status_code == 201
    assert api.post(f"/api/messages/{message.pk}/reactions/", {"emoji": "a"}, format="json").status_code == 201
    limited = api.post(f"/api/messages/{message.pk}/reactions/", {"emoji": "b"}, format="json")
    assert limited.status_code == 429 and "Retry-After" in limited
    assert Reaction.objects.count() == 1


def test_http_history_and_room_list_read_reactions_without_a_query_per_message(
    api: APIClient,
    room: Room,
    user: User,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    others = [UserFactory.create() for _ in range(3)]
    room.members.add(*others)
    for i in range(20):
        message = services.message_store(room_id=room.pk, author=user, text=f"m{i}")[0]
        for other in others:
            services.reaction_add(message_id=message.pk, user=other, emoji=THUMBS if i % 2 else PARTY)
    for limit in (3, 20):
        # room exists, messages with authors, their reactions (the token's user is read by a
        # prepared statement, chat.http.authentication, which Django's query log does not see)
        with django_assert_num_queries(3):
            body = api.get(f"/api/rooms/{room.pk}/messages/", {"limit": limit}).json()
        assert len(body["results"]) == limit and all(m["reactions"][0]["count"] == 3 for m in body["results"])
    rooms = api.get("/api/rooms/").json()["results"]
    assert rooms[0]["last_message"]["reactions"] == [{"emoji": THUMBS, "count": 3, "user_ids": [o.pk for o in others]}]


def test_new_message_is_serialized_without_reading_reactions(
    api: APIClient,
    room: Room,
    django_assert_max_num_queries: DjangoAssertNumQueries,
) -> None:
    # token, then the post's transaction: lock room, bump seq, insert (and savepoint statements in a test's transaction)
    with django_assert_max_num_queries(6) as captured:
        response = api.post(f"/api/rooms/{room.pk}/messages/", {"text": "fresh"}, format="json")
    assert response.status_code == 201 and response.json()["reactions"] == []
    assert not any("chat_reaction" in query["sql"] for query in captured.captured_queries)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_no_reactions_on_a_private_room_one_cannot_see() -> None:
    owner, outsider = await user_factory(), await user_factory()
    async with connect(owner) as o:
        room = (await o.request("create", data={"name": "secret", "kind": "private"}))["data"]
        await o.request("join_room", pk=room["pk"])
        message = (await o.request("create_message", message="hush", room=room["pk"]))["data"]
    async with connect(outsider) as x:
        assert (await x.bad_request("add_reaction", pk=message["id"], emoji=THUMBS))["response_status"] == 404
    status, _ = await http(outsider, "post", f"/api/messages/{message['id']}/reactions/", {"emoji": THUMBS})
    assert status == 404
    assert await reaction_count() == 0
