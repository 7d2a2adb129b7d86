"""Cross-origin WebSocket handshakes (api_docs/PROTOCOL.md §2, §8): exact origins, and token-only from other origins."""

from typing import Any

import pytest
import pytest_asyncio
import requests
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client as DjangoClient
from django.test import override_settings
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from chat.ws.auth import parse_origin
from mysite.asgi import application
from tests.db import database_sync_to_async
from tests.factories import PASSWORD, UserFactory
from tests.live import register_user, run_servers
from tests.ws import WS_PATH, token_for

SPA = "http://app.example.com"
HOST = b"localhost:8000"

user_factory = database_sync_to_async(UserFactory)


@database_sync_to_async
def session_cookie(user: Any) -> bytes:
    client = DjangoClient()
    assert client.login(username=user.username, password=PASSWORD)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def works(
    origin: str | None,
    *,
    token: str | None = None,
    cookie: bytes | None = None,
    host: bytes = HOST,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> bool:
    """Whether a handshake with these credentials is accepted and then answers a request."""
    headers = [(b"host", host), *(extra or [])]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie is not None:
        headers.append((b"cookie", cookie))
    path = WS_PATH if token is None else f"{WS_PATH}?token={token}"
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    if not connected:
        return False
    try:
        await communicator.send_json_to({"action": "list", "request_id": 1})
        return (await communicator.receive_json_from(timeout=5))["response_status"] == 200
    finally:
        await communicator.disconnect()


@pytest_asyncio.fixture
async def credentials(transactional_db: None) -> tuple[str, bytes]:
    user = await user_factory()
    return await token_for(user), await session_cookie(user)


@pytest.mark.asyncio
@override_settings(WS_ALLOWED_ORIGINS=[SPA])
async def test_the_servers_own_origin_may_use_the_cookie_or_a_token(credentials: tuple[str, bytes]) -> None:
    token, cookie = credentials
    assert await works("http://localhost:8000", cookie=cookie)
    assert await works("http://localhost:8000", token=token)
    # Default ports are the same origin spelled two ways.
    assert await works("http://localhost", cookie=cookie, host=b"localhost")
    assert await works("http://localhost:80", cookie=cookie, host=b"localhost")


@pytest.mark.asyncio
@override_settings(WS_ALLOWED_ORIGINS=[SPA])
async def test_a_foreign_origin_is_refused_whatever_it_carries(credentials: tuple[str, bytes]) -> None:
    token, cookie = credentials
    assert not await works("http://evil.example", cookie=cookie)
    assert not await works("http://evil.example", token=token)
    assert not await works("null", token=token)


@pytest.mark.asyncio
@override_settings(WS_ALLOWED_ORIGINS=[SPA])
async def test_another_port_is_another_origin(credentials: tuple[str, bytes]) -> None:
    token, cookie = credentials
    assert not await works("http://localhost:9999", cookie=cookie)
    assert not await works("http://localhost:9999", token=token)
    assert not await works("http://app.example.com:8080", token=token)


@pytest.mark.asyncio
@override_settings(WS_ALLOWED_ORIGINS=[SPA])
async def test_another_scheme_is_another_origin(credentials: tuple[str, bytes]) -> None:
    token, cookie = credentials
    assert not await works("https://localhost:8000", cookie=cookie)
    assert not await works("https://app.example.com", token=token)


@pytest.mark.asyncio
@override_settings(WS_ALLOWED_ORIGINS=[SPA], ALLOWED_HOSTS=["chat.example.com"])
async def test_a_host_not_allowed_is_no_same_origin(credentials: tuple[str, bytes]) -> None:
    _, cookie = credentials
    assert not await works("http://evil.example", cookie=cookie, host=b"evil.example")
    assert await works("http://chat.example.com", cookie=cookie, host=b"chat.example.com")


@pytest.mark.asyncio
@override_settings(ALLOWED_HOSTS=["chat.example.com"], SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
async def test_behind_a_tls_proxy_the_page_origin_is_https(credentials: tuple[str, bytes]) -> None:
    _, cookie = credentials
    proxied = [(b"x-forwarded-proto", b"https")]
    assert await works("https://chat.example.com", cookie=cookie, host=b"chat.example.com", extra=proxied)
    assert not await works("http://chat.example.com", cookie=cookie, host=b"chat.example.com", extra=proxied)
    # Without the proxy's header the hop is plain ws: an https page is another origin.
    assert not await works("https://chat.example.com", cookie=cookie, host=b"chat.example.com")


@pytest.mark.asyncio
@override_settings(WS_ALLOWED_ORIGINS=[SPA])
async def test_a_listed_spa_connects_with_a_token(credentials: tuple[str, bytes]) -> None:
    token, _ = credentials
    assert await works(SPA, token=token)
    assert await works(SPA + ":80", token=token)


@pytest.mark.asyncio
@override_settings(WS_ALLOWED_ORIGINS=[SPA])
async def test_a_listed_spa_with_only_a_cookie_is_refused(credentials: tuple[str, bytes]) -> None:
    _, cookie = credentials
    assert not await works(SPA, cookie=cookie)


def test_origins_parse_to_scheme_host_and_port() -> None:
    assert parse_origin("https://App.Example.com") == ("https", "app.example.com", 443)
    assert parse_origin("http://[::1]:8000") == ("http", "::1", 8000)
    for bad in ("null", "app.example.com", "ftp://x", "http://x/path", "http://x:99999"):
        assert parse_origin(bad) is None, bad


@pytest.mark.live
@pytest.mark.asyncio
async def test_a_live_server_lets_a_cors_listed_spa_in_with_a_token_by_default(transactional_db: None) -> None:
    """The issue's report: CORS_ALLOWED_ORIGINS set, an SPA's token handshake got 403; now it is the default allow-list."""
    with run_servers(1, {"CORS_ALLOWED_ORIGINS": SPA}) as (server,):
        user = register_user(server.base_url)
        preflight = requests.options(
            f"{server.base_url}/api/rooms/",
            headers={"Origin": SPA, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"},
            timeout=10,
        )
        assert preflight.headers.get("access-control-allow-origin") == SPA
        async with ws_connect(f"{server.ws_url}?token={user.token}", origin=SPA) as ws:  # type: ignore[arg-type]
            await ws.send('{"action": "list", "request_id": 1}')
            assert '"response_status": 200' in await ws.recv()
        with pytest.raises(InvalidStatus) as refused:
            async with ws_connect(f"{server.ws_url}?token={user.token}", origin="http://app.example.com:81"):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
