"""The ceiling: a raw `websockets` broadcast server speaking the bench's subset of the contract (`raw-memory-1`).

One process, one asyncio loop, everything in memory: no database, no channel layer, no
Django. The handshake takes any token without checking it (one user per distinct token).
It answers the actions the bench uses (`create`, `join_room`, `subscribe_to_messages_in_room`
with `after_seq`, `create_message` with `client_id` idempotency) with the contract's JSON
shapes, and delivers each `create` event with one `json.dumps` per distinct subscription
`request_id` and `websockets.broadcast()`. No presence pushes, typing, limits or backlog
bounds. It exists only to be measured against the project in one run (bench/README.md).

    python -m bench.raw --fd <listening socket fd>   # or --port N
"""

import argparse
import asyncio
import json
import signal
import socket
from datetime import UTC, datetime
from http import HTTPStatus
from itertools import count
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

PATH = "/ws/chat/room/"


class Room:
    """A room's state: messages by seq, idempotency keys, present users and subscriptions."""

    def __init__(self, pk: int, name: str, host: dict[str, Any]) -> None:
        self.pk = pk
        self.name = name
        self.host = host
        self.created_at = now_iso()
        self.messages: list[dict[str, Any]] = []  # messages[seq - 1]
        self.by_client_id: dict[tuple[int, str], dict[str, Any]] = {}
        self.present: dict[ServerConnection, dict[str, Any]] = {}
        self._users_cache: list[dict[str, Any]] | None = None  # built once per presence change
        # request_id -> the connections subscribed with it (the bench uses one request_id for all).
        self.subscribers: dict[Any, set[ServerConnection]] = {}

    def current_users(self) -> list[dict[str, Any]]:
        if self._users_cache is None:
            self._users_cache = list({user["id"]: user for user in self.present.values()}.values())
        return self._users_cache

    def enter(self, ws: ServerConnection, user: dict[str, Any]) -> None:
        if ws not in self.present:
            self.present[ws] = user
            self._users_cache = None

    def leave(self, ws: ServerConnection) -> None:
        if self.present.pop(ws, None) is not None:
            self._users_cache = None
        for connections in self.subscribers.values():
            connections.discard(ws)

    def as_json(self) -> dict[str, Any]:
        return {
            "pk": self.pk, "name": self.name, "host": self.host, "current_users": self.current_users(),
            "last_message": self.messages[-1] if self.messages else None, "created_at": self.created_at,
        }  # fmt: skip


