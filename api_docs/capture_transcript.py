"""Record a real session with a running server and write it as Markdown (api_docs/transcript.md).

    python api_docs/capture_transcript.py --server http://localhost:8000 [--out api_docs/transcript.md]

Two new users (alice-XXXX and bob-XXXX) register over HTTP, connect over WebSocket and
go through the main flows: online users, create/join a room, presence, typing,
messages with a client_id and its safe retry, an edit, a refused edit, a reconnect
that resumes with after_seq, a deletion, and two bad frames. Every frame sent and
received is recorded as it went over the wire; tokens are never written out.
"""

import argparse
import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

Frame = dict[str, Any]
Record = tuple[float, str, str, Any]  # (seconds since start, who, ">" sent or "<" received, frame)


def http_post(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


class Peer:
    """One recorded WebSocket connection."""

    def __init__(self, who: str, websocket: Any, log: list[Record], start: float) -> None:
        self.who, self.websocket, self.log, self.start = who, websocket, log, start
        self.inbox: list[Frame] = []
        self.arrived = asyncio.Condition()
        self.reader = asyncio.get_running_loop().create_task(self._read())
        self.ids = 0

    async def _read(self) -> None:
        async for raw in self.websocket:
            frame = json.loads(raw)
            self.log.append((time.monotonic() - self.start, self.who, "<", frame))
            async with self.arrived:
                self.inbox.append(frame)
                self.arrived.notify_all()

    async def send_raw(self, text: str) -> None:
        self.log.append((time.monotonic() - self.start, self.who, ">", text))
        await self.websocket.send(text)

    async def send(self, frame: Frame) -> None:
        self.log.append((time.monotonic() - self.start, self.who, ">", frame))
        await self.websocket.send(json.dumps(frame))

    async def expect(self, matches: Callable[[Frame], bool], timeout: float = 5) -> Frame:
        """Wait for (and consume) the first received frame that matches."""
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: any(matches(f) for f in self.inbox)), timeout)
            frame = next(f for f in self.inbox if matches(f))
            self.inbox.remove(frame)
            return frame

    async def request(self, action: str, **params: Any) -> Frame:
        self.ids += 1
        request_id = params.pop("request_id", self.ids)
        await self.send({"action": action, "request_id": request_id, **params})
        return await self.expect(lambda f: "response_status" in f and f.get("request_id") == request_id)

    async def close(self) -> None:
        await self.websocket.close()
        await self.reader


async def capture(server: str) -> list[Record]:
    """Run the scripted session; return every frame in the order it was sent or received."""
    log: list[Record] = []
    suffix = uuid.uuid4().hex[:6]
    tokens = {}
    for name in ("alice", "bob"):
        credentials = {"username": f"{name}-{suffix}", "password": f"pass phrase {uuid.uuid4().hex}"}
        assert http_post(f"{server}/api/auth/register/", credentials)[0] == 201
        status, body = http_post(f"{server}/api/auth/token/", credentials)
        assert status == 200, body
        tokens[name] = body["token"]
    ws_url = server.replace("http", "ws", 1) + "/ws/chat/room/"
    start = time.monotonic()

    async def open_peer(name: str) -> Peer:
        websocket = await connect(ws_url, additional_headers={"Authorization": f"Token {tokens[name]}"})
        return Peer(name, websocket, log, start)

    def push(action: str, **fields: Any) -> Callable[[Frame], bool]:
        return lambda f: "response_status" not in f and f["action"] == action and all(f.get(k) == v for k, v in fields.items())

    alice = await open_peer("alice")
    await alice.request("subscribe_to_online_users", request_id="online")
    bob = await open_peer("bob")
    await alice.expect(push("user_status", request_id="online"))
    room = (await alice.request("create", data={"name": f"transcript-{suffix}"}))["data"]
    pk = room["pk"]
    await alice.request("join_room", pk=pk)
    await alice.request("subscribe_to_messages_in_room", pk=pk, request_id="room-messages", after_seq=0)
    await bob.request("join_room", pk=pk)
    await bob.request("subscribe_to_messages_in_room", pk=pk, request_id="room-messages", after_seq=0)
    await alice.expect(lambda f: push("presence", room=pk)(f) and len(f["data"]["users"]) == 2)
    await bob.request("typing", pk=pk)
    await alice.expect(push("typing", room=pk))
    first = (await alice.request("create_message", room=pk, message="Hello Bob!", client_id="c-1"))["data"]
    await bob.expect(push("create", request_id="room-messages"))
    await alice.request("create_message", room=pk, message="Hello Bob!", client_id="c-1")  # a safe retry: 200, no event
    await bob.request("update_message", pk=first["id"], message="Bob was here")  # not the author: 403
    await alice.request("update_message", pk=first["id"], message="Hello Bob! (edited)")
    await bob.expect(push("update", request_id="room-messages"))
    await bob.request("list_messages", pk=pk, limit=10)
    last_seq = first["seq"]
    await bob.close()  # bob goes offline; alice keeps talking
    await alice.expect(push("user_status", request_id="online"))
    await alice.request("create_message", room=pk, message="Are you still there?", client_id="c-2")
    bob = await open_peer("bob")
    await bob.request("join_room", pk=pk)
    await bob.request("subscribe_to_messages_in_room", pk=pk, request_id="room-messages", after_seq=last_seq)
    replayed = await bob.expect(push("create", request_id="room-messages"))
    await bob.request("delete_message", pk=first["id"])  # neither author nor host: 403
    await alice.request("delete_message", pk=first["id"])
    await bob.expect(push("delete", request_id="room-messages"))
    await bob.request("fly", pk=pk)
    await bob.send_raw("{this is not JSON")
    await bob.expect(lambda f: f.get("response_status") == 400 and f.get("request_id") is None)
    await bob.request("create_message", room=pk, message=replayed["data"]["text"] + " Yes!", client_id="c-3")
    await alice.expect(push("create", request_id="room-messages"))
    await asyncio.sleep(0.2)  # let in-flight presence pushes land, so the record ends complete
    await bob.close()
    await alice.close()
    return log


def render(log: list[Record], server: str) -> str:
    """The session as Markdown: one block per frame, in wire order."""
    lines = [
        "# Transcript of a real session",
        "",
        "Captured from a running server by `api_docs/capture_transcript.py` (not written by hand).",
        "`>` is a frame the client sent, `<` one it received; times are seconds since the start.",
        "Both clients authenticated with `Authorization: Token <key>` on the handshake (keys not shown).",
        "",
    ]
    for at, who, direction, frame in log:
        body = frame if isinstance(frame, str) else json.dumps(frame, ensure_ascii=False)
        lines.append(f"`{at:6.3f}` **{who}** {'→ sent' if direction == '>' else '← received'}")
        lines.append("")
        lines.append("```json")
        lines.append(body)
        lines.append("```")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--server", default="http://localhost:8000")
    parser.add_argument("--out", default=str(Path(__file__).with_name("transcript.md")))
    args = parser.parse_args()
    server = args.server.rstrip("/")
    Path(args.out).write_text(render(asyncio.run(capture(server)), server), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
