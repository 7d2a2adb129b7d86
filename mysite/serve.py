"""Run daphne with the project's logging: `python -m mysite.serve [daphne options] mysite.asgi:application`.

Same options as the `daphne` command. The difference: daphne writes its access
log (every request path, query string included) straight to stdout, bypassing
`logging`, so `?token=<key>` would reach the log verbatim. Here those lines go
through `chat.ops.logging.access_log`, i.e. the credential scrubber and LOG_FORMAT.
On exit the process's live gauges are dropped from the shared metrics directory.
Each connection also gets a lighter input queue (InputQueue) than daphne's asyncio.Queue,
and a consumer's text frames go from its send() to the socket without daphne's and autobahn's
per-message layers (BoundedWebSocketProtocol.send_text_frame, pinned to daphne 4.2.3 and
autobahn 26.10.2 by tests/unit/test_seams.py), as a client's whole text frames come in
without autobahn's frame parser (BoundedWebSocketProtocol.processData).
"""

import asyncio
import logging
import os
import struct
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet import defer, reactor, tcp
from twisted.internet.base import ReactorBase
from twisted.web.http import HTTPChannel

logger = logging.getLogger("chat.server")

# A client that stops reading must not grow this process's memory nor delay the
# others: past this many unsent bytes its connection is closed with CLOSE_SLOW_CONSUMER.
MAX_BACKLOG_BYTES = int(os.environ.get("WS_MAX_BACKLOG_BYTES", "") or 1024 * 1024)
CLOSE_SLOW_CONSUMER = 4008
# api_docs/PROTOCOL.md §3 v2: a client whose frames wait unprocessed beyond this many bytes (counted
# as characters of text frames) is closed with CLOSE_POLICY_VIOLATION rather than grow memory.
MAX_INPUT_BYTES = int(os.environ.get("WS_MAX_INPUT_BYTES", "") or 1024 * 1024)
CLOSE_POLICY_VIOLATION = 1008
CLOSE_GOING_AWAY = 1001
# How long a SIGTERM waits for clients to acknowledge the close and their consumers to clean up.
SHUTDOWN_GRACE_SECONDS = 5.0


