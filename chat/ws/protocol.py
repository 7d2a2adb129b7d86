"""The WebSocket protocol envelope (api_docs/PROTOCOL.md §2) and every override of Channels, DCRF and daphne behaviour.

`ProtocolConsumer` turns frames into DCRF actions and every outcome into one response
envelope `{action, request_id, response_status, data, errors}`; it knows nothing of
rooms or messages. Subclasses add actions (see chat/ws/consumer.py) and fill in the
session hooks. The private DCRF/Channels APIs relied on here are pinned by
tests/unit/test_seams.py.
"""

import asyncio
import json
import logging
import time
import uuid
import weakref
from collections import defaultdict, deque
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from django.http import Http404
from djangochannelsrestframework.generics import GenericAsyncAPIConsumer
from djangochannelsrestframework.permissions import IsAuthenticated
from rest_framework.exceptions import APIException, MethodNotAllowed, PermissionDenied

from chat.core import jsonenc
from chat.core.exceptions import RateLimited, TooManyConnections
from chat.events.fanout import local_fanout
from chat.ops import metrics
from chat.ops.logging import log_event
from chat.ws import limits, multiplex

logger = logging.getLogger("chat.ws.consumer")  # the name connection logs have always had

MAX_FRAME_BYTES = 64 * 1024
# The close codes the server sends (api_docs/PROTOCOL.md, "Close codes").
CLOSE_INTERNAL_ERROR = 1011  # a subscription could not catch up: resume with after_seq
CLOSE_AUTH_REVOKED = 4401

# What a request/response action returns: the response's data and status.
Status = tuple[Any, int]


def _request_ids_by_group() -> defaultdict[str, set[Any]]:
    return defaultdict(set)


