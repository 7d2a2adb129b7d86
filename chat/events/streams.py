"""The model events: messages and rooms, published by every process that writes them.

Imported by ChatConfig.ready(), so a management command, `manage.py shell`, a worker
or the HTTP API publishes exactly as a WebSocket process does. Consumers subscribe
with `message_observer.subscribe(consumer, room_id=..., request_id=...)` and receive
the events in their `message_activity` / `room_activity` methods (groups.*_EVENT).
"""

import json
from typing import Any

from djangochannelsrestframework.observer.model_observer import Action

from chat.core import selectors
from chat.core.serializers import RoomSerializer, message_data
from chat.events import groups
from chat.events.observers import FanoutObserver, MessageObserver
from chat.models import Message, Room


def encoded_message(message: Message) -> dict[str, Any]:
    """A message as the message streams carry it: where it belongs, and the §1 Message JSON-encoded.

    Live events and replayed history alike, so a subscriber only splices in its request_id.
    """
    data = message.event_json = json.dumps(message_data(message))
    return {"room": message.room_id, "seq": message.seq, "pk": message.pk, "data_json": data}


def message_event(message: Message, action: Action) -> dict[str, Any]:
    """A message event's body (encoded once per event in the writing process, never once per subscriber)."""
    return encoded_message(message)


def room_event(room: Room, action: Action) -> dict[str, Any]:
    """A room event's body: the §1 Room (live state read afresh; empty once deleted)."""
    if action is Action.UPDATE:
        return RoomSerializer(selectors.room_get(pk=room.pk)).data
    room.current_users, room.last_message = [], None
    return RoomSerializer(room).data


message_observer = MessageObserver(
    Message,
    event_type=groups.MESSAGE_EVENT,
    serialize=message_event,
    instance_group=lambda message: groups.room_messages_group(message.room_id),  # room_id, never room: runs on post_init
    room_group=groups.room_messages_group,
)

room_observer = FanoutObserver(
    Room,
    event_type=groups.ROOM_EVENT,
    serialize=room_event,
    instance_group=lambda room: groups.room_instance_group(room.pk),
    room_group=groups.room_instance_group,
)


def message_changed(message: Message) -> None:
    """Send the message's `update` event after commit, as saving it would, although its row did not change.

    A reaction changes what the message's JSON says but not the message row: saving the
    row just to wake the observer would cost a write and a lock for nothing.
    """
    message_observer.database_event(message, Action.UPDATE)
