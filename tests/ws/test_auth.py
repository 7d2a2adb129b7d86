"""The handshake policy: tokens, session cookies with an allowed Origin, and revocation (close 4401)."""

from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client as DjangoClient
from rest_framework.authtoken.models import Token

from mysite.asgi import application
from tests.db import database_sync_to_async
from tests.factories import PASSWORD, UserFactory
from tests.ws import WS_PATH, connect, token_for

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

user_factory = database_sync_to_async(UserFactory)


async def handshake(path: str = WS_PATH, headers: list[tuple[bytes, bytes]] | None = None) -> tuple[bool, WebsocketCommunicator]:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await communicator.connect(timeout=5)
    return connected, communicator


@database_sync_to_async
def session_cookie(user: Any) -> bytes:
    client = DjangoClient()
    assert client.login(username=user.username, password=PASSWORD)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def test_token_in_query_string() -> None:
    user = await user_factory()
    connected, communicator = await handshake(f"{WS_PATH}?token={await token_for(user)}")
    assert connected
    await communicator.send_json_to({"action": "list", "request_id": 1})
    assert (await communicator.receive_json_from())["response_status"] == 200
    await communicator.disconnect()


async def test_session_cookie_needs_an_allowed_origin() -> None:
    user = await user_factory()
    cookie = await session_cookie(user)
    same_origin = [(b"host", b"localhost:8000"), (b"origin", b"http://localhost:8000")]
    connected, communicator = await handshake(headers=[(b"cookie", cookie), *same_origin])
    assert connected
    await communicator.disconnect()
    # Without an Origin it is no browser, and only tokens count.
    assert not (await handshake(headers=[(b"cookie", cookie)]))[0]
    assert not (await handshake(headers=[(b"cookie", cookie), (b"origin", b"http://evil.example")]))[0]


async def test_disallowed_origin_is_refused_even_with_a_token() -> None:
    user = await user_factory()
    token = (await token_for(user)).encode()
    assert not (await handshake(headers=[(b"authorization", b"Token " + token), (b"origin", b"http://evil.example")]))[0]
    assert (await handshake(headers=[(b"authorization", b"Token " + token)]))[0]


async def test_inactive_user_is_refused() -> None:
    user = await user_factory(is_active=False)
    assert not (await handshake(headers=[(b"authorization", f"Token {await token_for(user)}".encode())]))[0]


async def test_deleting_the_token_closes_its_connections_with_4401() -> None:
    user = await user_factory()
    async with connect(user) as client:
        await database_sync_to_async(Token.objects.filter(user=user).delete)()
        assert await client.communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}


async def test_deactivating_the_user_closes_every_connection_with_4401() -> None:
    user = await user_factory()
    async with connect(user) as first, connect(user) as second:
        user.is_active = False
        await database_sync_to_async(user.save)()
        for client in (first, second):
            assert await client.communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}