class _OpenedRequest:
    """What daphne still reads of the handshake request once the socket is open: the path, for its log lines."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path


def release_handshake_channel(transport: Any) -> None:
    """Let go of the HTTP channel and request that carried a WebSocket's handshake, freed at once.

    Daphne's upgrade leaves the HTTP channel registered as the socket's producer, which keeps
    it, its request and their headers alive; with the request never finished its
    pause/resume do nothing (twisted's HTTPChannel: _handlingRequest stays true). The channel
    and its request refer to each other, so once let go they were garbage only the cyclic
    collector finds: a dozen objects per handshake, and after 10,000 connections full
    collections of 200-450 ms that stalled every socket of the process (bench: fan-out after
    the idle scenario). Unlinked, reference counting frees them as the handshake ends.
    """
    channel = getattr(transport, "producer", None)
    if not isinstance(channel, HTTPChannel):
        return
    transport.unregisterProducer()
    for request in channel.requests:
        request.channel = None
    channel.requests.clear()


class BoundedWebSocketProtocol(WebSocketProtocol):
    """A daphne WebSocket whose unsent backlog is bounded."""

    slow_consumer_closed = False
    # Whether text frames may skip autobahn's sendMessage/sendFrame (send_text_frame); onOpen sets False on
    # a connection that needs autobahn's. A class default, so most connections' __dict__ holds no extra key
    # (issue 16: memory per idle connection); before onOpen the state is not STATE_OPEN, so it is never read.
    plain_text_frames = True
    # Whether a client's single-frame text messages may skip autobahn's frame parser (processData); the same kind
    # of class default, set False by onOpen on a connection autobahn must parse (plain_text_input_allowed).
    plain_text_input = True
    send_queue: "deque[tuple[bytes, bool]] | tuple[()]"  # autobahn's (untyped there)
    data: bytes  # autobahn's input buffer (untyped there)

    def onOpen(self) -> None:
        super().onOpen()
        # The handshake is over: the raw request, its parsed headers and query parameters
        # and the response would otherwise stay for the connection's whole life (issue 16:
        # memory per idle connection). The scope keeps its own copies of what it needs.
        self.request = _OpenedRequest(self.request.path)  # type: ignore[has-type]  # set by daphne's untyped onConnect
        self.http_request_data = self.http_headers = self.http_request_params = self.http_response_data = None
        release_handshake_channel(self.transport)
        if not self.send_queue:
            # autobahn's queue for chopped or synced sends, which daphne never makes: an empty
            # deque is ~0.6 KB per connection. sendData below makes one should they appear.
            self.send_queue = ()
        if not plain_text_frames_allowed(self):
            self.plain_text_frames = False
        if not plain_text_input_allowed(self):
            self.plain_text_input = False

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        # autobahn resolves `is_closed` with the protocol itself: a reference cycle that left every
        # closed connection (protocol, transport, validators, queue: some 50 objects) to the cyclic
        # collector, whose full passes stall the event loop (bench/README.md, session 10). Nothing
        # here waits on it; a late waiter still finds it fired.
        self.is_closed = defer.succeed(None)

    def processData(self) -> bool:
        """Take a client's whole, unfragmented, masked text frame off the input as autobahn would, or leave it to autobahn.

        autobahn parses every frame through per-frame objects and hooks (a FrameHeader, a
        masker made through CFFI, a UTF-8 validator, onFrameBegin/Data/End, onMessageBegin/
        End, an observable 'message' signal with its Deferred callbacks): about two thirds of
        a received frame's server CPU, socket to ASGI receive() (bench/README.md, session 12).
        What clients send is almost always one masked text frame of up to 64 KiB that arrived
        whole: that one is unmasked, checked to be UTF-8 (else the connection is failed, as
        autobahn fails it) and handed to daphne's onMessage here. Everything else (control
        frames, fragments, binary, oversized, malformed, a partial frame, a closing
        connection) goes through autobahn, which also reports every protocol violation.
        autobahn's traffic counters (diagnostics nothing here reads) do not count these frames.
        """
        data = self.data
        ours = (
            self.plain_text_input
            and self.current_frame is None
            and not self.inside_message
            and self.state == self.STATE_OPEN
            and not self.failedByMe
            and not self._listeners  # nobody observes autobahn's 'message' signal
        )
        bounds = whole_text_frame(data) if ours else None
        if bounds is None or self._over_payload_limits(bounds[1] - bounds[0]):
            return bool(super().processData())
        start, end = bounds
        payload = unmask(data[start:end], data[start - 4 : start])
        self.data = data[end:]
        try:
            payload.decode()
        except UnicodeDecodeError:
            self._invalid_payload("encountered invalid UTF-8 while processing text message")
            return False
        if self.autoPingTimeoutCall and self.autoPingRestartOnAnyTraffic:
            self._cancelAutoPingTimeoutCall()
        self.onMessage(payload, False)
        return len(self.data) > 0

    def _over_payload_limits(self, length: int) -> bool:
        return 0 < self.maxFramePayloadSize < length or 0 < self.maxMessagePayloadSize < length

    def backlog_bytes(self) -> int:
        """Bytes written to the socket's transport that the peer has not taken yet."""
        transport = self.transport
        buffered = len(getattr(transport, "dataBuffer", b"")) - getattr(transport, "offset", 0)
        return buffered + getattr(transport, "_tempDataLen", 0)

    def serverSend(self, content: Any, binary: bool = False) -> None:
        if self.slow_consumer_closed or self.state in (self.STATE_CLOSING, self.STATE_CLOSED):
            # The peer is gone or going: autobahn would raise into the consumer, which would
            # then die before its disconnect handling (presence cleanup) could run.
            return
        if self.state == self.STATE_OPEN and self._close_if_slow():
            return
        super().serverSend(content, binary)

    def _close_if_slow(self) -> bool:
        """Close an open connection whose backlog passed MAX_BACKLOG_BYTES (CLOSE_SLOW_CONSUMER); True if it did."""
        if self.backlog_bytes() <= MAX_BACKLOG_BYTES:
            return False
        from chat.ops.metrics import slow_consumer_disconnected

        self.slow_consumer_closed = True
        slow_consumer_disconnected()
        logger.warning("closing a slow consumer: %d bytes unsent", self.backlog_bytes())
        # The close frame queues behind the backlog; autobahn aborts the TCP
        # connection when the close handshake times out.
        self.sendClose(code=CLOSE_SLOW_CONSUMER)
        return True

    def send_text_frames(self, texts: Sequence[str]) -> bool:
        """Send non-empty text messages as one frame each, as autobahn would, in one write; False to leave them to daphne's path.

        Daphne's way to the socket is Server.handle_reply -> check_headers_type ->
        WebSocketProtocol.handle_reply -> serverSend -> autobahn's sendMessage (argument
        asserts, compression, fragmentation, traffic counters) -> sendFrame (masking, frame
        logging) -> sendData: about half of a fan-out frame's server CPU outside the socket
        write (issue 16). On an open connection without compression, fragmentation, masking
        or frame logging (plain_text_frames) an unmasked server frame is a 2, 4 or 10 byte
        header and the UTF-8 payload; it goes to sendData like autobahn's, with the same
        backlog bound as serverSend. autobahn's per-connection traffic counters (diagnostics
        nothing here reads) do not count these frames.
        """
        if not self.plain_text_frames or self.state != self.STATE_OPEN or self.slow_consumer_closed:
            return False
        frames = []
        for text in texts:
            payload = text.encode()
            length = len(payload)
            if 0 < self.maxMessagePayloadSize < length:
                return False  # autobahn refuses it (PayloadExceededError), as before; nothing was written
            if length <= 125:
                frames.append(bytes((0x81, length)))
            elif length <= 0xFFFF:
                frames.append(struct.pack("!BBH", 0x81, 126, length))
            else:
                frames.append(struct.pack("!BBQ", 0x81, 127, length))
            frames.append(payload)
        # Several frames (a replay's slice) in one system call: most of a frame's cost is its write.
        data = b"".join(frames)
        # An idle socket takes it now; with a backlog the bound applies, then autobahn queues it behind.
        if self.send_queue or not self._write_now(data):
            if not self._close_if_slow():
                self.sendData(data)
        return True

    def send_text_frame(self, text: str) -> bool:
        """send_text_frames of one text."""
        return self.send_text_frames((text,))

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        if (sync or chopsize) and not isinstance(self.send_queue, deque):
            self.send_queue = deque()  # autobahn appends to it (see onOpen)
        if sync or chopsize or self.send_queue or not self._write_now(data):
            super().sendData(data, sync, chopsize)

    def _write_now(self, data: bytes) -> bool:
        """Write straight to an idle TCP socket; False to leave it to Twisted.

        Twisted buffers every write and registers the socket with the event loop
        until the next turn writes it: per frame, an epoll registration and removal
        that cost a quarter of the fan-out time. With nothing queued the socket
        almost always takes the whole frame at once; whatever it leaves goes behind.
        """
        transport = self.transport
        if not isinstance(transport, tcp.Connection) or not transport.connected or transport.disconnecting:
            return False
        if len(transport.dataBuffer) - transport.offset + transport._tempDataLen:
            return False  # keep frames in order behind what is already waiting (backlog_bytes, inlined: once per frame)
        try:
            sent = transport.socket.send(data)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return False  # Twisted's own write path meets the error and closes properly
        if sent < len(data):
            transport.write(data[sent:])
        return True


