"""End to end: the built-in pages in Debian's Chromium (Playwright), against a real daphne server.

Two browser contexts are two people. Everything goes through the pages as a person
would use them (sign-up form, room box, Enter to send), plus the public HTTP API where
a test needs many messages fast. Screenshots land in test-artifacts/screenshots/.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from django.conf import settings
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, WebSocketRoute, expect, sync_playwright

from tests import ROOT
from tests.live import minimal_env, run_servers

pytestmark = pytest.mark.live

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PHONE = {"width": 390, "height": 800}
PASSWORD = "a-long-pass-phrase-for-tests"
# The flood limit on the test server: one window fills more than a page of history, and
# windows so long that the sliding window's decay frees no slot while a test runs.
RATE_LIMIT = 60
RATE_PERIOD = 3600
PAGE_SIZE = 50  # room.js's page of history


@contextmanager
def server_database(tmp: Path) -> Iterator[str]:
    """A fresh, migrated database of the server's own, dropped afterwards.

    Not the test database: pytest-django creates that only for tests marked django_db,
    and those flush it from this process, which Django refuses while Playwright's
    event loop runs here.
    """

    def migrate(url: str) -> None:
        command = [sys.executable, "manage.py", "migrate", "--noinput"]
        subprocess.run(command, cwd=ROOT, env=minimal_env(DATABASE_URL=url), check=True, capture_output=True)

    db = settings.DATABASES["default"]
    if "postgresql" not in db["ENGINE"]:
        url = f"sqlite:///{tmp / 'browser.sqlite3'}"
        migrate(url)
        yield url
        return
    import psycopg
    from psycopg import sql

    name = f"{os.environ.get('TEST_DATABASE_NAME') or 'test_' + db['NAME']}_browser"
    given = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "password": db["PASSWORD"]}
    params: dict[str, Any] = {key: value for key, value in given.items() if value}
    auth = quote(db["USER"] or "", safe="") + (":" + quote(db["PASSWORD"], safe="") if db["PASSWORD"] else "")
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"
    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        conn.execute(drop)
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        migrate(url)
        yield url
    finally:
        with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
            conn.execute(drop)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One daphne process for the whole module, as `make run` starts it, on a database of its own."""
    with server_database(tmp_path_factory.mktemp("browser")) as database_url:
        env = minimal_env(
            DATABASE_URL=database_url,
            CHAT_MESSAGE_RATE_LIMIT=str(RATE_LIMIT),
            CHAT_MESSAGE_RATE_PERIOD=str(RATE_PERIOD),
            REDIS_PREFIX=settings.REDIS_PREFIX,
            PYTHONUNBUFFERED="1",
        )
        if settings.REDIS_URL:  # else the in-memory layer, as `make run` with no environment
            env["REDIS_URL"] = settings.REDIS_URL
        with run_servers(1, base_env=env) as (server,):
            yield server.base_url


