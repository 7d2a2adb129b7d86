"""Membership, access and read-state events (api_docs/PROTOCOL.md §5-§6), sent after commit by the services.

Each goes through the channel layer to every process, so every open connection of
the user learns at once that it gained or lost a room: a lost room ends that
connection's subscriptions (`subscription_ended`), a gained one joins its inbox.
Connections turn these into client pushes themselves (chat/ws/inbox.py).
"""

from typing import Any

from django.db import transaction

from chat.events import groups, outbox


def _send_on_commit(group: str, message: dict[str, Any]) -> None:
    transaction.on_commit(lambda: outbox.send(group, message))


def membership_changed(*, user_id: int, room_id: int, role: str | None, reason: str | None = None, visible: bool = True) -> None:
    """Tell the user's connections their role in the room changed (role None: no longer a member; visible: they can still see it)."""
    message = {"type": groups.MEMBERSHIP_EVENT, "room": room_id, "role": role, "reason": reason, "visible": visible}
    _send_on_commit(groups.user_group(user_id), message)


def read_moved(*, user_ids: list[int], room_id: int, reader: dict[str, Any], last_read_seq: int) -> None:
    """Tell these users' connections that `reader` has read the room up to last_read_seq."""
    message = {"type": groups.READ_EVENT, "room": room_id, "reader": reader, "last_read_seq": last_read_seq}
    for user_id in user_ids:
        _send_on_commit(groups.user_group(user_id), message)


def room_ended(*, room_id: int) -> None:
    """Tell every connection subscribed to the room's messages (streams and inboxes) that the room was deleted."""
    _send_on_commit(groups.room_messages_group(room_id), {"type": groups.ROOM_ENDED_EVENT, "room": room_id})
