"""Property-based fuzzing of the WebSocket endpoint over a real connection (api_docs/PROTOCOL.md §2, bad frames).

Whatever arrives (any JSON value, every action with wrong types, huge and odd
unicode strings, deep nesting), the server answers with one response that is never
a 5xx, the connection stays usable, and nothing is stored unless the request succeeded.
"""

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from chat.models import Membership, Message, Room
from tests.live import LiveServer, create_room, register_user, run_servers

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True)]

ACTIONS = [
    "list",
    "retrieve",
    "create",
    "patch",
    "delete",
    "join_room",
    "leave_room",
    "create_message",
    "update_message",
    "delete_message",
    "list_messages",
    "subscribe_to_messages_in_room",
    "unsubscribe_from_messages_in_room",
    "subscribe_instance",
    "unsubscribe_instance",
    "typing",
    "subscribe_to_online_users",
]
PARAMETERS = ["pk", "data", "message", "room", "client_id", "after_seq", "before_seq", "limit", "page", "page_size", "name"]

odd_text = st.one_of(
    st.text(max_size=40),
    st.text(min_size=490, max_size=520),
    st.sampled_from(["", " ", "\x00", "a\x00b", "\u202e\u200fRTL", "\ufeff", "😀" * 200, "\ud800", "\udfff x", "x" * 5000]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False) | odd_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=10,
)
requests_ = st.builds(
    lambda action, request_id, params: {"action": action, "request_id": request_id, **params},
    st.sampled_from(ACTIONS + ["nope", ""]),
    st.one_of(st.integers(), st.text(max_size=12)),
    st.dictionaries(st.sampled_from(PARAMETERS), json_values, max_size=4),
)
frames = st.one_of(requests_, json_values)


@pytest.fixture(scope="module")
def server(django_db_setup: None, django_db_blocker: Any) -> Iterator[LiveServer]:
    with django_db_blocker.unblock(), run_servers(1, {"CHAT_MESSAGE_RATE_LIMIT": "1000000"}) as (live,):
        yield live


def counts() -> tuple[int, int, int]:
    return Room.objects.count(), Message.objects.count(), Membership.objects.count()


def response_to(connection: ClientConnection) -> dict[str, Any]:
    """The next frame that is a response (pushes caused by earlier successes are skipped)."""
    while True:
        frame = json.loads(connection.recv(timeout=10))
        if "response_status" in frame:
            return frame


def test_fuzzed_frames_get_one_non_5xx_response_and_change_nothing_unless_accepted(server: LiveServer) -> None:
    user = register_user(server.base_url)
    room = create_room(server.base_url, user)
    with connect(f"{server.ws_url}?token={user.token}", max_size=None) as connection:

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(frame=frames)
        def check(frame: Any) -> None:
            before = counts()
            connection.send(json.dumps(frame))  # ensure_ascii: lone surrogates travel as \\ud800 escapes
            response = response_to(connection)
            assert 400 <= response["response_status"] < 500 or response["response_status"] < 300, (frame, response)
            assert response["errors"] if response["response_status"] >= 400 else not response["errors"], response
            if response["response_status"] >= 400:
                assert counts() == before, (frame, response)

        check()
        connection.send(json.dumps({"action": "retrieve", "request_id": "alive", "pk": room["pk"]}))
        assert response_to(connection)["response_status"] in (200, 404)


def test_deep_nesting_and_non_utf8_escapes_are_400(server: LiveServer) -> None:
    user = register_user(server.base_url)
    with connect(f"{server.ws_url}?token={user.token}") as connection:
        for raw in ['{"action": "list", "x": ' + "[" * 5000 + "]" * 5000 + "}", "[" * 20000, '{"action": "\\ud800"}']:
            connection.send(raw)
            response = response_to(connection)
            assert 400 <= response["response_status"] < 500, (raw[:40], response)
        connection.send(json.dumps({"action": "list", "request_id": 1}))
        assert response_to(connection)["response_status"] == 200
