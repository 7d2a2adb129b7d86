"""Message search (api_docs/PROTOCOL.md §7): words in any order, case- and accent-insensitive, newest first, paged, visible rooms only."""

from typing import Any

import pytest
from django.db import connection
from pytest_django import DjangoAssertNumQueries
from rest_framework.test import APIClient

from chat.core import services
from chat.core.search import messages_matching, words_matching
from chat.models import Message, Room, User
from tests.db import database_sync_to_async
from tests.factories import RoomFactory, UserFactory
from tests.social import http
from tests.ws import connect

user_factory = database_sync_to_async(UserFactory.create)
room_factory = database_sync_to_async(RoomFactory.create)
BAD_QUERIES: list[Any] = ["", "   ", "x" * 201, 5, None, ["a"]]


@database_sync_to_async
def store_all(room: Room, author: User, texts: list[str]) -> list[Message]:
    return [services.message_store(room_id=room.pk, author=author, text=text)[0] for text in texts]


def texts(page: dict[str, Any]) -> list[str]:
    return [message["text"] for message in page["results"]]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_search_over_websocket_matches_words_in_any_order_newest_first_and_pages() -> None:
    user = await user_factory()
    room, other_room = await room_factory(host=user), await room_factory(host=user)
    await store_all(room, user, ["Deploy the release tonight", "release notes", "tonight we DEPLOY again", "unrelated"])
    await store_all(other_room, user, ["deploy staging tonight"])
    async with connect(user) as c:
        found = await c.request("search_messages", query="tonight deploy")
        assert found["response_status"] == 200
        assert texts(found["data"]) == ["deploy staging tonight", "tonight we DEPLOY again", "Deploy the release tonight"]
        assert found["data"]["has_more"] is False
        assert set(found["data"]["results"][0]) >= {"id", "room", "seq", "user", "text", "reply_to", "reactions"}

        in_room = await c.request("search_messages", query="DEPLOY tonight", pk=room.pk)
        assert texts(in_room["data"]) == ["tonight we DEPLOY again", "Deploy the release tonight"]

        first = await c.request("search_messages", query="deploy", limit=2)
        assert len(first["data"]["results"]) == 2 and first["data"]["has_more"] is True
        rest = await c.request("search_messages", query="deploy", limit=2, before_id=first["data"]["results"][-1]["id"])
        assert texts(rest["data"]) == ["Deploy the release tonight"] and rest["data"]["has_more"] is False

        assert (await c.request("search_messages", query="nothing-like-this"))["data"] == {"results": [], "has_more": False}
        missing = await c.bad_request("search_messages", query="deploy", pk=999999)
        assert missing["response_status"] == 404


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_bad_search_parameters_are_400_naming_the_field_over_websocket() -> None:
    user = await user_factory()
    async with connect(user) as c:
        for query in BAD_QUERIES:
            frame = await c.bad_request("search_messages", query=query)
            assert frame["response_status"] == 400 and "query" in frame["errors"][0], (query, frame)
        assert "query" in (await c.bad_request("search_messages"))["errors"][0]
        for field, value in [("limit", 0), ("limit", 101), ("limit", "x"), ("before_id", 0), ("pk", "room")]:
            frame = await c.bad_request("search_messages", query="ok", **{field: value})
            assert frame["response_status"] == 400 and field in frame["errors"][0], (field, value, frame)
        assert (await c.request("search_messages", query="x" * 200, limit=100))["response_status"] == 200


@pytest.mark.skipif(connection.vendor != "postgresql", reason="full-text search with accents folded is PostgreSQL's")
def test_http_search_is_case_and_accent_insensitive_on_postgresql(api: APIClient, room: Room, user: User) -> None:
    for text in ["Un café à Zürich", "CAFE in zurich", "cafeteria", "Résumé attached", "naïve question"]:
        services.message_store(room_id=room.pk, author=user, text=text)

    def search(q: str) -> list[str]:
        response = api.get("/api/messages/search/", {"q": q})
        assert response.status_code == 200, response.json()
        return texts(response.json())

    assert search("ZURICH café") == ["CAFE in zurich", "Un café à Zürich"]
    assert search("resume") == ["Résumé attached"]
    assert search("NAIVE") == ["naïve question"]
    assert search("cafe") == ["CAFE in zurich", "Un café à Zürich"]  # whole words: not "cafeteria"
    assert search("!!!") == []  # no word at all matches nothing


