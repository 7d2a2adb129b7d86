"""End to end in Chromium: replies, reactions, search and logout on the room page (api_docs/PROTOCOL.md §7, §8).

Same harness as tests/live/test_browser.py (a daphne server on a database of its own, one
browser context per person); everything is done through the page as a person would.
"""

import uuid
from collections.abc import Callable

import pytest
import requests
from playwright.sync_api import expect

from tests.live.test_browser import (  # noqa: F401  (pytest fixtures: base_url, browser, people)
    SCREENSHOTS,
    Person,
    api_token,
    base_url,
    browser,
    message,
    open_room,
    people,
    room_pk,
    send,
)

pytestmark = pytest.mark.live

THUMBS = "\U0001f44d"
PARTY = "\U0001f389"


def test_reply_is_quoted_above_it_for_everyone(people: Callable[..., Person]) -> None:  # noqa: F811
    alice, bob = people("alice"), people("bob")
    room = f"replies-{uuid.uuid4().hex[:6]}"
    open_room(alice.page, room)
    open_room(bob.page, room)
    send(alice.page, "lunch at noon?")
    question = message(bob.page, "lunch at noon?")
    expect(question).to_have_count(1)

    question.locator("button.reply").click()
    expect(bob.page.locator("#reply-bar")).to_be_visible()
    expect(bob.page.locator("#reply-text")).to_have_text("lunch at noon?")
    send(bob.page, "yes, see you there")
    expect(bob.page.locator("#reply-bar")).to_be_hidden()

    for page in (alice.page, bob.page):
        answer = message(page, "yes, see you there")
        expect(answer).to_have_count(1)
        expect(answer.locator(".reply-quote")).to_be_visible()
        expect(answer.locator(".reply-quote .quote-author")).to_have_text(alice.username)
        expect(answer.locator(".reply-quote .quote-text")).to_have_text("lunch at noon?")
    alice.page.screenshot(path=SCREENSHOTS / "reply.png")

    # A reply can be cancelled before sending.
    message(alice.page, "yes, see you there").locator("button.reply").click()
    alice.page.click("#reply-cancel")
    send(alice.page, "not a reply")
    expect(message(bob.page, "not a reply").locator(".reply-quote")).to_be_hidden()

    # The quoted message is deleted: the reply stays and says so.
    own = message(alice.page, "lunch at noon?")
    own.locator("button.delete").click()
    own.locator("button.delete").click()
    expect(message(bob.page, "lunch at noon?")).to_have_count(0)
    expect(message(bob.page, "yes, see you there").locator(".reply-quote")).to_have_text("Replying to a deleted message")


def test_reactions_add_and_remove_live(people: Callable[..., Person], base_url: str) -> None:  # noqa: F811
    alice, bob = people("alice"), people("bob")
    room = f"reactions-{uuid.uuid4().hex[:6]}"
    open_room(alice.page, room)
    open_room(bob.page, room)
    send(alice.page, "shipped it")
    on_bob = message(bob.page, "shipped it")
    expect(on_bob).to_have_count(1)

    on_bob.locator("button.react").click()
    on_bob.locator(".react-palette button", has_text=THUMBS).click()
    on_alice = message(alice.page, "shipped it")
    expect(on_alice.locator(".reactions .reaction")).to_have_text([f"{THUMBS} 1"])
    expect(on_bob.locator(".reactions .reaction.mine")).to_have_text([f"{THUMBS} 1"])
    expect(on_alice.locator(".reactions .reaction.mine")).to_have_count(0)
    expect(on_alice.locator(".edited")).to_have_text("")  # a reaction is not an edit

    # Alice joins in by clicking Bob's reaction, then adds another emoji.
    on_alice.locator(".reactions .reaction", has_text=THUMBS).click()
    expect(on_bob.locator(".reactions .reaction")).to_have_text([f"{THUMBS} 2"])
    on_alice.locator("button.react").click()
    on_alice.locator(".react-palette button", has_text=PARTY).click()
    expect(on_bob.locator(".reactions .reaction")).to_have_text([f"{THUMBS} 2", f"{PARTY} 1"])
    bob.page.screenshot(path=SCREENSHOTS / "reactions.png")

    # Bob takes his back.
    on_bob.locator(".reactions .reaction.mine", has_text=THUMBS).click()
    expect(on_alice.locator(".reactions .reaction")).to_have_text([f"{THUMBS} 1", f"{PARTY} 1"])

    # What the pages show is what the server stored.
    headers = api_token(base_url, bob.username)
    history = requests.get(f"{base_url}/api/rooms/{room_pk(base_url, headers, room)}/messages/", headers=headers, timeout=5).json()
    (stored,) = history["results"]
    assert [(r["emoji"], r["count"]) for r in stored["reactions"]] == [(THUMBS, 1), (PARTY, 1)]


def test_search_in_the_room_and_in_all_rooms(people: Callable[..., Person]) -> None:  # noqa: F811
    alice = people("alice")
    tag = uuid.uuid4().hex[:6]
    first, second = f"search-a-{tag}", f"search-b-{tag}"
    page = alice.page
    open_room(page, first)
    send(page, f"Deploy {tag} tonight")
    expect(message(page, f"Deploy {tag} tonight")).to_have_count(1)
    send(page, "nothing to see")
    open_room(page, second)
    send(page, f"tonight we deploy {tag} again")
    expect(message(page, f"tonight we deploy {tag} again")).to_have_count(1)

    # This room only: words in any order, any case.
    page.fill("#search-input", f"TONIGHT {tag}")
    page.press("#search-input", "Enter")
    expect(page.locator("#search-results .search-result .text")).to_have_text([f"tonight we deploy {tag} again"])
    expect(page.locator("#search-summary")).to_contain_text("1 result")

    # All rooms: newest first, each with a link to its room.
    page.select_option("#search-scope", "all")
    page.click("#search-go")
    expect(page.locator("#search-results .search-result .text")).to_have_text([f"tonight we deploy {tag} again", f"Deploy {tag} tonight"])
    expect(page.locator("#search-results .result-room")).to_have_text([f"#{second}", f"#{first}"])
    page.screenshot(path=SCREENSHOTS / "search.png")

    page.fill("#search-input", f"absent-{tag}")
    page.click("#search-go")
    expect(page.locator("#search-summary")).to_contain_text("No messages match")
    page.fill("#search-input", "   ")
    page.click("#search-go")
    expect(page.locator("#search-error")).to_have_text("Type something to search for.")

    page.fill("#search-input", tag)
    page.click("#search-go")
    page.locator("#search-results .result-room", has_text=first).click()
    page.wait_for_url(f"**/chat/{first}/")
    expect(message(page, f"Deploy {tag} tonight")).to_have_count(1)


def test_logout_revokes_the_token_the_page_holds(people: Callable[..., Person], base_url: str) -> None:  # noqa: F811
    alice = people("alice")
    headers = api_token(base_url, alice.username)
    assert requests.get(f"{base_url}/api/users/me/", headers=headers, timeout=5).status_code == 200
    page = alice.page
    page.evaluate("token => localStorage.setItem('chat.apiToken', token)", headers["Authorization"].removeprefix("Token "))
    page.click("#logout")
    page.wait_for_url(lambda url: "/accounts/logout" in url or "/accounts/login" in url or url.endswith("/"))
    expect(page.locator("#logout")).to_have_count(0)
    assert requests.get(f"{base_url}/api/users/me/", headers=headers, timeout=5).status_code == 401
    assert page.evaluate("() => localStorage.getItem('chat.apiToken')") is None
