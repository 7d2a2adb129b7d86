"""The flood counters' cache: one backend per process, whatever connection (asyncio context) counts."""

import asyncio
import contextvars

import pytest
from django.core.cache import caches
from django.test import override_settings

from chat.core.db import db_thread
from chat.core.exceptions import RateLimited
from chat.core.ratelimit import message_rate_limit_check, process_cache, rate_limit_refund


def _backends() -> tuple[int, int]:
    return id(caches["default"]), id(process_cache())


def test_connections_share_one_cache_backend() -> None:
    """Each connection is its own asyncio task: Django's `caches` gives each a backend (and a Redis pool) of its own."""

    async def connection() -> set[tuple[int, int]]:
        return {await db_thread(_backends)() for _ in range(2)}

    async def connections() -> list[set[tuple[int, int]]]:
        return await asyncio.gather(*(asyncio.ensure_future(connection()) for _ in range(3)))

    # A fresh context, as in a server process whose main code never touched the cache.
    seen = set().union(*contextvars.Context().run(asyncio.run, connections()))
    # Why process_cache() exists: at least one backend per connection (db_thread's calls even one per call,
    # since what a call sets in its copy of the context does not come back).
    assert len({django_backend for django_backend, _ in seen}) >= 3
    assert len({ours for _, ours in seen}) == 1


@override_settings(CHAT_MESSAGE_RATE_LIMIT=2, CHAT_MESSAGE_RATE_PERIOD=60)
def test_a_refund_gives_back_exactly_one_event() -> None:
    user_id = 10**12 + id(object()) % 10**6  # a counter no other test shares
    counted = message_rate_limit_check(user_id=user_id)
    message_rate_limit_check(user_id=user_id)
    with pytest.raises(RateLimited):
        message_rate_limit_check(user_id=user_id)
    rate_limit_refund(counted)
    message_rate_limit_check(user_id=user_id)
    with pytest.raises(RateLimited):
        message_rate_limit_check(user_id=user_id)
