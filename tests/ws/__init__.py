"""Driving the WebSocket API in-process, the way a client does, through the full ASGI stack.

Every frame is checked against api_docs/asyncapi.yaml (tests/contract.py): responses
and pushes always, requests unless a test sends a malformed one on purpose.
"""

import contextlib
import itertools
from collections.abc import AsyncIterator
from typing import Any

from rest_framework.authtoken.models import Token

from mysite.asgi import application
from tests.contract import ContractCommunicator
from tests.db import database_sync_to_async

WS_PATH = "/ws/chat/room/"
_request_ids = itertools.count(1)


@database_sync_to_async
def token_for(user: Any) -> str:
    return Token.objects.get_or_create(user=user)[0].key


class Client:
    """A connected WebSocket client: send actions, read responses and pushes."""

    def __init__(self, communicator: ContractCommunicator) -> None:
        self.communicator = communicator

    async def send(self, frame: dict[str, Any], *, check: bool = True) -> None:
        await self.communicator.send_json_to(frame, check=check)

    async def receive(self, timeout: float = 3) -> dict[str, Any]:
        return await self.communicator.receive_json_from(timeout=timeout)

    async def request(self, action: str, *, check: bool = True, **params: Any) -> dict[str, Any]:
        """Send an action and return its response; pushes that arrive first are kept in self.pushes."""
        request_id = params.pop("request_id", f"r{next(_request_ids)}")
        await self.send({"action": action, "request_id": request_id, **params}, check=check)
        return await self.response_to(request_id)

    async def bad_request(self, action: str, **params: Any) -> dict[str, Any]:
        """A request the contract does not allow (wrong types, missing fields): only the response is checked."""
        return await self.request(action, check=False, **params)

    async def response_to(self, request_id: Any, timeout: float = 5) -> dict[str, Any]:
        self.pushes: list[dict[str, Any]] = getattr(self, "pushes", [])
        while True:
            frame = await self.receive(timeout)
            if "response_status" in frame and frame.get("request_id") == request_id:
                return frame
            self.pushes.append(frame)

    async def next_push(self, timeout: float = 3) -> dict[str, Any]:
        """The next frame that is not a response (earlier buffered pushes first)."""
        if getattr(self, "pushes", None):
            return self.pushes.pop(0)
        frame = await self.receive(timeout)
        assert "response_status" not in frame, frame
        return frame

    async def assert_silent(self, timeout: float = 0.3) -> None:
        assert not getattr(self, "pushes", None), self.pushes
        assert await self.communicator.receive_nothing(timeout=timeout), await self.receive()


@contextlib.asynccontextmanager
async def connect(user: Any = None, *, headers: list[tuple[bytes, bytes]] | None = None, path: str = WS_PATH) -> AsyncIterator[Client]:
    """Connect as the user (by API token header), or with the given headers; disconnect on exit."""
    if headers is None:
        headers = [(b"authorization", f"Token {await token_for(user)}".encode())]
    communicator = ContractCommunicator(application, path, headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected, "handshake refused"
    try:
        yield Client(communicator)
    finally:
        await communicator.disconnect()
