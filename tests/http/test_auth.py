"""Registration, tokens and `me` over HTTP, driven as a client would."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from chat.models import User
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_register_then_token_then_me() -> None:
    client = APIClient()
    created = client.post("/api/auth/register/", {"username": "ada", "password": PASSWORD}, format="json")
    assert created.status_code == 201
    assert created.json() == {"id": created.json()["id"], "username": "ada"}

    token = client.post("/api/auth/token/", {"username": "ada", "password": PASSWORD}, format="json")
    assert token.status_code == 200
    assert set(token.json()) == {"token"}

    client.credentials(HTTP_AUTHORIZATION=f"Token {token.json()['token']}")
    me = client.get("/api/users/me/")
    assert me.status_code == 200
    assert me.json() == {"id": created.json()["id"], "username": "ada"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "bob"}, "password"),
        ({"username": "bob", "password": "123"}, "password"),
        ({"username": "bad name!", "password": PASSWORD}, "username"),
        ({"username": 5, "password": PASSWORD}, "username"),
        ({"username": "x" * 151, "password": PASSWORD}, "username"),
    ],
)
def test_register_rejects_bad_input_and_stores_nothing(body: dict, field: str) -> None:
    response = APIClient().post("/api/auth/register/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not User.objects.exists()


def test_register_rejects_taken_username(user: User) -> None:
    response = APIClient().post("/api/auth/register/", {"username": user.username, "password": PASSWORD}, format="json")
    assert response.status_code == 400
    assert "username" in response.json()
    assert User.objects.count() == 1


def test_token_rejects_bad_credentials(user: User) -> None:
    response = APIClient().post("/api/auth/token/", {"username": user.username, "password": "wrong"}, format="json")
    assert response.status_code == 400
    assert "token" not in response.json()


def test_inactive_user_gets_no_token(user: User) -> None:
    user.is_active = False
    user.save()
    response = APIClient().post("/api/auth/token/", {"username": user.username, "password": PASSWORD}, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["/api/users/me/", "/api/rooms/", "/api/rooms/1/messages/"])
def test_api_needs_authentication(path: str) -> None:
    assert APIClient().get(path).status_code in (401, 403)
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert bad.get(path).status_code == 401


def test_session_login_also_authenticates(user: User) -> None:
    client = APIClient()
    assert client.login(username=user.username, password=PASSWORD)
    assert client.get("/api/users/me/").json()["username"] == user.username


def test_a_token_authenticates_its_active_user(user: User) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    response = client.get("/api/users/me/")
    assert response.status_code == 200
    assert response.json()["id"] == user.pk


@pytest.mark.parametrize("active", [True, False])
def test_an_unknown_token_and_an_inactive_users_token_get_drfs_401(user: User, active: bool) -> None:
    token = Token.objects.create(user=user)
    user.is_active = active
    user.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key if not active else '0' * 40}")
    response = client.get("/api/users/me/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token." if active else "User inactive or deleted."}
    assert response["WWW-Authenticate"] == "Token"
