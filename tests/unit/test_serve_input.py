"""mysite.serve's input: a client's whole text frames parsed by BoundedWebSocketProtocol.processData, as autobahn would.

Each byte stream goes through two open connections, one with the fast path and one with
autobahn's parser alone; the application must see the same messages, and a faulty client
the same close code, from both.
"""

import struct
from dataclasses import dataclass
from typing import Any

import pytest

from mysite.serve import plain_text_input_allowed, unmask, whole_text_frame
from tests.unit.test_serve_frames import open_protocol

MASK = b"\x37\xfa\x21\x3d"
TEXT, BINARY, CONTINUATION, CLOSE, PING = 0x1, 0x2, 0x0, 0x8, 0x9


def client_frame(
    payload: bytes, opcode: int = TEXT, *, fin: bool = True, rsv: int = 0, masked: bool = True, length_bytes: int | None = None
) -> bytes:
    """A client's frame (RFC 6455 §5.2), with the length in 7, 16 or 64 bits (the shortest unless length_bytes says)."""
    length = len(payload)
    length_bytes = length_bytes if length_bytes is not None else (0 if length < 126 else 2 if length < 65536 else 8)
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    mask_bit = 0x80 if masked else 0
    if length_bytes == 0:
        head += bytes([mask_bit | length])
    elif length_bytes == 2:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    return head + MASK + unmask(payload, MASK) if masked else head + payload


def close_code(written: bytes) -> int | None:
    """The status code of the first close frame the server wrote, if any (server frames are unmasked)."""
    offset = 0
    while offset + 2 <= len(written):
        opcode, length = written[offset] & 0x0F, written[offset + 1] & 0x7F
        start = offset + 2 + (2 if length == 126 else 8 if length == 127 else 0)
        if length >= 126:
            length = int.from_bytes(written[offset + 2 : start], "big")
        if opcode == CLOSE:
            return int.from_bytes(written[start : start + 2], "big") if length >= 2 else None
        offset = start + length
    return None


@dataclass
class Outcome:
    messages: list[tuple[bytes, bool]]  # what daphne's onMessage got: (payload, is binary)
    close_code: int | None  # of the close frame the server sent, if it sent one
    state: int
    failed: bool  # the server failed the connection (autobahn's failedByMe): a drop or a close for a fault
    parsed: int  # frames autobahn's parser began

    def seen_from_outside(self) -> tuple[Any, ...]:
        return self.messages, self.close_code, self.state, self.failed


def feed(stream: bytes, chunk: int, *, fast: bool, limit: int = 2**17) -> Outcome:
    """Deliver `stream` in chunks of `chunk` bytes to a connection taking messages of up to `limit` bytes."""
    protocol, transport = open_protocol(maxMessagePayloadSize=limit, maxFramePayloadSize=limit)
    protocol.plain_text_input = fast and plain_text_input_allowed(protocol)
    # autobahn drops a connection that fails again while closing; a TCP transport takes that, the test one raises.
    transport.unregisterProducer = lambda: None  # type: ignore[method-assign]
    received: list[tuple[bytes, bool]] = []
    protocol.onMessage = lambda payload, is_binary: received.append((payload, is_binary))
    parsed = [0]
    frame_begin = protocol.onFrameBegin

    def counting_frame_begin() -> None:
        parsed[0] += 1
        frame_begin()

    protocol.onFrameBegin = counting_frame_begin
    for offset in range(0, len(stream), chunk):
        if protocol.state == protocol.STATE_CLOSED:
            break
        protocol.dataReceived(stream[offset : offset + chunk])
    return Outcome(received, close_code(transport.value()), protocol.state, protocol.failedByMe, parsed[0])


