"""Messages and reactions: post (seq, idempotency, flood limit), edit, delete, react (api_docs/PROTOCOL.md §2, §7)."""

from dataclasses import dataclass
from datetime import datetime

from django.db import DEFAULT_DB_ALIAS, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from djangochannelsrestframework.observer.model_observer import Action
from rest_framework.exceptions import ValidationError

from chat.core import selectors
from chat.core.db import fetch_prepared, on_commit
from chat.core.exceptions import (
    Banned,
    MessageNotFound,
    NotMessageAuthor,
    NotRoomMember,
    RateLimited,
    ReactionNotFound,
    RoomNotFound,
)
from chat.core.ratelimit import message_rate_limit_check, rate_limit_refund
from chat.events.streams import message_changed, message_observer
from chat.models import Membership, Message, Reaction, Role, Room, RoomKind, User
from chat.ops import metrics

REPLY_TO_INVALID = "Not a message of this room."


def message_create(
    *, room_id: int, author: User, text: str, client_id: str | None = None, reply_to: int | None = None
) -> tuple[Message, bool]:
    """Post a message as a member, within the flood limit; returns it and whether it is new.

    A repeated client_id returns the first message and stores nothing (safe retries),
    without counting against the flood limit. `reply_to` must be a message of the same room.
    """
    return _message_append(room_id=room_id, author=author, text=text, client_id=client_id, reply_to=reply_to, as_member=True)


def message_store(
    *, room_id: int, author: User, text: str, client_id: str | None = None, reply_to: int | None = None
) -> tuple[Message, bool]:
    """Store a message under the room's next seq, with no membership or flood checks (the admin's path)."""
    return _message_append(room_id=room_id, author=author, text=text, client_id=client_id, reply_to=reply_to, as_member=False)


def _message_append(
    *, room_id: int, author: User, text: str, client_id: str | None, reply_to: int | None, as_member: bool
) -> tuple[Message, bool]:
    """Append a message to the room under its next seq, or return the one this client_id already stored.

    A member's post is counted against the flood limit first, outside the room's lock (a
    Redis round trip there would hold up the room's other posters), and taken back when
    nothing was stored: a refusal, or a retry answered with its first message. A post over
    the limit still learns whether it is a retry (200 with the message) or refused anyway
    (404, 403, 400): the limit comes last among the errors, as if checked under the lock.
    """
    if not as_member:
        message, created = _append_once(room_id=room_id, author=author, text=text, client_id=client_id, reply_to=reply_to, as_member=False)
        assert message is not None  # a storing attempt answers a message or raises
        return message, created
    try:
        counted = message_rate_limit_check(user_id=author.pk)
    except RateLimited:
        existing, _ = _append_once(
            room_id=room_id, author=author, text=text, client_id=client_id, reply_to=reply_to, as_member=True, store=False
        )
        if existing is None:
            raise
        return existing, False
    try:
        message, created = _append_once(room_id=room_id, author=author, text=text, client_id=client_id, reply_to=reply_to, as_member=True)
    except BaseException:
        rate_limit_refund(counted)
        raise
    if not created:
        rate_limit_refund(counted)
    assert message is not None  # a storing attempt answers a message or raises
    return message, created


@dataclass(frozen=True, slots=True)
class _Post:
    """One attempt at a post, as both ways of storing it take it."""

    room_id: int
    author: User
    text: str
    client_id: str | None
    reply_to: int | None
    created_at: datetime
    as_member: bool
    store: bool


