"""WebSocket actions and pushes of PROTOCOL.md §6 (read state and the inbox), and how access changes reach a connection.

The inbox rides on the per-process fan-out: `subscribe_to_my_rooms` puts the connection
in the message group of each of the user's rooms (chat/events/fanout.py keeps one layer
membership per group per process, however many connections share it), and each new
message there becomes a `room_message` push. Changes of membership arrive through the
user's own group (chat/events/access.py): a gained room joins the inbox, a lost one
leaves it and ends the subscriptions the user may no longer hold (`subscription_ended`).
"""

import asyncio
import json
from typing import Any

from djangochannelsrestframework.decorators import action

from chat.core import selectors, services
from chat.core.db import db_action, db_thread
from chat.core.serializers import (
    InboxEntrySerializer,
    MarkReadParamsSerializer,
    PageParamsSerializer,
    PkParamSerializer,
    RoomSerializer,
    validate,
)
from chat.events import groups, realtime
from chat.models import Membership
from chat.ops import metrics

Status = tuple[Any, int]


@db_thread
def _inbox_room(user: Any, room_id: int) -> tuple[dict[str, Any], str] | None:
    """The room and the user's role in it, if they are (still) a member."""
    role = Membership.objects.filter(room_id=room_id, user_id=user.pk).values_list("role", flat=True).first()
    if role is None:
        return None
    return RoomSerializer(selectors.access_room(user=user, pk=room_id)).data, role


