"""The WebSocket room API (PROTOCOL.md §2): a DCRF consumer over chat.core.services and chat.core.selectors.

Request/response actions are sync DCRF actions (run on a worker thread through
`chat.core.db.db_action`) that validate parameters with the shared serializers, call one
service or selector and return serialized data. Actions that also subscribe to groups
or push events are async and reach the database only through `chat.core.db.db_thread`.
Events reach the consumer through its process's fan-out (`chat.events.fanout`), never through
a layer channel of its own.
"""

import asyncio
import json
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from channels.consumer import get_handler_name
from django.http import Http404
from djangochannelsrestframework.decorators import action
from djangochannelsrestframework.generics import GenericAsyncAPIConsumer
from djangochannelsrestframework.permissions import IsAuthenticated
from rest_framework.exceptions import APIException, MethodNotAllowed

from chat.core import selectors, services
from chat.core.db import db_action, db_thread
from chat.core.exceptions import NotPresent, NotSubscribed, RateLimited
from chat.core.serializers import (
    MessageHistoryParamsSerializer,
    MessageParamsSerializer,
    MessageSerializer,
    PkParamSerializer,
    RoomListParamsSerializer,
    RoomParamSerializer,
    RoomSerializer,
    SubscribeParamsSerializer,
    UserSerializer,
    validate,
)
from chat.events import groups, realtime
from chat.events.fanout import local_fanout
from chat.events.observers import MessageObserver, fanout_observer
from chat.models import Message, Room
from chat.ops import metrics
from chat.ops.logging import log_event
from chat.ws.social import SocialActionsMixin

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
REPLAY_BATCH = 200
CLOSE_AUTH_REVOKED = 4401
CLOSE_INTERNAL_ERROR = 1011

Status = tuple[Any, int]


def _request_id_is_valid(request_id: Any) -> bool:
    return request_id is None or (isinstance(request_id, (str, int, float)) and not isinstance(request_id, bool))


def message_push(action: str, request_id: Any, pk: int, data_json: str) -> str:
    """A message-stream push frame around already encoded message JSON."""
    return f'{{"action": "{action}", "request_id": {json.dumps(request_id)}, "pk": {pk}, "data": {data_json}}}'


@dataclass
class MessageSubscription:
    """Where one message-stream subscription stands.

    While `backlog` is a deque the subscription is catching up from the database
    (after `after_seq`, or across a gap the layer left) and live events wait in it.
    """

    last_seq: int
    backlog: deque[tuple[dict[str, Any], str]] | None = None


@db_thread
def _enter_room(channel_name: str, room_id: int, user: Any) -> tuple[bool, dict[str, Any]]:
    """Be present in the room on this connection; whether presence changed, and the Room that includes the caller."""
    changed = services.presence_enter(channel_name=channel_name, room_id=room_id, user=user)
    return changed, RoomSerializer(selectors.room_get(pk=room_id)).data


@db_thread
def _history_json(room_id: int, after_seq: int, before_seq: int | None = None) -> tuple[list[dict[str, Any]], bool]:
    messages, has_more = selectors.message_history(room_id=room_id, after_seq=after_seq, before_seq=before_seq, limit=REPLAY_BATCH)
    return MessageSerializer(messages, many=True).data, has_more


@db_thread
def _online_users_json() -> list[dict[str, Any]]:
    return UserSerializer(selectors.online_users(), many=True).data


