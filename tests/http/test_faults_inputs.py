"""Issue 15, findings 3 and 4: malformed input gets a 4xx JSON answer, never a 500 or invalid JSON."""

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from chat.models import User
from tests.conftest import client_for
from tests.db import database_sync_to_async
from tests.factories import PASSWORD, RoomFactory, UserFactory
from tests.ws import connect

BIG_PK = 2**63


def _strict_json(text: str) -> Any:
    """json.loads that refuses NaN and Infinity, as every other JSON parser does."""

    def refuse(constant: str) -> Any:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_ws_pk_beyond_bigint_is_400_not_500() -> None:
    user = await database_sync_to_async(UserFactory)()
    async with connect(user) as client:
        for action in ("join_room", "retrieve", "typing", "subscribe_instance", "list_messages", "update_message"):
            response = await client.bad_request(action, pk=BIG_PK, message="x")
            assert response["response_status"] == 400, response
            assert "pk" in json.dumps(response["errors"]), response
        response = await client.bad_request("subscribe_to_messages_in_room", pk=1, after_seq=BIG_PK)
        assert response["response_status"] == 400, response
        response = await client.bad_request("create_message", room=BIG_PK, message="x")
        assert response["response_status"] == 400, response


@pytest.mark.django_db
def test_http_pk_beyond_bigint_is_400_json(api: APIClient, room: Any) -> None:
    for method, path in (
        ("get", f"/api/rooms/{BIG_PK}/"),
        ("post", f"/api/rooms/{BIG_PK}/join/"),
        ("get", f"/api/rooms/{BIG_PK}/messages/"),
        ("post", f"/api/rooms/{BIG_PK}/messages/"),
        ("patch", f"/api/messages/{BIG_PK}/"),
        ("get", f"/api/rooms/{room.pk}/messages/?after_seq={BIG_PK}"),
    ):
        response = getattr(api, method)(path, {"text": "x"} if method != "get" else None, format="json")
        assert response.status_code == 400, (path, response.status_code, response.content[:200])
        assert response["Content-Type"].startswith("application/json")


DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/auth/register/", "/api/rooms/", "/api/rooms/1/messages/"])
def test_deeply_nested_http_body_is_400_json(api: APIClient, path: str) -> None:
    response = api.generic("POST", path, DEEP, content_type="application/json")
    assert response.status_code == 400, (response.status_code, response.content[:300])
    assert "detail" in response.json()


@pytest.mark.django_db
def test_huge_http_body_is_json_4xx(api: APIClient) -> None:
    body = json.dumps({"username": "x" * (10 * 1024 * 1024), "password": PASSWORD})
    for client, path in ((APIClient(), "/api/auth/register/"), (api, "/api/rooms/")):
        response = client.generic("POST", path, body, content_type="application/json")
        assert response.status_code in (400, 413), response.status_code
        assert response["Content-Type"].startswith("application/json"), response.content[:200]
        assert "detail" in response.json()


@pytest.mark.django_db
def test_unknown_api_path_and_wrong_content_type_are_json(api: APIClient) -> None:
    missing = api.get("/api/no-such-thing/")
    assert missing.status_code == 404 and missing["Content-Type"].startswith("application/json")
    assert "detail" in missing.json()
    wrong = api.generic("POST", "/api/rooms/", "name=x", content_type="application/x-www-form-urlencoded")
    assert wrong.status_code == 415 and "detail" in wrong.json()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("existing", "twin"),
    [
        ("ﬁsh", "fish"),  # NFKC: the "ﬁ" ligature
        ("fish", "ﬁsh"),
        ("Alice", "alice"),  # case
        ("strasse", "STRAßE"),  # the same after case folding
        ("Ｂob", "bob"),  # NFKC full-width B, then case
        ("ǅemal", "džemal"),  # title-case digraph: NFKC + casefold
    ],
)
def test_register_refuses_normalisation_twins(existing: str, twin: str) -> None:
    first = APIClient().post("/api/auth/register/", {"username": existing, "password": PASSWORD}, format="json")
    assert first.status_code == 201, first.content
    second = APIClient().post("/api/auth/register/", {"username": twin, "password": PASSWORD}, format="json")
    assert second.status_code == 400, (second.status_code, second.content[:300])
    assert "username" in second.json()
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_case_twins_cannot_reach_the_table() -> None:
    """The database itself refuses case twins, whatever path creates the user."""
    from django.db import IntegrityError, transaction

    UserFactory(username="Carol")
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create_user(username="carol", password=PASSWORD)


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_request_id_must_be_a_short_string_or_a_finite_number() -> None:
    user = await database_sync_to_async(UserFactory)()
    async with connect(user) as client:
        for raw in ("NaN", "Infinity", "-Infinity", "true", "[1]", '{"a": 1}', json.dumps("x" * 129)):
            await client.communicator.send_to(text_data='{"action": "list", "request_id": ' + raw + "}")
            text = await client.communicator.receive_from()
            frame = _strict_json(text)  # the answer itself must be valid JSON
            assert frame["response_status"] == 400 and frame["request_id"] is None, frame
            assert "request_id" in json.dumps(frame["errors"])
        for ok in (json.dumps("x" * 128), "7", "7.5", '""'):
            await client.communicator.send_to(text_data='{"action": "list", "request_id": ' + ok + "}")
            frame = _strict_json(await client.communicator.receive_from())
            assert frame["response_status"] == 200 and frame["request_id"] == json.loads(ok), frame


@database_sync_to_async
def post_message(user: User, room_id: int, text: str) -> None:
    assert client_for(user).post(f"/api/rooms/{room_id}/messages/", {"text": text}, format="json").status_code == 201


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_request_ids_7_and_7_0_are_two_subscriptions() -> None:
    user = await database_sync_to_async(UserFactory)()
    room = await database_sync_to_async(RoomFactory)(host=user)
    async with connect(user) as client:
        for raw in ("7", "7.0"):
            await client.communicator.send_to(
                text_data=f'{{"action": "subscribe_to_messages_in_room", "pk": {room.pk}, "request_id": {raw}}}'
            )
            assert '"response_status": 200' in await client.communicator.receive_from()
        await post_message(user, room.pk, "hi")
        texts: list[str] = []
        while len(texts) < 2:
            text = await client.communicator.receive_from(timeout=3)
            if '"action": "create"' in text:
                texts.append(text)
        assert sorted(t.split('"request_id": ')[1].split(",")[0] for t in texts) == ["7", "7.0"]
        # Unsubscribing 7.0 leaves 7 running.
        await client.communicator.send_to(
            text_data=f'{{"action": "unsubscribe_from_messages_in_room", "pk": {room.pk}, "request_id": 7.0}}'
        )
        assert '"response_status": 200' in await client.communicator.receive_from()
        await post_message(user, room.pk, "again")
        text = await client.communicator.receive_from(timeout=3)
        while '"action": "create"' not in text:
            text = await client.communicator.receive_from(timeout=3)
        assert '"request_id": 7,' in text
        assert await client.communicator.receive_nothing(timeout=0.3)


@pytest.mark.django_db
def test_web_signup_refuses_normalisation_twins_too(client: Any) -> None:
    UserFactory(username="strasse")
    for twin in ("STRASSE", "straße", "ｓｔｒａｓｓｅ"):
        response = client.post("/accounts/signup/", {"username": twin, "password1": PASSWORD, "password2": PASSWORD})
        assert response.status_code == 200, (twin, response.status_code)  # the form again, with its error
        assert b"is-invalid" in response.content
    assert User.objects.count() == 1
