"""Messages over WebSocket (api_docs/PROTOCOL.md §2): create, edit, delete, list, and the per-room message stream."""

from typing import Any

from djangochannelsrestframework.decorators import action

from chat.core import operations, selectors, services
from chat.core.db import db_action, db_thread
from chat.core.exceptions import NotSubscribed
from chat.core.jsonenc import RawJSON
from chat.core.serializers import (
    MessageParamsSerializer,
    MessageSerializer,
    PkParamSerializer,
    RoomParamSerializer,
    SubscribeParamsSerializer,
    validate,
)
from chat.core.singleflight import SingleFlight
from chat.events.streams import encoded_message, message_observer
from chat.ws import limits, multiplex
from chat.ws.connection import ConsumerMixin
from chat.ws.protocol import CLOSE_INTERNAL_ERROR, Status
from chat.ws.streams import Event, MessageStream

REPLAY_BATCH = 200


HistoryPage = tuple[list[Event], bool]


@db_thread
def _read_history_page(page: tuple[int, int, int | None]) -> HistoryPage:
    room_id, after_seq, before_seq = page
    messages, has_more = selectors.message_history(room_id=room_id, after_seq=after_seq, before_seq=before_seq, limit=REPLAY_BATCH)
    # Encoded once here, however many subscriptions share the page (below).
    return [encoded_message(message) for message in messages], has_more


# A crowd reconnecting with the same after_seq (a server restart) reads each page once.
_shared_history_pages = SingleFlight(_read_history_page)


async def _history_page(room_id: int, after_seq: int, before_seq: int | None) -> HistoryPage:
    return await _shared_history_pages((room_id, after_seq, before_seq))


_room_last_seq = db_thread(selectors.room_last_seq)  # made once, not per subscription


class MessagesMixin(ConsumerMixin):
    """Messages as resources, and subscriptions to a room's messages (MessageStream)."""

    @db_action()
    def create_message(self, **params: Any) -> Status:
        room_id = validate(RoomParamSerializer, {"room": params.get("room", self.last_joined_room)})["room"]
        data = validate(MessageParamsSerializer, params)
        message, created = services.message_create(
            room_id=room_id, author=self.user, text=data["message"], client_id=data.get("client_id"), reply_to=data.get("reply_to")
        )
        if created:  # its create event was sent (after the commit, which has happened): the same JSON
            return RawJSON(message.event_json), 201
        return MessageSerializer(message).data, 200

    @db_action()
    def update_message(self, **params: Any) -> Status:
        message = selectors.access_message(user=self.user, **validate(PkParamSerializer, params))
        text = validate(MessageParamsSerializer, params)["message"]
        return MessageSerializer(services.message_update(message=message, user=self.user, text=text)).data, 200

    @db_action()
    def delete_message(self, **params: Any) -> Status:
        services.message_delete(message=selectors.access_message(user=self.user, **validate(PkParamSerializer, params)), user=self.user)
        return None, 204

    @db_action()
    def list_messages(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        return operations.message_history_page(user=self.user, room_id=room_id, params=params), 200

    # --- message stream ------------------------------------------------------------------

    @action()
    async def subscribe_to_messages_in_room(self, request_id: Any, action: str, **params: Any) -> None:
        query = validate(SubscribeParamsSerializer, params)
        room_id, key = query["pk"], (query["pk"], request_id)
        limits.check_new_subscription(self, existing=key in self.message_streams)
        stream = MessageStream(
            room_id,
            request_id,
            last_seq=query.get("after_seq", 0),
            send=multiplex.sender(multiplex.current_stream.get(), self.push),
            read_history=_history_page,
            spawn=self.detach,
            fail=self._close_after_failed_catch_up,
        )
        replaced = self.message_streams.get(key)
        if replaced is not None:
            replaced.end()  # a repeated subscription starts over; the old one's replay stops
        # Subscribe before reading where the room stands, so no event falls in between:
        # events wait in the stream's backlog until the replay is done.
        self.message_streams[key] = stream
        try:
            await message_observer.subscribe(self, room_id=room_id, request_id=request_id)
            last_seq = await _room_last_seq(room_id=room_id, user=self.user)
        except Exception:
            await self._unsubscribe_messages(room_id, request_id)
            raise
        if "after_seq" not in query:
            stream.last_seq = last_seq
        await self.sync_room_group(room_id)
        await self.reply(action=action, request_id=request_id, status=200)
        await stream.catch_up(stored_up_to=last_seq)

    @action()
    async def unsubscribe_from_messages_in_room(self, request_id: Any, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        if (room_id, request_id) not in self.message_streams:
            raise NotSubscribed()
        await self._unsubscribe_messages(room_id, request_id)
        return None, 200

    async def _unsubscribe_messages(self, room_id: int, request_id: Any) -> None:
        stream = self.message_streams.pop((room_id, request_id), None)
        if stream is not None:
            stream.end()
        await message_observer.unsubscribe(self, room_id=room_id, request_id=request_id)
        await self.sync_room_group(room_id)

    async def _close_after_failed_catch_up(self) -> None:
        # The client resumes with after_seq (api_docs/PROTOCOL.md §2: 1011).
        await self.close(code=CLOSE_INTERNAL_ERROR)

    def message_activity(self, message: dict[str, Any]) -> int:
        """Layer events of type groups.MESSAGE_EVENT: a message was created, edited or deleted; returns the frames sent."""
        event, action, sent = message["body"], message["action"], 0
        for request_id in message_observer.request_ids(self, message["group"]):
            stream = self.message_streams.get((event["room"], request_id))
            if stream is not None and stream.deliver(event, action):
                sent += 1
        return sent  # counted by the fan-out (metrics.events_sent), once per event
