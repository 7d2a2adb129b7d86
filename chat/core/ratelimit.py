"""Per-user flood limits on the shared cache (Redis when REDIS_URL is set, so all processes agree)."""

import functools
import time

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from redis import Redis
from redis.commands.core import Script

from chat.core.exceptions import RateLimited
from chat.ops import metrics

# One round trip: count the event in this window, read the previous window, and take the
# event back at once if it is over the limit. KEYS: this window's counter, the previous
# one's. ARGV: the limit, the previous window's weight (the share of it still inside the
# last period), the counter's expiry. Answers {counted (1 or 0), this window's count, the
# previous window's}. Counters are plain integers, as Django's RedisCache stores ints, so
# a refund with cache.decr() works on them too.
_SLIDING_WINDOW_LUA = """
local current = redis.call('INCR', KEYS[1])
if current == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
local previous = tonumber(redis.call('GET', KEYS[2]) or '0')
if previous * tonumber(ARGV[2]) + current > tonumber(ARGV[1]) then
    redis.call('DECR', KEYS[1])
    return {0, current, previous}
end
return {1, current, previous}
"""


@functools.cache
def process_cache() -> BaseCache:
    """The process's one backend of the default cache (counters, typing marks).

    `caches["default"]` is one backend per asyncio context, that is per WebSocket
    connection, each with a Redis pool and connection of its own: a connection's first
    post paid for a new Redis connection, and a server held one per client. This one is
    shared by every thread (redis-py's pool is thread-safe).
    """
    return caches.create_connection(DEFAULT_CACHE_ALIAS)


@functools.cache
def _sliding_window_script() -> Script:
    backend = process_cache()
    assert isinstance(backend, RedisCache)
    return Redis(connection_pool=backend._cache._get_connection_pool(write=True)).register_script(_SLIDING_WINDOW_LUA)  # type: ignore[attr-defined]


def _count(key: str, previous_key: str, *, limit: int, overlap: float, timeout: int) -> tuple[bool, int, int]:
    """Count one event under `key` unless that would exceed `limit`; answers (counted, current, previous)."""
    backend = process_cache()
    if isinstance(backend, RedisCache):
        # The script loads itself again (NOSCRIPT) after a Redis restart.
        keys = [backend.make_and_validate_key(key), backend.make_and_validate_key(previous_key)]
        counted, current, previous = _sliding_window_script()(keys=keys, args=[limit, overlap, timeout])
        return bool(counted), current, previous
    # One process (the embedded default's local memory cache): the same steps, not atomic across processes.
    current, previous = _increment(backend, key, timeout), backend.get(previous_key, 0)
    if previous * overlap + current > limit:
        backend.decr(key)
        return False, current, previous
    return True, current, previous


def _increment(backend: BaseCache, key: str, timeout: int) -> int:
    """Atomically add one to a counter, creating it when absent (or just expired)."""
    if backend.add(key, 1, timeout=timeout):
        return 1
    try:
        return backend.incr(key)
    except ValueError:  # expired between add() and incr()
        backend.add(key, 1, timeout=timeout)
        return 1


def rate_limit_check(*, limit_name: str, subject: str, limit: int, period: int, detail: str) -> str:
    """Count one event of `limit_name` for `subject`; raise RateLimited when that would exceed `limit` per `period` s.

    A sliding-window counter: the previous fixed window is weighted by how much of
    it still overlaps the last `period` seconds, so no window boundary lets a burst
    of twice the limit through. The increment comes first and a rejected attempt is
    taken back in the same step, so concurrent senders on several processes cannot
    overshoot. Answers the counter's key, for rate_limit_refund().
    """
    now = time.time()
    window = int(now // period)
    key = f"ratelimit:{limit_name}:{subject}:{window}"
    overlap = 1 - (now % period) / period
    counted, current, previous = _count(
        key, f"ratelimit:{limit_name}:{subject}:{window - 1}", limit=limit, overlap=overlap, timeout=int(period * 2) + 1
    )
    if not counted:
        if current > limit:  # this window alone is full: wait for the next one
            retry_after = (window + 1) * period - now
        else:  # wait until the previous window's weight has decayed enough
            retry_after = period * (1 - (limit - current) / previous) - (now % period)
        metrics.rate_limited(limit_name)
        raise RateLimited(retry_after=retry_after, detail=detail)
    return key


def rate_limit_refund(key: str) -> None:
    """Take back an event rate_limit_check() counted: what it allowed stored nothing (a refusal, a retry)."""
    try:
        process_cache().decr(key)
    except ValueError:  # the window's counter expired meanwhile: nothing left to take back
        pass


def message_rate_limit_check(*, user_id: int) -> str:
    """The message flood limit, shared by posting, editing and reactions: raise RateLimited when over it."""
    return rate_limit_check(
        limit_name="message",
        subject=str(user_id),
        limit=int(settings.CHAT_MESSAGE_RATE_LIMIT),
        period=int(settings.CHAT_MESSAGE_RATE_PERIOD),
        detail="Too many messages",
    )


def room_create_rate_limit_check(*, user_id: int) -> None:
    """The room creation limit (CHAT_ROOM_CREATE_RATE_LIMIT per CHAT_ROOM_CREATE_RATE_PERIOD s per user)."""
    rate_limit_check(
        limit_name="room_create",
        subject=str(user_id),
        limit=int(settings.CHAT_ROOM_CREATE_RATE_LIMIT),
        period=int(settings.CHAT_ROOM_CREATE_RATE_PERIOD),
        detail="Too many rooms created",
    )
