"""The official Python client of the chat rooms WebSocket API (api_docs/PROTOCOL.md, api_docs/asyncapi.yaml).

asyncio and `websockets`. One connection for any number of rooms: requests as
coroutines with timeouts, pushes as events, automatic reconnect with backoff and jitter
(over several URLs), and after a reconnect everything restored: rooms joined again,
message streams resubscribed with `after_seq` = the last seq seen (no gap, no
duplicate), and `create_message` retried with the same `client_id` (stored once).
Close code 4401 stops the client; 4429 and 1008 back off longer; 1001 reconnects at once.
"""

import asyncio
import contextlib
import functools
import json
import logging
import random as _random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

__all__ = ["ChatClient", "ChatError", "Closed", "ConnectionLost", "RequestTimeout", "new_client_id"]

logger = logging.getLogger("chat_rooms_client")

CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_AUTH = 4401
CLOSE_RATE_LIMITED = 4429
ABNORMAL = 1006
# A connection open this long was a success: the backoff starts over after it closes.
STABLE_SECONDS = 5.0

Frame = dict[str, Any]
Handler = Callable[[Any], None]
TokenSource = str | Callable[[], str | Awaitable[str]] | None


class ChatError(Exception):
    """The server answered with an error status (400, 403, 404, 429...)."""

    def __init__(self, action: str, status: int, errors: list[Any], data: Any) -> None:
        super().__init__(f"{action} failed with {status}: {errors}")
        self.action, self.status, self.errors, self.data = action, status, errors, data

    @property
    def retry_after(self) -> float | None:
        """Seconds to wait after a 429, if the server said."""
        return self.data.get("retry_after") if isinstance(self.data, dict) else None


class ConnectionLost(Exception):
    """The connection closed before the response came: the request may or may not have been carried out."""


class RequestTimeout(TimeoutError):
    """No response within the request timeout."""


class Closed(Exception):
    """The client was closed, or stopped after close code 4401."""


def new_client_id() -> str:
    """A fresh idempotency key for create_message (1-64 characters)."""
    return uuid.uuid4().hex


