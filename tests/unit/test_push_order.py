"""ProtocolConsumer.push: frames written at once when the server offers it, and nothing a connection sends overtakes another."""

import asyncio
from typing import Any

import pytest

from chat.ws.protocol import ProtocolConsumer

pytestmark = pytest.mark.asyncio


class Server:
    """An ASGI send() with mysite.serve's synchronous `text_frames`, which can be told to refuse frames."""

    def __init__(self, *, offers_text_frames: bool = True) -> None:
        self.wire: list[str] = []
        self.refused: set[str] = set()
        if offers_text_frames:
            self.text_frames = self._text_frames

    def _text_frames(self, texts: tuple[str, ...]) -> bool:
        if self.refused.intersection(texts):
            return False  # all or nothing, as mysite.serve's
        self.wire.extend(texts)
        return True

    async def __call__(self, message: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # an awaited send may yield (another server, a busy transport)
        self.wire.append(message.get("text") or message["type"])


async def connected(server: Server) -> ProtocolConsumer:
    """A consumer wired to `server` as ProtocolConsumer.__call__ wires it, without a socket to read."""
    consumer = ProtocolConsumer()
    consumer._asgi_send = server
    consumer._text_frames = getattr(server, "text_frames", None)
    return consumer


async def settle(turns: int = 20) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def test_pushed_frames_are_written_at_once_when_the_server_offers_it() -> None:
    server = Server()
    consumer = await connected(server)
    consumer.push("a")
    consumer.push("b", "c")
    assert server.wire == ["a", "b", "c"]  # no await, no task: written in the caller's turn
    assert consumer._outbox is None


async def test_a_refused_frame_holds_back_every_later_send_until_it_went_out() -> None:
    server = Server()
    consumer = await connected(server)
    consumer.push("a")
    server.refused.add("b2")  # e.g. a frame for autobahn's own path
    consumer.push("b1", "b2")
    consumer.push("c")  # the server would take it now, but it must not overtake b1 and b2
    await consumer.send_json({"response_status": 200})  # a reply (Channels' base_send) queues too
    await consumer.close(code=4000)
    assert server.wire == ["a"]
    await settle()
    assert server.wire == ["a", "b1", "b2", "c", '{"response_status": 200}', "websocket.close"]
    assert consumer._outbox is None  # drained: the next frame goes straight out again
    consumer.push("d")
    assert server.wire[-1] == "d"


async def test_without_text_frames_every_push_goes_through_the_awaited_send_in_order() -> None:
    server = Server(offers_text_frames=False)  # uvicorn, Channels' test communicator
    consumer = await connected(server)
    for text in ("a", "b", "c"):
        consumer.push(text)
    await consumer.send_json({"n": 1})
    await settle()
    assert server.wire == ["a", "b", "c", '{"n": 1}']


async def test_without_text_frames_one_task_drains_every_connections_outbox() -> None:
    """A fan-out under such a server costs no task per subscriber: the loop's one outbox task sends them all."""
    servers = [Server(offers_text_frames=False) for _ in range(50)]
    consumers = [await connected(server) for server in servers]
    tasks_before = len(asyncio.all_tasks())
    for consumer in consumers:
        consumer.push("event")
    assert len(asyncio.all_tasks()) - tasks_before <= 1
    await settle(turns=200)  # a turn per send (Server yields in each)
    assert all(server.wire == ["event"] for server in servers)
