"""The built-in pages with private rooms, direct messages and the inbox (api_docs/PROTOCOL.md §5-§6), in Chromium.

Reuses tests/live/test_browser.py's harness (one daphne server and one Chromium per module).
"""

import re
import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.live import test_browser as harness
from tests.live.test_browser import PHONE, SCREENSHOTS, Person, send, wait_ready

# The harness's fixtures, collected by pytest from this module's names.
base_url = harness.base_url
browser = harness.browser
people = harness.people

pytestmark = pytest.mark.live


def inbox_entry(page: Page, name: str) -> Locator:
    return page.locator("#inbox .inbox-entry").filter(has=page.locator(".room-name", has_text=re.compile(f"^{re.escape(name)}$")))


def wait_index(page: Page) -> None:
    page.goto("/")
    wait_ready(page)


def test_two_people_dm_and_the_unread_badge_appears_and_clears_on_a_phone(people: Callable[..., Person]) -> None:
    alice = people("alice")
    bob = people("bob", viewport=PHONE)
    wait_index(bob.page)
    expect(bob.page.locator("#no-inbox")).to_be_visible()

    # Alice starts a direct message from the users page.
    alice.page.goto("/users/")
    wait_ready(alice.page)
    row = alice.page.locator(".user-entry", has=alice.page.locator(".username", has_text=bob.username))
    row.locator(".dm-button").click()
    alice.page.wait_for_url(re.compile(r".*/chat/direct%3A\d+%3A\d+/$"))
    wait_ready(alice.page)
    expect(alice.page.locator("#room-title")).to_have_text(f"{bob.username} (direct)")
    expect(alice.page.locator("#room-kind")).to_have_text("direct")
    send(alice.page, "hi bob, just us")

    # Bob's inbox (390 px wide) shows the new direct room with a badge of 1, live.
    entry = inbox_entry(bob.page, alice.username)
    expect(entry).to_have_count(1, timeout=3000)
    expect(entry.locator(".unread-badge")).to_have_text("1", timeout=3000)
    expect(entry.locator(".unread-badge")).to_be_visible()
    expect(entry.locator(".last-message")).to_contain_text("hi bob, just us")
    send(alice.page, "are you there?")
    expect(entry.locator(".unread-badge")).to_have_text("2", timeout=3000)
    direct_url = alice.page.url
    alice.page.goto("/users/")  # Alice leaves the room page: what comes next is unread for her
    assert bob.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    bob.page.screenshot(path=SCREENSHOTS / "inbox-phone-unread.png")

    # Bob opens it: the messages are read, and back on the index the badge is gone.
    entry.click()
    wait_ready(bob.page)
    expect(bob.page.locator("#messages .message .text")).to_have_text(["hi bob, just us", "are you there?"])
    send(bob.page, "hi alice")
    wait_index(bob.page)
    entry = inbox_entry(bob.page, alice.username)
    expect(entry.locator(".unread-badge")).to_be_hidden()
    expect(entry.locator(".last-message")).to_contain_text("hi alice")

    # Alice's inbox (desktop) got Bob's answer; she reads it on the room page and her badge clears live elsewhere.
    alice_index = alice.context.new_page()
    alice_index.goto("/")
    wait_ready(alice_index)
    alice_entry = inbox_entry(alice_index, bob.username)
    expect(alice_entry.locator(".unread-badge")).to_have_text("1")
    alice.page.goto(direct_url)
    wait_ready(alice.page)
    expect(alice.page.locator("#messages .message .text")).to_have_text(["hi bob, just us", "are you there?", "hi alice"])
    expect(alice_entry.locator(".unread-badge")).to_be_hidden(timeout=3000)  # the `read` push of her other page
    bob.page.screenshot(path=SCREENSHOTS / "inbox-phone-read.png")
    alice_index.close()


def test_a_private_room_stays_invisible_to_a_third_user_until_they_are_added(people: Callable[..., Person]) -> None:
    alice = people("alice")
    carol = people("carol", viewport=PHONE)
    dave = people("dave")
    room = f"plans-{uuid.uuid4().hex[:6]}"

    # Alice creates a private room from the room box.
    alice.page.fill("#room-name", room)
    alice.page.check("#room-private")
    alice.page.press("#room-name", "Enter")
    alice.page.wait_for_url(re.compile(f".*/chat/{re.escape(room)}/$"))
    wait_ready(alice.page)
    expect(alice.page.locator("#room-kind")).to_have_text("private")
    send(alice.page, "secret plans")

    # Carol and Dave see nothing of it: not in their inbox, not in the list of rooms.
    for person in (carol, dave):
        wait_index(person.page)
        expect(inbox_entry(person.page, room)).to_have_count(0)
        expect(person.page.locator("#rooms .room-name", has_text=room)).to_have_count(0)
    carol.page.screenshot(path=SCREENSHOTS / "inbox-phone-before-added.png")

    # Alice adds Carol in the members panel; Carol's open index shows the room at once.
    alice.page.click("#members-toggle")
    expect(alice.page.locator("#members .member-entry")).to_have_count(1)
    alice.page.fill("#add-member-name", carol.username)
    alice.page.click("#add-member")
    carol_row = alice.page.locator(f'#members .member-entry:has(.member-name:text-is("{carol.username}"))')
    expect(carol_row.locator(".member-role")).to_have_text("member")
    entry = inbox_entry(carol.page, room)
    expect(entry).to_have_count(1, timeout=3000)
    expect(entry.locator(".room-kind")).to_have_text("private")
    send(alice.page, "welcome carol")
    expect(entry.locator(".unread-badge")).to_have_text("1", timeout=3000)
    carol.page.screenshot(path=SCREENSHOTS / "inbox-phone-after-added.png")

    # Dave still sees nothing.
    wait_index(dave.page)
    expect(inbox_entry(dave.page, room)).to_have_count(0)
    expect(dave.page.locator("#rooms .room-name", has_text=room)).to_have_count(0)

    # Moderation in the panel: the owner has the actions, a plain member none.
    expect(carol_row.locator(".member-promote")).to_be_visible()
    expect(carol_row.locator(".member-remove")).to_be_visible()
    expect(carol_row.locator(".member-ban")).to_be_visible()
    entry.click()
    wait_ready(carol.page)
    # History from before she was added was never unread (her badge said 1), but it is readable.
    expect(carol.page.locator("#messages .message .text")).to_have_text(["secret plans", "welcome carol"])
    carol.page.click("#members-toggle")
    expect(carol.page.locator("#members .member-entry")).to_have_count(2)
    expect(carol.page.locator("#members button")).to_have_count(0)
    expect(carol.page.locator("#add-member-form")).to_be_hidden()
    carol_row.locator(".member-promote").click()
    expect(carol_row.locator(".member-role")).to_have_text("moderator")

    # Removed: Carol's room page says so, and the room leaves her inbox.
    carol_row.locator(".member-remove").click()
    expect(alice.page.locator("#members .member-entry")).to_have_count(1)
    expect(carol.page.locator("#room-error")).to_have_text("You no longer have access to this room.", timeout=3000)
    wait_index(carol.page)
    expect(inbox_entry(carol.page, room)).to_have_count(0)