def plain_text_frames_allowed(protocol: WebSocketProtocol) -> bool:
    """Whether autobahn would send this open connection's text messages as single unmasked, uncompressed frames."""
    return (
        protocol._perMessageCompress is None
        and not protocol.autoFragmentSize
        and not protocol.maskServerFrames
        and not protocol.logFrames
        and not protocol.logOctets
        and not protocol.trackedTimings
    )


def plain_text_input_allowed(protocol: WebSocketProtocol) -> bool:
    """Whether autobahn would hand this open connection's masked text frames to onMessage unmasked, validated and unchanged."""
    return (
        protocol._perMessageCompress is None
        and protocol.applyMask
        and protocol.requireMaskedClientFrames
        and protocol.utf8validateIncoming
        and not protocol.logFrames
        and not protocol.trackedTimings
    )


def whole_text_frame(data: bytes) -> tuple[int, int] | None:
    """Where the payload is, if `data` starts with a whole masked, unfragmented text frame of a minimally encoded 7- or 16-bit length."""
    if len(data) < 6 or data[0] != 0x81:  # FIN, no RSV bit, opcode text
        return None
    length = data[1] ^ 0x80  # MASK set: the 7-bit length; unset (a client must mask): 128 or more
    start = 6
    if length == 126:
        length, start = int.from_bytes(data[2:4], "big"), 8
        if length < 126:
            return None  # not minimally encoded: autobahn's protocol violation
    elif length > 126:
        return None  # a 64-bit length, or unmasked
    end = start + length
    return (start, end) if len(data) >= end else None


