"""WebSocket actions and pushes of api_docs/PROTOCOL.md §6 (read state, the inbox), and how access changes reach a connection.

The inbox rides on the per-process fan-out: `subscribe_to_my_rooms` puts the connection
in the message group of each of the user's rooms (chat/events/fanout.py keeps one layer
membership per group per process, however many connections share it), and each new
message there becomes a `room_message` push. Changes of membership arrive through the
user's own group (chat/events/access.py): a gained room joins the inbox, a lost one
leaves it and ends the subscriptions the user may no longer hold (`subscription_ended`).
"""

import asyncio
import json
from typing import TYPE_CHECKING, Any

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
from chat.events.streams import room_observer
from chat.models import Membership, User
from chat.ops import metrics
from chat.ws import limits, multiplex
from chat.ws.connection import ConsumerMixin
from chat.ws.protocol import Status
from chat.ws.streams import Send

if TYPE_CHECKING:  # the inbox extends the message stream's handler and unsubscribe (RoomConsumer's MRO puts it first)
    from chat.ws.messages import MessagesMixin as _InboxBase
else:
    _InboxBase = ConsumerMixin


@db_thread
def _inbox_room(user: User, room_id: int) -> tuple[dict[str, Any], str] | None:
    """The room and the user's role in it, if they are (still) a member."""
    role = Membership.objects.filter(room_id=room_id, user_id=user.pk).values_list("role", flat=True).first()
    if role is None:
        return None
    return RoomSerializer(selectors.access_room(user=user, pk=room_id)).data, role


