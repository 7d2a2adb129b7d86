"""Writes: every rule of the chat, called by both the HTTP views and the WebSocket consumer.

Services are synchronous and take keyword-only arguments. Async callers reach them
through `chat.core.db.db_thread`. Events to WebSocket subscribers are sent by the
model observers (chat.events.streams, connected at startup in every process) only
after the surrounding transaction commits. One module per topic; callers use
`from chat.core import services` and `services.<entity>_<verb>`.
"""

from chat.core.services.accounts import token_revoke, user_register
from chat.core.services.connections import (
    Heartbeat,
    connection_heartbeat,
    connection_open,
    connection_open_by_token,
    connection_sweep,
    connections_close,
    presence_enter,
    presence_leave,
)
from chat.core.services.members import member_add, member_ban, member_remove, member_set_role, member_unban, room_mark_read
from chat.core.services.messages import message_create, message_delete, message_store, message_update, reaction_add, reaction_remove
from chat.core.services.rooms import DIRECT_NAME_PREFIX, direct_open, room_create, room_delete, room_join, room_leave, room_update

__all__ = [
    "DIRECT_NAME_PREFIX",
    "Heartbeat",
    "connection_heartbeat",
    "connection_open",
    "connection_open_by_token",
    "connection_sweep",
    "connections_close",
    "direct_open",
    "member_add",
    "member_ban",
    "member_remove",
    "member_set_role",
    "member_unban",
    "message_create",
    "message_delete",
    "message_store",
    "message_update",
    "presence_enter",
    "presence_leave",
    "reaction_add",
    "reaction_remove",
    "room_create",
    "room_delete",
    "room_join",
    "room_leave",
    "room_mark_read",
    "room_update",
    "token_revoke",
    "user_register",
]