class InboxMixin:
    """list_my_rooms, mark_read, subscribe_to_my_rooms; and the consumer's side of access changes."""

    user: Any
    present_rooms: dict[int, None]
    last_joined_room: int | None
    message_subscriptions: dict[tuple[int, Any], Any]
    instance_subscriptions: dict[tuple[int, Any], None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.inbox_request_ids: dict[Any, None] = {}
        self.inbox_rooms: dict[int, str] = {}  # room -> its message group, while the inbox holds it
        self.inbox_groups: dict[str, int] = {}  # the same, the other way round
        # Bumped on every membership event of a room: slower work started before one is stale.
        self.membership_versions: dict[int, int] = {}

    # --- actions -------------------------------------------------------------------------------

    @db_action()
    def list_my_rooms(self, **params: Any) -> Status:
        entries, count = selectors.inbox(user=self.user, **validate(PageParamsSerializer, params))
        return {"results": InboxEntrySerializer(entries, many=True).data, "count": count}, 200

    @db_action()
    def mark_read(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        seq = validate(MarkReadParamsSerializer, params)["seq"]
        last_read_seq, unread = services.room_mark_read(room_id=room_id, user=self.user, seq=seq)
        return {"last_read_seq": last_read_seq, "unread_count": unread}, 200

    @action()
    async def subscribe_to_my_rooms(self, request_id: Any, **params: Any) -> Status:
        first = not self.inbox_request_ids
        self.inbox_request_ids[request_id] = None  # from now on membership events keep the inbox current
        if first:
            versions = dict(self.membership_versions)
            try:
                room_ids = await db_thread(selectors.user_room_ids)(user_id=self.user.pk)
                # A room whose membership changed meanwhile is left to that event's handling.
                fresh = [room_id for room_id in room_ids if self.membership_versions.get(room_id) == versions.get(room_id)]
                await asyncio.gather(*(self._inbox_hold(room_id) for room_id in fresh))
            except Exception:
                self.inbox_request_ids.pop(request_id, None)
                for room_id in list(self.inbox_rooms):
                    await self._inbox_release(room_id)
                raise
        return None, 200

    # --- holding rooms ---------------------------------------------------------------------------

    async def _inbox_hold(self, room_id: int) -> None:
        if room_id in self.inbox_rooms:
            return
        group = groups.room_messages_layer_group(room_id)
        self.inbox_rooms[room_id], self.inbox_groups[group] = group, room_id
        await self.add_group(group)  # type: ignore[attr-defined]

    async def _inbox_release(self, room_id: int) -> None:
        group = self.inbox_rooms.pop(room_id, None)
        if group is None:
            return
        del self.inbox_groups[group]
        if not any(room == room_id for room, _ in self.message_subscriptions):  # a stream of the room still needs it
            await self.remove_group(group)  # type: ignore[attr-defined]

    async def _inbox_push(self, action_name: str, room_id: int, data_json: str) -> None:
        for request_id in self.inbox_request_ids:
            frame = f'{{"action": "{action_name}", "request_id": {json.dumps(request_id)}, "room": {room_id}, "data": {data_json}}}'
            await self.base_send({"type": "websocket.send", "text": frame})  # type: ignore[attr-defined]
            metrics.event_sent(action_name)

    async def inbox_room_message(self, event: dict[str, Any]) -> None:
        """A new message in one of the user's rooms (called by the message observer's handler)."""
        await self._inbox_push("room_message", event["room"], event["data_json"])

    # --- channel-layer events (chat/events/access.py) ----------------------------------------------

    async def user_membership(self, event: dict[str, Any]) -> None:
        room_id, role = event["room"], event["role"]
        self.membership_versions[room_id] = self.membership_versions.get(room_id, 0) + 1
        if role is not None:
            if self.inbox_request_ids:
                # Reading the room waits on the database: not in the fan-out's delivery loop.
                self._detach(self._inbox_gained(room_id, self.membership_versions[room_id]))  # type: ignore[attr-defined]
            return
        if event["reason"] in ("removed", "banned") and room_id in self.present_rooms:
            # The service ended this user's presence on every connection; forget it here and tell the room.
            self.present_rooms.pop(room_id, None)
            if self.last_joined_room == room_id:
                self.last_joined_room = None
            await realtime.push_presence([room_id])
        if not event["visible"]:
            await self._end_subscriptions(room_id, "banned" if event["reason"] == "banned" else "removed")
        await self._sync_room_group(room_id)  # type: ignore[attr-defined]
        await self._inbox_lost(room_id)

    async def _inbox_gained(self, room_id: int, version: int) -> None:
        found = await _inbox_room(self.user, room_id)
        if found is None or self.membership_versions.get(room_id) != version or not self.inbox_request_ids:
            return
        room, role = found
        await self._inbox_hold(room_id)
        await self._inbox_push("membership", room_id, json.dumps({"room": room, "role": role}))

    async def _inbox_lost(self, room_id: int) -> None:
        if room_id not in self.inbox_rooms:
            return
        await self._inbox_release(room_id)
        await self._inbox_push("membership", room_id, '{"room": null, "role": null}')

    async def user_read(self, event: dict[str, Any]) -> None:
        data = json.dumps({"user": event["reader"], "last_read_seq": event["last_read_seq"]})
        await self._inbox_push("read", event["room"], data)

    async def room_ended(self, event: dict[str, Any]) -> None:
        room_id = event["room"]
        self.membership_versions[room_id] = self.membership_versions.get(room_id, 0) + 1
        self.present_rooms.pop(room_id, None)
        if self.last_joined_room == room_id:
            self.last_joined_room = None
        await self._end_subscriptions(room_id, "room_deleted", instances=False)  # those get the room's `delete` instead
        await self._sync_room_group(room_id)  # type: ignore[attr-defined]
        await self._inbox_lost(room_id)

    async def _end_subscriptions(self, room_id: int, reason: str, instances: bool = True) -> None:
        """End this connection's message (and instance) subscriptions of a room, each with a `subscription_ended` push."""
        ended = [key for key in self.message_subscriptions if key[0] == room_id]
        for key in ended:
            await self._unsubscribe_messages(*key)  # type: ignore[attr-defined]
        if instances:
            instance_keys = [key for key in self.instance_subscriptions if key[0] == room_id]
            for key in instance_keys:
                self.instance_subscriptions.pop(key, None)
                await self.room_activity.unsubscribe(room_id=room_id, request_id=key[1])  # type: ignore[attr-defined]
            ended += instance_keys
        for _, request_id in ended:
            frame = {"action": "subscription_ended", "request_id": request_id, "room": room_id, "reason": reason}
            await self.send_json(frame)  # type: ignore[attr-defined]
            metrics.event_sent("subscription_ended")
