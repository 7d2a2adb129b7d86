"""A closed WebSocket's protocol, transport and input queue are freed by reference counting, not the cyclic collector.

While 10,000 connections open, each full collection walks them all (0.3-0.6 s of the event loop,
bench/README.md, session 9); a closed connection left in a reference cycle waits for one of those
passes, with its transport, validators and queue: about 50 objects per connection. Here a
connection is opened with a real handshake through mysite.serve's server and protocol, closed,
and must be gone with the collector off.
"""

import asyncio
import gc
import weakref
from typing import Any

import pytest
from daphne.http_protocol import HTTPFactory
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from mysite.serve import BoundedWebSocketFactory, BoundedWebSocketProtocol, LoggingServer

HANDSHAKE = (
    b"GET /ws/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def echo_until_disconnect(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI WebSocket application that accepts and ends at the disconnect."""
    while (message := await receive())["type"] != "websocket.disconnect":
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})


@pytest.mark.asyncio
async def test_a_closed_websocket_leaves_nothing_for_the_cyclic_collector() -> None:
    server = LoggingServer(application=echo_until_disconnect, endpoints=["tcp:port=0:interface=127.0.0.1"])  # never listens
    # What Server.run() sets up before listening: the connections and the two factories.
    server.connections = {}
    server.http_factory = HTTPFactory(server)
    server.ws_factory = BoundedWebSocketFactory(server)
    server.ws_factory.setProtocolOptions(maxMessagePayloadSize=2**20, maxFramePayloadSize=2**20)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
    gc.collect()
    gc.disable()  # from here on only reference counting frees anything
    try:
        # As a socket's bytes arrive: the HTTP channel hands the upgrade to a WebSocket protocol.
        channel = server.http_factory.buildProtocol(transport.getPeer())
        channel.makeConnection(transport)
        channel.dataReceived(HANDSHAKE)
        del channel
        protocol = vars(transport).pop("protocol")  # daphne's upgrade sets it, as on a socket's transport
        assert isinstance(protocol, BoundedWebSocketProtocol)
        for _ in range(10):  # the application accepts on the event loop
            await asyncio.sleep(0)
        assert protocol.state == protocol.STATE_OPEN, transport.value()
        assert transport.value().startswith(b"HTTP/1.1 101")
        application = server.connections[protocol]["application_instance"]
        # The peer went away (twisted's tcp.Connection.connectionLost has let go of the protocol, as above).
        protocol.connectionLost(Failure(ConnectionDone()))
        await application
        del server.connections[protocol]  # as daphne's application checker does once the application is done
        gone = [weakref.ref(obj) for obj in (protocol, transport)]
        del protocol, transport, application
        assert [ref() for ref in gone] == [None, None]
    finally:
        gc.enable()
