"""Server CPU per text frame from an ASGI send() to the socket: `python -m bench.frame_write [connections] [events]`.

mysite.serve's daphne (LoggingServer, BoundedWebSocketProtocol) serves a bare ASGI app on
loopback; a client process (pinned to CPU 1 when there are two) opens the connections and only
counts bytes. The app then sends `events` rounds of one 300-byte text frame to every connection,
as a fan-out does, and prints the server process's CPU per frame (best of 3 rounds). No Django,
Channels, database or layer: bench.frame_cost measures the project's own per-frame Python; this
measures daphne, autobahn, Twisted and the socket writes under it. `--raw` serves the same with
websockets' `broadcast` (the ceiling bench.raw stands for) to give the ratio.

`--read` measures the other way: every client sends `events` rounds of one masked 150-byte text
frame, a frame per connection per round as posting clients do, and the server prints its CPU per
frame received, from the socket to the ASGI receive(). `--autobahn` parses them with autobahn's
frame parser alone (mysite.serve's BoundedWebSocketProtocol.processData off), to give what it saves.
"""

import asyncio
import os
import socket
import subprocess
import sys
import time
from typing import Any, cast

CLIENT_FRAME = b'{"action": "create_message", "request_id": 12345, "room": 17, "message": "' + b"x" * 80 + b'"}'
FRAME = '{"action": "create", "request_id": "r1", "data": {"id": 1, "room": 1, "seq": 1, "text": "' + "x" * 220 + '"}}'
ROUNDS = 3


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu})


async def clients(port: int, connections: int, expected_bytes: int, send_rounds: int = 0) -> None:
    """Open the connections, then read until `expected_bytes` arrived on each (or the server closes);
    with `send_rounds`, first send that many rounds of one masked CLIENT_FRAME per connection."""
    done = asyncio.get_running_loop().create_future()
    remaining = [connections]
    opened: list[asyncio.Transport] = []

    class Reader(asyncio.Protocol):
        def __init__(self) -> None:
            self.received = 0
            self.handshake = True

        def connection_made(self, transport: Any) -> None:
            opened.append(transport)
            transport.write(
                b"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1\r\n\r\n"
            )

        def data_received(self, data: bytes) -> None:
            if self.handshake:
                head, _, data = data.partition(b"\r\n\r\n")
                self.handshake = False
            self.received += len(data)
            if self.received >= expected_bytes:
                self.finish()

        def connection_lost(self, exc: Exception | None) -> None:
            self.finish()

        def finish(self) -> None:
            if self.received >= 0:
                self.received = -1
                remaining[0] -= 1
                if not remaining[0] and not done.done():
                    done.set_result(None)

    loop = asyncio.get_running_loop()
    for _ in range(100):  # until the server listens
        try:
            await loop.create_connection(Reader, "127.0.0.1", port)
            break
        except ConnectionRefusedError:
            await asyncio.sleep(0.1)
    for n in range(1, connections):
        await loop.create_connection(Reader, "127.0.0.1", port)
        if n % 100 == 99:
            await asyncio.sleep(0.05)
    if send_rounds:
        from mysite.serve import unmask

        await asyncio.sleep(1.0)  # every handshake answered
        mask = b"\x37\xfa\x21\x3d"
        masked = unmask(CLIENT_FRAME, mask)  # masking is the same XOR
        frame = bytes((0x81, 0x80 | 126)) + len(CLIENT_FRAME).to_bytes(2, "big") + mask + masked
        for _ in range(send_rounds):
            for transport in opened:
                transport.write(frame)
            await asyncio.sleep(0.002)
    await done


