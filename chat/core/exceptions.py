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