class ProtocolConsumer(GenericAsyncAPIConsumer):
    """One authenticated connection speaking the envelope: frames in, one response per request out."""

    permission_classes = (IsAuthenticated,)
    # No layer channel of its own: every event reaches a connection through its process's
    # fan-out (chat/events/fanout.py), so Channels need not subscribe to and listen on one per
    # connection (a Redis subscription, a queue and a task each). With None, Channels'
    # __call__ neither creates a channel nor sets channel_name, and reads only the socket.
    channel_layer_alias = None
    # Channels' own set of joined groups (untyped there); here they are fan-out groups.
    groups: set[str]
    # The server's synchronous text-frame writer, when it offers one (mysite.serve.WebSocketSend; set by __call__).
    _text_frames: Callable[[Sequence[str]], bool] | None = None
    # ASGI messages waiting behind a frame push() could not write at once; None: nothing waits.
    # A class default, so an idle connection's __dict__ does not hold it (issue 16: memory per connection).
    _outbox: deque[dict[str, Any]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # This connection's id (Connection.channel_name): what presence rows point at. Set here
        # because Channels only names a connection after its (absent) layer channel.
        self.channel_name = f"conn.{uuid.uuid4().hex}"
        # DCRF's own is a defaultdict with a fresh lambda per connection.
        self._observer_group_to_request_id: defaultdict[str, defaultdict[str, set[Any]]] = defaultdict(_request_ids_by_group)
        self.user: Any = None
        self.opened_at = time.monotonic()
        self.frame_bucket = limits.FrameBucket()

    # --- session hooks (subclasses extend them, calling super()) -------------------------

    async def open_session(self) -> None:
        """Before the handshake is accepted: a failure here refuses it."""

    async def session_opened(self) -> None:
        """Right after the handshake was accepted."""

    async def close_session(self) -> None:
        """After an accepted connection closed: forget what it left behind."""

    async def abort_session(self, exc: Exception) -> None:
        """open_session or the accept failed: undo what open_session did, and close the handshake."""

    # --- connection lifecycle -------------------------------------------------------

    async def authenticate(self) -> Any:
        """The handshake's user; anything but an active authenticated user refuses it (HTTP 403).

        By default the scope's, as the authentication middleware found it. Raising
        TooManyConnections refuses it as open_session's does; anything else escapes to
        the outermost middleware (an outage: 4503, chat.ws.handshake.OutageGuard).
        """
        return self.scope.get("user")

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        # Replaces DCRF's permission loop: refusal must be counted and logged, and the
        # session opened before the handshake is accepted.
        try:
            user = await self.authenticate()
        except TooManyConnections as exc:
            await self.abort_session(exc)
            return
        if user is None or not user.is_authenticated or not user.is_active:
            metrics.connection_refused()
            log_event(logger, "ws.refused", auth="token" if self.scope.get("auth_token") else "session")
            await self.close()  # before accept: the handshake is refused with HTTP 403
            return
        self.user = user
        try:
            await self.open_session()
            await self.accept()
        except Exception as exc:  # no half-open session may outlive the handshake (issue 15)
            await self.abort_session(exc)
            self.user = None
            return
        metrics.connection_accepted()
        log_event(logger, "ws.connect", user_id=user.pk)
        await self.session_opened()

    async def add_group(self, name: str) -> None:
        # DCRF's add_group calls channel_layer.group_add for our own channel, which we do not
        # have: join through the process's fan-out instead (chat/events/fanout.py). DCRF's
        # observers call this on subscribe, so they need no change.
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

    def detach(self, work: Coroutine[Any, Any, None]) -> object:
        """Run work beside this connection's frames; cancelled when it closes."""
        task = asyncio.ensure_future(work)
        # DCRF's websocket_disconnect awaits what is in detached_tasks; finished tasks leave
        # it at once, so a long-lived connection's list does not grow.
        self.detached_tasks.append(task)
        task.add_done_callback(lambda done: done in self.detached_tasks and self.detached_tasks.remove(done))
        return task

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        # Cancel first: DCRF's websocket_disconnect awaits each detached task in turn.
        for task in list(self.detached_tasks):
            task.cancel()
        if self._outbox:
            self._outbox.clear()  # nobody reads them any more
        fanout = local_fanout()
        for name in self.groups:
            await fanout.discard(name, self)
        # Emptied before Channels' websocket_disconnect, which would group_discard each one
        # on a channel layer this consumer does not have (InvalidChannelLayerError).
        self.groups = set()
        await super().websocket_disconnect(message)

    async def disconnect(self, code: int) -> None:
        if self.user is None:  # refused before the handshake: nothing was opened
            return
        metrics.connection_closed(code)
        duration_ms = round((time.monotonic() - self.opened_at) * 1000)
        log_event(logger, "ws.disconnect", user_id=self.user.pk, close_code=code, duration_ms=duration_ms)
        await self.close_session()

    # --- frames ------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Channels' AsyncConsumer.__call__ without a layer channel: each message from the socket is awaited, then dispatched.

        Channels' await_many_dispatch listens on the socket and a layer channel at once: a
        new task and an asyncio.wait per message, which with the socket alone only cost an
        extra task and loop turn per frame (~11 us of CPU: a joining client sends three).
        Everything the connection sends (accept, replies, close: Channels' base_send) goes
        through _send_in_order, so nothing overtakes the frames push() queued.
        """
        self._asgi_send = send
        self._text_frames = getattr(send, "text_frames", None)
        if self.channel_layer_alias is not None:
            try:
                await super().__call__(scope, receive, self._send_in_order)
            finally:
                vars(self).pop("base_send", None)  # Channels stored it per instance: see base_send below
            return
        self.scope = scope
        self.channel_layer = None
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass  # the connection is over (websocket_disconnect), as in Channels

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
        # Replaces AsyncJsonWebsocketConsumer.receive, whose json.loads error would end the
        # connection and which hands binary frames to the JSON decoder.
        throttled = limits.take_frame(self.frame_bucket)
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
        # DCRF stream multiplexing (§8): the response goes back in the request's stream.
        try:
            stream, content = multiplex.unwrap(content)
        except multiplex.BadEnvelope as exc:
            stream, content = exc.stream, {}
            errors = [str(exc)]
        else:
            errors = []
        token = multiplex.current_stream.set(stream)
        try:
            if errors:
                await self.reply(action=None, status=400, errors=errors)
            else:
                await self._receive_request(content, throttled)
        finally:
            multiplex.current_stream.reset(token)

    async def _receive_request(self, content: dict[str, Any], throttled: RateLimited | None = None) -> None:
        """Route one decoded request to its action; a missing action or bad request_id gets a 400, a throttled one 429."""
        request_id = limits.request_id_key(content.pop("request_id", None))
        action_name = content.pop("action", None)
        if request_id_error := limits.request_id_error(request_id):
            request_id = None
            errors = [request_id_error]
        elif not isinstance(action_name, str):
            errors = ["action is missing: give the name of an action as a string."]
        elif throttled is not None:
            await self.handle_exception(throttled, action_name, request_id)
            return
        else:
            content.pop("self", None)  # would collide with the handler's own argument
            await self.handle_action(action_name, request_id=request_id, **content)
            return
        await self.reply(action=action_name if isinstance(action_name, str) else None, status=400, errors=errors, request_id=request_id)

    async def handle_exception(self, exc: Exception, action: str | None, request_id: Any) -> None:
        """Every failure becomes one response; unexpected ones are logged and answered 500."""
        # DCRF re-raises unexpected exceptions, which would end the connection.
        if (limited := limits.error_reply(exc)) is not None:  # caps (429) and outages (503)
            await self.reply(action=action, status=limited[0], errors=limited[1], data=limited[2], request_id=request_id)
        elif isinstance(exc, RateLimited):
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
        # Only the consumer's own action names become labels: a client cannot mint time series.
        metrics.action_handled(action if action in self.available_actions else None, status)
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
        # DCRF's reply, in the request's stream when it came in one.
        frame = {"errors": errors or [], "data": data, "action": action, "response_status": status, "request_id": request_id}
        self.push(jsonenc.dumps(multiplex.wrap(multiplex.current_stream.get(), frame)))

    async def check_permissions(self, action: str, **kwargs: Any) -> None:
        # DCRF builds and wraps an instance of each permission class for every frame; with
        # IsAuthenticated alone, its check is this (tests/unit/test_seams.py pins it).
        if self.permission_classes == (IsAuthenticated,):
            user = self.scope.get("user")
            if not user or not (user.pk and user.is_authenticated):
                raise PermissionDenied()
            return
        await super().check_permissions(action, **kwargs)

    async def handle_action(self, action: str, request_id: Any, **params: Any) -> None:
        # DCRF checks permissions before it looks the action up: unknown must be 405 for everyone.
        if action not in self.available_actions:
            await self.handle_exception(MethodNotAllowed(action), action, request_id)
            return
        await super().handle_action(action, request_id=request_id, **params)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        """Encode an outgoing frame (DCRF's send_json), splicing in already encoded JSON (RawJSON)."""
        return jsonenc.dumps(content)

    # --- frames out ---------------------------------------------------------------------

    def push(self, *texts: str) -> None:
        """Send already encoded text frames without waiting, in order with everything else the connection sends.

        A fan-out pushes an event to each of thousands of subscribers in turn: with mysite.serve
        the frame is written here and now (WebSocketSend.text_frames), with no coroutine or ASGI
        message per frame, and several frames (a replay's slice) in one write. Any other server,
        or a frame that needs autobahn's path, goes to the outbox, which the loop's outbox task
        drains by awaiting the ASGI send() (_Outboxes).
        """
        if self._outbox is None and self._text_frames is not None and self._text_frames(texts):
            return
        for text in texts:
            self._queue({"type": "websocket.send", "text": text})

    def _queue(self, message: dict[str, Any]) -> None:
        if self._outbox is None:
            self._outbox = deque()
            _Outboxes.of_this_loop().add(self)
        self._outbox.append(message)

    async def drain_outbox(self) -> None:
        """Send what waits in the outbox, in order (called by the loop's _Outboxes)."""
        outbox = self._outbox
        try:
            while outbox:
                await self._asgi_send(outbox[0])
                outbox.popleft()
        except Exception:
            logger.exception("sending to %s failed: %d frames dropped", self.channel_name, len(outbox or ()))
        finally:
            self._outbox = None  # emptied, or the connection is gone

    async def _send_in_order(self, message: dict[str, Any]) -> None:
        """Channels' base_send: straight to the server unless pushed frames wait, then behind them."""
        if self._outbox is not None:
            self._queue(message)
            return
        await self._asgi_send(message)

    # Channels' consumers send through self.base_send, which Channels sets per instance to a
    # bound method: a consumer referring to itself, so a reference cycle that only the
    # collector's full passes free, with the user, the scope and some twenty objects more per
    # closed connection. Those passes walked every live connection's objects as well: 0.3-0.6 s
    # each while 10,000 connections opened (bench/README.md, session 9).
    base_send = _send_in_order


class _Outboxes:
    """The connections of one event loop whose outbox holds messages, drained one after the other by one task.

    Under a server without synchronous text frames every pushed frame waits in an outbox: a
    task per connection would be a task per subscriber per event of a fan-out. One task that
    awaits each send in turn costs what awaiting them in the fan-out did.
    """

    _of_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Outboxes]" = weakref.WeakKeyDictionary()

    def __init__(self) -> None:
        self.waiting: deque[ProtocolConsumer] = deque()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def of_this_loop(cls) -> "_Outboxes":
        loop = asyncio.get_running_loop()
        outboxes = cls._of_loop.get(loop)
        if outboxes is None:
            outboxes = cls._of_loop[loop] = cls()
        return outboxes

    def add(self, consumer: ProtocolConsumer) -> None:
        """A connection whose outbox just got its first message."""
        self.waiting.append(consumer)
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        while self.waiting:
            await self.waiting.popleft().drain_outbox()