class State:
    """Every room and user of this process."""

    def __init__(self) -> None:
        self.rooms: dict[int, Room] = {}
        self.users: dict[str, dict[str, Any]] = {}  # token -> User
        self.room_ids = count(1)
        self.message_ids = count(1)

    def user(self, token: str) -> dict[str, Any]:
        user = self.users.get(token)
        if user is None:
            uid = len(self.users) + 1
            user = self.users[token] = {"id": uid, "username": f"raw{uid}"}
        return user


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def token_of(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Token "):
        return header[6:].strip() or None
    tokens = parse_qs(urlsplit(request.path).query).get("token")
    return tokens[0] if tokens else None


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    """`/healthz` for the bench's readiness check; the chat path needs a token (not checked)."""
    path = urlsplit(request.path).path
    if path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    if path != PATH:
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    if token_of(request) is None:
        return connection.respond(HTTPStatus.FORBIDDEN, "no token\n")
    return None


class Handler:
    """One connection's actions."""

    def __init__(self, state: State, ws: ServerConnection, user: dict[str, Any]) -> None:
        self.state = state
        self.ws = ws
        self.user = user
        self.last_room: int | None = None
        self.rooms: set[Room] = set()

    def room(self, pk: Any) -> Room | None:
        try:
            return self.state.rooms.get(int(pk))
        except (TypeError, ValueError):
            return None

    async def handle(self, frame: dict[str, Any]) -> None:
        action, request_id = frame.get("action"), frame.get("request_id")
        method = getattr(self, f"do_{action}", None) if isinstance(action, str) else None
        status, data = method(frame) if method else (405, None)
        errors = [] if status < 300 else [HTTPStatus(status).phrase]
        await self.ws.send(json.dumps(
            {"errors": errors, "data": data, "action": action, "response_status": status, "request_id": request_id}
        ))  # fmt: skip

    def do_create(self, frame: dict[str, Any]) -> tuple[int, Any]:
        name = str((frame.get("data") or {}).get("name", "")).strip()
        if not name:
            return 400, None
        pk = next(self.state.room_ids)
        room = self.state.rooms[pk] = Room(pk, name, self.user)
        return 201, room.as_json()

    def do_join_room(self, frame: dict[str, Any]) -> tuple[int, Any]:
        room = self.room(frame.get("pk"))
        if room is None:
            return 404, None
        room.enter(self.ws, self.user)
        self.rooms.add(room)
        self.last_room = room.pk
        return 200, room.as_json()

    def do_subscribe_to_messages_in_room(self, frame: dict[str, Any]) -> tuple[int, Any]:
        room = self.room(frame.get("pk"))
        if room is None:
            return 404, None
        request_id = frame.get("request_id")
        after = frame.get("after_seq")
        if after is not None:
            # Replay, then live: nothing can interleave, since nothing here yields to the loop.
            replay = [
                json.dumps({"action": "create", "request_id": request_id, "pk": m["id"], "data": m}) for m in room.messages[int(after) :]
            ]
            for text in replay:
                broadcast([self.ws], text)
        room.subscribers.setdefault(request_id, set()).add(self.ws)
        self.rooms.add(room)
        return 200, None

    def do_create_message(self, frame: dict[str, Any]) -> tuple[int, Any]:
        room = self.room(frame.get("room") or self.last_room)
        if room is None:
            return 404, None
        text = str(frame.get("message", "")).strip()
        if not text or len(text) > 500:
            return 400, None
        client_id = frame.get("client_id")
        if client_id is not None:
            stored = room.by_client_id.get((self.user["id"], client_id))
            if stored is not None:
                return 200, stored
        created = datetime.now(UTC)
        message = {
            "id": next(self.state.message_ids), "room": room.pk, "seq": len(room.messages) + 1, "user": self.user,
            "text": text, "client_id": client_id, "created_at": created.isoformat().replace("+00:00", "Z"),
            "created_at_formatted": created.strftime("%d-%m-%Y %H:%M:%S"), "edited_at": None,
        }  # fmt: skip
        room.messages.append(message)
        if client_id is not None:
            room.by_client_id[(self.user["id"], client_id)] = message
        for request_id, connections in room.subscribers.items():
            if connections:
                broadcast(connections, json.dumps({"action": "create", "request_id": request_id, "pk": message["id"], "data": message}))
        return 201, message

    def gone(self) -> None:
        for room in self.rooms:
            room.leave(self.ws)


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.raw", description=__doc__.splitlines()[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--fd", type=int, help="an inherited listening socket")
    where.add_argument("--port", type=int, help="listen on 127.0.0.1:PORT")
    args = p.parse_args(argv)
    state = State()

    async def connection(ws: ServerConnection) -> None:
        token = token_of(ws.request) if ws.request else None
        handler = Handler(state, ws, state.user(token or ""))
        try:
            async for raw in ws:
                try:
                    frame = json.loads(raw)
                    if not isinstance(frame, dict):
                        raise ValueError("not an object")
                except ValueError:
                    await ws.send(
                        json.dumps({"action": None, "request_id": None, "response_status": 400, "errors": ["bad frame"], "data": None})
                    )
                    continue
                await handler.handle(frame)
        except ConnectionClosed:
            pass
        finally:
            handler.gone()

    listen: dict[str, Any] = {"sock": socket.socket(fileno=args.fd)} if args.fd is not None else {"host": "127.0.0.1", "port": args.port}
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def stopping() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping)
    # compression=None: the bench's clients never negotiate it anyway; close_timeout bounds a SIGTERM.
    async with serve(connection, process_request=process_request, compression=None, close_timeout=2, **listen):
        await stop
    # Leaving the context closes every connection with 1001 (going away), as the project's server does.


if __name__ == "__main__":
    asyncio.run(main())
