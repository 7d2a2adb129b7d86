"""Room actions over WebSocket (api_docs/PROTOCOL.md §2): list, retrieve, create, patch, delete, and the room instance stream."""

from typing import Any

from djangochannelsrestframework.decorators import action

from chat.core import jsonenc, operations, selectors, services
from chat.core.db import db_action, db_thread
from chat.core.exceptions import NotSubscribed
from chat.core.serializers import PkParamSerializer, RoomSerializer, validate
from chat.events import groups
from chat.events.streams import room_observer
from chat.ws import limits, multiplex
from chat.ws.connection import ConsumerMixin
from chat.ws.protocol import Status


class RoomsMixin(ConsumerMixin):
    """Rooms as resources, and subscriptions to one room's changes."""

    @db_action(name="list")  # not `def list`: that would shadow the builtin in this class body
    def list_rooms(self, **params: Any) -> Status:
        return operations.room_list_page(user=self.user, params=multiplex.params_with_data(params)), 200

    @db_action()
    def retrieve(self, **params: Any) -> Status:
        return RoomSerializer(
            selectors.access_room(user=self.user, **validate(PkParamSerializer, multiplex.params_with_data(params)))
        ).data, 200

    @db_action()
    def create(self, data: Any = None, **params: Any) -> Status:
        room = services.room_create(host=self.user, **validate(RoomSerializer, data))
        return RoomSerializer(room).data, 201

    @db_action()
    def patch(self, data: Any = None, **params: Any) -> Status:
        return self._update_room(data, params, partial=True)

    @db_action()
    def update(self, data: Any = None, **params: Any) -> Status:
        """DCRF's name for a full update (api_docs/PROTOCOL.md §8): like patch, with `name` required."""
        return self._update_room(data, params, partial=False)

    def _update_room(self, data: Any, params: dict[str, Any], *, partial: bool) -> Status:
        room = selectors.access_room(user=self.user, **validate(PkParamSerializer, params))
        return operations.room_patch(room=room, user=self.user, data=data, partial=partial), 200

    @db_action()
    def delete(self, **params: Any) -> Status:
        services.room_delete(room=selectors.access_room(user=self.user, **validate(PkParamSerializer, params)), user=self.user)
        return None, 204

    # --- room instance stream --------------------------------------------------------------

    @action()
    async def subscribe_instance(self, request_id: Any, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        limits.check_new_subscription(self, existing=(room_id, request_id) in self.instance_subscriptions)
        await db_thread(selectors.room_assert_visible)(user=self.user, pk=room_id)
        await room_observer.subscribe(self, room_id=room_id, request_id=request_id)
        self.instance_subscriptions[room_id, request_id] = multiplex.current_stream.get()
        return None, 200

    @action()
    async def unsubscribe_instance(self, request_id: Any, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        if (room_id, request_id) not in self.instance_subscriptions:
            raise NotSubscribed()
        self.instance_subscriptions.pop((room_id, request_id), None)
        await room_observer.unsubscribe(self, room_id=room_id, request_id=request_id)
        return None, 200

    def room_activity(self, message: dict[str, Any]) -> int:
        """Layer events of type groups.ROOM_EVENT: a room was renamed or deleted; returns the frames sent."""
        event, action, sent = message["body"], message["action"], 0
        if action not in (groups.PUSH_UPDATE, groups.PUSH_DELETE):
            return 0
        for request_id in room_observer.request_ids(self, message["group"]):
            stream = self.instance_subscriptions.get((event["pk"], request_id))
            self.push(jsonenc.dumps(multiplex.wrap(stream, {"action": action, "request_id": request_id, "pk": event["pk"], "data": event})))
            sent += 1
        return sent  # counted by the fan-out (metrics.events_sent), once per event
