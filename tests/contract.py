"""Contract checks: every WebSocket frame, sent or received, must match api_docs/asyncapi.yaml.

`validate_client_frame` and `validate_server_frame` check one frame against the
message schemas of the AsyncAPI document. `ContractCommunicator` (a channels
`WebsocketCommunicator`) and `ContractWebSocket` (a `websockets` client connection)
check every JSON frame in both directions automatically, so the document cannot
drift from what the server really does. A violation raises AssertionError listing
each mismatch by its path in the frame.

To send a deliberately invalid request (testing the server's 400s), pass
`check=False` to `send_json_to`, or use the raw `send_to`; the response is still checked.
"""

import asyncio
import contextlib
import functools
import json
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import jsonschema
import yaml
from channels.testing import WebsocketCommunicator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from tests import ROOT

ASYNCAPI_PATH = ROOT / "api_docs" / "asyncapi.yaml"
_BASE_URI = "urn:chat-rooms:asyncapi"
# Subscriptions whose pushes carry the subscribing request's request_id, and the pushes each may send.
STREAM_OPERATIONS = {
    "subscribe_to_messages_in_room": "message_stream",
    "subscribe_instance": "room_instance_stream",
    "subscribe_to_online_users": "user_status_change",
    "subscribe_to_my_rooms": "my_rooms_stream",
}

Frame = dict[str, Any]


@functools.cache
def asyncapi_document() -> dict[str, Any]:
    """The parsed AsyncAPI document."""
    return yaml.safe_load(ASYNCAPI_PATH.read_text(encoding="utf-8"))


@functools.cache
def _registry() -> Registry:
    resource = Resource.from_contents(asyncapi_document(), default_specification=DRAFT7)
    return Registry().with_resource(_BASE_URI, resource)


