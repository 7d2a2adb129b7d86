"""Issue 15, finding 5: the limits of api_docs/PROTOCOL.md §3 (version 2), on both transports, each refusal counted."""

import asyncio
from typing import Any

import pytest
from django.conf import settings as django_settings
from prometheus_client import REGISTRY
from rest_framework.test import APIClient

from chat.models import User
from mysite.asgi import application
from tests.conftest import client_for
from tests.contract import ContractCommunicator
from tests.db import database_sync_to_async
from tests.factories import PASSWORD, RoomFactory, UserFactory
from tests.ws import WS_PATH, connect, token_for

user_factory = database_sync_to_async(UserFactory)
room_factory = database_sync_to_async(RoomFactory)


def refusals(limit: str) -> float:
    """How many refusals the `chat_rate_limited` counter holds for this limit."""
    return REGISTRY.get_sample_value("chat_rate_limited_total", {"limit": limit}) or 0.0


def test_defaults_are_the_contracts() -> None:
    assert django_settings.CHAT_MAX_SUBSCRIPTIONS_PER_CONNECTION == 1000
    assert django_settings.CHAT_MAX_ROOMS_PER_CONNECTION == 500
    assert django_settings.CHAT_MAX_CONNECTIONS_PER_USER == 50
    assert (django_settings.CHAT_WS_FRAME_RATE, django_settings.CHAT_WS_FRAME_BURST) == (50, 100)
    assert (django_settings.CHAT_ROOM_CREATE_RATE_LIMIT, django_settings.CHAT_ROOM_CREATE_RATE_PERIOD) == (10, 60)
    assert django_settings.CHAT_TYPING_INTERVAL == 2
    assert django_settings.CHAT_AUTH_RATE_LIMIT == 10
    from mysite.serve import MAX_INPUT_BYTES

    assert MAX_INPUT_BYTES == 1024 * 1024


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_subscriptions_per_connection_are_capped_and_resubscribing_replaces(settings: Any) -> None:
    settings.CHAT_MAX_SUBSCRIPTIONS_PER_CONNECTION = 3
    user = await user_factory()
    room, other = await room_factory(host=user), await room_factory(host=user)
    before = refusals("subscriptions")
    async with connect(user) as client:
        assert (await client.request("subscribe_to_messages_in_room", pk=room.pk, request_id="m"))["response_status"] == 200
        assert (await client.request("subscribe_instance", pk=room.pk, request_id="i"))["response_status"] == 200
        assert (await client.request("subscribe_to_online_users", request_id="o"))["response_status"] == 200
        for action, params in (
            ("subscribe_to_messages_in_room", {"pk": other.pk, "request_id": "m2"}),
            ("subscribe_instance", {"pk": other.pk, "request_id": "i2"}),
            ("subscribe_to_online_users", {"request_id": "o2"}),
        ):
            refused = await client.request(action, **params)
            assert refused["response_status"] == 429, refused
            assert refused["data"] == {"retry_after": None}
            assert "subscriptions" in refused["errors"][0]
        # The same (pk, request_id) again replaces the subscription: no new one, no refusal.
        assert (await client.request("subscribe_to_messages_in_room", pk=room.pk, request_id="m"))["response_status"] == 200
        assert (await client.request("subscribe_instance", pk=room.pk, request_id="i"))["response_status"] == 200
        # Freeing one makes room for another.
        assert (await client.request("unsubscribe_instance", pk=room.pk, request_id="i"))["response_status"] == 200
        assert (await client.request("subscribe_instance", pk=other.pk, request_id="i2"))["response_status"] == 200
    assert refusals("subscriptions") == before + 3


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_joined_rooms_per_connection_are_capped(settings: Any) -> None:
    settings.CHAT_MAX_ROOMS_PER_CONNECTION = 2
    user = await user_factory()
    rooms = [await room_factory() for _ in range(3)]  # hosted by others: an owner may not leave (§5)
    before = refusals("joined_rooms")
    async with connect(user) as client:
        for room in rooms[:2]:
            assert (await client.request("join_room", pk=room.pk))["response_status"] == 200
        refused = await client.request("join_room", pk=rooms[2].pk)
        assert refused["response_status"] == 429 and refused["data"] == {"retry_after": None}, refused
        assert "joined rooms" in refused["errors"][0]
        assert (await client.request("join_room", pk=rooms[0].pk))["response_status"] == 200  # already joined
        assert (await client.request("leave_room", pk=rooms[0].pk))["response_status"] == 200
        assert (await client.request("join_room", pk=rooms[2].pk))["response_status"] == 200
    assert refusals("joined_rooms") == before + 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_open_connections_per_user_are_capped_with_4429(settings: Any) -> None:
    settings.CHAT_MAX_CONNECTIONS_PER_USER = 2
    user, other = await user_factory(), await user_factory()
    before = refusals("connections_per_user")
    async with connect(user), connect(user):
        headers = [(b"authorization", f"Token {await token_for(user)}".encode())]
        communicator = ContractCommunicator(application, WS_PATH, headers=headers)
        connected, _ = await communicator.connect(timeout=5)
        assert connected  # accepted, then closed at once with a code that says why
        assert await communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": 4429}
        async with connect(other) as fine:  # another user is not affected
            assert (await fine.request("list"))["response_status"] == 200
    async with connect(user) as again:  # once one closes, a new one is accepted
        assert (await again.request("list"))["response_status"] == 200
    assert refusals("connections_per_user") == before + 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_inbound_frames_over_the_rate_get_429(settings: Any) -> None:
    settings.CHAT_WS_FRAME_BURST = 5
    settings.CHAT_WS_FRAME_RATE = 2
    user = await user_factory()
    before = refusals("inbound_frames")
    async with connect(user) as client:
        for index in range(8):
            await client.send({"action": "list", "request_id": index})
        statuses = [(await client.response_to(index))["response_status"] for index in range(8)]
        assert statuses[:5] == [200] * 5 and statuses[-2:] == [429, 429], statuses
        await asyncio.sleep(0.6)  # one token back
        assert (await client.request("list"))["response_status"] == 200
    assert refusals("inbound_frames") >= before + 2


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_room_creation_is_limited_per_user_on_both_transports(settings: Any) -> None:
    settings.CHAT_ROOM_CREATE_RATE_LIMIT = 2
    user = await user_factory()
    http = await database_sync_to_async(client_for)(user)
    before = refusals("room_create")
    async with connect(user) as client:
        assert (await client.request("create", data={"name": "one"}))["response_status"] == 201
        response = await database_sync_to_async(http.post)("/api/rooms/", {"name": "two"}, format="json")
        assert response.status_code == 201
        refused = await client.request("create", data={"name": "three"})
        assert refused["response_status"] == 429 and refused["data"]["retry_after"] >= 1, refused
        response = await database_sync_to_async(http.post)("/api/rooms/", {"name": "four"}, format="json")
        assert response.status_code == 429 and int(response["Retry-After"]) >= 1
    assert refusals("room_create") == before + 2


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_update_message_shares_the_message_flood_limit(settings: Any) -> None:
    settings.CHAT_MESSAGE_RATE_LIMIT = 3
    user = await user_factory()
    room = await room_factory(host=user)
    http = await database_sync_to_async(client_for)(user)
    async with connect(user) as client:
        posted = await client.request("create_message", room=room.pk, message="v1")
        assert posted["response_status"] == 201
        pk = posted["data"]["id"]
        assert (await client.request("update_message", pk=pk, message="v2"))["response_status"] == 200
        response = await database_sync_to_async(http.patch)(f"/api/messages/{pk}/", {"text": "v3"}, format="json")
        assert response.status_code == 200
        refused = await client.request("update_message", pk=pk, message="v4")
        assert refused["response_status"] == 429, refused
        response = await database_sync_to_async(http.patch)(f"/api/messages/{pk}/", {"text": "v5"}, format="json")
        assert response.status_code == 429
    text = await database_sync_to_async(lambda: room.messages.get().text)()
    assert text == "v3"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_typing_pushes_at_most_once_per_interval(settings: Any) -> None:
    settings.CHAT_TYPING_INTERVAL = 1
    alice, bob = await user_factory(), await user_factory()
    room = await room_factory(host=alice)
    async with connect(alice) as a, connect(alice) as a2, connect(bob) as b:
        for client in (a, a2, b):
            await client.request("join_room", pk=room.pk)
        await asyncio.sleep(0.5)
        b.pushes = [push for push in getattr(b, "pushes", []) if push["action"] != "presence"]
        while not await b.communicator.receive_nothing(timeout=0.3):
            await b.receive()
        for client in (a, a, a2):  # two calls on one connection, one on another: one push
            assert (await client.request("typing", pk=room.pk))["response_status"] == 200
        push = await b.next_push()
        assert push["action"] == "typing" and push["data"]["user"]["id"] == alice.pk
        await b.assert_silent(0.5)
        await asyncio.sleep(1.1)
        assert (await a.request("typing", pk=room.pk))["response_status"] == 200
        assert (await b.next_push())["action"] == "typing"


