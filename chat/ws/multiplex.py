"""DCRF stream multiplexing (api_docs/PROTOCOL.md §8): `{"stream": s, "payload": {...}}` frames in and out.

DCRF's demultiplexer convention, which its JavaScript client (`dcrf-client`) speaks: a
request wrapped in a stream is answered in the same stream, and the pushes of a
subscription made through a stream come wrapped in it. Unwrapped frames are untouched.
The stream of the request being handled lives in a context variable, so responses find
it without every action passing it along; pushes carry their subscription's stream
explicitly, because they are sent from the fan-out, outside any request.

A new subscription action does the same: it stores `current_stream.get()` with the
subscription when it is made, and sends each push through `wrap(stream, frame)` (or, for
already encoded frames, through `sender(stream, push)`).
"""

import json
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from rest_framework.exceptions import ValidationError

# The stream of the request this task is handling; None for an unwrapped one.
current_stream: ContextVar[str | None] = ContextVar("current_stream", default=None)


class BadEnvelope(ValueError):
    """A multiplexed frame whose stream or payload has the wrong type; `stream` is its stream if that is a string."""

    def __init__(self, message: str, stream: str | None = None) -> None:
        super().__init__(message)
        self.stream = stream


def is_multiplexed(content: dict[str, Any]) -> bool:
    """Whether a decoded frame is a stream envelope rather than a plain request."""
    return "stream" in content and "payload" in content and "action" not in content


def unwrap(content: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(stream, request) of a decoded frame; (None, frame) for an unwrapped one.

    Raises BadEnvelope (with the stream, when it is a string) for a non-string stream
    or a payload that is not an object.
    """
    if not is_multiplexed(content):
        return None, content
    stream, payload = content["stream"], content["payload"]
    if not isinstance(stream, str):
        raise BadEnvelope("stream must be a string.")
    if not isinstance(payload, dict):
        raise BadEnvelope("payload must be a JSON object holding the request.", stream)
    return stream, payload


def params_with_data(params: dict[str, Any]) -> dict[str, Any]:
    """Action parameters with those sent inside `data` (DCRF's convention) merged in; top-level ones win."""
    data = params.get("data")
    if data is None:
        return params
    if not isinstance(data, dict):
        raise ValidationError({"data": ["Expected an object of parameters."]})
    return {**data, **{key: value for key, value in params.items() if key != "data"}}


def wrap(stream: str | None, frame: dict[str, Any]) -> dict[str, Any]:
    """A frame to send, in its stream's envelope when it has one."""
    return frame if stream is None else {"stream": stream, "payload": frame}


def sender(stream: str | None, push: Callable[..., None]) -> Callable[..., None]:
    """`push(*texts)` for a subscription made through `stream`: itself when unwrapped, so plain pushes cost nothing more."""
    if stream is None:
        return push
    prefix = f'{{"stream": {json.dumps(stream)}, "payload": '

    def push_in_stream(*texts: str) -> None:
        push(*[prefix + text + "}" for text in texts])

    return push_in_stream
