"""The private APIs of DCRF, Channels, daphne/autobahn/Twisted and Django the code relies on, pinned.

Each test names where the code relies on the seam. An upgrade that moves one of them
fails here, loudly, instead of silently dropping events or breaking shutdown.
"""

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.db.models.signals import post_init
from djangochannelsrestframework.observer.model_observer import Action

from chat.events import groups
from chat.events.streams import message_observer, room_observer


def parameters(func: Callable[..., Any]) -> list[str]:
    return list(inspect.signature(func).parameters)


def source(obj: Any) -> str:
    return inspect.getsource(obj)


# --- DCRF ------------------------------------------------------------------------------------


class FakeConsumer:
    """What DCRF's BaseObserver.subscribe/unsubscribe touch on a consumer."""

    def __init__(self) -> None:
        from djangochannelsrestframework.consumers import AsyncAPIConsumer

        # The bookkeeping DCRF's own consumer __init__ sets up (chat.events.observers reads it).
        self._observer_group_to_request_id = AsyncAPIConsumer()._observer_group_to_request_id
        self.joined: list[str] = []
        self.left: list[str] = []

    async def add_group(self, name: str) -> None:
        self.joined.append(name)

    async def remove_group(self, name: str) -> None:
        self.left.append(name)


@pytest.mark.asyncio
async def test_dcrf_subscribe_keys_request_ids_by_the_pinned_observer_id_and_our_group_names() -> None:
    """chat.events.observers.FanoutObserver: _stable_observer_id, group_names_for_consumer(consumer=, room_id=)."""
    consumer = FakeConsumer()
    assert await message_observer.subscribe(consumer, room_id=5, request_id="a") == [groups.room_messages_group(5)]
    await message_observer.subscribe(consumer, room_id=5, request_id="b")
    assert consumer.joined == [groups.room_messages_group(5)] * 2  # ProtocolConsumer.add_group dedupes
    assert consumer._observer_group_to_request_id[groups.MESSAGE_EVENT] == {groups.room_messages_group(5): {"a", "b"}}
    assert set(message_observer.request_ids(consumer, groups.room_messages_group(5))) == {"a", "b"}
    await message_observer.unsubscribe(consumer, room_id=5, request_id="a")
    assert consumer.left == []
    await message_observer.unsubscribe(consumer, room_id=5, request_id="b")
    assert consumer.left == [groups.room_messages_group(5)]
    assert not message_observer.request_ids(consumer, groups.room_messages_group(5))


def test_dcrf_observer_ids_are_pinned_not_derived_from_a_function() -> None:
    """Group ids no longer move with the consumer's module path or class name."""
    assert message_observer._stable_observer_id == groups.MESSAGE_EVENT
    assert room_observer._stable_observer_id == groups.ROOM_EVENT


@pytest.mark.django_db(transaction=True)
def test_dcrf_prepares_one_event_per_group_through_our_serialize_and_stamps_it_on_commit() -> None:
    """ModelObserver: post_init/post_save receivers, group_names_for_signal(instance=), serialize(instance, action),
    get_observer_state(instance).pending_messages, send_prepared_messages(instance) on commit."""
    from chat.core import services
    from tests.factories import RoomFactory

    room = RoomFactory.create()
    with transaction.atomic():
        message, _ = services.message_store(room_id=room.pk, author=room.host, text="seam")
        [pending] = message_observer.get_observer_state(message).pending_messages
        assert pending["type"] == groups.MESSAGE_EVENT and pending["action"] == "create"
        assert pending["group"] == groups.room_messages_group(message.room_id)
        assert pending["body"]["seq"] == message.seq and "committed_at" not in pending
    # Sent and cleared after commit (DCRF's send_prepared_messages, which ours wraps).
    assert message_observer.get_observer_state(message).pending_messages == []
    # Loading records nothing (DCRF's post_init receiver is disconnected); a loaded message's
    # update and delete still go to its room's group as update and delete.
    assert not post_init.has_listeners(type(message))
    loaded = type(message).objects.get(pk=message.pk)
    for action in (Action.UPDATE, Action.DELETE):
        [event] = message_observer.prepare_messages(loaded, action)
        assert event["action"] == action.value and event["group"] == groups.room_messages_group(message.room_id)


