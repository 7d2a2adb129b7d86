"""The rules in chat.core.services, called directly (the HTTP and WebSocket tests reach the same rules through a client)."""

import pytest
from django.test import override_settings
from rest_framework.exceptions import ValidationError

from chat.core import selectors, services
from chat.core.exceptions import Banned, NotMessageAuthor, NotRoomHost, NotRoomMember, RateLimited, RoomNotFound
from chat.core.services import messages as message_services
from chat.models import Message, Room, RoomKind, User
from tests.factories import RoomFactory

pytestmark = pytest.mark.django_db


# --- rooms -------------------------------------------------------------------------------


def test_room_create_makes_the_host_its_first_member(user: User) -> None:
    room = services.room_create(host=user, name="lobby")
    assert room.host == user and list(room.members.all()) == [user]
    assert room.current_users == [] and room.last_message is None  # §1 live state, set by the selectors


def test_room_create_refuses_a_taken_name(user: User, other_user: User) -> None:
    services.room_create(host=user, name="lobby")
    with pytest.raises(ValidationError) as refused:
        services.room_create(host=other_user, name="lobby")
    assert "name" in refused.value.detail
    assert Room.objects.filter(name="lobby").count() == 1


def test_only_the_host_renames_a_room(room: Room, user: User, other_user: User) -> None:
    services.room_join(room_id=room.pk, user=other_user)
    with pytest.raises(NotRoomHost):
        services.room_update(room=room, user=other_user, name="mine now")
    assert Room.objects.get(pk=room.pk).name == room.name
    renamed = services.room_update(room=room, user=user, name="renamed")
    assert renamed.name == "renamed" and Room.objects.get(pk=room.pk).name == "renamed"


def test_renaming_to_a_taken_name_is_refused(room: Room, user: User) -> None:
    RoomFactory.create(name="taken", host=user)
    with pytest.raises(ValidationError):
        services.room_update(room=room, user=user, name="taken")


def test_only_the_host_deletes_a_room_and_its_messages_go_with_it(room: Room, user: User, other_user: User) -> None:
    services.message_create(room_id=room.pk, author=user, text="hello")
    services.room_join(room_id=room.pk, user=other_user)
    with pytest.raises(NotRoomHost):
        services.room_delete(room=room, user=other_user)
    assert Room.objects.filter(pk=room.pk).exists()
    services.room_delete(room=room, user=user)
    assert not Room.objects.filter(pk=room.pk).exists() and not Message.objects.filter(room_id=room.pk).exists()


def test_joining_is_idempotent_and_leaving_needs_membership(room: Room, other_user: User) -> None:
    services.room_join(room_id=room.pk, user=other_user)
    services.room_join(room_id=room.pk, user=other_user)
    assert room.members.filter(pk=other_user.pk).count() == 1
    services.room_leave(room_id=room.pk, user=other_user)
    with pytest.raises(NotRoomMember):
        services.room_leave(room_id=room.pk, user=other_user)


def test_joining_or_leaving_a_missing_room(user: User) -> None:
    with pytest.raises(RoomNotFound):
        services.room_join(room_id=10**9, user=user)
    with pytest.raises(RoomNotFound):
        services.room_leave(room_id=10**9, user=user)


# --- posting -----------------------------------------------------------------------------
# Each posting rule runs on both ways of storing a post: PostgreSQL's one-round-trip
# chat_post_message() (migration 0005) and the ORM transaction other databases use.


@pytest.fixture(params=["function", "orm"])
def post_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.param == "orm":
        monkeypatch.setattr(message_services, "_append_postgresql", message_services._append_orm)


@pytest.mark.usefixtures("post_path")
def test_members_post_under_consecutive_seqs(room: Room, user: User) -> None:
    posted = [services.message_create(room_id=room.pk, author=user, text=f"m{n}") for n in range(3)]
    assert [(message.seq, created) for message, created in posted] == [(1, True), (2, True), (3, True)]
    assert selectors.room_last_seq(room_id=room.pk) == 3