def unmask(payload: bytes, mask: bytes) -> bytes:
    """RFC 6455 §5.3: the payload XOR its 4-byte mask repeated, as one integer XOR (no per-byte Python loop)."""
    length = len(payload)
    key = (mask * (length // 4 + 1))[:length]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(length, "big")


class InputQueue:
    """An application instance's input queue: what daphne and ASGI `receive()` use of asyncio.Queue.

    asyncio.Queue allocates four deques (getters, putters, items, its Event's waiters)
    per connection before anything is queued, for features an ASGI input queue never
    uses (the memory it saves per idle connection is in bench/README.md). Here items
    wait in a list and readers (normally one) wait on futures that every put wakes.

    With `max_bytes`, the frames waiting (websocket.receive) are bounded: past it they
    are dropped, later ones are ignored, and `on_overflow` is called once to close the
    connection; other messages (the disconnect) still get through.
    """

    __slots__ = ("_items", "_waiters", "_bytes", "_max_bytes", "_on_overflow", "overflowed")

    def __init__(self, max_bytes: int | None = None, on_overflow: Callable[[], None] | None = None) -> None:
        self._items: list[Any] = []
        self._waiters: list[asyncio.Future[None]] | None = None
        self._bytes = 0
        self._max_bytes = max_bytes
        self._on_overflow = on_overflow
        self.overflowed = False

    def put_nowait(self, item: Any) -> None:
        if self._on_overflow is not None and item.get("type") == "websocket.disconnect":
            # A closed connection needs no closing; the callback (the protocol's) would keep the
            # protocol and this queue in a reference cycle (see BoundedWebSocketProtocol.connectionLost).
            self._on_overflow = None
        if self._max_bytes is not None and item.get("type") == "websocket.receive":
            if self.overflowed:
                return
            self._bytes += _frame_size(item)
            if self._bytes > self._max_bytes:
                self._overflow()
                return
        self._items.append(item)
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def _overflow(self) -> None:
        self.overflowed = True
        self._items = [item for item in self._items if item.get("type") != "websocket.receive"]
        self._bytes = 0
        if self._on_overflow is not None:
            self._on_overflow()

    async def get(self) -> Any:
        while not self._items:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters = [*(self._waiters or ()), waiter]
            await waiter
        item = self._items.pop(0)
        if self._max_bytes is not None and item.get("type") == "websocket.receive":
            self._bytes -= _frame_size(item)
        return item


def _frame_size(item: dict[str, Any]) -> int:
    return len(item.get("text") or item.get("bytes") or "")


def _close_flooding_client(protocol: WebSocketProtocol) -> None:
    """Close a connection whose unprocessed input passed MAX_INPUT_BYTES with 1008 (policy violation)."""
    from chat.ops.metrics import rate_limited

    rate_limited("input_bytes")
    logger.warning("closing a flooding client: over %d bytes of input waiting", MAX_INPUT_BYTES)
    if protocol.state == protocol.STATE_OPEN:
        # sendClose() only takes 1000 and 3000-4999 (application codes): 1008 goes as a raw frame.
        protocol.sendCloseFrame(code=CLOSE_POLICY_VIOLATION)


class LazyCall:
    """`function(*args, **kwargs)`, called only when formatted into a log line.

    autobahn builds the arguments of its debug lines before the log call: it pretty-prints
    every connection's settings (pformat) and colours names and values (hltype, hlval) for
    every handshake and every frame received. With debug off that was a sixth of a join's
    server CPU for lines nobody sees; these stand-ins format the same text only if logged.
    """

    __slots__ = ("function", "args", "kwargs")

    def __init__(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self.function, self.args, self.kwargs = function, args, kwargs

    def __str__(self) -> str:
        return str(self.function(*self.args, **self.kwargs))

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def make_autobahn_debug_lazy() -> None:
    """Replace the eager formatting helpers autobahn's per-connection and per-frame debug lines call (LazyCall)."""
    import autobahn.twisted.websocket
    import autobahn.websocket.protocol

    for module in (autobahn.websocket.protocol, autobahn.twisted.websocket):
        for name in ("pformat", "hltype", "hlval"):
            function = vars(module).get(name)
            if function is not None and not isinstance(function, partial):
                setattr(module, name, partial(LazyCall, function))


class BoundedWebSocketFactory(WebSocketFactory):
    """Builds BoundedWebSocketProtocol connections."""

    protocol = BoundedWebSocketProtocol


class WebSocketSend:
    """The ASGI send() of one of mysite.serve's WebSockets, plus `text_frames`: a synchronous way out for text.

    `text_frames(texts)` writes already encoded text frames now, as send() would each, and
    says whether it did (False: the connection is not open or needs autobahn's path, so
    await send() instead). A fan-out calls it for every subscriber of an event: no
    coroutine, no ASGI message dict per frame (chat.ws.protocol.ProtocolConsumer.push uses
    it when offered).
    """

    __slots__ = ("server", "protocol", "text_frames")

    def __init__(self, server: "LoggingServer", protocol: "BoundedWebSocketProtocol") -> None:
        self.server = server
        self.protocol = protocol
        self.text_frames = protocol.send_text_frames

    async def __call__(self, message: dict[str, Any]) -> None:
        await self.server.handle_websocket_reply(self.protocol, message)


class LoggingServer(Server):
    """Daphne with a scrubbed access log, bounded per-connection backlogs and a graceful SIGTERM."""

    def run(self) -> None:
        import daphne.server

        # Server.run() builds its WebSocket factory from this module global.
        daphne.server.WebSocketFactory = BoundedWebSocketFactory
        make_autobahn_debug_lazy()
        self.ports: list[Any] = []
        open_database_pool()
        super().run()

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> InputQueue | None:
        """Daphne's create_application, with the lighter InputQueue."""
        assert "application_instance" not in self.connections[protocol]
        send: Callable[[dict[str, Any]], Any]
        if isinstance(protocol, WebSocketProtocol):
            input_queue = InputQueue(MAX_INPUT_BYTES, partial(_close_flooding_client, protocol))
            send = WebSocketSend(self, protocol) if isinstance(protocol, BoundedWebSocketProtocol) else partial(self.handle_reply, protocol)
        else:
            input_queue = InputQueue()
            send = partial(self.handle_reply, protocol)
        scope.setdefault("asgi", {"version": "3.0"})
        application_instance = self.application(scope=scope, receive=input_queue.get, send=send)
        if protocol not in self.connections:
            return None
        self.connections[protocol]["application_instance"] = asyncio.ensure_future(application_instance)
        return input_queue

    async def handle_websocket_reply(self, protocol: BoundedWebSocketProtocol, message: dict[str, Any]) -> None:
        """A WebSocket consumer's send(): text frames straight to the protocol (send_text_frame), the rest through daphne.

        daphne's handle_reply checks per message that the connection is still known and
        not disconnected (an open autobahn state implies both: it turns CLOSED before
        daphne's onClose forgets the connection) and that HTTP response headers are bytes
        (not in a WebSocket frame).
        """
        if message.get("type") == "websocket.send" and message.get("bytes") is None:
            text = message.get("text")
            if text and protocol.send_text_frame(text):
                return
        await self.handle_reply(protocol, message)

    def log_action(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        from chat.ops.logging import access_log

        access_log(protocol, action, details)

    def listen_success(self, port: Any) -> None:
        self.ports.append(port)
        super().listen_success(port)

    def kill_all_applications(self) -> Any:
        """On shutdown: stop accepting, close WebSockets with 1001, let consumers clean up, then cancel the rest."""
        for port in self.ports:
            port.stopListening()
        websockets = [p for p in self.connections if isinstance(p, WebSocketProtocol) and p.state == p.STATE_OPEN]
        for protocol in websockets:
            # sendClose() refuses 1001 ("for applications: 1000 or 3000-4999"); a
            # server going away is exactly what 1001 is for, so send the frame directly.
            protocol.sendCloseFrame(code=CLOSE_GOING_AWAY)
        logger.info("shutting down: closed %d WebSocket connections with %d", len(websockets), CLOSE_GOING_AWAY)
        finished: defer.Deferred[None] = defer.Deferred()
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS

        def consumers_done() -> bool:
            return all(
                details.get("application_instance") is None or details["application_instance"].done()
                for protocol, details in self.connections.items()
                if isinstance(protocol, WebSocketProtocol)
            )

        def cancel_applications() -> defer.Deferred[Any]:
            # Not daphne's own kill_all_applications: it indexes details["application_instance"],
            # which a connection whose request has not finished arriving does not have yet; the
            # KeyError ended this check loop and the process never exited.
            pending = [
                details["application_instance"]
                for details in self.connections.values()
                if details.get("application_instance") is not None and not details["application_instance"].done()
            ]
            for instance in pending:
                instance.cancel()
            waiting: defer.Deferred[Any] = defer.Deferred.fromFuture(asyncio.gather(*pending))
            waiting.addErrback(lambda _: None)
            return waiting

        def check() -> None:
            if consumers_done() or time.monotonic() > deadline:
                cancel_applications().chainDeferred(finished)
            else:
                # twisted.internet.reactor is typed as a module; the installed reactor is a ReactorBase.
                cast(ReactorBase, reactor).callLater(0.05, check)

        check()
        return finished


def open_database_pool() -> None:
    """Start opening the PostgreSQL pool as the server starts, so the first requests find a connection ready.

    The pool's short wait (DATABASE_POOL_TIMEOUT) is meant to turn an outage into a fast
    503, not to cover a cold start on a busy machine. Not waited for: a server whose
    database is down still starts, and answers 503 until it is back.
    """
    from django.db import connection

    pool = getattr(connection, "pool", None)
    if pool is not None:
        pool.open(wait=False)


# daphne drops a WebSocket whose opening handshake has not completed in 5 s. When every
# client of a restarted server reconnects at once, the handshakes queue for longer than
# that: dropped ones retry and queue again, and the work done for them is lost. In the
# bench's storm of 2,000 that took the reconnects 58 s and the catch-up 89 s; a queued
# handshake now waits its turn (daphne's --websocket_connect_timeout still overrides it).
HANDSHAKE_TIMEOUT_SECONDS = 60


class LoggingCommandLineInterface(CommandLineInterface):
    """The daphne command line, serving with LoggingServer."""

    server_class = LoggingServer

    def __init__(self) -> None:
        super().__init__()
        self.parser.set_defaults(websocket_connect_timeout=HANDSHAKE_TIMEOUT_SECONDS)


def main() -> None:
    """Serve until stopped, then drop this process's live gauges."""
    try:
        LoggingCommandLineInterface().run(sys.argv[1:])
    finally:
        from chat.ops.metrics import mark_process_dead

        mark_process_dead()


if __name__ == "__main__":
    main()