def test_dcrf_model_observer_internals_we_override_keep_their_shape() -> None:
    from djangochannelsrestframework.observer.base_observer import BaseObserver
    from djangochannelsrestframework.observer.model_observer import Action, ModelObserver

    assert parameters(ModelObserver.__init__)[:3] == ["self", "func", "model_cls"]
    assert "_stable_observer_id" in source(BaseObserver.__init__)
    assert "self.group_names_for_consumer(*args, consumer=consumer, **kwargs)" in source(BaseObserver.subscribe)
    assert "post_init.connect(\n            self.post_init_receiver, sender=self.model_cls, dispatch_uid=str(id(self))" in source(
        ModelObserver._connect
    )
    assert "old_group_names, new_group_names, action" in source(ModelObserver.prepare_messages)  # ours replaces it
    assert "self.serialize(instance, Action." in source(ModelObserver.generate_messages)
    assert "self.send_prepared_messages, instance" in source(ModelObserver.database_event)
    assert parameters(ModelObserver.database_event) == ["self", "instance", "action"]  # MessageObserver overrides it
    assert {action.value for action in Action} == {groups.PUSH_CREATE, groups.PUSH_UPDATE, groups.PUSH_DELETE}


def test_dcrf_consumer_seams() -> None:
    """chat/ws/protocol.py overrides reply, handle_exception, handle_action, add_group, websocket_disconnect."""
    from djangochannelsrestframework.consumers import AsyncAPIConsumer
    from djangochannelsrestframework.generics import GenericAsyncAPIConsumer

    assert parameters(GenericAsyncAPIConsumer.reply) == ["self", "action", "data", "errors", "status", "request_id"]
    assert parameters(GenericAsyncAPIConsumer.handle_exception) == ["self", "exc", "action", "request_id"]
    assert parameters(GenericAsyncAPIConsumer.handle_action) == ["self", "action", "request_id", "kwargs"]
    # handle_action checks permissions before looking the action up (why ours answers 405 first).
    handle_action = source(AsyncAPIConsumer.handle_action)
    assert handle_action.index("check_permissions") < handle_action.index("available_actions")
    # ProtocolConsumer.check_permissions does IsAuthenticated's check itself, the same way.
    from djangochannelsrestframework.permissions import IsAuthenticated

    assert parameters(AsyncAPIConsumer.check_permissions) == ["self", "action", "kwargs"]
    assert 'user = scope.get("user")' in source(IsAuthenticated.has_permission)
    assert "return user.pk and user.is_authenticated" in source(IsAuthenticated.has_permission)
    # Its websocket_disconnect awaits each detached task (why ours cancels them first).
    assert "detached_tasks" in source(AsyncAPIConsumer.websocket_disconnect)
    # Its add_group would join with the consumer's own layer channel, which ours does not have.
    assert "self.channel_layer.group_add" in source(AsyncAPIConsumer.add_group)
    consumer = AsyncAPIConsumer()
    assert consumer.detached_tasks == [] and consumer.groups == set()


def test_dcrf_collects_actions_from_plain_mixins_via_dir() -> None:
    """Topic mixins are plain classes at run time (chat.ws.connection.ConsumerMixin)."""
    from chat.ws.consumer import RoomConsumer
    from chat.ws.presence import PresenceMixin

    assert "dir(cls)" in source(type(RoomConsumer).__new__)
    assert PresenceMixin.__mro__[1] is object
    assert RoomConsumer.available_actions["join_room"] == "join_room"
    assert RoomConsumer.available_actions["list"] == "list_rooms"  # db_action(name=...) keeps DCRF's kwargs


# --- Channels ----------------------------------------------------------------------------------


def test_channels_handler_names_and_every_layer_event_has_a_handler() -> None:
    """chat.events.fanout and ProtocolConsumer.dispatch call get_handler_name; each event type needs a method."""
    from channels.consumer import get_handler_name

    from chat.ws.consumer import RoomConsumer

    assert get_handler_name({"type": "message.activity"}) == "message_activity"
    for event_type in groups.EVENT_TYPES:
        assert callable(getattr(RoomConsumer, get_handler_name({"type": event_type}), None)), event_type


def test_channels_consumer_without_a_layer_reads_only_the_socket() -> None:
    """ProtocolConsumer.channel_layer_alias = None: no channel, no channel_name from Channels (ours is set in __init__)."""
    from channels.consumer import AsyncConsumer
    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.layers import get_channel_layer

    assert get_channel_layer(None) is None
    call = source(AsyncConsumer.__call__)
    assert "if self.channel_layer is not None:" in call and "self.base_send = send" in call
    # ProtocolConsumer.__call__ does what this does without a layer (scope, base_send, StopConsumer), minus the tasks.
    assert "await await_many_dispatch([receive], self.dispatch)" in call and "except StopConsumer:" in call
    # Why ProtocolConsumer.dispatch is overridden, and why websocket_disconnect empties self.groups first.
    assert "aclose_old_connections" in source(AsyncConsumer.dispatch)
    assert "for group in self.groups" in source(AsyncWebsocketConsumer.websocket_disconnect)