@pytest.mark.django_db
def test_register_and_token_are_throttled_per_address() -> None:
    before = refusals("auth")
    client = APIClient(REMOTE_ADDR="203.0.113.7")
    for index in range(6):
        assert client.post("/api/auth/register/", {"username": f"u{index}", "password": PASSWORD}, format="json").status_code == 201
    for _ in range(4):
        assert client.post("/api/auth/token/", {"username": "u0", "password": PASSWORD}, format="json").status_code == 200
    refused = client.post("/api/auth/token/", {"username": "u0", "password": PASSWORD}, format="json")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1 and "detail" in refused.json()
    # A forged X-Forwarded-For does not make a new client (no trusted proxy by default).
    forged = client.post(
        "/api/auth/register/", {"username": "u9", "password": PASSWORD}, format="json", HTTP_X_FORWARDED_FOR="198.51.100.1"
    )
    assert forged.status_code == 429
    other = APIClient(REMOTE_ADDR="203.0.113.8")
    assert other.post("/api/auth/token/", {"username": "u0", "password": PASSWORD}, format="json").status_code == 200
    assert refusals("auth") == before + 2
    assert User.objects.count() == 6


@pytest.mark.django_db
def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(settings: Any) -> None:
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = APIClient(REMOTE_ADDR="10.0.0.1")
    for _ in range(10):
        response = proxy.post("/api/auth/token/", {"username": "x", "password": "y"}, format="json", HTTP_X_FORWARDED_FOR="198.51.100.1")
        assert response.status_code == 400
    assert (
        proxy.post("/api/auth/token/", {"username": "x", "password": "y"}, format="json", HTTP_X_FORWARDED_FOR="198.51.100.1").status_code
        == 429
    )
    assert (
        proxy.post("/api/auth/token/", {"username": "x", "password": "y"}, format="json", HTTP_X_FORWARDED_FOR="198.51.100.2").status_code
        == 400
    )
