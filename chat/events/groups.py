"""Channel-layer group names, built in one place."""

ONLINE_USERS_GROUP = "chat.online-users"


def room_group(room_id: int) -> str:
    """Connections present in a room or subscribed to its messages: presence and typing pushes."""
    return f"chat.room.{room_id}"


def user_group(user_id: int) -> str:
    """Every connection of one user: revocation of its credentials, membership and read-state changes."""
    return f"chat.user.{user_id}"


def room_messages_group(room_id: int) -> str:
    """Suffix of the message observer's per-room group (DCRF prefixes and hashes it)."""
    return f"messages.{room_id}"


def room_instance_group(room_id: int) -> str:
    """Suffix of the room observer's per-room group (DCRF prefixes and hashes it)."""
    return f"room.{room_id}"


def room_messages_layer_group(room_id: int) -> str:
    """The full layer group of the message observer for a room: what its subscribers and inboxes are in."""
    from chat.ws.consumer import RoomConsumer  # the observer lives on the consumer, which imports the services

    return next(RoomConsumer.message_activity.group_names_for_consumer(None, room_id=room_id))
