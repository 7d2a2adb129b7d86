"""chat.http.asgi.publishing_before_response: what a view's thread committed is published before its response starts."""

from typing import Any

import pytest
from asgiref.sync import sync_to_async

from chat.core.db import await_after_thread
from chat.http.asgi import publishing_before_response

pytestmark = pytest.mark.asyncio


def app_with_a_sync_view(log: list[str], *, respond: bool = True) -> Any:
    """An ASGI app whose sync view (on a worker thread, as Django runs one) publishes an event, then answers."""

    async def publish(name: str) -> None:
        log.append(f"published {name}")

    def view() -> None:
        await_after_thread(publish, "created")
        log.append("view returned")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await sync_to_async(view, thread_sensitive=True)()
        if respond:
            await send({"type": "http.response.start", "status": 201, "headers": []})
            await send({"type": "http.response.body", "body": b"{}"})

    return app


async def test_the_event_is_published_by_the_loop_before_the_response_starts() -> None:
    log: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        log.append(message["type"])

    await publishing_before_response(app_with_a_sync_view(log))({"type": "http"}, None, send)
    assert log == ["view returned", "published created", "http.response.start", "http.response.body"]


async def test_a_request_that_never_answers_still_publishes_what_it_committed() -> None:
    log: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        log.append(message["type"])

    await publishing_before_response(app_with_a_sync_view(log, respond=False))({"type": "http"}, None, send)
    assert log == ["view returned", "published created"]