# Connections with a lower limit than feed()'s: a frame of a 16-bit length over it.
LIMITS = {"over the message limit": 1000}
ASCII, UNICODE = b'{"action": "create_message", "request_id": 1, "message": "hi"}', "é€ 😀 ünï".encode()
STREAMS: dict[str, bytes] = {
    "one text": client_frame(ASCII),
    "utf-8 text": client_frame(UNICODE),
    "empty text": client_frame(b""),
    "125 bytes": client_frame(b"x" * 125),
    "126 bytes (16-bit length)": client_frame(b"y" * 126),
    "65535 bytes": client_frame(b"z" * 65535),
    "65536 bytes (64-bit length)": client_frame(b"w" * 65536),
    "three in a row": client_frame(ASCII) + client_frame(UNICODE) + client_frame(b"x" * 300),
    "fragmented, a ping between": client_frame(b"part one ", fin=False)
    + client_frame(b"ping", PING)
    + client_frame(b"and two", CONTINUATION),
    "binary": client_frame(b"\x00\xff", BINARY),
    "text after binary": client_frame(b"\x00\xff", BINARY) + client_frame(ASCII),
    "invalid utf-8": client_frame(ASCII) + client_frame(b"ok \xc3\x28 no"),
    "truncated utf-8": client_frame("ü".encode()[:1]),
    "unmasked": client_frame(ASCII, masked=False),
    "rsv bit": client_frame(ASCII, rsv=4),
    "16-bit length not minimal": client_frame(b"short", length_bytes=2),
    "over the message limit": client_frame(b"x" * (LIMITS["over the message limit"] + 1)),
    "close": client_frame(struct.pack("!H", 1000), CLOSE) + client_frame(ASCII),
}


@pytest.mark.parametrize("chunk", [1, 7, 1 << 20], ids=["byte by byte", "7 bytes at a time", "at once"])
@pytest.mark.parametrize("name", list(STREAMS))
def test_the_application_sees_what_autobahn_would_deliver(name: str, chunk: int) -> None:
    stream = STREAMS[name]
    limit = LIMITS.get(name, 2**17)
    fast, autobahn = feed(stream, chunk, fast=True, limit=limit), feed(stream, chunk, fast=False, limit=limit)
    assert fast.seen_from_outside() == autobahn.seen_from_outside()


@pytest.mark.parametrize("name", ["one text", "utf-8 text", "125 bytes", "126 bytes (16-bit length)", "65535 bytes", "three in a row"])
def test_whole_text_frames_skip_autobahns_parser(name: str) -> None:
    outcome = feed(STREAMS[name], 1 << 20, fast=True)
    assert outcome.messages and not outcome.failed
    assert outcome.parsed == 0


def test_faulty_clients_are_failed_and_fragments_joined() -> None:
    """The comparison above would pass if both sides got nothing: pin what they get."""
    for name in ["invalid utf-8", "truncated utf-8", "unmasked", "rsv bit", "16-bit length not minimal", "over the message limit"]:
        outcome = feed(STREAMS[name], 1 << 20, fast=True, limit=LIMITS.get(name, 2**17))
        assert outcome.failed, name
        assert outcome.messages == ([(ASCII, False)] if name == "invalid utf-8" else []), name
    assert feed(STREAMS["fragmented, a ping between"], 1 << 20, fast=True).messages == [(b"part one and two", False)]
    assert feed(STREAMS["binary"], 1 << 20, fast=True).messages == [(b"\x00\xff", True)]


@pytest.mark.parametrize("attribute", ["_perMessageCompress", "trackedTimings", "logFrames"])
def test_connections_autobahn_must_parse_keep_its_parser(attribute: str) -> None:
    protocol, _ = open_protocol()
    setattr(protocol, attribute, object())
    assert not plain_text_input_allowed(protocol)


def test_whole_text_frame_needs_the_whole_frame() -> None:
    frame = client_frame(b"x" * 200)
    assert whole_text_frame(frame) == (8, len(frame))
    assert whole_text_frame(frame[:-1]) is None
    assert whole_text_frame(frame + b"\x81") == (8, len(frame))


def test_unmask_is_its_own_inverse_and_keeps_leading_zero_bytes() -> None:
    payload = b"\x00\x00abc\x00" * 3
    assert unmask(unmask(payload, MASK), MASK) == payload
    assert unmask(b"", MASK) == b""
    assert unmask(MASK, MASK) == b"\x00" * 4


class PendingCall:
    cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "autobahn"])
def test_a_text_frame_counts_as_the_answer_to_a_pending_ping(fast: bool) -> None:
    """daphne pings idle clients and drops those that do not answer in time; any data frame answers (autobahn)."""
    protocol, _ = open_protocol()
    protocol.plain_text_input = fast
    protocol.onMessage = lambda payload, is_binary: None
    protocol.autoPingTimeoutCall = timeout = PendingCall()
    protocol.autoPingPendingCall = None
    protocol.dataReceived(client_frame(ASCII))
    assert timeout.cancelled and protocol.autoPingTimeoutCall is None
