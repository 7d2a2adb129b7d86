"""Client worker processes: each runs one asyncio loop holding many WebSocket connections.

A worker gets a list of ClientSpec and then obeys commands from the orchestrator on a
pipe, one phase at a time: `connect` (handshake, join_room, subscribe), `post` (send
create_message), `drain` (wait for the expected deliveries), `close`. It keeps its
running totals in a shared array so the orchestrator can draw progress bars.

A message text carries `b:<client>:<n>:<monotonic ns>:` padded to the message size:
CLOCK_MONOTONIC is one clock for every process on the machine, so a receiver in any
worker computes sender->receiver latency from it.
"""

import asyncio
import random
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from bench.server import pin_to, raise_nofile_limit

SUBSCRIPTION_ID = "bench-sub"
CLOSE_TIMEOUT_S = 2.0
# Slots of each worker's row in the shared counters array.
CONNECTED, RECEIVED, SENT, ACKED = range(4)
COUNTER_SLOTS = 4


@dataclass
class ClientSpec:
    """What one connection does: authenticate, maybe join/subscribe to a room, maybe post to it."""

    index: int
    token: str
    port: int
    room: int | None = None
    join: bool = False
    subscribe: bool = False
    poster: bool = False  # sends create_message in the `post` phase, as that phase's command says


@dataclass
class Options:
    """Settings shared by every client of a run."""

    auth: str = "header"  # or "query" (?token=)
    message_size: int = 100
    open_timeout: float = 60.0
    request_timeout: float = 60.0
    connect_concurrency: int = 100
    connect_retries: int = 2
    cpus: list[int] | None = None  # pin the client workers to these CPUs (--pin)


@dataclass
class Stats:
    """What one worker's subscribers saw."""

    latencies_ms: array = field(default_factory=lambda: array("f"))
    delivered: int = 0  # unique create events of this phase's messages, over all subscribers
    stale: int = 0  # unique create events of an earlier phase's messages
    duplicates: int = 0
    out_of_order: int = 0
    other_frames: int = 0
    first_receive: float | None = None
    last_receive: float | None = None

    def reset(self) -> None:
        """Start a new measurement phase (readers hold a reference to this object)."""
        self.__init__()  # type: ignore[misc]


def message_text(client: int, phase: int, n: int, size: int) -> str:
    """A message carrying who sent it, in which phase, and when, padded to `size` characters."""
    head = f"b:{client}:{phase}:{n}:{time.monotonic_ns()}:"
    return head + "x" * max(0, size - len(head))


class _Listener(WSListener):
    """A connection's picows callbacks: each text message goes to its Client as it arrives, no task per frame."""

    def __init__(self, client: "Client") -> None:
        self.client = client
        self.fragments: list[bytes] = []

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.client.is_open = True

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT or kind == WSMsgType.CONTINUATION:
            payload = frame.get_payload_as_bytes()
            if frame.fin and not self.fragments:
                self.client.on_message(payload)
                return
            self.fragments.append(payload)
            if frame.fin:
                message, self.fragments = b"".join(self.fragments), []
                self.client.on_message(message)
        elif kind == WSMsgType.CLOSE:
            if not transport.is_close_frame_sent:  # the server's close: answer it, as the closing handshake asks
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.client.on_disconnected()


