"""The HTTP side's ASGI application: Django's handler with its middleware in one thread hop, and a request's
events published by the loop before its response starts."""

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler
from django.urls import get_resolver

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


class OneHopASGIHandler(ASGIHandler):
    """Django's ASGI handler, with the middleware chain and the view run together on the request's thread.

    Django builds an ASGI chain in async mode, and each MiddlewareMixin hook (sessions, CSRF,
    auth, ...) then crosses to the request's thread and back on its own; WhiteNoise, sync
    only, splits the chain once more. An HTTP post crossed between the loop and its thread
    about twelve times, and those hand-overs cost more server CPU than the post itself
    (bench/README.md, session 8). Built as WSGI builds it, the chain is plain sync code: one
    hop in, one out, on the same per-request thread Django would use.
    """

    def __init__(self) -> None:
        super().__init__()
        # The URLconf (and every view module it imports) loads now, not on the first request
        # after a restart, when a reconnecting crowd is waiting on the same loop.
        get_resolver().url_patterns  # noqa: B018

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        chain = self.__dict__["_middleware_chain"]  # django-stubs leave the attribute without a type
        self._middleware_chain = sync_to_async(chain, thread_sensitive=True)
