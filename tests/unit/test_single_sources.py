"""One source of truth per fact, tied by tests: actions, push and event names, field limits, OpenAPI annotations."""

import inspect
import re
from pathlib import Path
from typing import Any

from chat.core import serializers
from chat.events import groups
from chat.events.streams import message_observer, room_observer
from chat.models import CLIENT_ID_MAX_LENGTH, MESSAGE_MAX_LENGTH, ROOM_NAME_MAX_LENGTH
from chat.ops import metrics
from chat.ws.consumer import RoomConsumer
from tests.contract import asyncapi_document, push_messages, request_and_response_messages

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_consumer_defines_the_actions_the_asyncapi_documents() -> None:
    """Metric labels are the consumer's available_actions too (ProtocolConsumer.reply; tests/ws/test_shared_operations.py)."""
    assert set(RoomConsumer.available_actions) == set(request_and_response_messages())
    assert "ACTIONS" not in vars(metrics), "metrics must not keep a list of its own"


def test_push_actions_are_spelled_once() -> None:
    assert set(push_messages()) == groups.PUSH_ACTIONS
    assert metrics.EVENTS is groups.PUSH_ACTIONS


def test_layer_event_types_are_spelled_once() -> None:
    """Every "type" the code sends over the layer is a chat.events.groups constant."""
    sent_types: set[str] = set()
    for path in (ROOT / "chat").rglob("*.py"):
        sent_types.update(re.findall(r"""["']type["']\s*:\s*["']([a-z_]+\.[a-z_.]+)["']""", path.read_text()))
    # Not layer events: the health check's probe reaches no consumer; websocket.* are ASGI's
    # (send, and the accept and close of a handshake refused during an outage).
    assert sent_types <= {"readyz.probe", "websocket.send", "websocket.accept", "websocket.close"}, sent_types
    assert (message_observer.event_type, room_observer.event_type) == (groups.MESSAGE_EVENT, groups.ROOM_EVENT)


def _asyncapi_schema(*path: str) -> Any:
    node: Any = asyncapi_document()
    for key in path:
        node = node[key]
    return node


def test_field_limits_in_the_asyncapi_match_the_models_and_serializers() -> None:
    schemas = ("components", "schemas")
    assert _asyncapi_schema(*schemas, "User", "properties", "username", "maxLength") == serializers.USERNAME_MAX_LENGTH
    assert _asyncapi_schema(*schemas, "Message", "properties", "text", "maxLength") == MESSAGE_MAX_LENGTH
    assert _asyncapi_schema(*schemas, "MessageText", "maxLength") == MESSAGE_MAX_LENGTH
    assert _asyncapi_schema(*schemas, "Message", "properties", "client_id", "maxLength") == CLIENT_ID_MAX_LENGTH
    assert _asyncapi_schema(*schemas, "Room", "properties", "name", "maxLength") == ROOM_NAME_MAX_LENGTH
    assert _asyncapi_schema(*schemas, "RoomName", "properties", "name", "maxLength") == ROOM_NAME_MAX_LENGTH
    list_params = _asyncapi_schema("components", "messages", "listRequest", "payload", "properties")
    assert list_params["page"]["maximum"] == serializers.MAX_PAGE
    assert list_params["page_size"]["maximum"] == serializers.MAX_PAGE_SIZE
    assert list_params["page_size"]["default"] == serializers.DEFAULT_PAGE_SIZE


def test_field_limits_in_the_openapi_come_from_the_models_and_serializers() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    assert components["Message"]["properties"]["text"]["maxLength"] == MESSAGE_MAX_LENGTH
    assert components["MessageCreateRequest"]["properties"]["text"]["maxLength"] == MESSAGE_MAX_LENGTH
    assert components["MessageCreateRequest"]["properties"]["client_id"]["maxLength"] == CLIENT_ID_MAX_LENGTH
    assert components["RoomCreateRequest"]["properties"]["name"]["maxLength"] == ROOM_NAME_MAX_LENGTH
    assert components["PatchedRoomNameRequest"]["properties"]["name"]["maxLength"] == ROOM_NAME_MAX_LENGTH
    assert components["CredentialsRequest"]["properties"]["username"]["maxLength"] == serializers.USERNAME_MAX_LENGTH
    assert components["CredentialsRequest"]["properties"]["password"]["maxLength"] == serializers.PASSWORD_MAX_LENGTH
    page_size = next(p for p in schema["paths"]["/api/rooms/"]["get"]["parameters"] if p["name"] == "page_size")
    assert page_size["schema"]["maximum"] == serializers.MAX_PAGE_SIZE
    # And none is typed again by hand.
    import api_docs.openapi

    source = inspect.getsource(api_docs.openapi)
    assert not re.search(r"(max_length=|\"maxLength\": )\d", source), "a retyped limit in api_docs/openapi.py"


def test_http_views_carry_no_openapi_annotations_of_their_own() -> None:
    """api_docs/openapi.py is the one place the HTTP API is described."""
    import chat.http.views

    assert "extend_schema" not in inspect.getsource(chat.http.views)