class Client:
    """One WebSocket connection whose frames route responses to their futures and record deliveries.

    picows (C-level framing, a callback per frame) rather than websockets: in the reconnect
    storm one load-generator core parses 400,000 frames, and websockets' framing and its
    reader task per connection made the load generator, not the server, the bottleneck.
    """

    def __init__(self, spec: ClientSpec, options: Options, worker: "Worker") -> None:
        self.spec = spec
        self.options = options
        self.worker = worker
        self.transport: WSTransport | None = None
        self.is_open = False
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.next_id = 0
        self.seen = bytearray()  # seen[seq] == 1 once that seq was delivered
        self.last_seq = 0
        self.unique = 0
        self.closed_by_server = False
        # Reconnect storm: set while this client is reconnecting, and what its reconnection took.
        self.reconnecting = False
        self.reconnected_at: float | None = None
        self.reconnect_attempts = 0

    async def open(self, after_seq: int | None = None) -> None:
        """Handshake with the token, then join and subscribe as the spec says (resuming after `after_seq`)."""
        url = f"ws://127.0.0.1:{self.spec.port}/ws/chat/room/"
        headers = None
        if self.options.auth == "query":
            url += f"?token={self.spec.token}"
        else:
            headers = {"Authorization": f"Token {self.spec.token}"}
        self.transport, _ = await asyncio.wait_for(
            ws_connect(
                lambda: _Listener(self),
                url,
                extra_headers=headers,
                websocket_handshake_timeout=self.options.open_timeout,
                max_frame_size=2**24,
                read_buffer_init_size=4096,
            ),
            self.options.open_timeout,
        )
        if not self.is_open:  # the server closed it as soon as it was open (on_disconnected ran already)
            raise ConnectionError("connection closed during the handshake")
        if self.spec.join:
            await self.request({"action": "join_room", "pk": self.spec.room})
        if self.spec.subscribe:
            subscribe: dict[str, Any] = {"action": "subscribe_to_messages_in_room", "pk": self.spec.room}
            if after_seq is not None:
                subscribe["after_seq"] = after_seq
            await self.request(subscribe, request_id=SUBSCRIPTION_ID)

    async def request(self, frame: dict[str, Any], request_id: Any = None) -> dict[str, Any]:
        """Send one request and wait for its response; raise unless it succeeded."""
        response = await asyncio.wait_for(self.send(frame, request_id), self.options.request_timeout)
        if response.get("response_status", 500) >= 300:
            raise RuntimeError(f"{frame['action']} answered {response.get('response_status')}")
        return response

    def send(self, frame: dict[str, Any], request_id: Any = None) -> "asyncio.Future[dict[str, Any]]":
        """Send one request now; the returned future resolves with its response."""
        if request_id is None:
            self.next_id += 1
            request_id = self.next_id
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        if not self.is_open or self.transport is None:
            future.set_exception(ConnectionError("connection closed"))
            return future
        self.pending[request_id] = future
        self.transport.send(WSMsgType.TEXT, orjson.dumps(dict(frame, request_id=request_id)))
        return future

    def on_message(self, raw: bytes) -> None:
        """Route one message: a response to its future, a message event to the statistics."""
        stats = self.worker.stats
        # Presence pushes can be large and are not measured: skip them without parsing.
        if b'"presence"' in raw[:40]:
            stats.other_frames += 1
            return
        frame = orjson.loads(raw)
        if "response_status" in frame:
            future = self.pending.pop(frame.get("request_id"), None)
            if future is not None and not future.done():
                future.set_result(frame)
            return
        if frame.get("action") != "create" or frame.get("request_id") != SUBSCRIPTION_ID:
            stats.other_frames += 1
            return
        now = time.monotonic_ns()
        data = frame["data"]
        seq = data["seq"]
        if seq >= len(self.seen):
            self.seen.extend(bytes(seq + 1024 - len(self.seen)))
        if self.seen[seq]:
            stats.duplicates += 1
            return
        self.seen[seq] = 1
        if seq < self.last_seq:
            stats.out_of_order += 1
        else:
            self.last_seq = seq
        self.unique += 1
        parts = data["text"].split(":", 5)
        if parts[0] != "b" or int(parts[2]) != self.worker.phase:
            # An earlier phase's message whose response came too late: not this phase's figure.
            stats.stale += 1
            return
        stats.delivered += 1
        self.worker.counters[self.worker.base + RECEIVED] += 1
        stats.latencies_ms.append((now - int(parts[4])) / 1e6)
        seconds = now / 1e9
        if stats.first_receive is None:
            stats.first_receive = seconds
        stats.last_receive = seconds

    def on_disconnected(self) -> None:
        """The connection ended: fail what waits for a response; in a storm, reconnect."""
        self.is_open = False
        if not self.worker.closing:
            self.closed_by_server = True
        for future in self.pending.values():
            if not future.done():
                future.set_exception(ConnectionError("connection closed"))
        self.pending.clear()
        if self.worker.storm is not None and not self.worker.closing and not self.reconnecting:
            self.reconnecting = True
            self.worker.reconnects.add(asyncio.ensure_future(self.reconnect(self.worker.storm)))

    async def reconnect(self, policy: dict[str, float]) -> None:
        """Reconnect as a client would after its server went away: jittered exponential backoff, then resume
        the subscription with `after_seq` = the last seq seen."""
        delay = policy["initial_backoff"]
        try:
            while not self.worker.closing:
                await asyncio.sleep(delay * (0.5 + random.random()))
                self.reconnect_attempts += 1
                try:
                    await self.open(after_seq=self.last_seq)
                except Exception as exc:
                    self.worker.reconnect_errors[_reason(exc)] += 1
                    await self.close()
                    delay = min(delay * 2, policy["max_backoff"])
                    continue
                self.closed_by_server = False
                self.reconnected_at = time.monotonic_ns() / 1e9
                return
        finally:
            self.reconnecting = False

    async def post(self, post: dict[str, Any], deadline: float, result: dict[str, Any]) -> None:
        """Send create_message: `{"mode": "window", "count", "window"}` as fast as a bounded window of
        outstanding requests allows, or `{"mode": "rate", "rate", "duration"}` at a fixed rate."""
        counters, base = self.worker.counters, self.worker.base
        loop = asyncio.get_running_loop()
        acked: Counter = result["acked"]
        statuses: Counter = result["statuses"]
        ack_latencies: array = result["ack_latencies_ms"]
        outstanding: set[asyncio.Future[dict[str, Any]]] = set()

        def sent(n: int) -> "asyncio.Future[dict[str, Any]]":
            text = message_text(self.spec.index, self.worker.phase, n, self.options.message_size)
            started = time.monotonic()
            future = self.send(
                {
                    "action": "create_message",
                    "room": self.spec.room,
                    "message": text,
                    "client_id": f"{self.spec.index}-{self.worker.phase}-{n}",
                }
            )
            counters[base + SENT] += 1
            outstanding.add(future)

            def done(f: "asyncio.Future[dict[str, Any]]") -> None:
                outstanding.discard(f)
                if f.cancelled() or f.exception() is not None:
                    statuses["error"] += 1
                    return
                status = f.result().get("response_status")
                statuses[str(status)] += 1
                if status == 201:
                    acked[self.spec.room] += 1
                    counters[base + ACKED] += 1
                    ack_latencies.append((time.monotonic() - started) * 1000)

            future.add_done_callback(done)
            return future

        if post["mode"] == "window":
            window = asyncio.Semaphore(post["window"])
            for n in range(post["count"]):
                if time.monotonic() >= deadline or not self.is_open:
                    break
                try:
                    await asyncio.wait_for(window.acquire(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    break  # the server has not answered the window: the phase's time is up
                # The window slot frees when this request's response (or the connection's end) arrives.
                sent(n).add_done_callback(lambda _f: window.release())
        else:
            interval = 1.0 / post["rate"]
            start = loop.time() + random.random() * interval  # spread many posters over the second
            end = min(loop.time() + post["duration"], loop.time() + max(0.0, deadline - time.monotonic()))
            n = 0
            while self.is_open:
                at = start + n * interval
                if at >= end:
                    break
                await asyncio.sleep(max(0.0, at - loop.time()))
                sent(n)
                n += 1
        if outstanding:
            # An overloaded server may answer very late: wait a bounded time, then count the rest as unanswered.
            await asyncio.wait(set(outstanding), timeout=post.get("ack_grace", self.options.request_timeout))
            statuses["unanswered"] += len(outstanding)

    async def close(self) -> None:
        """The closing handshake, then the TCP close (given up on after CLOSE_TIMEOUT_S)."""
        transport = self.transport
        if transport is None:
            return
        if not transport.is_disconnected and not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode.OK)
        try:
            await asyncio.wait_for(transport.wait_disconnected(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            transport.disconnect()
        except Exception:  # a failure picows detected locally, re-raised here: the connection is gone all the same
            pass


class Worker:
    """One process's share of the clients, driven phase by phase over a pipe."""

    def __init__(self, conn: Connection, counters: Any, slot: int, specs: list[ClientSpec], options: Options) -> None:
        self.conn = conn
        self.counters = counters
        self.base = slot * COUNTER_SLOTS
        self.specs = specs
        self.options = options
        self.clients: list[Client] = []
        self.stats = Stats()
        self.expected: dict[int, int] = {}  # room -> acknowledged messages so far, as of the last drain
        self.phase = 0  # makes client_ids unique across phases: a repeated one is a retry, answered 200
        self.closing = False
        self.storm: dict[str, float] | None = None  # set: clients dropped by the server reconnect (reconnect storm)
        self.reconnects: set[asyncio.Future[None]] = set()
        self.reconnect_errors: Counter = Counter()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, payload = await loop.run_in_executor(None, self.conn.recv)
            if command == "exit":
                return
            handler = getattr(self, f"do_{command}")
            try:
                reply = await handler(**payload)
            except Exception as exc:  # report, never hang the orchestrator
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            self.conn.send(reply)

    async def do_connect(self, deadline_in: float) -> dict[str, Any]:
        """Open every connection (bounded concurrency, retrying as a client would); join and subscribe.

        Failures are counted by reason; clients still not open at the deadline count as `timed_out`.
        """
        gate = asyncio.Semaphore(self.options.connect_concurrency)
        errors: Counter = Counter()
        retried: Counter = Counter()
        opening: set[Client] = set()
        started = time.monotonic()

        async def one(spec: ClientSpec) -> None:
            for attempt in range(self.options.connect_retries + 1):
                client = Client(spec, self.options, self)
                async with gate:
                    opening.add(client)
                    try:
                        await client.open()
                    except Exception as exc:
                        opening.discard(client)
                        await client.close()
                        if attempt == self.options.connect_retries:
                            errors[_reason(exc)] += 1
                            return
                        retried[_reason(exc)] += 1
                    else:
                        opening.discard(client)
                        self.clients.append(client)
                        self.counters[self.base + CONNECTED] += 1
                        return
                await asyncio.sleep(0.5 * (attempt + 1) * (0.5 + random.random()))

        tasks = [asyncio.ensure_future(one(spec)) for spec in self.specs]
        _, pending = await asyncio.wait(tasks, timeout=deadline_in)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # Cancelled half-way (e.g. open but not yet subscribed): close them too.
        await asyncio.gather(*(client.close() for client in opening), return_exceptions=True)
        if pending:
            errors["not open by the phase's time bound"] += len(pending)
        return {"ok": len(self.clients), "failed": sum(errors.values()), "errors": dict(errors),
                "posters": sum(c.spec.poster for c in self.clients),
                "subscribers": sum(c.spec.subscribe for c in self.clients),
                "retries": sum(retried.values()), "retried_errors": dict(retried),
                "seconds": time.monotonic() - started}  # fmt: skip

    async def do_begin_phase(self) -> dict[str, Any]:
        """Start a measurement phase: from now on this worker's subscribers count the new phase's messages.

        Every worker begins it before any posts (the orchestrator waits for all, then calls post): a
        subscriber whose worker had not begun it yet took a fast poster's first messages for an
        earlier phase's, and they went uncounted (a raw-server burst of 2 ms in the smoke test).
        """
        self.stats.reset()
        self.phase += 1
        return {"phase": self.phase}

    async def do_post(self, post: dict[str, Any], deadline_in: float) -> dict[str, Any]:
        """Run every poster of the phase begun until done or the deadline; report what was acknowledged."""
        result: dict[str, Any] = {"acked": Counter(), "statuses": Counter(), "ack_latencies_ms": array("f")}
        deadline = time.monotonic() + deadline_in
        posters = [client.post(post, deadline, result) for client in self.clients if client.spec.poster]
        first_send = time.monotonic_ns() / 1e9
        await asyncio.gather(*posters)
        return {"acked": dict(result["acked"]), "statuses": dict(result["statuses"]),
                "ack_latencies_ms": result["ack_latencies_ms"].tobytes(), "first_send": first_send,
                "last_ack": time.monotonic_ns() / 1e9}  # fmt: skip

    async def do_drain(self, expected: dict[int, int], timeout: float, idle_timeout: float) -> dict[str, Any]:
        """Wait until every subscriber got every acknowledged message of its room, or progress stops."""
        subscribers = [client for client in self.clients if client.spec.subscribe]
        expected = {int(room): n for room, n in expected.items()}
        previous, self.expected = self.expected, expected

        def expected_of(client: Client, counts: dict[int, int] = expected) -> int:
            return counts.get(client.spec.room, 0) if client.spec.room is not None else 0

        deadline = time.monotonic() + timeout
        last_total, last_change = -1, time.monotonic()
        while True:
            missing = sum(max(0, expected_of(c) - c.unique) for c in subscribers if not c.closed_by_server)
            total = sum(c.unique for c in subscribers)
            now = time.monotonic()
            if total != last_total:
                last_total, last_change = total, now
            if missing == 0 or now >= deadline or now - last_change >= idle_timeout:
                ended = "complete" if missing == 0 else "deadline" if now >= deadline else "no progress"
                break
            await asyncio.sleep(0.05)
        # Late duplicates would show up right after the last expected message.
        await asyncio.sleep(0.2)
        lost = sum(max(0, expected_of(c) - c.unique) for c in subscribers)
        # Deliveries beyond the acknowledged count: messages whose response came after the post phase gave up.
        unexpected = sum(max(0, c.unique - expected_of(c)) for c in subscribers)
        stats = self.stats
        return {
            "subscribers": len(subscribers),
            # This phase's share: the acknowledgements counted at the previous drain were expected then.
            "expected": sum(expected_of(c) - expected_of(c, previous) for c in subscribers),
            "delivered": stats.delivered,
            "stale": stats.stale,
            "lost": lost,
            "drain_ended": ended,
            "unexpected": unexpected,
            "duplicates": stats.duplicates,
            "out_of_order": stats.out_of_order,
            "other_frames": stats.other_frames,
            "closed_by_server": sum(c.closed_by_server for c in self.clients),
            "latencies_ms": stats.latencies_ms.tobytes(),
            "first_receive": stats.first_receive,
            "last_receive": stats.last_receive,
        }

    async def do_storm(self, policy: dict[str, float], phase: int) -> dict[str, Any]:
        """Arm the reconnect storm: from now on a client the server drops reconnects and resumes with after_seq.

        Messages of `phase` (the orchestrator posts them) are this measurement's deliveries.
        """
        self.stats.reset()
        self.phase = phase
        self.storm = policy
        self.reconnect_errors.clear()
        return {"armed": len(self.clients)}

    async def do_catch_up(self, expected: dict[int, int], timeout: float, idle_timeout: float) -> dict[str, Any]:
        """Wait until every subscriber, reconnected or not, holds every acknowledged message of its room."""
        subscribers = [client for client in self.clients if client.spec.subscribe]
        counts = {int(room): n for room, n in expected.items()}

        def want(client: Client) -> int:
            return counts.get(client.spec.room, 0) if client.spec.room is not None else 0

        deadline = time.monotonic() + timeout
        last_total, last_change = -1, time.monotonic()
        while True:
            missing = sum(max(0, want(c) - c.unique) for c in subscribers)
            total = sum(c.unique for c in subscribers) + sum(1 for c in subscribers if c.reconnected_at is not None)
            now = time.monotonic()
            if total != last_total:
                last_total, last_change = total, now
            if missing == 0 or now >= deadline or now - last_change >= idle_timeout:
                ended = "complete" if missing == 0 else "deadline" if now >= deadline else "no progress"
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # late duplicates would show up right after the last expected message
        self.storm = None
        stats = self.stats
        reconnected = [c.reconnected_at for c in subscribers if c.reconnected_at is not None]
        return {
            "subscribers": len(subscribers),
            "caught_up": sum(1 for c in subscribers if c.unique >= want(c)),
            "delivered": stats.delivered,
            "lost": sum(max(0, want(c) - c.unique) for c in subscribers),
            "unexpected": sum(max(0, c.unique - want(c)) for c in subscribers),
            "duplicates": stats.duplicates,
            "out_of_order": stats.out_of_order,
            "stale": stats.stale,
            "drain_ended": ended,
            "reconnected": len(reconnected),
            "still_disconnected": sum(c.closed_by_server for c in subscribers),
            "last_reconnected": max(reconnected, default=None),
            "reconnect_attempts": sum(c.reconnect_attempts for c in subscribers),
            "reconnect_errors": dict(self.reconnect_errors),
            "latencies_ms": stats.latencies_ms.tobytes(),
            "first_receive": stats.first_receive,
            "last_receive": stats.last_receive,
        }

    async def do_close(self) -> dict[str, Any]:
        """Close every connection (a clean close handshake each)."""
        self.closing = True
        for task in self.reconnects:
            task.cancel()
        await asyncio.gather(*self.reconnects, return_exceptions=True)
        started = time.monotonic()
        gate = asyncio.Semaphore(self.options.connect_concurrency * 4)

        async def one(client: Client) -> None:
            async with gate:
                await client.close()

        await asyncio.gather(*(one(client) for client in self.clients), return_exceptions=True)
        closed_by_server = sum(c.closed_by_server for c in self.clients)
        self.clients = []
        return {"seconds": time.monotonic() - started, "closed_by_server": closed_by_server}


def _reason(exc: BaseException) -> str:
    """A short, token-free reason for a failed connection, for counting."""
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return f"HTTP {status}"
    text = str(exc).split("?")[0][:80]  # never a query string: it could hold a token
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def worker_main(conn: Connection, counters: Any, slot: int, specs: list[ClientSpec], options: Options) -> None:
    """Entry point of a worker process."""
    raise_nofile_limit()
    pin_to(set(options.cpus) if options.cpus else None)
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(Worker(conn, counters, slot, specs, options).run())