class RoomConsumer(SocialActionsMixin, GenericAsyncAPIConsumer):
    """One authenticated connection: any number of rooms, subscriptions and presences."""

    permission_classes = (IsAuthenticated,)
    serializer_class = RoomSerializer
    # No layer channel of its own: every event reaches a connection through its process's
    # fan-out (chat/events/fanout.py), so Channels need not subscribe to and listen on one per
    # connection (a Redis subscription, a queue and a task each).
    channel_layer_alias = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # This connection's id (Connection.channel_name): what presence rows point at.
        self.channel_name = f"conn.{uuid.uuid4().hex}"
        self.user: Any = None
        # Dicts used as ordered sets: an empty dict is a third of an empty set's size, and
        # most of 10,000 idle connections never fill these.
        self.present_rooms: dict[int, None] = {}
        self.last_joined_room: int | None = None
        self.message_subscriptions: dict[tuple[int, Any], MessageSubscription] = {}
        self.instance_subscriptions: dict[tuple[int, Any], None] = {}
        self.online_users_request_ids: dict[Any, None] = {}
        self.opened_at = time.monotonic()

    # --- connection lifecycle -------------------------------------------------------

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not user.is_active:
            metrics.connection_refused()
            log_event(logger, "ws.refused", auth="token" if self.scope.get("auth_token") else "session")
            await self.close()  # before accept: the handshake is refused with HTTP 403
            return
        self.user = user
        went_online = await db_thread(services.connection_open)(channel_name=self.channel_name, user=user, server_id=realtime.SERVER_ID)
        await self.add_group(groups.user_group(user.pk))
        await self.accept()
        metrics.connection_accepted()
        log_event(logger, "ws.connect", user_id=user.pk)
        realtime.ensure_heartbeat()
        if went_online:
            await realtime.push_user_status([UserSerializer(user).data], online=True)

    async def add_group(self, name: str) -> None:
        # Through the process's fan-out, not a layer channel of our own (chat/events/fanout.py).
        if name not in self.groups:
            self.groups.add(name)
            try:
                await local_fanout().add(name, self)
            except BaseException:
                self.groups.discard(name)
                raise

    async def remove_group(self, name: str) -> None:
        if name in self.groups:
            self.groups.discard(name)
            await local_fanout().discard(name, self)

    def _detach(self, work: Any) -> None:
        """Run work beside this connection's frames; cancelled when it closes."""
        task = asyncio.ensure_future(work)
        self.detached_tasks.append(task)
        task.add_done_callback(lambda done: done in self.detached_tasks and self.detached_tasks.remove(done))

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        for task in list(self.detached_tasks):
            task.cancel()
        fanout = local_fanout()
        for name in self.groups:
            await fanout.discard(name, self)
        self.groups = set()
        await super().websocket_disconnect(message)

    async def disconnect(self, code: int) -> None:
        if self.user is None:
            return
        metrics.connection_closed(code)
        duration_ms = round((time.monotonic() - self.opened_at) * 1000)
        log_event(logger, "ws.disconnect", user_id=self.user.pk, close_code=code, duration_ms=duration_ms)
        await realtime.forget_connection(self.channel_name)

    # --- frames ------------------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels' dispatch first hops to the shared sync thread to close stale database
        # connections, for every frame and every event: that serialises fan-out across all
        # consumers. Our database work goes through db_thread, which does it.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """Decode one frame; any bad frame gets a 400/413 response and the connection stays usable."""
        if text_data is None:
            await self.reply(action=None, status=400, errors=["Binary frames are not supported: send JSON text."])
            return
        if len(text_data) > MAX_FRAME_BYTES or len(text_data.encode("utf-8", "surrogatepass")) > MAX_FRAME_BYTES:
            await self.reply(action=None, status=413, errors=[f"Frame too large: the limit is {MAX_FRAME_BYTES} bytes."])
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser's stack
            await self.reply(action=None, status=400, errors=["Invalid JSON."])
            return
        if not isinstance(content, dict):
            await self.reply(action=None, status=400, errors=["A frame must be a JSON object."])
            return
        request_id = content.pop("request_id", None)
        action_name = content.pop("action", None)
        if not _request_id_is_valid(request_id):
            request_id = None
            errors = ["request_id must be a string or a number."]
        elif not isinstance(action_name, str):
            errors = ["action is missing: give the name of an action as a string."]
        else:
            content.pop("self", None)  # would collide with the handler's own argument
            await self.handle_action(action_name, request_id=request_id, **content)
            return
        await self.reply(action=action_name if isinstance(action_name, str) else None, status=400, errors=errors, request_id=request_id)

    async def handle_exception(self, exc: Exception, action: str | None, request_id: Any) -> None:
        """Every failure becomes one response; unexpected ones are logged and answered 500."""
        if isinstance(exc, RateLimited):
            await self.reply(
                action=action, status=429, errors=[str(exc.detail)], data={"retry_after": exc.retry_after}, request_id=request_id
            )
        elif isinstance(exc, (APIException, Http404)):
            await super().handle_exception(exc, action, request_id)
        else:
            logger.exception("action %s failed (request_id=%r)", action, request_id)
            await self.reply(action=action, status=500, errors=["Internal server error."], request_id=request_id)

    async def reply(
        self, action: str | None, data: Any = None, errors: list[Any] | None = None, status: int = 200, request_id: Any = None
    ) -> None:
        """Send the one response to a request; count it, and log it when it is an error."""
        metrics.action_handled(action, status)
        if status >= 400:
            log_event(
                logger,
                "ws.error",
                level=logging.WARNING,
                user_id=self.user.pk if self.user else None,
                action=action,
                request_id=request_id,
                status=status,
            )
        await super().reply(action=action, data=data, errors=errors, status=status, request_id=request_id)

    async def handle_action(self, action: str, request_id: Any, **params: Any) -> None:
        if action not in self.available_actions:  # before permissions: unknown is 405 for everyone
            await self.handle_exception(MethodNotAllowed(action), action, request_id)
            return
        await super().handle_action(action, request_id=request_id, **params)

    # --- rooms -----------------------------------------------------------------------

    @db_action(name="list")  # not `def list`: that would shadow the builtin in this class body
    def list_rooms(self, **params: Any) -> Status:
        rooms, count = selectors.room_list(**validate(RoomListParamsSerializer, params))
        return {"results": RoomSerializer(rooms, many=True).data, "count": count}, 200

    @db_action()
    def retrieve(self, **params: Any) -> Status:
        return RoomSerializer(selectors.room_get(**validate(PkParamSerializer, params))).data, 200

    @db_action()
    def create(self, data: Any = None, **params: Any) -> Status:
        room = services.room_create(host=self.user, name=validate(RoomSerializer, data)["name"])
        return RoomSerializer(room).data, 201

    @db_action()
    def patch(self, data: Any = None, **params: Any) -> Status:
        room = selectors.room_get(**validate(PkParamSerializer, params))
        serializer = RoomSerializer(room, data=data, partial=True)
        serializer.is_valid(raise_exception=True)
        room = services.room_update(room=room, user=self.user, name=serializer.validated_data.get("name", room.name))
        return RoomSerializer(room).data, 200

    @db_action()
    def delete(self, **params: Any) -> Status:
        services.room_delete(room=selectors.room_get(**validate(PkParamSerializer, params)), user=self.user)
        return None, 204

    # --- membership and presence ---------------------------------------------------------

    @action()
    async def join_room(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        # Join the audience first, so this connection also gets the presence push it causes.
        await self.add_group(groups.room_group(room_id))
        try:
            changed, room = await _enter_room(self.channel_name, room_id, self.user)
        except Exception:
            await self._sync_room_group(room_id)
            raise
        self.present_rooms[room_id] = None
        self.last_joined_room = room_id
        if changed:
            await realtime.push_presence([room_id])
        return room, 200

    @action()
    async def leave_room(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        changed = await db_thread(services.presence_leave)(channel_name=self.channel_name, room_id=room_id, user=self.user)
        self.present_rooms.pop(room_id, None)
        if self.last_joined_room == room_id:
            self.last_joined_room = None
        await self._sync_room_group(room_id)
        if changed:
            await realtime.push_presence([room_id])
        return None, 200

    @action()
    async def typing(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        if room_id not in self.present_rooms:
            await db_thread(selectors.room_assert_exists)(pk=room_id)
            raise NotPresent()
        await realtime.push_typing(room_id, self.user)
        return None, 200

    async def _sync_room_group(self, room_id: int) -> None:
        """Be in the room's presence/typing audience exactly while present or subscribed to its messages."""
        if room_id in self.present_rooms or any(room == room_id for room, _ in self.message_subscriptions):
            await self.add_group(groups.room_group(room_id))
        else:
            await self.remove_group(groups.room_group(room_id))

    # --- messages ----------------------------------------------------------------------

    @db_action()
    def create_message(self, **params: Any) -> Status:
        room_id = validate(RoomParamSerializer, {"room": params.get("room", self.last_joined_room)})["room"]
        data = validate(MessageParamsSerializer, params)
        message, created = services.message_create(
            room_id=room_id, author=self.user, text=data["message"], client_id=data.get("client_id"), reply_to=data.get("reply_to")
        )
        return MessageSerializer(message).data, 201 if created else 200

    @db_action()
    def update_message(self, **params: Any) -> Status:
        message = selectors.message_get(**validate(PkParamSerializer, params))
        text = validate(MessageParamsSerializer, params)["message"]
        return MessageSerializer(services.message_update(message=message, user=self.user, text=text)).data, 200

    @db_action()
    def delete_message(self, **params: Any) -> Status:
        services.message_delete(message=selectors.message_get(**validate(PkParamSerializer, params)), user=self.user)
        return None, 204

    @db_action()
    def list_messages(self, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        selectors.room_assert_exists(pk=room_id)
        messages, has_more = selectors.message_history(room_id=room_id, **validate(MessageHistoryParamsSerializer, params))
        return {"results": MessageSerializer(messages, many=True).data, "has_more": has_more}, 200

    # --- message stream ------------------------------------------------------------------

    @action()
    async def subscribe_to_messages_in_room(self, request_id: Any, action: str, **params: Any) -> None:
        query = validate(SubscribeParamsSerializer, params)
        room_id, key = query["pk"], (query["pk"], request_id)
        # Subscribe before reading where the room stands, so no event falls in between:
        # events wait in the backlog until the replay is done.
        subscription = MessageSubscription(last_seq=query.get("after_seq", 0), backlog=deque())
        self.message_subscriptions[key] = subscription
        try:
            await self.message_activity.subscribe(room_id=room_id, request_id=request_id)
            last_seq = await db_thread(selectors.room_last_seq)(room_id=room_id)
        except Exception:
            await self._unsubscribe_messages(room_id, request_id)
            raise
        if "after_seq" not in query:
            subscription.last_seq = last_seq
        await self._sync_room_group(room_id)
        await self.reply(action=action, request_id=request_id, status=200)
        await self._catch_up(key, subscription, stored_up_to=last_seq)

    @action()
    async def unsubscribe_from_messages_in_room(self, request_id: Any, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        if (room_id, request_id) not in self.message_subscriptions:
            raise NotSubscribed()
        await self._unsubscribe_messages(room_id, request_id)
        return None, 200

    async def _unsubscribe_messages(self, room_id: int, request_id: Any) -> None:
        self.message_subscriptions.pop((room_id, request_id), None)
        await self.message_activity.unsubscribe(room_id=room_id, request_id=request_id)
        await self._sync_room_group(room_id)

    async def _catch_up(self, key: tuple[int, Any], subscription: MessageSubscription, stored_up_to: int | None = None) -> None:
        """Send what the database has after last_seq, then the live events held meanwhile; then go live.

        If that fails the connection is closed: the client resumes with after_seq, whereas
        carrying on would leave a silent gap or a subscription stuck in catch-up.
        """
        try:
            await self._replay_then_go_live(key, subscription, stored_up_to)
        except Exception:
            logger.exception("catching up room %s for request_id %r failed", *key)
            await self.close(code=CLOSE_INTERNAL_ERROR)

    async def _replay_then_go_live(self, key: tuple[int, Any], subscription: MessageSubscription, stored_up_to: int | None) -> None:
        # stored_up_to: the room's last seq, read after subscribing; anything newer is in the backlog.
        if stored_up_to is None or subscription.last_seq < stored_up_to:
            await self._send_missed(key, subscription)
        backlog = subscription.backlog
        while backlog and self.message_subscriptions.get(key) is subscription:
            event, action = backlog.popleft()
            if action == "create":
                if event["seq"] <= subscription.last_seq:
                    continue  # the replay already sent it
                if event["seq"] > subscription.last_seq + 1:
                    # The layer dropped or reordered events: the database has what is missing.
                    metrics.events_recovered(await self._send_missed(key, subscription, before_seq=event["seq"]))
                subscription.last_seq = event["seq"]
            await self._send_message_event(event, action, key[1])
        subscription.backlog = None  # no await since the loop's last check: nothing can slip in

    async def _send_missed(self, key: tuple[int, Any], subscription: MessageSubscription, before_seq: int | None = None) -> int:
        """Send, as `create` events, the stored messages the subscription has not seen (before before_seq)."""
        (room_id, request_id), has_more, sent = key, True, 0
        while has_more and self.message_subscriptions.get(key) is subscription:
            messages, has_more = await _history_json(room_id, subscription.last_seq, before_seq)
            for message in messages:
                subscription.last_seq = message["seq"]
                await self.send(text_data=message_push("create", request_id, message["id"], json.dumps(message)))
            sent += len(messages)
        return sent

    @fanout_observer(Message, MessageObserver)
    async def message_activity(
        self, event: dict[str, Any], action: str, subscribing_request_ids: list[Any], committed_at: float, **kwargs: Any
    ) -> None:
        for request_id in subscribing_request_ids:
            if await self._deliver_message_event(event, action, request_id):
                metrics.event_sent(action, committed_at)

    @message_activity.serializer
    def message_activity(self, instance: Any, action: Any, **kwargs: Any) -> dict[str, Any]:
        # Runs once per event in the writing process, never once per subscriber; the JSON
        # is encoded here too, and subscribers only splice in their request_id.
        data = json.dumps(MessageSerializer(instance).data)
        return {"room": instance.room_id, "seq": instance.seq, "pk": instance.pk, "data_json": data}

    @message_activity.groups_for_signal
    def message_activity(self, instance: Any, **kwargs: Any) -> Any:
        yield groups.room_messages_group(instance.room_id)  # room_id, never room: this also runs on post_init

    @message_activity.groups_for_consumer
    def message_activity(self, room_id: int, **kwargs: Any) -> Any:
        yield groups.room_messages_group(room_id)

    async def _deliver_message_event(self, event: dict[str, Any], action: str, request_id: Any) -> bool:
        """Forward one live event to one subscription, keeping its `create`s gap-free and in seq order; True if sent.

        Called by the process's fan-out for every local subscriber in turn, so it never
        waits on the database: a gap is filled by a task of this connection's own.
        """
        key = (event["room"], request_id)
        subscription = self.message_subscriptions.get(key)
        if subscription is None:
            return False
        if subscription.backlog is not None:
            subscription.backlog.append((event, action))
            return False
        if action == "create":
            if event["seq"] <= subscription.last_seq:
                return False  # already sent by a replay or a gap fill
            if event["seq"] > subscription.last_seq + 1:
                subscription.backlog = deque([(event, action)])
                self._detach(self._catch_up(key, subscription))
                return False
            subscription.last_seq = event["seq"]
        await self._send_message_event(event, action, request_id)
        return True

    async def _send_message_event(self, event: dict[str, Any], action: str, request_id: Any) -> None:
        # Straight to the server: the generic send() only wraps this in two more calls.
        await self.base_send({"type": "websocket.send", "text": message_push(action, request_id, event["pk"], event["data_json"])})

    # --- room instance stream --------------------------------------------------------------

    @action()
    async def subscribe_instance(self, request_id: Any, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        await db_thread(selectors.room_assert_exists)(pk=room_id)
        await self.room_activity.subscribe(room_id=room_id, request_id=request_id)
        self.instance_subscriptions[room_id, request_id] = None
        return None, 200

    @action()
    async def unsubscribe_instance(self, request_id: Any, **params: Any) -> Status:
        room_id = validate(PkParamSerializer, params)["pk"]
        if (room_id, request_id) not in self.instance_subscriptions:
            raise NotSubscribed()
        self.instance_subscriptions.pop((room_id, request_id), None)
        await self.room_activity.unsubscribe(room_id=room_id, request_id=request_id)
        return None, 200

    @fanout_observer(Room)
    async def room_activity(
        self, event: dict[str, Any], action: str, subscribing_request_ids: list[Any], committed_at: float, **kwargs: Any
    ) -> None:
        if action not in ("update", "delete"):
            return
        for request_id in subscribing_request_ids:
            await self.send_json({"action": action, "request_id": request_id, "pk": event["pk"], "data": event})
            metrics.event_sent(action, committed_at)

    @room_activity.serializer
    def room_activity(self, instance: Room, action: Any, **kwargs: Any) -> dict[str, Any]:
        if action.value == "update":
            return RoomSerializer(selectors.room_get(pk=instance.pk)).data
        instance.current_users, instance.last_message = [], None
        return RoomSerializer(instance).data

    @room_activity.groups_for_signal
    def room_activity(self, instance: Room, **kwargs: Any) -> Any:
        yield groups.room_instance_group(instance.pk)

    @room_activity.groups_for_consumer
    def room_activity(self, room_id: int, **kwargs: Any) -> Any:
        yield groups.room_instance_group(room_id)

    # --- online users ----------------------------------------------------------------------

    @action()
    async def subscribe_to_online_users(self, request_id: Any, **params: Any) -> Status:
        await self.add_group(groups.ONLINE_USERS_GROUP)
        self.online_users_request_ids[request_id] = None
        return {"users": await _online_users_json()}, 200

    # --- channel-layer events (type "a.b" calls method a_b) ----------------------------------

    async def room_presence(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])
        metrics.event_sent("presence")

    async def room_typing(self, event: dict[str, Any]) -> None:
        if event["user_id"] != self.user.pk:
            await self.send(text_data=event["text"])
            metrics.event_sent("typing")

    async def users_status(self, event: dict[str, Any]) -> None:
        for request_id in self.online_users_request_ids:
            await self.send_json({"action": "user_status", "request_id": request_id, "data": event["data"]})
            metrics.event_sent("user_status")

    async def auth_revoked(self, event: dict[str, Any]) -> None:
        if event["token"] is None or event["token"] == self.scope.get("auth_token"):
            await self.close(code=CLOSE_AUTH_REVOKED)