class InboxMixin(_InboxBase):
    """list_my_rooms, mark_read, subscribe_to_my_rooms; and the consumer's side of access changes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # request_id -> the DCRF stream it was made through (api_docs/PROTOCOL.md §8), None when unwrapped
        self.my_rooms_request_ids: dict[Any, str | None] = {}
        self.inbox_rooms: dict[int, None] = {}  # the rooms whose message groups the inbox holds
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
        limits.check_new_subscription(self, existing=request_id in self.my_rooms_request_ids)
        first = not self.my_rooms_request_ids
        # From now on membership events keep the inbox current; its pushes come in the stream it was made through.
        self.my_rooms_request_ids[request_id] = multiplex.current_stream.get()
        if first:
            versions = dict(self.membership_versions)
            try:
                room_ids = await db_thread(selectors.user_room_ids)(user_id=self.user.pk)
                # A room whose membership changed meanwhile is left to that event's handling.
                fresh = [room_id for room_id in room_ids if self.membership_versions.get(room_id) == versions.get(room_id)]
                await asyncio.gather(*(self._inbox_hold(room_id) for room_id in fresh))
            except Exception:
                self.my_rooms_request_ids.pop(request_id, None)
                for room_id in list(self.inbox_rooms):
                    await self._inbox_release(room_id)
                raise
        return None, 200

    # --- holding rooms ---------------------------------------------------------------------------

    async def remove_group(self, name: str) -> None:
        # A stream's unsubscribe must not take a group the inbox still holds.
        if name.startswith("chat.messages.") and int(name.rsplit(".", 1)[1]) in self.inbox_rooms:
            return
        await super().remove_group(name)

    async def _inbox_hold(self, room_id: int) -> None:
        if room_id not in self.inbox_rooms:
            self.inbox_rooms[room_id] = None
            await self.add_group(groups.room_messages_group(room_id))

    async def _inbox_release(self, room_id: int) -> None:
        if self.inbox_rooms.pop(room_id, 0) is None and not any(room == room_id for room, _ in self.message_streams):
            await self.remove_group(groups.room_messages_group(room_id))  # no stream of the room needs it either

    def _inbox_push(self, push: str, room_id: int, data_json: str) -> None:
        for request_id, stream in self.my_rooms_request_ids.items():
            frame = f'{{"action": "{push}", "request_id": {json.dumps(request_id)}, "room": {room_id}, "data": {data_json}}}'
            multiplex.sender(stream, self.push)(frame)
            metrics.event_sent(push)

    def message_activity(self, message: dict[str, Any]) -> int:
        """groups.MESSAGE_EVENT: the streams' delivery (MessagesMixin), then a `room_message` if the inbox holds the room."""
        sent = super().message_activity(message)  # the stream frames, counted by the fan-out
        event = message["body"]
        if message["action"] == groups.PUSH_CREATE and event["room"] in self.inbox_rooms:
            self._inbox_push(groups.PUSH_ROOM_MESSAGE, event["room"], event["data_json"])
        return sent

    # --- layer events (chat/events/access.py) ------------------------------------------------------

    async def user_membership(self, event: dict[str, Any]) -> None:
        """groups.MEMBERSHIP_EVENT: the user's role in a room changed, or they lost the room."""
        room_id, role = event["room"], event["role"]
        self.membership_versions[room_id] = self.membership_versions.get(room_id, 0) + 1
        if role is not None:
            if self.my_rooms_request_ids:
                # Reading the room waits on the database: not in the fan-out's delivery loop.
                self.detach(self._inbox_gained(room_id, self.membership_versions[room_id]))
            return
        if event["reason"] in ("removed", "banned") and room_id in self.present_rooms:
            # The service ended this user's presence on every connection; forget it here and tell the room.
            self._forget_presence(room_id)
            await realtime.push_presence([room_id])
        if not event["visible"]:
            await self._end_subscriptions(room_id, "banned" if event["reason"] == "banned" else "removed")
        await self.sync_room_group(room_id)
        await self._inbox_lost(room_id)

    async def user_read(self, event: dict[str, Any]) -> None:
        """groups.READ_EVENT: the user, or the other member of a direct room, read a room up to a seq."""
        data = json.dumps({"user": event["reader"], "last_read_seq": event["last_read_seq"]})
        self._inbox_push(groups.PUSH_READ, event["room"], data)

    async def room_ended(self, event: dict[str, Any]) -> None:
        """groups.ROOM_ENDED_EVENT: the room was deleted."""
        room_id = event["room"]
        self.membership_versions[room_id] = self.membership_versions.get(room_id, 0) + 1
        self._forget_presence(room_id)
        await self._end_subscriptions(room_id, "room_deleted", instances=False)  # those get the room's `delete` instead
        await self.sync_room_group(room_id)
        await self._inbox_lost(room_id)

    def _forget_presence(self, room_id: int) -> None:
        self.present_rooms.pop(room_id, None)
        if self.last_joined_room == room_id:
            self.last_joined_room = None

    async def _inbox_gained(self, room_id: int, version: int) -> None:
        found = await _inbox_room(self.user, room_id)
        if found is None or self.membership_versions.get(room_id) != version or not self.my_rooms_request_ids:
            return
        room, role = found
        await self._inbox_hold(room_id)
        self._inbox_push(groups.PUSH_MEMBERSHIP, room_id, json.dumps({"room": room, "role": role}))

    async def _inbox_lost(self, room_id: int) -> None:
        if room_id in self.inbox_rooms:
            await self._inbox_release(room_id)
            self._inbox_push(groups.PUSH_MEMBERSHIP, room_id, '{"room": null, "role": null}')

    async def _end_subscriptions(self, room_id: int, reason: str, instances: bool = True) -> None:
        """End this connection's message (and instance) subscriptions of a room, each with a `subscription_ended` push."""
        # Each subscription's last push goes the way its others went: in its DCRF stream, if it has one.
        ended: list[tuple[Any, Send]] = []
        for key in [key for key in self.message_streams if key[0] == room_id]:
            ended.append((key[1], self.message_streams[key].send))
            await self._unsubscribe_messages(*key)
        if instances:
            for key in [key for key in self.instance_subscriptions if key[0] == room_id]:
                ended.append((key[1], multiplex.sender(self.instance_subscriptions.pop(key), self.push)))
                await room_observer.unsubscribe(self, room_id=room_id, request_id=key[1])
        for request_id, send in ended:
            frame = {"action": groups.PUSH_SUBSCRIPTION_ENDED, "request_id": request_id, "room": room_id, "reason": reason}
            send(json.dumps(frame))
            metrics.event_sent(groups.PUSH_SUBSCRIPTION_ENDED)
