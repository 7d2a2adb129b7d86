"""Per-connection limits of api_docs/PROTOCOL.md §3 (version 2) for the WebSocket consumer, and the request_id rules.

Kept apart from the consumer so each rule is one call there: `check_*` raise the
LimitExceeded or RateLimited the consumer answers with 429, `error_reply` turns
limit and outage exceptions into the response's (status, errors, data).
"""

import math
import time
from typing import Any

from django.conf import settings

from chat.core.db import db_thread
from chat.core.exceptions import LimitExceeded, RateLimited, ServiceUnavailable, is_outage
from chat.core.ratelimit import process_cache
from chat.ops import metrics

MAX_REQUEST_ID_LENGTH = 128
REQUEST_ID_ERROR = f"request_id must be a string of at most {MAX_REQUEST_ID_LENGTH} characters or a finite number."
# Every attribute of a consumer that holds subscriptions (one entry each); helpers adding a
# new kind of subscription add its attribute here.
SUBSCRIPTION_ATTRIBUTES = ("message_streams", "instance_subscriptions", "online_users_request_ids", "my_rooms_request_ids")


class FloatRequestId(float):
    """A request_id the client sent as a JSON float: 7.0 is echoed as 7.0, and never equals (or hashes as) 7."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is FloatRequestId and float.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((FloatRequestId, float(self)))


def request_id_error(request_id: Any) -> str | None:
    """Why this request_id is not allowed, or None: a string of ≤128 characters or a finite number (absent is allowed)."""
    if request_id is None or (isinstance(request_id, str) and len(request_id) <= MAX_REQUEST_ID_LENGTH):
        return None
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        return None
    if isinstance(request_id, float) and math.isfinite(request_id):
        return None
    return REQUEST_ID_ERROR


def request_id_key(request_id: Any) -> Any:
    """The request_id as the consumer keeps it: floats stay apart from equal integers (7 vs 7.0)."""
    return FloatRequestId(request_id) if type(request_id) is float else request_id


class FrameBucket:
    """A token bucket of inbound frames: CHAT_WS_FRAME_RATE per second, bursts of CHAT_WS_FRAME_BURST."""

    __slots__ = ("tokens", "updated")

    def __init__(self) -> None:
        self.tokens = float(settings.CHAT_WS_FRAME_BURST)
        self.updated = time.monotonic()

    def take(self) -> None:
        """Take one frame's token, or raise RateLimited saying when the next one is due."""
        now = time.monotonic()
        rate = settings.CHAT_WS_FRAME_RATE
        self.tokens = min(float(settings.CHAT_WS_FRAME_BURST), self.tokens + (now - self.updated) * rate)
        self.updated = now
        if self.tokens < 1:
            metrics.rate_limited("inbound_frames")
            raise RateLimited(retry_after=(1 - self.tokens) / rate, detail="Too many frames")
        self.tokens -= 1


def subscription_count(consumer: Any) -> int:
    """How many subscriptions of all kinds the connection holds."""
    return sum(len(getattr(consumer, name, ())) for name in SUBSCRIPTION_ATTRIBUTES)


def check_new_subscription(consumer: Any, existing: bool) -> None:
    """LimitExceeded when a new subscription would pass CHAT_MAX_SUBSCRIPTIONS_PER_CONNECTION (a replacement always passes)."""
    maximum = int(settings.CHAT_MAX_SUBSCRIPTIONS_PER_CONNECTION)
    if not existing and subscription_count(consumer) >= maximum:
        metrics.rate_limited("subscriptions")
        raise LimitExceeded("subscriptions", maximum)


def check_join(consumer: Any, room_id: int) -> None:
    """LimitExceeded when joining one more room would pass CHAT_MAX_ROOMS_PER_CONNECTION."""
    maximum = int(settings.CHAT_MAX_ROOMS_PER_CONNECTION)
    if room_id not in consumer.present_rooms and len(consumer.present_rooms) >= maximum:
        metrics.rate_limited("joined_rooms")
        raise LimitExceeded("joined rooms", maximum)


@db_thread
def typing_push_allowed(*, user_id: int, room_id: int) -> bool:
    """Whether this typing call may push: one per user per room per CHAT_TYPING_INTERVAL, across processes."""
    if process_cache().add(f"typing:{user_id}:{room_id}", 1, timeout=settings.CHAT_TYPING_INTERVAL):
        return True
    metrics.rate_limited("typing")
    return False


def error_reply(exc: Exception) -> tuple[int, list[Any], Any] | None:
    """(status, errors, data) of the response to a limit or outage exception; None for other exceptions."""
    if isinstance(exc, LimitExceeded):
        return 429, [str(exc.detail)], {"retry_after": None}
    if isinstance(exc, ServiceUnavailable) or is_outage(exc):
        metrics.service_unavailable("ws")
        return 503, [str(ServiceUnavailable.default_detail)], {"retry_after": ServiceUnavailable.retry_after}
    return None


def take_frame(bucket: FrameBucket) -> RateLimited | None:
    """Count one inbound frame: None when within the rate, else the RateLimited to answer it with."""
    try:
        bucket.take()
    except RateLimited as exc:
        return exc
    return None
