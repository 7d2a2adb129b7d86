"""The built-in pages over plain HTTP (Django's test client): auth flow, redirects, rendering, escaping."""

import re

import pytest
from django.http import StreamingHttpResponse
from django.test import Client

from chat.core.services import message_store
from chat.models import Message, Room, User
from tests import ROOT
from tests.factories import PASSWORD, RoomFactory, UserFactory

pytestmark = pytest.mark.django_db

PROTECTED_PAGES = ["/", "/chat/lobby/", "/users/"]


@pytest.fixture
def browser(user: User) -> Client:
    """A client logged in through the login page, as a person would."""
    client = Client()
    response = client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    return client


@pytest.mark.parametrize("path", PROTECTED_PAGES)
def test_pages_redirect_anonymous_visitors_to_login(client: Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_login_page_has_django_field_names(client: Client) -> None:
    response = client.get("/accounts/login/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="username"' in html and 'name="password"' in html
    assert "csrfmiddlewaretoken" in html


def test_login_goes_to_next(user: User) -> None:
    client = Client()
    response = client.post("/accounts/login/?next=/users/", {"username": user.username, "password": PASSWORD, "next": "/users/"})
    assert response.status_code == 302
    assert response["Location"] == "/users/"
    assert client.get("/users/").status_code == 200


def test_wrong_password_shows_an_error(user: User, client: Client) -> None:
    response = client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert client.get("/").status_code == 302


def test_signup_creates_the_user_and_logs_in(client: Client) -> None:
    response = client.post(
        "/accounts/signup/", {"username": "newcomer", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    user = User.objects.get(username="newcomer")
    assert user.check_password("a-long-pass-phrase")
    assert client.get("/").status_code == 200


def test_signup_page_has_django_field_names(client: Client) -> None:
    html = client.get("/accounts/signup/").content.decode()
    for name in ("username", "password1", "password2"):
        assert f'name="{name}"' in html


def test_signup_rejects_taken_name_and_mismatched_passwords(user: User, client: Client) -> None:
    response = client.post(
        "/accounts/signup/", {"username": user.username, "password1": "a-long-pass-phrase", "password2": "other-pass-phrase"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "already exists" in html
    assert "didn’t match" in html or "didn't match" in html
    assert User.objects.filter(username=user.username).count() == 1


def test_signup_never_redirects_off_site(client: Client) -> None:
    response = client.post(
        "/accounts/signup/",
        {"username": "visitor", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase", "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


def test_logout_needs_post(browser: Client) -> None:
    assert browser.get("/accounts/logout/").status_code == 405
    assert browser.get("/").status_code == 200
    response = browser.post("/accounts/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/"
    assert browser.get("/").status_code == 302


def test_index_lists_rooms_with_last_message(browser: Client, user: User) -> None:
    quiet = RoomFactory.create(name="quiet-room")
    busy = RoomFactory.create(name="busy-room")
    message_store(room_id=busy.pk, author=user, text="first")
    message_store(room_id=busy.pk, author=user, text="latest news")
    html = browser.get("/").content.decode()
    assert quiet.name in html and busy.name in html
    assert "latest news" in html and "first" not in html
    assert 'href="/chat/busy-room/"' in html


def test_index_escapes_room_names_and_messages(browser: Client, user: User) -> None:
    room = RoomFactory.create(name="<b>bold</b>")
    message_store(room_id=room.pk, author=user, text="<img src=x onerror=alert(1)>")
    html = browser.get("/").content.decode()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>bold</b>" not in html


def test_room_box_goes_to_the_room_page(browser: Client) -> None:
    response = browser.get("/", {"name": "  new room  "})
    assert response.status_code == 302
    assert response["Location"] == "/chat/new%20room/"
    page = browser.get(response["Location"])
    assert page.status_code == 200
    # The page's script creates the room over the WebSocket; the name reaches it as JSON.
    assert re.search(r'<script id="room-name" type="application/json">"new room"</script>', page.content.decode())
    assert not Room.objects.exists()


def test_room_box_refuses_an_empty_name_inline(browser: Client) -> None:
    response = browser.get("/", {"name": "   "})
    html = response.content.decode()
    assert response.status_code == 400
    assert "Type a room name." in html
    assert "is-invalid" in html
    assert "alert(" not in html


def test_room_page_with_untrimmed_or_overlong_name_goes_back_to_index(browser: Client) -> None:
    assert browser.get("/chat/%20padded%20/")["Location"] == "/?name=+padded+"
    response = browser.get("/chat/" + "x" * 256 + "/", follow=True)
    assert "at most 255 characters" in response.content.decode()


def test_room_page_name_is_json_not_html(browser: Client) -> None:
    html = browser.get("/chat/%3Cscript%3Ealert(1)%3C%2Fscript%3E/").content.decode()
    assert "<script>alert(1)</script>" not in html
    assert r'"\u003Cscript\u003Ealert(1)\u003C/script\u003E"' in html


def test_users_page_lists_every_active_user(browser: Client, user: User) -> None:
    others = UserFactory.create_batch(3)
    gone = UserFactory.create(is_active=False)
    html = browser.get("/users/").content.decode()
    for other in [user, *others]:
        assert f'data-user-id="{other.pk}"' in html
    assert f'data-user-id="{gone.pk}"' not in html


def test_pages_load_local_assets_only(browser: Client) -> None:
    for path in ["/", "/chat/lobby/", "/users/", "/accounts/signup/"]:
        html = browser.get(path).content.decode()
        sources = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', html)
        assert sources, path
        assert all(source.startswith("/static/") for source in sources), sources


def test_static_assets_are_served(browser: Client, settings: object) -> None:
    """Under DEBUG (`make run`) Django serves /static/, since daphne does not."""
    for asset in [
        "chat/vendor/bootstrap/bootstrap.min.css",
        "chat/vendor/bootstrap/bootstrap.bundle.min.js",
        "chat/room.js",
        "chat/socket.js",
    ]:
        response = browser.get(f"/static/{asset}")
        assert response.status_code == 200, asset
        assert isinstance(response, StreamingHttpResponse), asset
        assert b"".join(response.streaming_content)


def test_room_page_never_injects_message_text_as_html() -> None:
    """The page script writes message text with textContent only (static check of the shipped script)."""

    script = (ROOT / "chat" / "static" / "chat" / "room.js").read_text()
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "outerHTML" not in script


def test_messages_untouched_by_pages(browser: Client, room: Room) -> None:
    """Viewing pages reads only: no message or room appears."""
    browser.get("/")
    browser.get(f"/chat/{room.name}/")
    assert Message.objects.count() == 0
    assert Room.objects.count() == 1


def test_room_names_with_url_characters_round_trip(browser: Client) -> None:
    response = browser.get("/", {"name": "a?b#c/d %e"})
    assert response["Location"] == "/chat/a%3Fb%23c/d%20%25e/"
    html = browser.get(response["Location"]).content.decode()
    assert '<script id="room-name" type="application/json">"a?b#c/d %e"</script>' in html