def serve_daphne(port: int, connections: int, events: int, read: bool = False) -> None:
    from mysite import serve

    sends: list[Any] = []
    ready = asyncio.Event()
    received = [0, 0.0]  # frames, process CPU at the first

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        sends.append(send)
        if len(sends) == connections and not read:
            ready.set()
        while (await receive())["type"] != "websocket.disconnect":
            if not received[0]:
                received[1] = time.process_time()
            received[0] += 1
            if received[0] == connections * events:
                cpu = (time.process_time() - received[1]) / (received[0] - 1) * 1e6
                print(f"daphne{' (autobahn parsing)' if not serve.BoundedWebSocketProtocol.plain_text_input else ''}: "
                      f"{cpu:.2f} us of server CPU per frame received", flush=True)  # fmt: skip
                # Then as many frames back, so that the clients (which wait for bytes) finish.
                for other in sends:
                    await other({"type": "websocket.send", "text": FRAME * ROUNDS})
                reactor.callLater(0.5, reactor.stop)

    async def fan_out() -> None:
        await ready.wait()
        await asyncio.sleep(0.5)
        print(f"daphne: {run_rounds_report(await run_rounds(sends, events))}", flush=True)
        reactor.callLater(0.5, reactor.stop)

    serve.open_database_pool = lambda: None  # no database here
    server = serve.LoggingServer(application=app, endpoints=[f"tcp:port={port}:interface=127.0.0.1"], signal_handlers=False)
    from twisted.internet import reactor as installed
    from twisted.internet.base import ReactorBase

    reactor = cast(ReactorBase, installed)  # typed as a module; the installed reactor is a ReactorBase
    reactor.callWhenRunning(lambda: asyncio.ensure_future(fan_out()))
    server.run()


async def run_rounds(sends: list[Any], events: int) -> list[float]:
    """Microseconds of process CPU per frame, per round of `events` frames to every connection."""
    results = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(events):
            for send in sends:
                await send({"type": "websocket.send", "text": FRAME})
            await asyncio.sleep(0)  # one event per loop turn, as the fan-out's reader delivers them
        results.append((time.process_time() - started) / (events * len(sends)) * 1e6)
        await asyncio.sleep(0.3)
    return results


def run_rounds_report(results: list[float]) -> str:
    return f"{min(results):.2f} us of server CPU per frame (best of {ROUNDS}; all: {', '.join(f'{r:.2f}' for r in results)})"


def serve_raw(port: int, connections: int, events: int) -> None:
    from websockets.asyncio.server import broadcast, serve

    async def main() -> None:
        peers: list[Any] = []
        ready = asyncio.Event()

        async def handler(websocket: Any) -> None:
            peers.append(websocket)
            if len(peers) == connections:
                ready.set()
            await websocket.wait_closed()

        async with serve(handler, "127.0.0.1", port, compression=None):
            await ready.wait()
            await asyncio.sleep(0.5)
            results = []
            for _ in range(ROUNDS):
                started = time.process_time()
                for _ in range(events):
                    broadcast(peers, FRAME)
                    await asyncio.sleep(0)
                results.append((time.process_time() - started) / (events * len(peers)) * 1e6)
                await asyncio.sleep(0.3)
            print(f"raw websockets: {run_rounds_report(results)}", flush=True)

    asyncio.run(main())


def main() -> None:
    args = [arg for arg in sys.argv[1:] if not arg.startswith("--")]
    raw, read = "--raw" in sys.argv, "--read" in sys.argv
    connections, events = (int(arg) for arg in (args + ["1000", "20"][len(args) :])[:2])
    if os.environ.get("FRAME_WRITE_CLIENT"):
        port, expected = int(os.environ["FRAME_WRITE_CLIENT"]), int(os.environ["FRAME_WRITE_BYTES"])
        pin(1)
        asyncio.run(clients(port, connections, expected, send_rounds=events if read else 0))
        return
    if "--autobahn" in sys.argv:
        from mysite.serve import BoundedWebSocketProtocol

        BoundedWebSocketProtocol.plain_text_input = False
    pin(0)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    frame_bytes = len(FRAME.encode()) + 4  # 126..65535 bytes: a 4-byte header
    expected = len(FRAME.encode()) * ROUNDS + 4 if read else frame_bytes * events * ROUNDS  # --read: one frame back
    env = dict(os.environ, FRAME_WRITE_CLIENT=str(port), FRAME_WRITE_BYTES=str(expected))
    client = subprocess.Popen([sys.executable, "-m", "bench.frame_write", *sys.argv[1:]], env=env)
    try:
        if raw:
            serve_raw(port, connections, events)
        else:
            serve_daphne(port, connections, events, read=read)
    finally:
        client.wait(timeout=60)


if __name__ == "__main__":
    main()