@pytest.mark.usefixtures("post_path")
def test_a_non_member_cannot_post_and_nothing_is_stored(room: Room, other_user: User) -> None:
    with pytest.raises(NotRoomMember):
        services.message_create(room_id=room.pk, author=other_user, text="let me in")
    assert not Message.objects.filter(room=room).exists()
    assert selectors.room_last_seq(room_id=room.pk) == 0


@pytest.mark.usefixtures("post_path")
def test_posting_to_a_missing_room(user: User) -> None:
    with pytest.raises(RoomNotFound):
        services.message_create(room_id=10**9, author=user, text="anyone?")


@pytest.mark.usefixtures("post_path")
def test_a_member_who_left_can_no_longer_post(room: Room, other_user: User) -> None:
    services.room_join(room_id=room.pk, user=other_user)
    services.message_create(room_id=room.pk, author=other_user, text="hi")
    services.room_leave(room_id=room.pk, user=other_user)
    with pytest.raises(NotRoomMember):
        services.message_create(room_id=room.pk, author=other_user, text="still here?")


@pytest.mark.usefixtures("post_path")
def test_a_repeated_client_id_returns_the_first_message_and_stores_nothing(room: Room, user: User, other_user: User) -> None:
    first, created = services.message_create(room_id=room.pk, author=user, text="once", client_id="c-1")
    again, created_again = services.message_create(room_id=room.pk, author=user, text="once (retry)", client_id="c-1")
    assert created and not created_again
    assert again.pk == first.pk and again.text == "once" and again.seq == 1
    assert Message.objects.filter(room=room).count() == 1 and selectors.room_last_seq(room_id=room.pk) == 1
    # The key is (room, user, client_id): another user, or another room, stores a new message.
    services.room_join(room_id=room.pk, user=other_user)
    theirs, created = services.message_create(room_id=room.pk, author=other_user, text="mine", client_id="c-1")
    assert created and theirs.seq == 2
    elsewhere = RoomFactory.create(host=user)
    assert services.message_create(room_id=elsewhere.pk, author=user, text="there", client_id="c-1")[1]


@pytest.mark.usefixtures("post_path")
@override_settings(CHAT_MESSAGE_RATE_LIMIT=3, CHAT_MESSAGE_RATE_PERIOD=60)
def test_the_flood_limit_refuses_and_stores_nothing_but_retries_do_not_count(room: Room, user: User, other_user: User) -> None:
    for n in range(3):
        services.message_create(room_id=room.pk, author=user, text=f"m{n}", client_id=f"c{n}")
    # Retries of stored messages answer with the stored message, over the limit or not.
    assert services.message_create(room_id=room.pk, author=user, text="m0", client_id="c0")[1] is False
    with pytest.raises(RateLimited) as limited:
        services.message_create(room_id=room.pk, author=user, text="one too many", client_id="c3")
    assert 1 <= limited.value.retry_after <= 60
    assert Message.objects.filter(room=room).count() == 3 and selectors.room_last_seq(room_id=room.pk) == 3
    # The limit is per user.
    services.room_join(room_id=room.pk, user=other_user)
    assert services.message_create(room_id=room.pk, author=other_user, text="my turn")[0].seq == 4


@pytest.mark.usefixtures("post_path")
@override_settings(CHAT_MESSAGE_RATE_LIMIT=1, CHAT_MESSAGE_RATE_PERIOD=60)
def test_message_store_skips_membership_and_flood_checks(room: Room, other_user: User) -> None:
    """The admin's path: no membership needed, no flood limit, the same seq numbering."""
    stored = [services.message_store(room_id=room.pk, author=other_user, text=f"s{n}")[0].seq for n in range(3)]
    assert stored == [1, 2, 3]


@pytest.mark.usefixtures("post_path")
def test_a_banned_member_is_told_so_and_a_private_room_is_not_found(room: Room, user: User, other_user: User) -> None:
    services.room_join(room_id=room.pk, user=other_user)
    services.member_ban(room_id=room.pk, actor=user, user_id=other_user.pk)
    with pytest.raises(Banned):
        services.message_create(room_id=room.pk, author=other_user, text="unbanned?")
    private = services.room_create(host=user, name="secret", kind=RoomKind.PRIVATE)
    with pytest.raises(RoomNotFound):
        services.message_create(room_id=private.pk, author=other_user, text="knock knock")
    assert not Message.objects.filter(user=other_user).exists()


