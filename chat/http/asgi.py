"""The HTTP side's ASGI wrapper: a request's events are published by the loop before its response starts."""

import asyncio
from typing import Any

from chat.core.db import await_collected, collecting_after_thread

ASGIApp = Any


def publishing_before_response(app: ASGIApp) -> ASGIApp:
    """`app` (Django's ASGI handler), with the events of what a view committed published before its response.

    Django runs a sync view on a worker thread; without this, the view's model events were
    published with run_on_loop: the thread handed them to the loop and waited for them, a
    round trip of hand-overs that, on a loop busy with a reconnecting crowd, cost an HTTP post
    several of the loop's turns (bench's reconnect storm). Here the thread only collects them
    (chat.core.db.await_after_thread), and the loop publishes them as the response is about
    to start: the client still gets its 201 only once the event is out. A request whose
    response never starts (the client went away) still publishes what it committed.
    """

    async def run(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        with collecting_after_thread() as pending:

            async def send_after_publishing(message: dict[str, Any]) -> None:
                await await_collected(pending)
                await send(message)

            try:
                await app(scope, receive, send_after_publishing)
            finally:
                if pending:
                    await asyncio.shield(await_collected(pending))

    return run
