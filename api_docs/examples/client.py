"""A minimal Python client of the chat API: HTTP for the token, then the official client library (clients/python).

    pip install ./clients/python        # chat-rooms-client: asyncio + websockets
    python client.py --server http://localhost:8000 --username alice --password '...' \
        --room lobby --message "hello" [--register] [--after-seq N] [--trace]

It gets an API token, connects to /ws/chat/room/, finds or creates the room, joins it,
subscribes to its messages (replaying those after --after-seq), sends one message
(`create_message` with a client_id, resent unchanged after a reconnect), waits for its
own `create` event and prints, as one JSON line each, every message it received. With
--trace it also prints every frame sent (">") and received ("<") on stderr. The library
reconnects by itself and resumes after the last seq seen: see clients/python/README.md.
"""

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

try:
    from chat_rooms_client import ChatClient
except ImportError:  # run from a checkout without installing the library
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python" / "src"))
    from chat_rooms_client import ChatClient


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


def trace_frame(direction: str, frame: dict[str, Any]) -> None:
    print(direction, json.dumps(frame), file=sys.stderr)


async def run(server: str, token: str, room_name: str, text: str, after_seq: int | None, trace: bool) -> list[dict[str, Any]]:
    """Join the room, resume its stream after after_seq (default: its newest message), post `text`.

    Returns the messages received, ending with our own.
    """
    ws_url = server.replace("http", "ws", 1) + "/ws/chat/room/"
    received: list[dict[str, Any]] = []
    # Native clients authenticate with the header (browsers use ?token=<key> instead).
    chat = ChatClient(ws_url, headers={"Authorization": f"Token {token}"}, trace=trace_frame if trace else None)
    chat.on("message", lambda event: received.append(event["message"]) if event["action"] == "create" else None)
    async with chat:
        found = await chat.list_rooms(name=room_name)
        room = found["results"][0] if found["results"] else await chat.create_room(room_name)
        if after_seq is None:
            after_seq = room["last_message"]["seq"] if room["last_message"] else 0
        await chat.join_room(room["pk"])
        # Stored messages after after_seq first, then live ones; the library remembers the
        # last seq seen and resumes from it after a reconnect.
        await chat.subscribe_to_messages(room["pk"], after_seq=after_seq)
        sent = await chat.create_message(room["pk"], text)
        async with asyncio.timeout(10):
            while not any(message["id"] == sent["id"] for message in received):
                await asyncio.sleep(0.01)
    return received[: next(i for i, message in enumerate(received) if message["id"] == sent["id"]) + 1]


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