def test_asgiref_async_to_sync_finds_the_loop_db_thread_marks() -> None:
    """chat.core.db.db_thread sets what SyncToAsync.thread_handler sets in a worker thread, for AsyncToSync to read."""
    from asgiref.sync import AsyncToSync, SyncToAsync

    handler, call = source(SyncToAsync.thread_handler), source(AsyncToSync.__call__)
    for name in ("main_event_loop", "main_event_loop_pid", "task_context"):
        assert f"self.threadlocal.{name} = " in handler
        assert f'SyncToAsync.threadlocal, "{name}"' in call


# --- daphne, autobahn, Twisted (mysite/serve.py) ---------------------------------------------------


def test_daphne_server_seams() -> None:
    import daphne.server
    from daphne.cli import CommandLineInterface
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol

    # LoggingServer.run swaps the module global Server.run builds its factory from.
    assert daphne.server.WebSocketFactory is WebSocketFactory
    assert "WebSocketFactory(self" in source(Server.run)
    assert parameters(Server.create_application) == ["self", "protocol", "scope"]
    assert "input_queue" in source(Server.create_application) and "application_instance" in source(Server.create_application)
    assert parameters(Server.handle_reply) == ["self", "protocol", "message"]
    assert parameters(Server.log_action) == ["self", "protocol", "action", "details"]
    assert parameters(Server.listen_success) == ["self", "port"]
    assert "self.connections = {}" in source(Server.run)
    assert callable(Server.kill_all_applications)
    assert CommandLineInterface.server_class is Server
    assert parameters(WebSocketProtocol.serverSend) == ["self", "content", "binary"]


def test_autobahn_and_twisted_seams() -> None:
    from autobahn.websocket.protocol import WebSocketProtocol
    from twisted.internet import abstract, tcp

    # BoundedWebSocketProtocol: states, send queue, close frames and sendData's signature.
    assert WebSocketProtocol.STATE_OPEN != WebSocketProtocol.STATE_CLOSING != WebSocketProtocol.STATE_CLOSED
    assert "self.send_queue = deque()" in source(WebSocketProtocol)
    assert parameters(WebSocketProtocol.sendData) == ["self", "data", "sync", "chopsize"]
    assert "code" in parameters(WebSocketProtocol.sendClose)
    assert "code" in parameters(WebSocketProtocol.sendCloseFrame)
    # backlog_bytes() and _write_now() read Twisted's write buffer and socket.
    for name in ("self.dataBuffer", "self.offset", "self._tempDataLen"):
        assert name in source(abstract.FileDescriptor), name
    assert issubclass(tcp.Connection, abstract.FileDescriptor)
    assert {"connected", "disconnecting"} <= set(vars(abstract.FileDescriptor)) | set(vars(tcp.Connection))
    # LoggingServer.run makes the formatting of autobahn's debug lines lazy (make_autobahn_debug_lazy).
    import autobahn.twisted.websocket
    import autobahn.websocket.protocol

    assert "pformat(configAttrLog)" in source(WebSocketProtocol._connectionMade)
    assert "hltype(self.dataReceived)" in source(autobahn.twisted.websocket.WebSocketAdapterProtocol.dataReceived)
    assert {"pformat", "hltype", "hlval"} <= set(vars(autobahn.websocket.protocol))
    assert {"hltype", "hlval"} <= set(vars(autobahn.twisted.websocket))


def test_the_text_frame_path_skipped_is_the_pinned_one() -> None:
    """BoundedWebSocketProtocol.send_text_frame writes what daphne 4.2.3 + autobahn 26.10.2 would for a consumer's text.

    tests/unit/test_serve_frames.py compares the bytes; this pins the checks and side effects
    it skips. On an upgrade, read the new Server.handle_reply, WebSocketProtocol.handle_reply
    and serverSend (daphne), sendMessage and sendFrame (autobahn) before moving the pins.
    """
    import autobahn
    import daphne
    from autobahn.websocket.protocol import WebSocketProtocol
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol as DaphneProtocol

    assert (daphne.__version__, autobahn.__version__) == ("4.2.3", "26.10.2")
    assert "self.check_headers_type(message)" in source(Server.handle_reply)
    assert 'self.serverSend(message["text"], False)' in source(DaphneProtocol.handle_reply)
    assert 'content.encode("utf8")' in source(DaphneProtocol.serverSend)
    for name in ("self._perMessageCompress", "self.autoFragmentSize", "self.maxMessagePayloadSize", "self.trackedTimings"):
        assert name in source(WebSocketProtocol.sendMessage), name
    for name in ("self.maskServerFrames", "self.logFrames", "self.sendData(raw, sync, chopsize)"):
        assert name in source(WebSocketProtocol.sendFrame), name


