"""Being in a room over WebSocket (api_docs/PROTOCOL.md §2-3): join, leave, typing, online users, and their pushes."""

from typing import Any

from djangochannelsrestframework.decorators import action

from chat.core import selectors, services
from chat.core.db import db_thread
from chat.core.exceptions import NotPresent
from chat.core.serializers import PkParamSerializer, UserSerializer, room_json, serialize_many, validate
from chat.events import groups, realtime
from chat.ops import metrics
from chat.ws import limits, multiplex
from chat.ws.connection import ConsumerMixin
from chat.ws.protocol import Status

# Made once: building the sync-to-async wrapper per call cost a few percent of a join.
_presence_enter = db_thread(services.presence_enter)


@db_thread
def _online_users_json() -> list[dict[str, Any]]:
    return serialize_many(UserSerializer, selectors.online_users())


class PresenceMixin(ConsumerMixin):
    """Presence in rooms, typing, and who is online."""

    @action()
    async def join_room(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        limits.check_join(self, room_id)
        # Only once the room is known to be visible to the caller does it join its audience; the
        # presence push this join causes is sent by this process after that (realtime.push_presence).
        changed, room = await _presence_enter(channel_name=self.channel_name, room_id=room_id, user=self.user)
        await self.add_group(groups.room_group(room_id))
        self.present_rooms[room_id] = None
        self.last_joined_room = room_id
        await realtime.presence_joined(room_id, self.user, changed)
        data = room_json(room)
        # The O(room) list is encoded once per presence change (chat.events.presence_cache), not per join.
        data["current_users"] = await realtime.present_users_json(room_id)
        return data, 200

    @action()
    async def leave_room(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        # No longer counted as present before the row goes, and not while a heartbeat compares the rows with
        # what this process holds: a beat in between would write the row back (realtime.RowGate).
        was_present = room_id in self.present_rooms
        self.present_rooms.pop(room_id, None)
        async with realtime.changing_rows():
            try:
                changed = await db_thread(services.presence_leave)(channel_name=self.channel_name, room_id=room_id, user=self.user)
            except BaseException:
                if was_present:
                    self.present_rooms[room_id] = None
                raise
        if self.last_joined_room == room_id:
            self.last_joined_room = None
        await self.sync_room_group(room_id)
        if changed:
            await realtime.push_presence([room_id])
        return None, 200

    @action()
    async def typing(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        if room_id not in self.present_rooms:
            await db_thread(selectors.room_assert_visible)(user=self.user, pk=room_id)
            raise NotPresent()
        if await limits.typing_push_allowed(user_id=self.user.pk, room_id=room_id):
            await realtime.push_typing(room_id, self.user)
        return None, 200

    @action()
    async def subscribe_to_online_users(self, request_id: Any, **params: Any) -> Status:
        limits.check_new_subscription(self, existing=request_id in self.online_users_request_ids)
        await self.add_group(groups.ONLINE_USERS_GROUP)
        self.online_users_request_ids[request_id] = multiplex.current_stream.get()
        return {"users": await _online_users_json()}, 200

    # --- layer events (type "a.b" calls method a_b; see chat.events.groups) -------------------

    async def room_presence(self, event: dict[str, Any]) -> None:
        """groups.PRESENCE_EVENT: the frame was encoded once by the sender."""
        self.push(event["text"])
        metrics.event_sent(groups.PUSH_PRESENCE)

    async def room_typing(self, event: dict[str, Any]) -> None:
        """groups.TYPING_EVENT: not echoed to the typist's own connections."""
        if event["user_id"] != self.user.pk:
            self.push(event["text"])
            metrics.event_sent(groups.PUSH_TYPING)

    async def users_status(self, event: dict[str, Any]) -> None:
        """groups.USER_STATUS_EVENT: each status change, once per online-users subscription."""
        # "data": one change, as a process of an earlier version sends it during a rolling restart.
        for data in event["statuses"] if "statuses" in event else [event["data"]]:
            for request_id, stream in self.online_users_request_ids.items():
                push = {"action": groups.PUSH_USER_STATUS, "request_id": request_id, "data": data}
                await self.send_json(multiplex.wrap(stream, push))
                metrics.event_sent(groups.PUSH_USER_STATUS)