class ChatClient:
    """A self-healing connection to /ws/chat/room/.

    Events (`on(name, handler)`, handlers are plain functions): "open" {url, reconnect},
    "close" {code, reason, delay} (delay None: no more attempts), "message" {room, action,
    message}, "room" {room, action, data}, "presence" {room, users}, "typing" {room, user},
    "user_status" {user, online}, "inbox" {action, room, data}, "auth_failed" {code},
    "error" {error, action}, and "push" (every push as received).
    """

    def __init__(
        self,
        url: str | Iterable[str],
        token: TokenSource = None,
        *,
        request_timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        backoff_factor: float = 2.0,
        rate_limited_delay: float = 5.0,
        headers: dict[str, str] | None = None,
        trace: Callable[[str, Frame], None] | None = None,
        random: Callable[[], float] = _random.random,
    ) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("give at least one url")
        self.token = token
        self.request_timeout = request_timeout
        self.backoff_initial, self.backoff_max, self.backoff_factor = backoff_initial, backoff_max, backoff_factor
        self.rate_limited_delay = rate_limited_delay
        self.headers = headers or {}
        self.trace = trace
        self.random = random

        self._ws: ClientConnection | None = None
        self._opened = asyncio.Event()
        self._stopped: Exception | None = None
        self._runner: asyncio.Task[None] | None = None
        self._attempt = 0
        self._opened_at: float | None = None
        self._last_delay: float | None = None
        self._url_index = 0
        self._opens = 0
        self._ids = 0
        self._pending: dict[str, tuple[str, asyncio.Future[Any]]] = {}
        self._handlers: dict[str, list[Handler]] = {}
        self._background: set[asyncio.Task[Any]] = set()
        # What a reconnect restores.
        self._joined: dict[int, None] = {}
        self._message_subscriptions: dict[int, dict[str, Any]] = {}  # room -> {"request_id", "last_seq"}
        self._room_subscriptions: dict[int, None] = {}
        self._online_users = False
        self._my_rooms = False

    # --- connection ---------------------------------------------------------------------

    async def connect(self) -> None:
        """Start the connection (kept open from then on); returns once open."""
        if self._runner is None and self._stopped is None:
            self._runner = asyncio.create_task(self._run())
        await self.when_open()

    async def close(self) -> None:
        """Close for good: no reconnect; pending requests fail with Closed."""
        self._stop(Closed("the client was closed"))
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._background):
            task.cancel()

    async def __aenter__(self) -> "ChatClient":
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._opened.is_set() and self._stopped is None

    async def when_open(self) -> None:
        """Wait until the connection is open; raise Closed if the client stopped."""
        while True:
            if self._stopped is not None:
                raise self._stopped
            if self._opened.is_set():
                return
            await self._opened.wait()

    def on(self, event: str, handler: Handler) -> Callable[[], None]:
        """Call handler(payload) on each such event; returns a function that stops it."""
        self._handlers.setdefault(event, []).append(handler)
        return lambda: self._handlers[event].remove(handler)

    def _emit(self, event: str, payload: Any) -> None:
        for handler in list(self._handlers.get(event, [])):
            try:
                handler(payload)
            except Exception:  # a failing handler must not break the connection's bookkeeping
                logger.exception("%s handler failed", event)

    async def _url(self) -> str:
        base = self.urls[self._url_index % len(self.urls)]
        token = self.token() if callable(self.token) else self.token
        if isinstance(token, Awaitable):
            token = await token
        if not token:
            return base
        return f"{base}{'&' if '?' in base else '?'}token={quote(token, safe='')}"

    async def _run(self) -> None:
        while self._stopped is None:
            base = self.urls[self._url_index % len(self.urls)]
            try:
                ws = await connect(await self._url(), additional_headers=self.headers, open_timeout=10, max_size=2**22)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                logger.info("connecting to %s failed: %s", base, exc)
                await self._reconnect_later(ABNORMAL, str(exc))
                continue
            self._ws, self._opened_at = ws, time.monotonic()
            reconnect = self._opens > 0
            self._opens += 1
            self._emit("open", {"url": base, "reconnect": reconnect})
            if reconnect:
                await self._restore()
            self._opened.set()  # after the restoring requests, so they reach the server first
            try:
                async for raw in ws:
                    self._on_frame(raw)
            except ConnectionClosed:
                pass
            self._opened.clear()
            self._ws = None
            code, reason = ws.close_code or ABNORMAL, ws.close_reason or ""
            lost = f"the connection closed ({code}) before the response"
            self._fail_pending(functools.partial(ConnectionLost, lost))
            if self._stopped is not None:
                return
            if code == CLOSE_AUTH:
                self._emit("close", {"code": code, "reason": reason, "delay": None})
                self._emit("auth_failed", {"code": code})
                self._stop(Closed("the server refused the credentials (4401): get a new token"))
                return
            await self._reconnect_later(code, reason)

    def reconnect_delay(self, code: int) -> float:
        """Seconds before the next attempt after a close with this code (the attempt count so far counts)."""
        if self._opened_at is not None and time.monotonic() - self._opened_at >= STABLE_SECONDS:
            self._attempt = 0  # not a server that accepts and drops at once: start over
        self._opened_at = None
        if code == CLOSE_GOING_AWAY and self._last_delay != 0:
            return 0.0  # the server is restarting or draining: another one takes us at once (once in a row)
        ceiling = min(self.backoff_max, self.backoff_initial * self.backoff_factor**self._attempt)
        delay = ceiling / 2 + self.random() * ceiling / 2  # jitter: clients do not come back in step
        if code in (CLOSE_RATE_LIMITED, CLOSE_POLICY):
            delay = max(delay, self.rate_limited_delay * (1 + self.random() / 2))
        return delay

    async def _reconnect_later(self, code: int, reason: str) -> None:
        delay = self._last_delay = self.reconnect_delay(code)
        self._attempt += 1
        self._url_index += 1
        self._emit("close", {"code": code, "reason": reason, "delay": delay})
        await asyncio.sleep(delay)

    def _stop(self, error: Exception) -> None:
        if self._stopped is not None:
            return
        self._stopped = error
        self._fail_pending(lambda: error)
        self._opened.set()  # wake the waiters: they see _stopped

    def _fail_pending(self, error: Callable[[], Exception]) -> None:
        pending, self._pending = self._pending, {}
        for _, future in pending.values():
            if not future.done():
                future.set_exception(error())

    async def _restore(self) -> None:
        """After a reconnect: join again, resubscribe after the last seq seen, and the other subscriptions."""
        requests: list[tuple[str, Frame, str | None]] = [("join_room", {"pk": room}, None) for room in self._joined]
        for room, sub in self._message_subscriptions.items():
            requests.append(("subscribe_to_messages_in_room", {"pk": room, "after_seq": sub["last_seq"]}, sub["request_id"]))
        requests += [("subscribe_instance", {"pk": room}, f"i{room}") for room in self._room_subscriptions]
        if self._online_users:
            requests.append(("subscribe_to_online_users", {}, "online"))
        if self._my_rooms:
            requests.append(("subscribe_to_my_rooms", {}, "inbox"))
        for action, params, request_id in requests:
            try:
                _, future = await self._send_frame(action, params, request_id)
            except ConnectionLost:
                return  # the run loop reconnects and restores again
            task = asyncio.create_task(self._await_restored(action, future))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _await_restored(self, action: str, future: asyncio.Future[Any]) -> None:
        try:
            await asyncio.wait_for(future, self.request_timeout)
        except Exception as error:  # noqa: BLE001 - reported to the application, which decides
            self._emit("error", {"error": error, "action": action})

    # --- frames ----------------------------------------------------------------------------

    async def _send_frame(self, action: str, params: Frame, request_id: str | None = None) -> tuple[str, asyncio.Future[Any]]:
        """Send one request now; (its request_id, a future of the response's data or error)."""
        ws = self._ws
        if ws is None:
            self._opened.clear()  # so retries wait for the reconnect rather than spin
            raise ConnectionLost("not connected")
        if request_id is None:
            self._ids += 1
            request_id = f"c{self._ids}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = (action, future)
        frame = {**params, "action": action, "request_id": request_id}
        if self.trace:
            self.trace(">", frame)
        try:
            await ws.send(json.dumps(frame))
        except ConnectionClosed as exc:
            self._pending.pop(request_id, None)
            if self._ws is ws:
                self._opened.clear()  # the run loop has yet to notice: retries wait for the reconnect
            raise ConnectionLost("the connection closed while sending") from exc
        return request_id, future

    async def _send(self, action: str, params: Frame, request_id: str | None = None, timeout: float | None = None) -> Any:
        request_id, future = await self._send_frame(action, params, request_id)
        timeout = timeout or self.request_timeout
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            entry = self._pending.get(request_id)
            if entry is not None and entry[1] is future:
                del self._pending[request_id]
            raise RequestTimeout(f"{action}: no response within {timeout} s") from None

    async def request(self, action: str, timeout: float | None = None, **params: Any) -> Any:
        """Any action: waits for the connection, returns the response's `data` or raises ChatError."""
        await self.when_open()
        return await self._send(action, params, None, timeout)

    def _on_frame(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        if self.trace:
            self.trace("<", frame)
        if "response_status" in frame:
            self._on_response(frame)
            return
        self._emit("push", frame)
        action, request_id, data = frame.get("action"), frame.get("request_id"), frame.get("data") or {}
        if action in ("create", "update", "delete"):
            room = next((r for r, sub in self._message_subscriptions.items() if sub["request_id"] == request_id), None)
            if room is not None:
                self._on_message_event(room, action, data)
            elif isinstance(request_id, str) and request_id.startswith("i"):
                self._emit("room", {"room": frame.get("pk"), "action": action, "data": data})
        elif action == "presence":
            self._emit("presence", {"room": frame.get("room"), "users": data["users"]})
        elif action == "typing":
            self._emit("typing", {"room": frame.get("room"), "user": data["user"]})
        elif action == "user_status":
            self._emit("user_status", data)
        elif action in ("room_message", "membership", "read"):
            self._emit("inbox", {"action": action, "room": frame.get("room"), "data": data})

    def _on_response(self, frame: Frame) -> None:
        entry = self._pending.pop(str(frame.get("request_id")), None)
        if entry is None:
            return  # timed out already, or a frame error without a request_id
        action, future = entry
        if future.done():
            return
        status = frame["response_status"]
        if 200 <= status < 300:
            future.set_result(frame.get("data"))
        else:
            future.set_exception(ChatError(action, status, frame.get("errors") or [], frame.get("data")))

    def _on_message_event(self, room: int, action: str, message: dict[str, Any]) -> None:
        sub = self._message_subscriptions[room]
        if action == "create":
            # A replay after a reconnect starts after last_seq, so this only drops what was already seen.
            if message["seq"] <= sub["last_seq"]:
                return
            sub["last_seq"] = message["seq"]
        self._emit("message", {"room": room, "action": action, "message": message})

    # --- rooms ---------------------------------------------------------------------------

    async def list_rooms(self, **params: Any) -> Any:
        """`{"results": [Room], "count"}`; params: name, page, page_size."""
        return await self.request("list", **params)

    async def get_room(self, pk: int) -> Any:
        return await self.request("retrieve", pk=pk)

    async def create_room(self, name: str) -> Any:
        return await self.request("create", data={"name": name})

    async def rename_room(self, pk: int, name: str) -> Any:
        return await self.request("patch", pk=pk, data={"name": name})

    async def delete_room(self, pk: int) -> None:
        await self.request("delete", pk=pk)

    async def join_room(self, pk: int) -> Any:
        """Become a member and present on this connection; joined again after every reconnect."""
        room = await self.request("join_room", pk=pk)
        self._joined[pk] = None
        return room

    async def leave_room(self, pk: int) -> None:
        self._joined.pop(pk, None)
        await self.request("leave_room", pk=pk)

    async def typing(self, pk: int) -> None:
        await self.request("typing", pk=pk)

    async def subscribe_to_room(self, pk: int) -> None:
        """Renames and deletion of a room ("room" events); resubscribed after reconnects."""
        await self.when_open()
        await self._send("subscribe_instance", {"pk": pk}, f"i{pk}")
        self._room_subscriptions[pk] = None

    async def unsubscribe_from_room(self, pk: int) -> None:
        self._room_subscriptions.pop(pk, None)
        await self.when_open()
        await self._send("unsubscribe_instance", {"pk": pk}, f"i{pk}")

    # --- messages ------------------------------------------------------------------------

    async def create_message(self, room: int, text: str, client_id: str | None = None) -> Any:
        """Post a message; after a lost connection or a timeout it is resent with the same client_id (stored once)."""
        client_id = client_id or new_client_id()
        while True:
            try:
                return await self.request("create_message", room=room, message=text, client_id=client_id)
            except (ConnectionLost, RequestTimeout):
                continue

    async def update_message(self, pk: int, text: str) -> Any:
        return await self.request("update_message", pk=pk, message=text)

    async def delete_message(self, pk: int) -> None:
        await self.request("delete_message", pk=pk)

    async def list_messages(self, pk: int, **params: Any) -> Any:
        """`{"results": [Message], "has_more"}`; params: after_seq, before_seq, limit."""
        return await self.request("list_messages", pk=pk, **params)

    async def subscribe_to_messages(self, room: int, after_seq: int | None = None) -> None:
        """Follow a room's messages ("message" events): stored ones after `after_seq`, then live ones.

        Without after_seq: from the room's newest message on (or where an earlier
        subscription to it stopped). After a reconnect it resumes after the last seq seen.
        """
        if after_seq is None:
            known = self._message_subscriptions.get(room)
            if known is not None:
                after_seq = known["last_seq"]
            else:
                last = (await self.get_room(room))["last_message"]
                after_seq = last["seq"] if last else 0
        request_id = f"m{room}"
        self._message_subscriptions[room] = {"request_id": request_id, "last_seq": after_seq}
        try:
            await self.when_open()
            await self._send("subscribe_to_messages_in_room", {"pk": room, "after_seq": after_seq}, request_id)
        except ConnectionLost:
            pass  # the reconnect resubscribes it
        except Exception:
            self._message_subscriptions.pop(room, None)
            raise

    async def unsubscribe_from_messages(self, room: int) -> None:
        sub = self._message_subscriptions.pop(room, None)
        if sub is not None and self.connected:
            await self._send("unsubscribe_from_messages_in_room", {"pk": room}, sub["request_id"])

    def last_seq(self, room: int) -> int | None:
        """The highest message seq seen in a followed room."""
        sub = self._message_subscriptions.get(room)
        return sub["last_seq"] if sub else None

    # --- users, inbox and read state (api_docs/PROTOCOL.md §6) ---------------------------------------

    async def subscribe_to_online_users(self) -> list[Any]:
        """Who is online now; then "user_status" events. Resubscribed after reconnects."""
        await self.when_open()
        data = await self._send("subscribe_to_online_users", {}, "online")
        self._online_users = True
        users: list[Any] = data["users"]
        return users

    async def subscribe_to_my_rooms(self) -> None:
        """ "inbox" events (room_message, membership, read) for all the user's rooms. Resubscribed after reconnects."""
        await self.when_open()
        await self._send("subscribe_to_my_rooms", {}, "inbox")
        self._my_rooms = True

    async def list_my_rooms(self, **params: Any) -> Any:
        return await self.request("list_my_rooms", **params)

    async def mark_read(self, pk: int, seq: int) -> Any:
        return await self.request("mark_read", pk=pk, seq=seq)