def test_the_frame_parsing_skipped_is_the_pinned_one() -> None:
    """BoundedWebSocketProtocol.processData takes whole text frames as autobahn 26.10.2 + daphne 4.2.3 would.

    tests/unit/test_serve_input.py compares what the application gets; this pins the state it
    reads and the side effects it keeps. On an upgrade, read autobahn's processData,
    onFrameBegin/Data/End and onMessageEnd, and daphne's onMessage, before moving the pins.
    """
    import autobahn
    import daphne
    from autobahn.websocket.protocol import WebSocketProtocol
    from daphne.ws_protocol import WebSocketProtocol as DaphneProtocol

    assert (daphne.__version__, autobahn.__version__) == ("4.2.3", "26.10.2")
    assert "while self.processData() and self.state != WebSocketProtocol.STATE_CLOSED" in source(WebSocketProtocol.consumeData)
    for name in ("self.current_frame is None", "self.requireMaskedClientFrames", "self.applyMask", "self.data = self.data[i:]"):
        assert name in source(WebSocketProtocol.processData), name
    for name in ("self.inside_message = True", "self._perMessageCompress", "self.utf8validateIncoming", "self.trackedTimings"):
        assert name in source(WebSocketProtocol.onFrameBegin), name
    assert "self.maxMessagePayloadSize" in source(WebSocketProtocol.onMessageFrameBegin)
    frame_end = source(WebSocketProtocol.onFrameEnd)
    for name in ("self.logFrames", "self.autoPingRestartOnAnyTraffic", "self._cancelAutoPingTimeoutCall()"):
        assert name in frame_end, name
    assert 'self.fire("message"' in source(WebSocketProtocol.onMessageEnd)
    assert WebSocketProtocol._listeners is None  # ObservableMixin's: a dict once anyone observes a signal
    assert "def _invalid_payload(self, reason" in source(WebSocketProtocol._invalid_payload)
    assert 'payload.decode("utf8")' in source(DaphneProtocol.onMessage)


def test_lazy_call_formats_as_the_function_only_when_formatted() -> None:
    import pprint

    from autobahn.util import hlval

    from mysite.serve import LazyCall

    settings = [("openHandshakeTimeout", 5, "WebSocketFactory"), ("autoPingInterval", 0, "WebSocketFactory")]
    assert f"\n{LazyCall(pprint.pformat, settings)}" == "\n" + pprint.pformat(settings)
    assert f"{LazyCall(hlval, 12, color='blue')}" == hlval(12, color="blue")
    calls: list[int] = []
    LazyCall(calls.append, 1)  # never formatted: never called
    assert calls == []


# --- Django ----------------------------------------------------------------------------------------


def test_django_redis_cache_client_seams() -> None:
    """chat.core.ratelimit runs its script on RedisCache._cache._get_connection_pool(write=True);
    mysite.redis_sentinel.SentinelCachePool is built by the client's from_url(url, **options)."""
    from django.core.cache.backends.redis import RedisCache, RedisCacheClient

    backend = RedisCache("redis://127.0.0.1:6379/0", {})  # builds no connection until used
    assert isinstance(backend._cache, RedisCacheClient)
    assert parameters(RedisCacheClient._get_connection_pool) == ["self", "write"]  # type: ignore[attr-defined]
    assert "from_url(" in source(RedisCacheClient._get_connection_pool)  # type: ignore[attr-defined]
    assert callable(RedisCache.make_and_validate_key)


def test_django_raw_delete_seam() -> None:
    """prune_messages deletes with QuerySet._raw_delete(using): no per-row signals, no observer events."""
    from django.db.models import QuerySet

    assert parameters(QuerySet._raw_delete) == ["self", "using"]


def test_autobahn_debug_helpers_made_lazy_give_the_same_text(monkeypatch: Any) -> None:
    import autobahn.twisted.websocket
    import autobahn.websocket.protocol
    from autobahn.util import hltype

    from mysite.serve import make_autobahn_debug_lazy

    for module in (autobahn.websocket.protocol, autobahn.twisted.websocket):
        for name in ("pformat", "hltype", "hlval"):
            if name in vars(module):
                monkeypatch.setattr(module, name, vars(module)[name])  # restored after the test
    make_autobahn_debug_lazy()
    make_autobahn_debug_lazy()  # a second call wraps nothing twice
    lazy = autobahn.twisted.websocket.hltype
    assert lazy is not hltype and f"{lazy(make_autobahn_debug_lazy)}" == hltype(make_autobahn_debug_lazy)