@functools.cache
def _validator(pointer: str) -> jsonschema.Draft7Validator:
    """A validator for the schema at this JSON pointer of the document; its $refs resolve in the document."""
    return jsonschema.Draft7Validator(
        {"$ref": f"{_BASE_URI}#{pointer}"}, registry=_registry(), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def _message_name(ref: dict[str, str]) -> str:
    """`#/channels/room/messages/listRequest` -> the component message it points to (`listRequest`)."""
    channel_message = ref["$ref"].rsplit("/", 1)[-1]
    channel = asyncapi_document()["channels"]["room"]["messages"][channel_message]
    return channel["$ref"].rsplit("/", 1)[-1]


@functools.cache
def request_and_response_messages() -> dict[str, tuple[str, str]]:
    """action name -> (request message, response message), from the document's operations."""
    table = {}
    for name, operation in asyncapi_document()["operations"].items():
        if operation["action"] == "receive":
            table[name] = (_message_name(operation["messages"][0]), _message_name(operation["reply"]["messages"][0]))
    return table


@functools.cache
def push_messages() -> dict[str, list[tuple[str, str]]]:
    """push `action` value -> [(operation, message name)] that may carry it."""
    table: dict[str, list[tuple[str, str]]] = defaultdict(list)
    document = asyncapi_document()
    for operation_name, operation in document["operations"].items():
        if operation["action"] != "send" or operation_name == "frame_error":
            continue
        for ref in operation["messages"]:
            message = _message_name(ref)
            action = document["components"]["messages"][message]["payload"]["properties"]["action"]["const"]
            table[action].append((operation_name, message))
    return dict(table)


def _payload_pointer(message: str) -> str:
    return f"/components/messages/{message}/payload"


def _errors(pointer: str, frame: Any) -> list[ValidationError]:
    return sorted(_validator(pointer).iter_errors(frame), key=lambda error: list(error.absolute_path))


def _describe(errors: list[ValidationError]) -> str:
    lines = []
    for error in errors:
        path = "$" + "".join(f"[{part!r}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path)
        lines.append(f"  at {path}: {error.message}")
        for sub in sorted(error.context or [], key=lambda e: list(e.absolute_path))[:6]:
            sub_path = "$" + "".join(f".{part}" for part in sub.absolute_path)
            lines.append(f"      (branch) at {sub_path}: {sub.message}")
    return "\n".join(lines)


def _fail(direction: str, message: str, frame: Any, details: str) -> NoReturn:
    raise AssertionError(
        f"{direction} frame violates api_docs/asyncapi.yaml ({message}):\n{details}\n"
        f"frame: {json.dumps(frame, indent=2, sort_keys=True, default=str)}"
    )


def _check(direction: str, message: str, pointer: str, frame: Any) -> None:
    errors = _errors(pointer, frame)
    if errors:
        _fail(direction, message, frame, _describe(errors))


def validate_client_frame(frame: Frame) -> str:
    """Check a request the client sends; returns the request message's name."""
    if not isinstance(frame, dict):
        _fail("client", "not an object", frame, "  a frame must be one JSON object")
    action = frame.get("action")
    messages = request_and_response_messages()
    if not isinstance(action, str) or action not in messages:
        _fail("client", "unknown action", frame, f"  action {action!r} is none of: {', '.join(sorted(messages))}")
    request_message = messages[action][0]
    _check("client", request_message, _payload_pointer(request_message), frame)
    return request_message


def validate_server_frame(frame: Frame, request: Frame | None = None) -> str:
    """Check a frame the server sends; returns the message's name.

    A frame with `response_status` is the response to its `action` (or a frame error for
    an unknown one); give `request` to also check that it answers that request. A frame
    without it is a push, picked by `action`; give the subscribing request to pin down
    which stream it belongs to.
    """
    if not isinstance(frame, dict):
        _fail("server", "not an object", frame, "  a frame must be one JSON object")
    action = frame.get("action")
    if "response_status" in frame:
        if request is not None:
            mismatches = [
                f"  {key}: expected {request.get(key)!r}, got {frame.get(key)!r}"
                for key in ("action", "request_id")
                if frame.get(key) != request.get(key)
            ]
            if mismatches:
                _fail("server", "response does not answer its request", frame, "\n".join(mismatches))
        responses = request_and_response_messages()
        if action not in responses or frame.get("response_status") == 405:
            _check("server", "frameError", _payload_pointer("frameError"), frame)
            return "frameError"
        message = responses[action][1]
        status = frame.get("response_status")
        branch = 0 if isinstance(status, int) and 200 <= status < 300 else 1
        _check("server", f"{message} ({'success' if branch == 0 else 'error'})", f"{_payload_pointer(message)}/oneOf/{branch}", frame)
        return message
    candidates = push_messages().get(action, []) if isinstance(action, str) else []
    if request is not None and request.get("action") in STREAM_OPERATIONS:
        if frame.get("request_id") != request.get("request_id"):
            _fail("server", "push not tagged with its subscription", frame, f"  request_id: expected {request.get('request_id')!r}")
        candidates = [(op, message) for op, message in candidates if op == STREAM_OPERATIONS[request["action"]]]
    return _check_push(frame, candidates)


def _check_push(frame: Frame, candidates: list[tuple[str, str]]) -> str:
    """The first candidate message the push matches; AssertionError listing each one's mismatches if none."""
    action = frame.get("action")
    if not candidates:
        known = ", ".join(sorted(push_messages()))
        _fail("server", "unknown push", frame, f"  a frame without response_status must be a push; action {action!r} is none of: {known}")
    reports = []
    for _, message in candidates:
        errors = _errors(_payload_pointer(message), frame)
        if not errors:
            return message
        reports.append(f" as {message}:\n{_describe(errors)}")
    _fail("server", " or ".join(message for _, message in candidates), frame, "\n".join(reports))
    raise AssertionError  # unreachable: _fail raised


def unwrap_stream(frame: Any) -> tuple[str | None, Any]:
    """(stream, inner frame) of a DCRF stream envelope (api_docs/PROTOCOL.md §8), checking the envelope; (None, frame) otherwise."""
    if not (isinstance(frame, dict) and "stream" in frame and "payload" in frame and "action" not in frame):
        return None, frame
    _check("frame", "StreamEnvelope", "/components/schemas/StreamEnvelope", frame)
    return frame["stream"], frame["payload"]


class FrameChecker:
    """Checks one connection's frames, matching responses to requests and pushes to subscriptions.

    Frames in a DCRF stream envelope are checked inside it: a response must come in its
    request's stream, and a push in the stream its subscription was made through.
    """

    def __init__(self) -> None:
        self.pending: dict[Any, deque[Frame]] = defaultdict(deque)
        self.subscriptions: dict[Any, set[str]] = {}  # request_id -> stream operations subscribed under it
        self.frames: list[tuple[str, Any]] = []  # ("sent" | "received", frame): a transcript

    @staticmethod
    def _key(request_id: Any, stream: str | None = None) -> Any:
        # 1 and 1.0 and "1" stay apart, and any JSON value is hashable
        return json.dumps(request_id) if stream is None else json.dumps([stream, request_id])

    def sent(self, frame: Any, *, check: bool = True) -> None:
        """Record (and unless check=False, validate) a frame the client sends."""
        self.frames.append(("sent", frame))
        stream, frame = unwrap_stream(frame) if check else (None, frame)
        if check:
            validate_client_frame(frame)
        if isinstance(frame, dict):
            self.pending[self._key(frame.get("request_id"), stream)].append(frame)

    def received(self, frame: Any) -> None:
        """Validate a frame the server sent."""
        self.frames.append(("received", frame))
        stream, frame = unwrap_stream(frame)
        if not isinstance(frame, dict) or "response_status" not in frame:
            self._received_push(frame, stream)
            return
        key = self._key(frame.get("request_id"), stream)
        queue = self.pending.get(key)
        request = None
        if queue:
            request = next((r for r in queue if r.get("action") == frame.get("action")), None)
            if request is None and frame.get("response_status") != 400:
                request = queue[0]  # a response must answer some request with this request_id
            if request is not None:
                queue.remove(request)
        validate_server_frame(frame, request)
        if request is None or not 200 <= frame["response_status"] < 300:
            return
        if request.get("action") in STREAM_OPERATIONS:
            # Kept after an unsubscribe: other rooms' subscriptions may share the request_id.
            self.subscriptions.setdefault(key, set()).add(STREAM_OPERATIONS[request["action"]])

    def _received_push(self, frame: Any, stream: str | None = None) -> None:
        if not isinstance(frame, dict):
            validate_server_frame(frame)
            return
        action = frame.get("action")
        candidates = push_messages().get(action, []) if isinstance(action, str) else []
        streams = self.subscriptions.get(self._key(frame.get("request_id"), stream)) if "request_id" in frame else None
        if stream is not None and not streams:
            _fail("server", "push in a stream no subscription was made through", frame, f"  stream: {stream!r}")
        if streams:
            # A push tagged with a subscription's request_id must come from a stream subscribed under it.
            candidates = [(op, message) for op, message in candidates if op in streams]
            if not candidates:
                _fail(
                    "server",
                    "push of the wrong stream",
                    frame,
                    f"  request_id {frame['request_id']!r} subscribed to: {', '.join(sorted(streams))}",
                )
        _check_push(frame, candidates)


class ContractCommunicator(WebsocketCommunicator):
    """channels' WebsocketCommunicator that checks every JSON frame against the AsyncAPI document."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checker = FrameChecker()

    async def send_json_to(self, data: Any, *, check: bool = True) -> None:
        self.checker.sent(data, check=check)
        await super().send_json_to(data)

    async def receive_json_from(self, timeout: float = 1) -> Any:
        frame = await super().receive_json_from(timeout)
        self.checker.received(frame)
        return frame


class ContractWebSocket:
    """A `websockets` client connection whose JSON frames are checked against the AsyncAPI document."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.checker = FrameChecker()

    async def send_json_to(self, data: Any, *, check: bool = True) -> None:
        self.checker.sent(data, check=check)
        await self.connection.send(json.dumps(data))

    async def receive_json_from(self, timeout: float = 5) -> Any:
        raw = await asyncio.wait_for(self.connection.recv(), timeout)
        assert isinstance(raw, str), f"the server sent a binary frame: {raw!r}"
        frame = json.loads(raw)
        self.checker.received(frame)
        return frame

    async def request(self, action: str, **params: Any) -> Frame:
        """Send an action and return its response; pushes that arrive first go to self.pushes."""
        self.pushes: list[Frame] = getattr(self, "pushes", [])
        frame = {"action": action, **params}
        await self.send_json_to(frame)
        while True:
            received = await self.receive_json_from()
            if "response_status" in received and received.get("request_id") == frame.get("request_id"):
                return received
            self.pushes.append(received)

    async def close(self) -> None:
        await self.connection.close()


@contextlib.asynccontextmanager
async def contract_connect(uri: str, **kwargs: Any) -> AsyncIterator[ContractWebSocket]:
    """`websockets.asyncio.client.connect(uri, **kwargs)`, yielding a ContractWebSocket."""
    from websockets.asyncio.client import connect

    async with connect(uri, **kwargs) as connection:
        yield ContractWebSocket(connection)