def test_http_search_pages_and_limits(api: APIClient, room: Room, user: User) -> None:
    ids = [m.pk for m in [services.message_store(room_id=room.pk, author=user, text=f"ping number {i}")[0] for i in range(25)]]
    page = api.get("/api/messages/search/", {"q": "ping"}).json()
    assert [m["id"] for m in page["results"]] == ids[::-1][:20] and page["has_more"] is True  # default limit 20
    rest = api.get("/api/messages/search/", {"q": "ping", "before_id": page["results"][-1]["id"], "limit": 100}).json()
    assert [m["id"] for m in rest["results"]] == ids[::-1][20:] and rest["has_more"] is False
    assert len(api.get("/api/messages/search/", {"q": "ping", "room": str(room.pk), "limit": "3"}).json()["results"]) == 3
    assert api.get("/api/messages/search/", {"q": "ping", "room": "999999"}).status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [({}, "q"), ({"q": ""}, "q"), ({"q": "   "}, "q"), ({"q": "x" * 201}, "q"), ({"q": "a", "limit": 101}, "limit")]
    + [({"q": "a", "limit": 0}, "limit"), ({"q": "a", "room": "x"}, "room"), ({"q": "a", "before_id": -1}, "before_id")],
)
def test_http_bad_search_parameters_are_400_naming_the_field(api: APIClient, params: dict[str, str | int], field: str) -> None:
    response = api.get("/api/messages/search/", params)
    assert response.status_code == 400 and field in response.json()


def test_search_needs_authentication() -> None:
    assert APIClient().get("/api/messages/search/", {"q": "a"}).status_code in (401, 403)


def test_search_reads_reactions_in_one_query(
    api: APIClient, room: Room, user: User, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    for i in range(10):
        message = services.message_store(room_id=room.pk, author=user, text=f"hello {i}")[0]
        services.reaction_add(message_id=message.pk, user=user, emoji="\U0001f44d")
    for limit in (2, 10):
        # Matching messages with authors, their reactions (the token's user: a prepared statement, not in Django's log).
        with django_assert_num_queries(2):
            results = api.get("/api/messages/search/", {"q": "hello", "limit": limit}).json()["results"]
        assert len(results) == limit and all(m["reactions"][0]["count"] == 1 for m in results)


@pytest.mark.django_db
def test_the_embedded_database_fallback_matches_every_word_case_insensitively(room: Room, user: User) -> None:
    # The SQLite default's matcher; any database can run it.
    for text in ["Deploy the Release", "release only", "deploy only"]:
        services.message_store(room_id=room.pk, author=user, text=text)
    found = words_matching(Message.objects.order_by("pk"), "release  DEPLOY")
    assert [m.text for m in found] == ["Deploy the Release"]
    assert list(words_matching(Message.objects.all(), "   ")) == []
    assert messages_matching(Message.objects.all(), "zzz").count() == 0


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_search_never_shows_a_private_room_to_a_non_member() -> None:
    owner, outsider = await user_factory(), await user_factory()
    async with connect(owner) as o:
        private = (await o.request("create", data={"name": "secret", "kind": "private"}))["data"]
        await o.request("join_room", pk=private["pk"])
        await o.request("create_message", message="launch codes", room=private["pk"])
        assert texts((await o.request("search_messages", query="launch codes"))["data"]) == ["launch codes"]
    async with connect(outsider) as x:
        assert (await x.request("search_messages", query="launch codes"))["data"]["results"] == []
        assert (await x.bad_request("search_messages", query="launch", pk=private["pk"]))["response_status"] == 404
    status, body = await http(outsider, "get", "/api/messages/search/?q=launch")
    assert status == 200 and body["results"] == []
    status, _ = await http(outsider, "get", f"/api/messages/search/?q=launch&room={private['pk']}")
    assert status == 404
