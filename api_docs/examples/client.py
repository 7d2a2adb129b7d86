"""A minimal Python client of the chat API (HTTP for the token, WebSocket for everything else).

    pip install websockets
    python client.py --server http://localhost:8000 --username alice --password '...' \
        --room lobby --message "hello" [--register] [--after-seq N] [--trace]

It gets an API token, connects to /ws/chat/room/, finds or creates the room, joins it,
subscribes to its messages (replaying those after --after-seq), sends one message
with a client_id (safe to resend), waits for its own `create` event and prints, as
one JSON line each, every message it received. With --trace it also prints every
frame sent (">") and received ("<") on stderr. Needs only the standard library and
`websockets`.
"""

import argparse
import asyncio
import itertools
import json
import sys
import urllib.error
import urllib.request
import uuid
from typing import Any

from websockets.asyncio.client import connect


def http_post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST a JSON body; return the status and the JSON answer."""
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def get_token(server: str, username: str, password: str, register: bool) -> str:
    """Register (optionally) and exchange username and password for an API token."""
    if register:
        status, body = http_post(f"{server}/api/auth/register/", {"username": username, "password": password})
        if status not in (201, 400):  # 400: probably already registered; the token request will tell
            raise SystemExit(f"register failed: {status} {body}")
    status, body = http_post(f"{server}/api/auth/token/", {"username": username, "password": password})
    if status != 200:
        raise SystemExit(f"token request failed: {status} {body}")
    return body["token"]


class Connection:
    """One WebSocket connection: send requests, match responses by request_id, keep pushes aside."""

    def __init__(self, websocket: Any, trace: bool) -> None:
        self.websocket = websocket
        self.trace = trace
        self.ids = itertools.count(1)
        self.pushes: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        if self.trace:
            print(">", json.dumps(frame), file=sys.stderr)
        await self.websocket.send(json.dumps(frame))

    async def receive(self, timeout: float = 10) -> dict[str, Any]:
        frame = json.loads(await asyncio.wait_for(self.websocket.recv(), timeout))
        if self.trace:
            print("<", json.dumps(frame), file=sys.stderr)
        return frame

    async def request(self, action: str, **params: Any) -> dict[str, Any]:
        """Send one request and wait for its response (exactly one arrives); raise on an error status."""
        request_id = params.pop("request_id", next(self.ids))
        await self.send({"action": action, "request_id": request_id, **params})
        while True:
            frame = await self.receive()
            if "response_status" not in frame:
                self.pushes.append(frame)  # a push (no response_status) that arrived first
            elif frame["request_id"] == request_id:
                if frame["response_status"] >= 400:
                    raise RuntimeError(f"{action} failed: {frame['response_status']} {frame['errors']}")
                return frame

    async def next_push(self) -> dict[str, Any]:
        if self.pushes:
            return self.pushes.pop(0)
        while "response_status" in (frame := await self.receive()):
            pass  # responses to requests we no longer wait for
        return frame


async def run(server: str, token: str, room_name: str, text: str, after_seq: int | None, trace: bool) -> list[dict[str, Any]]:
    """Join the room, resume its stream after after_seq (default: its newest message), post `text`.

    Returns the messages received, ending with our own.
    """
    ws_url = server.replace("http", "ws", 1) + "/ws/chat/room/"
    # Native clients authenticate with the header (browsers use ?token=<key> instead).
    async with connect(ws_url, additional_headers={"Authorization": f"Token {token}"}) as websocket:
        ws = Connection(websocket, trace)
        found = await ws.request("list", name=room_name)
        if found["data"]["results"]:
            room = found["data"]["results"][0]
        else:
            room = (await ws.request("create", data={"name": room_name}))["data"]
        if after_seq is None:
            after_seq = room["last_message"]["seq"] if room["last_message"] else 0
        await ws.request("join_room", pk=room["pk"])
        # One subscription per room; its request_id tags every message event of the room.
        stream = f"messages-{room['pk']}"
        await ws.request("subscribe_to_messages_in_room", pk=room["pk"], request_id=stream, after_seq=after_seq)
        client_id = uuid.uuid4().hex  # resend with the same client_id after a lost response: no duplicate
        sent = (await ws.request("create_message", room=room["pk"], message=text, client_id=client_id))["data"]
        received = []
        last_seq = after_seq  # remember this per room: reconnect with after_seq=last_seq to miss nothing
        while True:
            push = await ws.next_push()
            if push["action"] == "create" and push["request_id"] == stream:
                message = push["data"]
                last_seq = max(last_seq, message["seq"])
                received.append(message)
                if message["id"] == sent["id"]:
                    return received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="http://localhost:8000")
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--room", default="lobby")
    parser.add_argument("--message", default="hello from client.py")
    parser.add_argument("--after-seq", type=int, default=None, help="replay messages after this seq (default: only new ones)")
    parser.add_argument("--register", action="store_true", help="create the account first")
    parser.add_argument("--trace", action="store_true", help="print every frame on stderr")
    args = parser.parse_args()
    server = args.server.rstrip("/")
    token = get_token(server, args.username, args.password, args.register)
    for message in asyncio.run(run(server, token, args.room, args.message, args.after_seq, args.trace)):
        print(json.dumps(message))


if __name__ == "__main__":
    main()