@pytest.fixture(scope="module")
def browser(request: pytest.FixtureRequest) -> Iterator[Browser]:
    """One headless Chromium for the whole module."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium package"
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
    # Said past pytest's output capture, so it shows on every run.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is not None and reporter is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\nbrowser screenshots ({len(list(SCREENSHOTS.glob('*.png')))}): {SCREENSHOTS}")


@dataclass
class Person:
    """One browser context, signed up as a fresh user."""

    username: str
    context: BrowserContext
    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def people(browser: Browser, base_url: str) -> Iterator[Callable[..., Person]]:
    """Makes people; each signs up through the sign-up page in a context of its own."""
    made: list[Person] = []

    def make(name: str, viewport: ViewportSize | None = None, setup: Callable[[BrowserContext], None] | None = None) -> Person:
        context = browser.new_context(base_url=base_url, viewport=viewport or {"width": 1100, "height": 800})
        context.set_default_timeout(5000)
        if setup:
            setup(context)
        page = context.new_page()
        person = Person(f"{name}-{uuid.uuid4().hex[:6]}", context, page)

        def on_dialog(dialog: Any) -> None:
            person.dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.on("pageerror", lambda error: person.errors.append(str(error)))
        page.goto("/accounts/signup/")
        page.fill("#id_username", person.username)
        page.fill("#id_password1", PASSWORD)
        page.fill("#id_password2", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base_url}/")
        made.append(person)
        return person

    yield make
    for person in made:
        assert person.dialogs == [], f"{person.username} saw dialogs: {person.dialogs}"
        assert person.errors == [], f"{person.username}'s page threw: {person.errors}"
        person.context.close()


def open_room(page: Page, name: str) -> None:
    page.goto(f"/chat/{quote(name, safe='')}/")
    wait_ready(page)


def wait_ready(page: Page, timeout: float = 5000) -> None:
    """Joined and subscribed (the page sets body[data-ready] once both answered)."""
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=timeout)


def send(page: Page, text: str) -> None:
    page.fill("#message-input", text)
    page.press("#message-input", "Enter")


def message(page: Page, text: str) -> Any:
    """The message rows whose text is exactly `text`."""
    return page.locator("#messages .message").filter(has=page.locator(".text", has_text=re.compile(f"^{re.escape(text)}$")))


def message_texts(page: Page) -> list[str]:
    return page.locator("#messages .message .text").all_text_contents()


def api_token(base_url: str, username: str) -> dict[str, str]:
    response = requests.post(f"{base_url}/api/auth/token/", json={"username": username, "password": PASSWORD}, timeout=5)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Token {response.json()['token']}"}


def room_pk(base_url: str, headers: dict[str, str], name: str) -> int:
    response = requests.get(f"{base_url}/api/rooms/", params={"name": name}, headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    (room,) = response.json()["results"]
    return room["pk"]


def test_room_box_refuses_empty_name_inline_and_opens_rooms(people: Callable[..., Person]) -> None:
    alice = people("alice")
    page = alice.page
    page.click("#room-go")
    expect(page.locator("#room-name-error")).to_have_text("Type a room name.")
    expect(page.locator("#room-name-error")).to_be_visible()
    assert page.url.endswith("/")

    room = f"Lobby {uuid.uuid4().hex[:6]}"
    page.fill("#room-name", room)
    page.press("#room-name", "Enter")
    page.wait_for_url(f"**/chat/{quote(room)}/")
    wait_ready(page)
    expect(page.locator("#room-title")).to_have_text(room)
    expect(page.locator("#presence .present-user")).to_have_text([alice.username])

    # The room now exists: it is listed on the index with its (live) presence.
    page.goto("/")
    expect(page.locator("#rooms .room-name", has_text=room)).to_have_count(1)
    page.screenshot(path=SCREENSHOTS / "rooms-index.png")


def test_two_people_chat_live(people: Callable[..., Person], base_url: str) -> None:
    alice = people("alice")
    bob = people("bob", viewport=PHONE)
    room = f"pair-{uuid.uuid4().hex[:6]}"
    open_room(alice.page, room)
    open_room(bob.page, room)

    # Presence shows both, on both pages.
    for page in (alice.page, bob.page):
        expect(page.locator("#presence .present-user")).to_have_text([alice.username, bob.username])

    # Bob sees Alice typing.
    alice.page.fill("#message-input", "hel")
    alice.page.type("#message-input", "lo")
    expect(bob.page.locator("#typing")).to_have_text(f"{alice.username} is typing…", timeout=2000)

    # Alice sends with Enter; Bob sees it within a second.
    alice.page.fill("#message-input", "")
    started = time.monotonic()
    send(alice.page, "hello bob")
    expect(message(bob.page, "hello bob")).to_have_count(1, timeout=1000)
    latency = time.monotonic() - started
    assert latency < 1.0, latency
    print(f"send (Enter in A) -> shown in B: {latency * 1000:.0f} ms")
    expect(message(alice.page, "hello bob")).to_have_count(1)
    expect(bob.page.locator("#typing")).to_have_text("")

    # Bob answers; Alice sees it.
    send(bob.page, "hi alice")
    expect(message(alice.page, "hi alice")).to_have_count(1, timeout=1000)

    # Markup is shown as text, never run.
    xss = "<img src=x onerror=alert(1)>"
    send(alice.page, xss)
    expect(message(bob.page, xss)).to_have_count(1, timeout=1000)
    assert bob.page.locator("#messages img").count() == 0
    assert alice.page.locator("#messages img").count() == 0
    assert alice.dialogs == bob.dialogs == []

    # Alice edits her message; Bob sees the new text, marked as edited.
    mine = message(alice.page, "hello bob")
    mine.locator("button.edit").click()
    alice.page.fill(".message.editing .edit-input", "hello bob (edited text)")
    alice.page.press(".message.editing .edit-input", "Enter")
    edited = message(bob.page, "hello bob (edited text)")
    expect(edited).to_have_count(1, timeout=2000)
    expect(edited.locator(".edited")).to_have_text("(edited)")
    expect(message(bob.page, "hello bob")).to_have_count(0)
    # Only one's own messages have edit and delete buttons.
    expect(message(bob.page, "hello bob (edited text)").locator("button.edit")).to_have_count(0)

    # Alice deletes it (two clicks, no dialog); Bob sees it go.
    mine = message(alice.page, "hello bob (edited text)")
    mine.locator("button.delete").click()
    mine.locator("button.delete").click()
    expect(message(bob.page, "hello bob (edited text)")).to_have_count(0, timeout=2000)
    expect(message(alice.page, "hello bob (edited text)")).to_have_count(0)
    assert message_texts(bob.page) == ["hi alice", xss]

    # The counter and the length limit, inline.
    alice.page.fill("#message-input", "x" * 501)
    expect(alice.page.locator("#char-count")).to_have_text("501/500")
    expect(alice.page.locator("#char-count")).to_have_class(re.compile(r"\btext-danger\b"))
    alice.page.press("#message-input", "Enter")
    expect(alice.page.locator("#send-error")).to_contain_text("too long")
    alice.page.fill("#message-input", "")

    # Bob's page is usable at phone width: nothing sticks out sideways.
    assert bob.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    alice.page.screenshot(path=SCREENSHOTS / "room-desktop.png")
    bob.page.screenshot(path=SCREENSHOTS / "room-phone.png")


class SocketCutter:
    """Routes a context's WebSockets to the server, and can cut them and refuse new ones until restored."""

    def __init__(self) -> None:
        self.blocked = False
        self.open: list[tuple[WebSocketRoute, WebSocketRoute]] = []
        self.refused = 0
        # When set: after the page's next create_message, drop every server frame and cut
        # the connection once its response went by, so the message is stored but unacknowledged.
        self.lose_next_send_response = False

    def attach(self, context: BrowserContext) -> None:
        context.route_web_socket(re.compile(r".*/ws/chat/room/$"), self.handle)

    def handle(self, route: WebSocketRoute) -> None:
        if self.blocked:
            self.refused += 1
            route.close(code=4000, reason="network down (test)")
            return
        server = route.connect_to_server()
        self.open.append((route, server))
        swallowing = False

        def to_server(frame: str | bytes) -> None:
            nonlocal swallowing
            if self.lose_next_send_response and '"create_message"' in str(frame):
                swallowing = True
            server.send(frame)

        def to_page(frame: str | bytes) -> None:
            if not swallowing:
                route.send(frame)
            elif '"create_message"' in str(frame) and '"response_status"' in str(frame):
                self.lose_next_send_response = False
                self.cut()

        route.on_message(to_server)
        server.on_message(to_page)

    def cut(self) -> None:
        self.blocked = True
        for page_side, server_side in self.open:
            server_side.close()
            page_side.close(code=4000, reason="network down (test)")
        self.open.clear()

    def restore(self) -> None:
        self.blocked = False