def _append_once(
    *,
    room_id: int,
    author: User,
    text: str,
    client_id: str | None,
    reply_to: int | None,
    as_member: bool,
    store: bool = True,
) -> tuple[Message | None, bool]:
    """One attempt to store the message; with store=False only the checks (and the client_id lookup) run.

    Answers the stored or already stored message and whether it is new; raises the
    refusal. Without store, answers (None, False) when the post would be stored.
    """
    append = _append_postgresql if connection.vendor == "postgresql" else _append_orm
    created_at = timezone.now()  # as auto_now_add would, on both paths
    outcome, message = append(_Post(room_id, author, text, client_id, reply_to, created_at, as_member, store))
    if outcome == "room_not_found":
        raise RoomNotFound()
    if outcome == "banned":
        raise Banned()
    if outcome == "not_member":
        raise NotRoomMember()
    if outcome == "reply_invalid":
        raise ValidationError({"reply_to": [REPLY_TO_INVALID]})
    if outcome == "allowed":  # only when store=False
        return None, False
    assert message is not None  # 'existing' and 'created' come with their message
    if outcome == "existing":
        selectors.attach_reactions([message])
        return message, False
    message.reaction_summary = []  # a new message has none: serializing it (response, event) needs no query
    message_observer.database_event(message, Action.CREATE)  # sent after commit
    on_commit(metrics.message_created)
    return message, True


# Message's columns in the model's order, which Model.from_db takes its values in.
_MESSAGE_COLUMNS = [field.attname for field in Message._meta.concrete_fields]


def _append_postgresql(post: _Post) -> tuple[str, Message | None]:
    """The steps of _append_orm in one round trip: chat_post_message() (migration 0005), autocommitted."""
    row = fetch_prepared(
        "SELECT * FROM chat_post_message(%s, %s, %s, %s, %s, %s, %s, %s)",
        [post.room_id, post.author.pk, post.text, post.client_id, post.reply_to, post.created_at, post.as_member, post.store],
    )
    assert row is not None  # the function answers one row, whatever the outcome
    outcome, pk, seq, stored_text, stored_client_id, stored_at, edited_at, stored_reply_to = row
    if pk is None:
        return outcome, None
    stored = {
        "id": pk,
        "room_id": post.room_id,
        "seq": seq,
        "user_id": post.author.pk,
        "text": stored_text,
        "client_id": stored_client_id,
        "created_at": stored_at,
        "edited_at": edited_at,
        "reply_to": stored_reply_to,
    }
    # A stored row, made as the ORM makes one it read: positional, half the cost of keyword arguments.
    message = Message.from_db(DEFAULT_DB_ALIAS, _MESSAGE_COLUMNS, [stored[column] for column in _MESSAGE_COLUMNS])
    Message.user.field.set_cached_value(message, post.author)
    return outcome, message


def _append_orm(post: _Post) -> tuple[str, Message | None]:
    """Other databases: lock the room, check, advance the seq and insert, in a transaction of several statements.

    The room row is locked while the next seq is taken, so concurrent posters get
    1, 2, 3... with no gap or duplicate, and a retry racing its original finds it
    under the same lock. Answers the outcomes of chat_post_message().
    """
    # Inside a caller's transaction (the admin's, a test's) a savepoint keeps a failed
    # statement from breaking it; the admin's store is never refused, and DCRF's
    # observers warn about savepoints, so it goes without.
    room_id, author_id = post.room_id, post.author.pk
    with transaction.atomic(savepoint=post.as_member):
        room = selectors.room_for_posting(room_id=room_id, user_id=author_id)
        if room is None or (post.as_member and not room.is_member and room.kind != RoomKind.PUBLIC):
            return "room_not_found", None
        if post.client_id is not None:
            # A query of its own, after the lock: a subquery of the locking statement would
            # read a snapshot taken before the lock and miss a racing retry's commit.
            existing = selectors.message_by_client_id(room_id=room_id, user_id=author_id, client_id=post.client_id)
            if existing is not None:
                return "existing", existing
        if post.as_member and not room.is_member:
            return ("banned" if selectors.is_banned(room_id=room_id, user_id=author_id) else "not_member"), None
        # The same room is enough for "a message the caller can see": the caller is a member of it.
        if post.reply_to is not None and not selectors.message_in_room(message_id=post.reply_to, room_id=room_id):
            return "reply_invalid", None
        if not post.store:
            return "allowed", None
        seq = room.last_seq + 1
        # update(), not save(): a new seq is not a room change its observers should announce.
        Membership.objects.filter(room_id=room_id, user_id=author_id, last_read_seq__lt=seq).update(last_read_seq=seq)
        Room.objects.filter(pk=room_id).update(last_seq=seq)
        message = Message(
            room_id=room_id,
            seq=seq,
            user=post.author,
            text=post.text,
            client_id=post.client_id,
            created_at=post.created_at,
            reply_to=post.reply_to,
        )
        # bulk_create sends no post_save: the event is sent by _append_once, as for PostgreSQL.
        Message.objects.bulk_create([message])
    return "created", message


