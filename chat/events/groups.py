"""Channel-layer group names, layer event types and push names: each built or spelled in one place."""

# Layer event types. A process's fan-out hands an event of type "a.b" to its consumers'
# `a_b` method (Channels' own naming rule, channels.consumer.get_handler_name).
MESSAGE_EVENT = "message.activity"  # a message was created, edited or deleted (model observer)
ROOM_EVENT = "room.activity"  # a room was created, renamed or deleted (model observer)
PRESENCE_EVENT = "room.presence"
TYPING_EVENT = "room.typing"
USER_STATUS_EVENT = "users.status"
AUTH_REVOKED_EVENT = "auth.revoked"
MEMBERSHIP_EVENT = "user.membership"  # the user's role in a room changed, or they lost it (chat.events.access)
READ_EVENT = "user.read"  # the user (or, in a direct room, the other member) read a room up to a seq
ROOM_ENDED_EVENT = "room.ended"  # a room was deleted: its message subscriptions and inbox entries end
EVENT_TYPES = frozenset(
    {
        MESSAGE_EVENT,
        ROOM_EVENT,
        PRESENCE_EVENT,
        TYPING_EVENT,
        USER_STATUS_EVENT,
        AUTH_REVOKED_EVENT,
        MEMBERSHIP_EVENT,
        READ_EVENT,
        ROOM_ENDED_EVENT,
    }
)

# The `action` of each push frame a client can receive (api_docs/PROTOCOL.md §2), also the
# label values of the events-sent metric.
PUSH_CREATE, PUSH_UPDATE, PUSH_DELETE = "create", "update", "delete"
PUSH_PRESENCE, PUSH_TYPING, PUSH_USER_STATUS = "presence", "typing", "user_status"
# Version 2 (§5-§6): the inbox's pushes, and the end of a subscription that lost its access.
PUSH_ROOM_MESSAGE, PUSH_MEMBERSHIP, PUSH_READ, PUSH_SUBSCRIPTION_ENDED = "room_message", "membership", "read", "subscription_ended"
PUSH_ACTIONS = frozenset(
    {
        PUSH_CREATE,
        PUSH_UPDATE,
        PUSH_DELETE,
        PUSH_PRESENCE,
        PUSH_TYPING,
        PUSH_USER_STATUS,
        PUSH_ROOM_MESSAGE,
        PUSH_MEMBERSHIP,
        PUSH_READ,
        PUSH_SUBSCRIPTION_ENDED,
    }
)

ONLINE_USERS_GROUP = "chat.online-users"


def room_group(room_id: int) -> str:
    """Connections present in a room or subscribed to its messages: presence and typing pushes."""
    return f"chat.room.{room_id}"


def user_group(user_id: int) -> str:
    """Every connection of one user: revocation of its credentials, membership and read-state changes."""
    return f"chat.user.{user_id}"


def room_messages_group(room_id: int) -> str:
    """Subscribers to a room's messages and inboxes holding the room: the message observer's events, and room.ended."""
    return f"chat.messages.{room_id}"


def room_instance_group(room_id: int) -> str:
    """Subscribers to a room itself (subscribe_instance): the room observer's events."""
    return f"chat.room-instance.{room_id}"