def test_reconnect_resumes_without_duplicates_or_gaps(people: Callable[..., Person], base_url: str) -> None:
    cutter = SocketCutter()
    alice = people("alice")
    bob = people("bob", setup=cutter.attach)
    room = f"resume-{uuid.uuid4().hex[:6]}"
    open_room(alice.page, room)
    open_room(bob.page, room)
    send(alice.page, "before 1")
    send(alice.page, "before 2")
    expect(message(bob.page, "before 2")).to_have_count(1, timeout=2000)

    cutter.cut()
    expect(bob.page.locator("#connection-status")).to_have_text("Reconnecting…")
    during = [f"during {n}" for n in range(1, 6)]
    for text in during:
        send(alice.page, text)
    expect(message(alice.page, during[-1])).to_have_count(1)
    assert message(bob.page, during[0]).count() == 0  # Bob really was cut off
    expect(bob.page.locator("#message-input")).to_be_disabled()

    cutter.restore()
    wait_ready(bob.page, timeout=10000)
    assert cutter.refused >= 1 or len(cutter.open) == 1
    send(alice.page, "after 1")
    expected = ["before 1", "before 2", *during, "after 1"]
    expect(bob.page.locator("#messages .message .text")).to_have_text(expected, timeout=3000)
    seqs = [int(s) for s in bob.page.locator("#messages .message").evaluate_all("nodes => nodes.map(n => n.dataset.seq)")]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # After the reconnect Bob is back in the room and can talk.
    expect(alice.page.locator("#presence .present-user")).to_have_count(2, timeout=5000)
    send(bob.page, "bob is back")
    expect(message(alice.page, "bob is back")).to_have_count(1, timeout=1000)
    bob.page.screenshot(path=SCREENSHOTS / "room-after-reconnect.png")

    # Bob's next message is stored but its response is lost with the connection: the page
    # resends it under the same client_id after reconnecting, and it exists once.
    cutter.lose_next_send_response = True
    send(bob.page, "sent exactly once")
    expect(bob.page.locator("#connection-status")).to_have_text("Reconnecting…")
    expect(bob.page.locator("#pending .message .text")).to_have_text(["sent exactly once"])
    expect(message(alice.page, "sent exactly once")).to_have_count(1)
    cutter.restore()
    wait_ready(bob.page, timeout=10000)
    expect(bob.page.locator("#pending .message")).to_have_count(0)  # acknowledged now
    expect(message(bob.page, "sent exactly once")).to_have_count(1)
    headers = api_token(base_url, alice.username)
    stored = requests.get(f"{base_url}/api/rooms/{room_pk(base_url, headers, room)}/messages/", headers=headers, timeout=5).json()[
        "results"
    ]
    assert [m["text"] for m in stored].count("sent exactly once") == 1
    assert message_texts(bob.page) == message_texts(alice.page) == [m["text"] for m in stored]


