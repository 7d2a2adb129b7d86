"""Issue 15: Hypothesis over every HTTP endpoint's body, path and query, deep nesting included.

No response may be a 5xx, and every error must be JSON (api_docs/PROTOCOL.md §3 v2: "any input,
however malformed or nested, gets a 4xx JSON answer"). In-process (APIClient), bounded.
"""

import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from chat.models import Message, Room, User
from tests.conftest import client_for
from tests.factories import RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

ENDPOINTS = [
    ("POST", "/api/auth/register/"),
    ("POST", "/api/auth/token/"),
    ("GET", "/api/users/me/"),
    ("GET", "/api/rooms/"),
    ("POST", "/api/rooms/"),
    ("GET", "/api/rooms/{pk}/"),
    ("PATCH", "/api/rooms/{pk}/"),
    ("DELETE", "/api/rooms/{pk}/"),
    ("POST", "/api/rooms/{pk}/join/"),
    ("POST", "/api/rooms/{pk}/leave/"),
    ("GET", "/api/rooms/{pk}/messages/"),
    ("POST", "/api/rooms/{pk}/messages/"),
    ("PATCH", "/api/messages/{pk}/"),
    ("DELETE", "/api/messages/{pk}/"),
]
FIELDS = ["name", "text", "client_id", "username", "password", "message", "pk", "room", "after_seq", "limit"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    st.sampled_from(["", " ", "\x00", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"), "x" * 600]),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=12
)
bodies = st.one_of(
    json_values.map(json.dumps),
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4).map(json.dumps),
    st.integers(min_value=1, max_value=4000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(min_value=1, max_value=4000).map(lambda depth: '{"name":' * depth + "1" + "}" * depth),
    st.integers(min_value=1, max_value=4000).map(lambda depth: '{"text": ' + "[" * depth + "]" * depth + "}"),
    st.sampled_from(['{"name": NaN}', '{"text": Infinity}', '{"name": 1e999}', '{"text": "\\ud800"}', "{", "", "null", '"x"']),
    st.text(max_size=40),
)
path_pks = st.one_of(
    st.integers(min_value=-5, max_value=2**70).map(str),
    st.from_regex(r"[A-Za-z0-9%._~-]{1,12}", fullmatch=True),
    st.just("{room}"),
    st.just("{message}"),
)
queries = st.dictionaries(
    st.sampled_from(["after_seq", "before_seq", "limit", "page", "page_size", "name"]),
    st.one_of(st.integers(min_value=-(2**70), max_value=2**70).map(str), st.text(max_size=10)),
    max_size=3,
)
content_types = st.sampled_from(["application/json", "application/json", "text/plain", "application/x-www-form-urlencoded"])
_addresses = itertools.count(1)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    endpoint=st.sampled_from(ENDPOINTS),
    body=bodies,
    pk=path_pks,
    query=queries,
    content_type=content_types,
    authenticated=st.booleans(),
)
def test_no_input_gets_a_5xx_or_a_non_json_error(
    fuzz_data: tuple[User, Room, Message],
    endpoint: tuple[str, str],
    body: str,
    pk: str,
    query: dict[str, str],
    content_type: str,
    authenticated: bool,
) -> None:
    user, room, message = fuzz_data
    method, template = endpoint
    path = template.format(pk=pk.format(room=room.pk, message=message.pk))
    client = client_for(user) if authenticated else APIClient()
    # A fresh address per example: the per-address sign-up throttle is tested elsewhere.
    client.defaults["REMOTE_ADDR"] = f"10.{next(_addresses) % 250}.{next(_addresses) % 250}.1"
    response = client.generic(method, path, body, content_type=content_type, QUERY_STRING=_query(query))
    assert response.status_code < 500, (method, path, body[:200], response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json"), (method, path, response.status_code, response.content[:200])
        assert isinstance(json.loads(response.content), (dict, list))


def _query(query: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(query)


@pytest.fixture
def fuzz_data(db: None) -> Any:
    user = UserFactory.create()
    room = RoomFactory.create(host=user)
    message = Message.objects.create(room=room, seq=1, user=user, text="hi")
    Room.objects.filter(pk=room.pk).update(last_seq=1)
    return user, room, message
