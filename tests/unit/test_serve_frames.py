"""mysite.serve's text frames: written by BoundedWebSocketProtocol.send_text_frame, byte for byte autobahn's."""

from typing import Any, cast

import pytest
from autobahn.websocket.protocol import WebSocketProtocol as AutobahnProtocol
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from mysite.serve import (
    CLOSE_SLOW_CONSUMER,
    BoundedWebSocketFactory,
    BoundedWebSocketProtocol,
    LoggingServer,
    WebSocketSend,
    plain_text_frames_allowed,
)

TEXTS = ["a", "x" * 125, "é" * 63, "x" * 126, "€" * 21845, "y" * 65536, '{"action": "create", "data": {"text": "ü"}}']


def open_protocol(**options: Any) -> tuple[BoundedWebSocketProtocol, StringTransport]:
    """An open server-side connection over an in-memory transport, with daphne's options and `options`."""
    factory = BoundedWebSocketFactory(server_class=None)
    factory.setProtocolOptions(maxMessagePayloadSize=2**20, maxFramePayloadSize=2**20)
    for name, value in options.items():  # the connection copies them (logFrames & co. are no setProtocolOptions)
        setattr(factory, name, value)
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 8000))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 50000))
    protocol.makeConnection(transport)
    # What autobahn's server handshake sets as it opens the connection, and onOpen after it.
    protocol.state = protocol.STATE_OPEN
    protocol.websocket_version, protocol.inside_message, protocol.current_frame = 13, False, None
    protocol.plain_text_frames = plain_text_frames_allowed(protocol)
    return protocol, transport


def autobahn_frame(protocol: BoundedWebSocketProtocol, transport: StringTransport, text: str) -> bytes:
    transport.clear()
    AutobahnProtocol.sendMessage(protocol, text.encode(), False)
    return transport.value()


@pytest.mark.parametrize("text", TEXTS, ids=lambda text: f"{len(text.encode())}B")
def test_a_text_frame_is_the_bytes_autobahn_would_send(text: str) -> None:
    """Fails should autobahn frame a server's text message differently (2, 4 and 10 byte headers, UTF-8)."""
    protocol, transport = open_protocol()
    assert protocol.plain_text_frames
    expected = autobahn_frame(protocol, transport, text)
    transport.clear()
    assert protocol.send_text_frame(text)
    assert transport.value() == expected


def test_several_texts_are_autobahns_frames_back_to_back_in_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """WebSocketSend.text_frames, as a replay's slice uses it: each text its own frame, all in one write."""
    protocol, transport = open_protocol()
    expected = b"".join(autobahn_frame(protocol, transport, text) for text in TEXTS)
    transport.clear()
    writes: list[bytes] = []
    monkeypatch.setattr(protocol, "sendData", lambda data, sync=False, chopsize=None: writes.append(data))
    assert WebSocketSend(cast(LoggingServer, None), protocol).text_frames(TEXTS)
    assert writes == [expected]


def test_texts_with_one_over_the_size_limit_are_all_left_to_daphnes_path() -> None:
    protocol, transport = open_protocol()
    assert not protocol.send_text_frames(["a", "x" * (2**20 + 1)])
    assert transport.value() == b""


@pytest.mark.parametrize("options", [{"autoFragmentSize": 64}, {"logFrames": True}, {"logOctets": True}, {"maskServerFrames": True}])
def test_connections_autobahn_would_frame_otherwise_keep_autobahns_path(options: dict[str, Any]) -> None:
    protocol, transport = open_protocol(**options)
    assert not protocol.plain_text_frames
    assert not protocol.send_text_frame("x" * 100)
    assert transport.value() == b""


@pytest.mark.parametrize("attribute", ["_perMessageCompress", "trackedTimings"])
def test_compression_or_timings_keep_autobahns_path(attribute: str) -> None:
    """permessage-deflate negotiated, or timings tracked (setTrackTimings)."""
    protocol, _ = open_protocol()
    setattr(protocol, attribute, object())
    assert not plain_text_frames_allowed(protocol)


def test_a_message_over_the_size_limit_is_left_to_autobahn_which_refuses_it() -> None:
    protocol, transport = open_protocol()
    assert not protocol.send_text_frame("x" * (2**20 + 1))
    assert transport.value() == b""


def test_no_frame_once_closing() -> None:
    protocol, transport = open_protocol()
    protocol.state = protocol.STATE_CLOSING
    assert not protocol.send_text_frame("x")
    assert transport.value() == b""


def test_a_slow_consumer_is_closed_instead_of_sent_more(monkeypatch: pytest.MonkeyPatch) -> None:
    protocol, transport = open_protocol()
    closes: list[int | None] = []
    monkeypatch.setattr(protocol, "backlog_bytes", lambda: 10**9)
    monkeypatch.setattr(protocol, "sendClose", lambda code=None, reason=None: closes.append(code))
    assert protocol.send_text_frame("x")
    assert protocol.slow_consumer_closed and closes == [CLOSE_SLOW_CONSUMER]
    assert transport.value() == b""
    assert not protocol.send_text_frame("x")  # then daphne's path, which drops it (serverSend)


@pytest.mark.asyncio
async def test_a_consumers_text_skips_daphne_and_autobahn_and_the_rest_goes_through_daphne(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LoggingServer.handle_websocket_reply, the send() of every WebSocket consumer."""
    protocol, transport = open_protocol()
    expected = autobahn_frame(protocol, transport, "hello")
    transport.clear()
    server = LoggingServer(application=None, endpoints=["tcp:port=0:interface=127.0.0.1"])
    server.connections = {protocol: {}}

    def no_autobahn(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("went through autobahn's sendMessage")

    monkeypatch.setattr(AutobahnProtocol, "sendMessage", no_autobahn)
    await server.handle_websocket_reply(protocol, {"type": "websocket.send", "text": "hello"})
    assert transport.value() == expected
    closes: list[int | None] = []
    monkeypatch.setattr(protocol, "serverClose", lambda code=None: closes.append(code))
    await server.handle_websocket_reply(protocol, {"type": "websocket.close", "code": 4000})
    assert closes == [4000]
    # daphne's own checks still apply to what it handles: text and bytes together are refused.
    with pytest.raises(ValueError):
        await server.handle_websocket_reply(protocol, {"type": "websocket.send", "text": "a", "bytes": b"b"})


def test_the_handshakes_http_channel_and_request_are_freed_without_the_cyclic_collector() -> None:
    """As daphne's upgrade leaves them: the channel (the socket's producer) and its request refer to each
    other; mysite.serve lets go of them so that reference counting frees them, not a full collection later."""
    import gc
    import weakref

    from twisted.web.http import HTTPChannel, Request

    from mysite.serve import release_handshake_channel

    channel = HTTPChannel()
    channel.transport = StringTransport()  # type: ignore[assignment]  # twisted's stub: ITransport
    request = Request(channel)  # daphne's WebRequest is one
    channel.requests.append(request)
    transport = StringTransport()
    transport.registerProducer(channel, True)
    handshake_objects: list[weakref.ref[Any]] = [weakref.ref(channel), weakref.ref(request)]
    gc.disable()
    try:
        del channel, request
        release_handshake_channel(transport)
        assert transport.producer is None
        assert [ref() for ref in handshake_objects] == [None, None]
    finally:
        gc.enable()
