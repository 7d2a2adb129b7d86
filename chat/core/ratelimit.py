"""Per-user flood limits on the shared cache (Redis when REDIS_URL is set, so all processes agree)."""

import time

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache

from chat.core.exceptions import RateLimited
from chat.ops import metrics


def _count(key: str, previous_key: str, timeout: int) -> tuple[int, int]:
    """Add one to this window's counter and read the previous window's.

    On Redis in one round trip: Django's RedisCache has no pipeline, and add() then
    incr() (EXISTS, INCRBY) then get() made four per message. Its counters are plain
    integers in Redis, so the client it manages can do the same in one pipeline.
    """
    backend = caches["default"]
    if isinstance(backend, RedisCache):
        raw_key, raw_previous = backend.make_and_validate_key(key), backend.make_and_validate_key(previous_key)
        pipeline = backend._cache.get_client(raw_key, write=True).pipeline(transaction=False)
        pipeline.set(raw_key, 0, ex=timeout, nx=True)  # a new window's counter, with its expiry
        pipeline.incr(raw_key)
        pipeline.get(raw_previous)
        _, current, previous = pipeline.execute()
        return current, int(previous or 0)
    return _increment(key, timeout), cache.get(previous_key, 0)


def _increment(key: str, timeout: int) -> int:
    """Atomically add one to a counter, creating it when absent (or just expired)."""
    if cache.add(key, 1, timeout=timeout):
        return 1
    try:
        return cache.incr(key)
    except ValueError:  # expired between add() and incr()
        cache.add(key, 1, timeout=timeout)
        return 1


def rate_limit_check(*, limit_name: str, subject: str, limit: int, period: int, detail: str) -> None:
    """Count one event of `limit_name` for `subject`; raise RateLimited when that would exceed `limit` per `period` s.

    A sliding-window counter: the previous fixed window is weighted by how much of
    it still overlaps the last `period` seconds, so no window boundary lets a burst
    of twice the limit through. The increment comes first and a rejected attempt is
    taken back, so concurrent senders on several processes cannot overshoot.
    """
    now = time.time()
    window = int(now // period)
    key = f"ratelimit:{limit_name}:{subject}:{window}"
    current, previous = _count(key, f"ratelimit:{limit_name}:{subject}:{window - 1}", timeout=int(period * 2) + 1)
    overlap = 1 - (now % period) / period
    if previous * overlap + current > limit:
        cache.decr(key)
        if current > limit:  # this window alone is full: wait for the next one
            retry_after = (window + 1) * period - now
        else:  # wait until the previous window's weight has decayed enough
            retry_after = period * (1 - (limit - current) / previous) - (now % period)
        metrics.rate_limited(limit_name)
        raise RateLimited(retry_after=retry_after, detail=detail)


def message_rate_limit_check(*, user_id: int) -> None:
    """The message flood limit, shared by posting, editing and reactions: raise RateLimited when over it."""
    rate_limit_check(
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
