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

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        self.wait = self.retry_after  # DRF's exception handler turns `wait` into a Retry-After header
        super().__init__(f"Too many messages: retry in {self.retry_after} s.")
