"""HTTP through the served ASGI application (mysite.asgi): the middleware chain and the view in one thread hop."""

import asyncio
import json
from typing import Any

import pytest
from channels.testing import HttpCommunicator
from rest_framework.authtoken.models import Token

from chat.models import Message
from mysite.asgi import application
from tests.db import database_sync_to_async
from tests.factories import RoomFactory

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@database_sync_to_async
def member_with_room() -> tuple[str, int]:
    room = RoomFactory.create()
    return Token.objects.create(user=room.host).key, room.pk


async def request(method: str, path: str, body: Any = None, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    encoded = b"" if body is None else json.dumps(body).encode()
    all_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(encoded)).encode()), (b"host", b"testserver")]
    all_headers += headers or []
    communicator = HttpCommunicator(application, method, path, body=encoded, headers=all_headers)
    response: dict[str, Any] = await communicator.get_response(timeout=10)
    await communicator.wait(timeout=10)  # the request's end too: its close, request_finished
    response["headers"] = {name.decode().lower(): value.decode() for name, value in response["headers"]}
    return response


def counting_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The functions every loop-to-thread hop runs (asgiref's and db_thread's alike), in order."""
    hops: list[str] = []
    run_in_executor = asyncio.BaseEventLoop.run_in_executor

    def counted(self: asyncio.BaseEventLoop, executor: Any, call: Any, *args: Any) -> Any:
        target = call.args[0] if call.func.__name__ == "run" else call.args[-1].func
        hops.append(getattr(target, "__qualname__", repr(target)))
        return run_in_executor(self, executor, call, *args)

    monkeypatch.setattr(asyncio.BaseEventLoop, "run_in_executor", counted)
    return hops


async def test_a_post_runs_its_middleware_and_view_in_one_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    token, room_id = await member_with_room()
    hops = counting_hops(monkeypatch)
    response = await request(
        "POST", f"/api/rooms/{room_id}/messages/", {"text": "over asgi"}, [(b"authorization", f"Token {token}".encode())]
    )
    monkeypatch.undo()
    assert response["status"] == 201, response["body"]
    assert json.loads(response["body"])["text"] == "over asgi"
    assert await database_sync_to_async(Message.objects.filter(room_id=room_id, text="over asgi").count)() == 1
    # request_started's receivers, the middleware chain with the view, the response's close
    # (request_finished). Built for async, the chain alone crossed about twelve times.
    assert hops[:2] == ["Signal.asend.<locals>.sync_send", "api_json_errors_middleware.<locals>.sync_middleware"]
    assert len(hops) == 3, hops


async def test_the_middleware_still_answers_as_configured() -> None:
    token, _ = await member_with_room()
    # Outermost api_json_errors_middleware: a path nothing serves, as JSON.
    missing = await request("GET", "/api/no-such-thing/", headers=[(b"authorization", f"Token {token}".encode())])
    assert missing["status"] == 404
    assert missing["headers"]["content-type"].startswith("application/json")
    # SecurityMiddleware and XFrameOptionsMiddleware, around a view's own answer.
    rooms = await request("GET", "/api/rooms/", headers=[(b"authorization", f"Token {token}".encode())])
    assert rooms["status"] == 200
    assert rooms["headers"]["x-content-type-options"] == "nosniff"
    assert rooms["headers"]["x-frame-options"] == "DENY"
    # DRF's authentication, behind the session and CSRF middleware: no credentials, no rooms.
    assert (await request("GET", "/api/rooms/"))["status"] == 401
