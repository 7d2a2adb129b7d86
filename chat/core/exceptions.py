"""Domain errors: DRF exceptions, so HTTP and WebSocket render them the same way."""

import math

from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied


class RoomNotFound(NotFound):
    """No room has this pk."""

    default_detail = "No such room."
    default_code = "room_not_found"


class MessageNotFound(NotFound):
    """No message has this id."""

    default_detail = "No such message."
    default_code = "message_not_found"


class ReactionNotFound(NotFound):
    """The user has not reacted to this message with this emoji."""

    default_detail = "No such reaction."
    default_code = "reaction_not_found"


class NotRoomMember(PermissionDenied):
    """The action needs membership of the room."""

    default_detail = "You are not a member of this room."
    default_code = "not_member"


class NotRoomHost(PermissionDenied):
    """The action is for the room's host only."""

    default_detail = "Only the room's host may do this."
    default_code = "not_host"


class NotMessageAuthor(PermissionDenied):
    """The action is for the message's author (or, for deletion, the room's host)."""

    default_detail = "Only the message's author may do this."
    default_code = "not_author"


class NotPresent(PermissionDenied):
    """The action needs this connection to have joined the room."""

    default_detail = "Join the room on this connection first."
    default_code = "not_present"


class NotSubscribed(PermissionDenied):
    """Unsubscribing from a stream this connection is not subscribed to under this request_id."""

    default_detail = "No such subscription on this connection."
    default_code = "not_subscribed"


class RateLimited(APIException):
    """Too many messages in the rate-limit window; `retry_after` says when to try again."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too many messages: slow down."
    default_code = "rate_limited"

    def __init__(self, retry_after: float, detail: str = "Too many messages") -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        self.wait = self.retry_after  # DRF's exception handler turns `wait` into a Retry-After header
        super().__init__(f"{detail}: retry in {self.retry_after} s.")


class LimitExceeded(APIException):
    """A per-connection cap of api_docs/PROTOCOL.md §3 (version 2) is reached; waiting does not lift it."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "limit_exceeded"
    retry_after = None

    def __init__(self, limit: str, maximum: int) -> None:
        self.limit = limit
        super().__init__(f"Limit reached: at most {maximum} {limit} per connection.")


class ServiceUnavailable(APIException):
    """The database or Redis does not answer: try again shortly (DRF adds Retry-After from `wait`)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Service temporarily unavailable: try again shortly."
    default_code = "service_unavailable"
    retry_after = 2

    def __init__(self) -> None:
        self.wait = self.retry_after
        super().__init__()


def is_outage(exc: BaseException) -> bool:
    """Whether an exception means a backing service (PostgreSQL, Redis) is unreachable, not a bug."""
    from django.db import InterfaceError, OperationalError
    from psycopg import OperationalError as PsycopgOperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    # The builtin ConnectionError covers a refused or reset socket (e.g. channels-redis).
    outages = (OperationalError, InterfaceError, PsycopgOperationalError, RedisConnectionError, RedisTimeoutError, ConnectionError)
    return isinstance(exc, outages)


class TooManyConnections(Exception):
    """The user already has the most open WebSocket connections allowed (the handshake closes with 4429)."""


class MemberNotFound(NotFound):
    """The user named is not a member of the room."""

    default_detail = "This user is not a member of this room."
    default_code = "member_not_found"


class NotRoomModerator(PermissionDenied):
    """The action is for the room's owner and moderators."""

    default_detail = "Only the room's owner or a moderator may do this."
    default_code = "not_moderator"


class CannotModerate(PermissionDenied):
    """The target is out of the caller's reach: themselves, the owner, or (for a moderator) another moderator."""

    default_detail = "You may not do this to this member."
    default_code = "cannot_moderate"


class DirectRoomRefused(PermissionDenied):
    """Direct rooms have exactly their two members and are never renamed or deleted."""

    default_detail = "Direct rooms cannot be changed this way."
    default_code = "direct_room"


class OwnerCannotLeave(PermissionDenied):
    """The owner is always a member: they delete the room instead of leaving it."""

    default_detail = "The owner cannot leave the room: delete it instead."
    default_code = "owner_cannot_leave"


class Banned(PermissionDenied):
    """The user is banned from the room."""

    default_detail = "You are banned from this room."
    default_code = "banned"


class UserBanned(PermissionDenied):
    """The user to add is banned from the room."""

    default_detail = "This user is banned from this room: unban them first."
    default_code = "user_banned"