def message_update(*, message: Message, user: User, text: str) -> Message:
    """Edit a message's text (author only), within the message flood limit."""
    if message.user_id != user.pk:
        raise NotMessageAuthor()
    message_rate_limit_check(user_id=user.pk)
    selectors.attach_reactions([message])  # once, for both the response and the observer's event
    message.text = text
    message.edited_at = timezone.now()
    message.save(update_fields=["text", "edited_at"])
    return message


def message_delete(*, message: Message, user: User) -> None:
    """Delete a message (its author, the room's owner or a moderator); its seq stays a hole."""
    if message.user_id != user.pk and message.room.host_id != user.pk:
        role = Membership.objects.filter(room_id=message.room_id, user_id=user.pk).values_list("role", flat=True).first()
        if role != Role.MODERATOR:
            raise NotMessageAuthor("Only the message's author, the room's owner or a moderator may delete it.")
    message.reaction_summary = []  # its reactions go with it; the delete event needs no query for them
    message.delete()


def reaction_add(*, message_id: int, user: User, emoji: str) -> tuple[Message, bool]:
    """React to a message of a room one is a member of; returns the message and whether the reaction is new.

    Adding a reaction one already has stores nothing and sends no event.
    """
    with transaction.atomic():
        message = _message_for_reaction(message_id=message_id, user=user)
        reactions = Reaction.objects.filter(message_id=message_id, user_id=user.pk, emoji=emoji)
        created = not reactions.exists()  # no race: the message row is locked
        if created:
            Reaction.objects.create(message_id=message_id, user_id=user.pk, emoji=emoji)
        _announce_reactions(message, changed=created)
    return message, created


def reaction_remove(*, message_id: int, user: User, emoji: str) -> Message:
    """Take back one's reaction (ReactionNotFound if there is none); returns the message."""
    with transaction.atomic():
        message = _message_for_reaction(message_id=message_id, user=user)
        deleted, _ = Reaction.objects.filter(message_id=message_id, user_id=user.pk, emoji=emoji).delete()
        if not deleted:
            raise ReactionNotFound()
        _announce_reactions(message, changed=True)
    return message


def _message_for_reaction(*, message_id: int, user: User) -> Message:
    """The message, its row locked, once the user may react to it: a member of its room, within the flood limit.

    The lock serialises reaction changes of one message, so each one's event carries the
    reactions as they stand after it, and an add can check for a duplicate without a race.
    """
    membership = Membership.objects.filter(room_id=OuterRef("room_id"), user_id=user.pk)
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(pk=message_id, room__in=selectors.rooms_visible_to(user=user))
        .annotate(is_member=Exists(membership))
        .order_by()
        .first()
    )
    if message is None:
        raise MessageNotFound()
    if not message.is_member:
        raise NotRoomMember()
    message_rate_limit_check(user_id=user.pk)  # raises before anything is written
    return message


def _announce_reactions(message: Message, *, changed: bool) -> None:
    """Read the message's reactions as they now stand and, if they changed, send its `update` event after commit."""
    selectors.attach_reactions([message])
    if changed:
        message_changed(message)  # edited_at untouched: a reaction is not an edit
