"""Accounts (api_docs/PROTOCOL.md §8): logout revokes the token (HTTP and its sockets), and finding users by username prefix."""

import pytest
from django.test import Client as DjangoClient
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from chat.models import User
from tests.db import database_sync_to_async
from tests.factories import PASSWORD, UserFactory
from tests.ws import connect, token_for

user_factory = database_sync_to_async(UserFactory.create)


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_logout_revokes_the_token_and_closes_its_sockets_with_4401() -> None:
    user, bystander = await user_factory(), await user_factory()
    key = await token_for(user)
    async with connect(user) as first, connect(user) as second, connect(bystander) as other:
        response = await database_sync_to_async(lambda: token_client(key).post("/api/auth/logout/"))()
        assert response.status_code == 204 and not response.content
        for client in (first, second):
            assert await client.communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}
        assert (await other.request("list"))["response_status"] == 200  # someone else's socket is untouched
    assert (await database_sync_to_async(lambda: token_client(key).get("/api/users/me/"))()).status_code == 401
    assert not await database_sync_to_async(Token.objects.filter(key=key).exists)()


@pytest.mark.django_db
def test_logout_over_http_then_the_token_no_longer_works_and_a_new_one_can_be_had() -> None:
    user = UserFactory.create()
    key = APIClient().post("/api/auth/token/", {"username": user.username, "password": PASSWORD}, format="json").json()["token"]
    client = token_client(key)
    assert client.get("/api/users/me/").status_code == 200
    assert client.post("/api/auth/logout/").status_code == 204
    assert client.get("/api/users/me/").status_code == 401
    assert client.post("/api/auth/logout/").status_code == 401  # already revoked
    fresh = APIClient().post("/api/auth/token/", {"username": user.username, "password": PASSWORD}, format="json").json()["token"]
    assert fresh != key and token_client(fresh).get("/api/users/me/").status_code == 200


@pytest.mark.django_db
def test_logout_needs_authentication() -> None:
    assert APIClient().post("/api/auth/logout/").status_code == 401


@pytest.mark.django_db
def test_logout_with_a_browser_session_ends_the_session() -> None:
    user = UserFactory.create()
    browser = DjangoClient(enforce_csrf_checks=False)
    assert browser.login(username=user.username, password=PASSWORD)
    assert browser.get("/api/users/me/").status_code == 200
    assert browser.post("/api/auth/logout/").status_code == 204
    assert browser.get("/api/users/me/").status_code in (401, 403)


@pytest.mark.django_db
def test_user_search_by_case_insensitive_prefix_paginated_with_only_id_and_username(api: APIClient, user: User) -> None:
    for name in ["alice", "Alicia", "ALINE", "bob", "malice"]:
        UserFactory.create(username=name, email=f"{name}@example.com")
    UserFactory.create(username="alien", is_active=False)
    body = api.get("/api/users/", {"search": "ali"}).json()
    assert body["count"] == 3
    assert [u["username"] for u in body["results"]] == ["alice", "Alicia", "ALINE"]
    assert all(set(u) == {"id", "username"} for u in body["results"])
    page = api.get("/api/users/", {"search": "AL", "page_size": "2", "page": "2"}).json()
    assert page["count"] == 3 and [u["username"] for u in page["results"]] == ["ALINE"]
    assert api.get("/api/users/", {"search": "%"}).json() == {"results": [], "count": 0}  # not a wildcard
    everyone = api.get("/api/users/").json()
    assert everyone["count"] == User.objects.filter(is_active=True).count()


@pytest.mark.django_db
@pytest.mark.parametrize(("params", "field"), [({"page": 0}, "page"), ({"page_size": 201}, "page_size"), ({"search": "x" * 151}, "search")])
def test_user_search_rejects_bad_parameters(api: APIClient, params: dict[str, str | int], field: str) -> None:
    response = api.get("/api/users/", params)
    assert response.status_code == 400 and field in response.json()


@pytest.mark.django_db
def test_user_search_needs_authentication() -> None:
    assert APIClient().get("/api/users/", {"search": "a"}).status_code == 401