def test_older_history_loads_on_scroll_up_and_flood_limit_shows_inline(people: Callable[..., Person], base_url: str) -> None:
    alice = people("alice")
    room = f"history-{uuid.uuid4().hex[:6]}"
    open_room(alice.page, room)
    # A full flood-limit window of messages, through the HTTP API.
    headers = api_token(base_url, alice.username)
    pk = room_pk(base_url, headers, room)
    for n in range(RATE_LIMIT):
        response = requests.post(f"{base_url}/api/rooms/{pk}/messages/", json={"text": f"old {n}"}, headers=headers, timeout=5)
        assert response.status_code == 201, response.text
    response = requests.post(f"{base_url}/api/rooms/{pk}/messages/", json={"text": "over"}, headers=headers, timeout=5)
    assert response.status_code == 429, response.text
    # The live page got them all; a fresh one shows the last page and fetches older ones on scroll-up.
    expect(message(alice.page, f"old {RATE_LIMIT - 1}")).to_have_count(1)
    alice.page.reload()
    wait_ready(alice.page)
    expect(alice.page.locator("#messages .message")).to_have_count(PAGE_SIZE)
    assert message_texts(alice.page)[0] == f"old {RATE_LIMIT - PAGE_SIZE}"
    expect(alice.page.locator("#load-older")).to_be_visible()
    alice.page.locator("#message-scroller").evaluate("node => { node.scrollTop = 0; }")
    expect(alice.page.locator("#messages .message")).to_have_count(RATE_LIMIT)
    assert message_texts(alice.page) == [f"old {n}" for n in range(RATE_LIMIT)]
    expect(alice.page.locator("#history-start")).to_be_visible()
    expect(alice.page.locator("#load-older")).to_be_hidden()

    # Over the flood limit the server answers 429: shown inline, nothing stored, the text kept.
    send(alice.page, "one too many")
    expect(alice.page.locator("#send-error")).to_contain_text("Too many messages")
    expect(alice.page.locator("#message-input")).to_have_value("one too many")
    expect(alice.page.locator("#pending .message")).to_have_count(0)
    expect(message(alice.page, "one too many")).to_have_count(0)
    messages = requests.get(f"{base_url}/api/rooms/{pk}/messages/", params={"limit": 1}, headers=headers, timeout=5).json()
    assert [m["text"] for m in messages["results"]] == [f"old {RATE_LIMIT - 1}"]


def test_online_users_page_flips_when_someone_logs_out(people: Callable[..., Person]) -> None:
    alice = people("alice")
    bob = people("bob")
    open_room(alice.page, f"status-{uuid.uuid4().hex[:6]}")
    bob.page.goto("/users/")
    expect(bob.page.locator("body")).to_have_attribute("data-ready", "true")
    alice_row = bob.page.locator(".user-entry", has=bob.page.get_by_text(alice.username, exact=True))
    expect(alice_row).to_have_attribute("data-online", "true")
    expect(bob.page.locator(".user-entry", has=bob.page.get_by_text(bob.username)).first).to_have_attribute("data-online", "true")
    bob.page.screenshot(path=SCREENSHOTS / "users-online.png")

    alice.page.click("#logout")
    alice.page.wait_for_url("**/accounts/login/")
    expect(alice_row).to_have_attribute("data-online", "false", timeout=5000)

    # Logged out, every page sends Alice to the login page.
    alice.page.goto("/users/")
    assert "/accounts/login/" in alice.page.url