@pytest.mark.usefixtures("post_path")
def test_a_reply_points_at_a_message_of_the_same_room(room: Room, user: User) -> None:
    target, _ = services.message_create(room_id=room.pk, author=user, text="question")
    reply, _ = services.message_create(room_id=room.pk, author=user, text="answer", reply_to=target.pk)
    assert reply.reply_to == target.pk and reply.seq == 2
    elsewhere, _ = services.message_create(room_id=RoomFactory.create(host=user).pk, author=user, text="elsewhere")
    with pytest.raises(ValidationError) as refused:
        services.message_create(room_id=room.pk, author=user, text="lost", reply_to=elsewhere.pk)
    assert "reply_to" in refused.value.detail and selectors.room_last_seq(room_id=room.pk) == 2


@pytest.mark.usefixtures("post_path")
@override_settings(CHAT_MESSAGE_RATE_LIMIT=2, CHAT_MESSAGE_RATE_PERIOD=60)
def test_refused_posts_use_none_of_the_flood_budget_and_keep_their_error_over_it(room: Room, user: User, other_user: User) -> None:
    """The flood count is taken before the room's lock and given back when nothing is stored."""
    private = services.room_create(host=other_user, name="theirs", kind=RoomKind.PRIVATE)
    for _ in range(3):
        with pytest.raises(RoomNotFound):
            services.message_create(room_id=private.pk, author=user, text="in?")
        with pytest.raises(ValidationError):
            services.message_create(room_id=room.pk, author=user, text="re", reply_to=10**9)
    assert [services.message_create(room_id=room.pk, author=user, text=f"m{n}")[0].seq for n in range(2)] == [1, 2]
    # Over the limit now: a refused post still gets its own error, not 429, and a new one gets 429.
    with pytest.raises(RoomNotFound):
        services.message_create(room_id=private.pk, author=user, text="in?")
    with pytest.raises(ValidationError):
        services.message_create(room_id=room.pk, author=user, text="re", reply_to=10**9)
    with pytest.raises(RateLimited):
        services.message_create(room_id=room.pk, author=user, text="one more")
    assert selectors.room_last_seq(room_id=room.pk) == 2


# --- editing and deleting ----------------------------------------------------------------


def test_only_the_author_edits_a_message(room: Room, user: User, other_user: User) -> None:
    message, _ = services.message_create(room_id=room.pk, author=user, text="first draft")
    services.room_join(room_id=room.pk, user=other_user)
    with pytest.raises(NotMessageAuthor):
        services.message_update(message=message, user=other_user, text="vandalised")
    message.refresh_from_db()
    assert message.text == "first draft" and message.edited_at is None
    edited = services.message_update(message=message, user=user, text="final")
    stored = Message.objects.get(pk=message.pk)
    assert edited.text == stored.text == "final" and stored.edited_at is not None and stored.seq == 1


def test_the_author_or_the_room_host_deletes_a_message_and_its_seq_stays_a_hole(room: Room, user: User, other_user: User) -> None:
    services.room_join(room_id=room.pk, user=other_user)
    theirs, _ = services.message_create(room_id=room.pk, author=other_user, text="by a member")
    hosts, _ = services.message_create(room_id=room.pk, author=user, text="by the host")
    bystander = RoomFactory.create().host
    services.room_join(room_id=room.pk, user=bystander)
    with pytest.raises(NotMessageAuthor):
        services.message_delete(message=selectors.message_get(pk=hosts.pk), user=other_user)
    with pytest.raises(NotMessageAuthor):
        services.message_delete(message=selectors.message_get(pk=theirs.pk), user=bystander)
    services.message_delete(message=selectors.message_get(pk=theirs.pk), user=user)  # the host
    services.message_delete(message=selectors.message_get(pk=hosts.pk), user=user)  # the author
    assert not Message.objects.filter(room=room).exists()
    assert services.message_create(room_id=room.pk, author=user, text="after")[0].seq == 3
