"""Reads: every query the HTTP API and the WebSocket consumer make lives here."""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias, TypedDict, TypeVar, cast

from django.conf import settings
from django.db.models import Case, Count, Exists, F, FilteredRelation, IntegerField, Model, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from chat.core.compiled import CompiledQuery
from chat.core.exceptions import MessageNotFound, RoomNotFound
from chat.core.search import messages_matching
from chat.models import Ban, Connection, Membership, Message, Presence, Reaction, Role, Room, RoomKind, User


class _NewestMessage(TypedDict):
    newest_message_id: int | None


class _Membership(TypedDict):
    is_member: bool


if TYPE_CHECKING:  # django-stubs' type of a model instance with query annotations (a dev-only package)
    from django_stubs_ext import WithAnnotations

    # A Room with its newest message's pk (_room_queryset) / with whether the poster is a member (room_for_posting).
    RoomWithNewest: TypeAlias = WithAnnotations[Room, _NewestMessage]
    RoomForPosting: TypeAlias = WithAnnotations[Room, _Membership]


def heartbeat_interval() -> float:
    """How often each server process marks its connections as alive, in seconds."""
    return settings.CHAT_PRESENCE_EXPIRY / 4


def live_connection_cutoff() -> Any:
    """Connections not heard from since this instant belong to a dead process.

    Three missed heartbeats, so that with one more sweep interval a crashed
    process's presence is gone and announced within CHAT_PRESENCE_EXPIRY.
    """
    return timezone.now() - timedelta(seconds=3 * heartbeat_interval())


def _count_of(queryset: QuerySet[Any], group_by: str) -> Coalesce:
    """A correlated COUNT(*) subquery over queryset (already filtered by an OuterRef), 0 when empty."""
    counted = queryset.order_by().values(group_by).annotate(n=Count("*")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _member_count(room_ref: str) -> Coalesce:
    return _count_of(Membership.objects.filter(room=OuterRef(room_ref)), "room")


def _room_live_columns() -> dict[str, Any]:
    """The annotations behind §1 Room's member_count and last_message (its pk)."""
    newest = Message.objects.filter(room=OuterRef("pk")).order_by("-seq").values("pk")[:1]
    return {"newest_message_id": Subquery(newest), "member_count": _member_count("pk")}


def _room_queryset() -> "QuerySet[RoomWithNewest]":
    return cast("QuerySet[RoomWithNewest]", Room.objects.select_related("host").annotate(**_room_live_columns()))


def _visible_q(user_id: int) -> Q:
    return Q(kind=RoomKind.PUBLIC) | Q(Exists(Membership.objects.filter(room=OuterRef("pk"), user_id=user_id)))


def rooms_visible_to(*, user: User) -> QuerySet[Room]:
    """The rooms this user can see (api_docs/PROTOCOL.md §5): every public room and the rooms they are a member of.

    The one visibility rule: every read, subscription and push path filters through it.
    """
    return Room.objects.filter(_visible_q(user.pk))


def access_room(*, user: User, pk: int) -> Room:
    """The room with its live state if this user can see it; otherwise the same RoomNotFound as a missing pk."""
    room = _room_queryset().filter(_visible_q(user.pk), pk=pk).first()
    if room is None:
        raise RoomNotFound()
    _attach_live_state([room])
    return room


def room_assert_visible(*, user: User, pk: int) -> None:
    """Raise RoomNotFound unless this user can see a room with this pk."""
    if not rooms_visible_to(user=user).filter(pk=pk).exists():
        raise RoomNotFound()


def present_users_by_room(room_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """The users with a live connection in each room, once each, by id, as §1 User objects.

    Built as plain dicts, not through UserSerializer: this list goes to every member on
    every presence change and in every join response, so it is the hot path of a big room.
    """
    rows = (
        Presence.objects.filter(room_id__in=list(room_ids), connection__seen_at__gte=live_connection_cutoff())
        .values_list("room_id", "user_id", "user__username")
        .distinct()
        .order_by("room_id", "user_id")
    )
    users: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for room_id, user_id, username in rows:
        users[room_id].append({"id": user_id, "username": username})
    return users


def _attach_live_state(rooms: "Sequence[RoomWithNewest]", *, with_present_users: bool = True) -> None:
    """Set `current_users` and `last_message` on rooms from _room_queryset, in two queries."""
    if not rooms:
        return
    present = present_users_by_room(room.pk for room in rooms) if with_present_users else {}
    newest_ids = [room.newest_message_id for room in rooms if room.newest_message_id]
    newest = Message.objects.select_related("user").in_bulk(newest_ids) if newest_ids else {}
    attach_reactions(list(newest.values()))
    for room in rooms:
        room.current_users = present.get(room.pk, [])
        room.last_message = newest.get(room.newest_message_id)


def room_get(*, pk: int, with_present_users: bool = True) -> Room:
    """The room with its live state (`current_users` empty unless with_present_users), or RoomNotFound."""
    room = _room_queryset().filter(pk=pk).first()
    if room is None:
        raise RoomNotFound()
    _attach_live_state([room], with_present_users=with_present_users)
    return room


def room_list(*, user: User, name: str | None = None, page: int = 1, page_size: int = 50) -> tuple[Sequence[Room], int]:
    """One page of the rooms this user can see (oldest first), optionally the one with exactly this name, and the total count."""
    rooms = rooms_visible_to(user=user)
    if name is not None:
        rooms = rooms.filter(name=name)
    count = rooms.count()
    offset = (page - 1) * page_size
    page_rooms = list(_room_queryset().filter(pk__in=rooms.values("pk")).order_by("pk")[offset : offset + page_size])
    _attach_live_state(page_rooms)
    return page_rooms, count


def room_assert_exists(*, pk: int) -> None:
    """Raise RoomNotFound unless a room has this pk."""
    if not Room.objects.filter(pk=pk).exists():
        raise RoomNotFound()


def room_for_posting(*, room_id: int, user_id: int) -> "RoomForPosting | None":
    """The room's seq counter and kind, its row locked until the transaction ends, and `is_member` for this user; None if no such room."""
    membership = Membership.objects.filter(room_id=OuterRef("pk"), user_id=user_id)
    rooms = (
        Room.objects.select_for_update(no_key=True).only("pk", "last_seq", "kind").annotate(is_member=Exists(membership)).filter(pk=room_id)
    )
    return next(iter(rooms.order_by()), None)


def is_banned(*, room_id: int, user_id: int) -> bool:
    """Whether the user is banned from the room."""
    return Ban.objects.filter(room_id=room_id, user_id=user_id).exists()


def membership_get(*, room_id: int, user_id: int) -> Membership | None:
    """The user's membership of the room, if any."""
    return Membership.objects.select_related("user").filter(room_id=room_id, user_id=user_id).first()


class JoinState(TypedDict):
    """What joining (or leaving) a room needs to know about it and the user."""

    kind: str
    host_id: int
    is_member: bool
    is_banned: bool
    is_present: bool


def _join_state_columns(*, user_id: int, cutoff: Any) -> dict[str, Any]:
    """The annotations of a room behind JoinState: whether the user is a member, banned, present (by a connection live since cutoff)."""
    return {
        "is_member": Exists(Membership.objects.filter(room_id=OuterRef("pk"), user_id=user_id)),
        "is_banned": Exists(Ban.objects.filter(room_id=OuterRef("pk"), user_id=user_id)),
        "is_present": Exists(Presence.objects.filter(room_id=OuterRef("pk"), user_id=user_id, connection__seen_at__gte=cutoff)),
    }


_JOIN_STATE_FIELDS = ("kind", "host_id", "is_member", "is_banned", "is_present")
# Stand-ins for CompiledQuery: values no real id or cutoff takes.
_ROOM_ID, _USER_ID, _OTHER_ID, _CUTOFF = -(2**62) - 1, -(2**62) - 2, -(2**62) - 3, datetime(1901, 1, 1, tzinfo=UTC)

_room_for_joining = CompiledQuery(
    lambda room_id, user_id, cutoff: (
        Room.objects.filter(pk=room_id)
        .annotate(**_join_state_columns(user_id=user_id, cutoff=cutoff))
        .values(*_JOIN_STATE_FIELDS)
        .order_by()[:1]
    ),
    room_id=_ROOM_ID,
    user_id=_USER_ID,
    cutoff=_CUTOFF,
)


def room_for_joining(*, room_id: int, user_id: int) -> JoinState | None:
    """What joining needs to know, in one query: the room's kind and whether the user is a member, banned, present; None if no such room."""
    return cast("JoinState | None", _room_for_joining.first(room_id=room_id, user_id=user_id, cutoff=live_connection_cutoff()))


M = TypeVar("M", bound=Model)


def _loaded(model: type[M], row: dict[str, Any]) -> M:
    """An instance of model as the ORM loads it from a row with some of its columns (by attname); the others are deferred."""
    fields = [field.attname for field in model._meta.concrete_fields if field.attname in row]
    return model.from_db(model._default_manager.db, fields, [row[name] for name in fields])


_ROOM_COLUMNS = ("id", "name", "kind", "created_at", "host_id")
_MESSAGE_COLUMNS = ("id", "room_id", "seq", "user_id", "text", "client_id", "created_at", "edited_at", "reply_to")
# The room's newest message, joined in: it is the one at the room's last_seq unless that one was deleted.
_LAST_MESSAGE_COLUMNS = tuple(f"message_at_last_seq__{name}" for name in (*_MESSAGE_COLUMNS, "user__username"))
_room_for_entering = CompiledQuery(
    lambda room_id, user_id, cutoff: (
        Room.objects.filter(pk=room_id)
        .annotate(
            message_at_last_seq=FilteredRelation("messages", condition=Q(messages__seq=F("last_seq"))),
            message_at_last_seq_has_reactions=Exists(
                Reaction.objects.filter(message__room=OuterRef("pk"), message__seq=OuterRef("last_seq"))
            ),
            **_room_live_columns(),
            **_join_state_columns(user_id=user_id, cutoff=cutoff),
        )
        .values(
            *_ROOM_COLUMNS,
            "host__username",
            "newest_message_id",
            "member_count",
            *_JOIN_STATE_FIELDS[2:],
            *_LAST_MESSAGE_COLUMNS,
            "message_at_last_seq_has_reactions",
        )
        .order_by()[:1]
    ),
    room_id=_ROOM_ID,
    user_id=_USER_ID,
    cutoff=_CUTOFF,
)


def room_for_entering(*, room_id: int, user_id: int) -> tuple[JoinState, Room] | None:
    """room_for_joining, and the room with host, member_count and last_message (current_users empty), in one query
    (and one more if its newest message is not at its last_seq, that one deleted); None if no such room.

    The room is as it was before the join: a newcomer is not in its member_count yet.
    """
    row = _room_for_entering.first(room_id=room_id, user_id=user_id, cutoff=live_connection_cutoff())
    return None if row is None else _entering_state_and_room(row)


def room_for_entering_sql(*, room_id: int, user_id: int) -> tuple[str, list[Any]] | None:
    """room_for_entering's query as SQL and parameters, for a statement that does more in the same round trip
    (columns `id` and `is_member` among them); None: use room_for_entering. Read its rows with room_for_entering_from_row.
    """
    return _room_for_entering.embedded(room_id=room_id, user_id=user_id, cutoff=live_connection_cutoff())


def room_for_entering_from_row(row: Sequence[Any]) -> tuple[JoinState, Room]:
    """room_for_entering's answer from a row that starts with room_for_entering_sql's columns."""
    return _entering_state_and_room(_room_for_entering.decode(row))


def _entering_state_and_room(row: dict[str, Any]) -> tuple[JoinState, Room]:
    state: JoinState = {
        "kind": row["kind"],
        "host_id": row["host_id"],
        "is_member": row["is_member"],
        "is_banned": row["is_banned"],
        "is_present": row["is_present"],
    }
    room = _loaded(Room, row)
    room.host = _loaded(User, {"id": row["host_id"], "username": row["host__username"]})
    room.member_count = row["member_count"]  # type: ignore[attr-defined]  # as _room_queryset's annotation
    room.current_users = []
    if row["message_at_last_seq__id"] is not None:
        columns = {name.removeprefix("message_at_last_seq__"): row[name] for name in _LAST_MESSAGE_COLUMNS}
        room.last_message = _message_from_row(columns, row["message_at_last_seq_has_reactions"])
    elif row["newest_message_id"] is not None:
        room.last_message = _last_message(message_id=row["newest_message_id"])
    else:
        room.last_message = None
    return state, room


_last_message_row = CompiledQuery(
    lambda message_id: (
        Message.objects.filter(pk=message_id)
        .annotate(has_reactions=Exists(Reaction.objects.filter(message_id=OuterRef("pk"))))
        .values(*_MESSAGE_COLUMNS, "user__username", "has_reactions")
        .order_by()[:1]
    ),
    message_id=_OTHER_ID,
)


def _last_message(*, message_id: int) -> Message | None:
    """A room's last message for §1 Room: with its author (id and username) and reactions; None if it is gone."""
    row = _last_message_row.first(message_id=message_id)
    return None if row is None else _message_from_row(row, row["has_reactions"])


def _message_from_row(row: dict[str, Any], has_reactions: bool) -> Message:
    """A message with its author (id and username, `user__username`) and reactions, from its columns."""
    message = _loaded(Message, row)
    message.user = _loaded(User, {"id": row["user_id"], "username": row["user__username"]})
    if has_reactions:
        attach_reactions([message])
    else:  # most messages have none: no query for them
        message.reaction_summary = []
    return message


_ROLE_ORDER = Case(When(role=Role.OWNER, then=Value(0)), When(role=Role.MODERATOR, then=Value(1)), default=Value(2))


def member_list(*, room_id: int, page: int = 1, page_size: int = 50) -> tuple[list[Membership], int]:
    """One page of a room's members (owner, then moderators, then by joined_at) and how many there are."""
    members = Membership.objects.filter(room_id=room_id)
    offset = (page - 1) * page_size
    page_members = members.select_related("user").order_by(_ROLE_ORDER, "joined_at", "pk")[offset : offset + page_size]
    return list(page_members), members.count()


def room_member_ids(*, room_id: int) -> list[int]:
    """The ids of the room's members."""
    return list(Membership.objects.filter(room_id=room_id).values_list("user_id", flat=True))


def user_room_ids(*, user_id: int) -> list[int]:
    """The rooms the user is a member of."""
    return list(Membership.objects.filter(user_id=user_id).values_list("room_id", flat=True))


def unread_count(*, room_id: int, user_id: int, after_seq: int) -> int:
    """The room's messages after this seq written by someone else (an index-only scan of (room, seq) INCLUDE user)."""
    return Message.objects.filter(room_id=room_id, seq__gt=after_seq).exclude(user_id=user_id).count()


def inbox(*, user: User, page: int = 1, page_size: int = 50) -> tuple[Sequence[Membership], int]:
    """One page of the user's memberships, newest message first, with `unread_count` and their rooms' live state.

    A fixed number of queries however many rooms: counts and newest messages are
    correlated subqueries, each an index range scan of (room, seq) after the member's
    last_read_seq, never a scan of a room's whole history.
    """
    newest = Message.objects.filter(room=OuterRef("room_id")).order_by("-seq")
    unread = Message.objects.filter(room=OuterRef("room_id"), seq__gt=OuterRef("last_read_seq")).exclude(user_id=user.pk)
    memberships = Membership.objects.filter(user=user)
    offset = (page - 1) * page_size
    page_memberships = list(
        memberships.select_related("room__host")
        .annotate(
            newest_at=Subquery(newest.values("created_at")[:1]),
            newest_message_id=Subquery(newest.values("pk")[:1]),
            unread_count=_count_of(unread, "room"),
            member_count=_member_count("room_id"),
        )
        .order_by(F("newest_at").desc(nulls_last=True), F("room__created_at").desc(), F("room_id").desc())[offset : offset + page_size]
    )
    for membership in page_memberships:
        membership.room.newest_message_id = membership.newest_message_id  # type: ignore[attr-defined]
        membership.room.member_count = membership.member_count  # type: ignore[attr-defined]
    _attach_live_state([cast("RoomWithNewest", membership.room) for membership in page_memberships])
    return page_memberships, memberships.count()


def message_get(*, pk: int) -> Message:
    """The message with its author, or MessageNotFound."""
    message = Message.objects.select_related("user", "room").filter(pk=pk).first()
    if message is None:
        raise MessageNotFound()
    return message


def access_message(*, user: User, pk: int) -> Message:
    """The message with its author if it is in a room this user can see; otherwise the same MessageNotFound as a missing id."""
    member = Membership.objects.filter(room_id=OuterRef("room_id"), user_id=user.pk)
    message = Message.objects.select_related("user", "room").filter(Q(room__kind=RoomKind.PUBLIC) | Q(Exists(member)), pk=pk).first()
    if message is None:
        raise MessageNotFound()
    return message


def message_by_client_id(*, room_id: int, user_id: int, client_id: str) -> Message | None:
    """The message this user already sent to this room under this client_id, if any."""
    # At most one row (a unique constraint): no ORDER BY, which .first() or Meta.ordering would add.
    messages = Message.objects.select_related("user").filter(room_id=room_id, user_id=user_id, client_id=client_id).order_by()
    return next(iter(messages), None)


def message_history(
    *, room_id: int, after_seq: int | None = None, before_seq: int | None = None, limit: int = 50
) -> tuple[list[Message], bool]:
    """A slice of a room's messages in ascending seq, and whether more lie beyond it.

    With after_seq: the first `limit` after it, below before_seq if given (more = newer
    ones remain). Otherwise: the last `limit` before before_seq, or the newest (more =
    older ones remain).
    """
    messages = Message.objects.select_related("user").filter(room_id=room_id)
    if before_seq is not None:
        messages = messages.filter(seq__lt=before_seq)
    if after_seq is not None:
        batch = list(messages.filter(seq__gt=after_seq).order_by("seq")[: limit + 1])
        return attach_reactions(batch[:limit]), len(batch) > limit
    batch = list(messages.order_by("-seq")[: limit + 1])
    return attach_reactions(batch[:limit][::-1]), len(batch) > limit


def online_users() -> list[User]:
    """Users with at least one live connection, by id."""
    user_ids = Connection.objects.filter(seen_at__gte=live_connection_cutoff()).values("user_id")
    return list(User.objects.filter(pk__in=user_ids).only("id", "username").order_by("pk"))


def present_pairs(*, room_ids: Iterable[int], user_ids: Iterable[int]) -> set[tuple[int, int]]:
    """The (room, user) pairs among these rooms and users where the user has a live connection in the room."""
    return set(
        Presence.objects.filter(
            room_id__in=list(room_ids), user_id__in=list(user_ids), connection__seen_at__gte=live_connection_cutoff()
        ).values_list("room_id", "user_id")
    )


def online_user_ids(*, user_ids: Iterable[int]) -> set[int]:
    """Those of these users with at least one live connection."""
    return set(
        Connection.objects.filter(user_id__in=list(user_ids), seen_at__gte=live_connection_cutoff()).values_list("user_id", flat=True)
    )


_room_last_seq = CompiledQuery(
    lambda room_id: Room.objects.filter(pk=room_id).values("last_seq").order_by()[:1],
    room_id=_ROOM_ID,
)
_visible_room_last_seq = CompiledQuery(
    lambda room_id, user_id: Room.objects.filter(_visible_q(user_id), pk=room_id).values("last_seq").order_by()[:1],
    room_id=_ROOM_ID,
    user_id=_USER_ID,
)


def room_last_seq(*, room_id: int, user: User | None = None) -> int:
    """The seq of the newest message ever posted to the room (RoomNotFound if none, or if `user` is given and cannot see it)."""
    if user is None:
        row = _room_last_seq.first(room_id=room_id)
    else:
        row = _visible_room_last_seq.first(room_id=room_id, user_id=user.pk)
    if row is None:
        raise RoomNotFound()
    return int(row["last_seq"])


def users_by_id(*, user_ids: Iterable[int]) -> list[User]:
    """These users, by id."""
    return list(User.objects.filter(pk__in=list(user_ids)).only("id", "username").order_by("pk"))


_token_user = CompiledQuery(
    lambda key: User.objects.filter(auth_token__key=key).values(*(field.attname for field in User._meta.concrete_fields)).order_by()[:1],
    key="\0no token is this",  # keys are 40 hex digits
)


def token_user(*, key: str) -> User | None:
    """The user owning this API token (active or not), or None."""
    row = _token_user.first(key=key)
    return None if row is None else _loaded(User, row)


def token_user_sql(*, key: str) -> tuple[str, list[Any]] | None:
    """token_user's query as SQL and parameters, for a statement that does more in the same round trip; None: use token_user.

    Its rows start with the user's columns, named by attname: read them with token_user_from_row.
    """
    return _token_user.embedded(key=key)


def token_user_from_row(row: Sequence[Any]) -> User:
    """The user of a row that starts with token_user_sql's columns."""
    return _loaded(User, _token_user.decode(row))


def user_get_active(*, pk: int) -> User | None:
    """The active user with this id, if any."""
    return User.objects.filter(pk=pk, is_active=True).first()


def user_list() -> list[User]:
    """Every active user, by username (the built-in users page)."""
    return list(User.objects.filter(is_active=True).only("id", "username").order_by("username"))


def username_taken(*, username: str) -> bool:
    """Whether a user already has this username, ignoring case (as the database's unique index does)."""
    return User.objects.annotate(username_lower=Lower("username")).filter(username_lower=username.lower()).exists()


def live_connection_count(*, user_id: int) -> int:
    """How many live connections the user has, on every server process."""
    return Connection.objects.filter(user_id=user_id, seen_at__gte=live_connection_cutoff()).count()


def inactive_user_connections(*, server_id: str) -> list[str]:
    """The connections of this server process whose users are deactivated (e.g. by a bulk `update(is_active=False)`)."""
    return list(Connection.objects.filter(server_id=server_id, user__is_active=False).values_list("pk", flat=True))


_reactions_of_message = CompiledQuery(
    lambda message_id: Reaction.objects.filter(message_id=message_id).order_by("pk").values("message_id", "emoji", "user_id"),
    message_id=_OTHER_ID,
)


def reactions_by_message(*, message_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    """Each message's reactions as §7 JSON, each emoji in order of its first use, in one query for all of them."""
    message_ids = list(message_ids)
    if len(message_ids) == 1:  # a lone message (a join's last message, a new message): the query compiled once
        rows: Iterable[Any] = _reactions_of_message.rows(message_id=message_ids[0])
    else:
        rows = Reaction.objects.filter(message_id__in=message_ids).order_by("message_id", "pk").values("message_id", "emoji", "user_id")
    by_message: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for row in rows:
        by_message[row["message_id"]].setdefault(row["emoji"], []).append(row["user_id"])
    return {
        message_id: [{"emoji": emoji, "count": len(user_ids), "user_ids": user_ids} for emoji, user_ids in emojis.items()]
        for message_id, emojis in by_message.items()
    }


def attach_reactions(messages: list[Message]) -> list[Message]:
    """Set `reaction_summary` on these messages in one query (none for no messages); returns them."""
    if messages:
        summaries = reactions_by_message(message_ids=[message.pk for message in messages])
        for message in messages:
            message.reaction_summary = summaries.get(message.pk, [])
    return messages


def message_in_room(*, message_id: int, room_id: int) -> bool:
    """Whether this message exists and belongs to this room (what a reply may point at)."""
    return Message.objects.filter(pk=message_id, room_id=room_id).exists()


def message_search(
    *, user: User, query: str, room_id: int | None = None, limit: int = 20, before_id: int | None = None
) -> tuple[list[Message], bool]:
    """The messages this user can see whose text matches the query, newest first, and whether older ones match too.

    `room_id` narrows it to one room (RoomNotFound unless the user can see it);
    `before_id` continues a previous page.
    """
    visible = rooms_visible_to(user=user)
    messages = Message.objects.select_related("user")
    if room_id is not None:
        if not visible.filter(pk=room_id).exists():
            raise RoomNotFound()
        # Within a room seq orders like id, and lets a common word walk only this room's
        # (room, seq) index backwards instead of every room's newest messages.
        messages, newest_first = messages.filter(room_id=room_id), "-seq"
    else:
        messages, newest_first = messages.filter(room_id__in=visible.values("pk")), "-pk"
    if before_id is not None:
        messages = messages.filter(pk__lt=before_id)
    batch = list(messages_matching(messages, query).order_by(newest_first)[: limit + 1])
    return attach_reactions(batch[:limit]), len(batch) > limit


def user_search(*, prefix: str = "", page: int = 1, page_size: int = 50) -> tuple[list[User], int]:
    """One page of active users whose username starts with the prefix (any case), by username in any case, and the total count."""
    users = User.objects.filter(is_active=True)
    if prefix:
        users = users.filter(username__istartswith=prefix)
    offset = (page - 1) * page_size
    page_users = users.only("id", "username").order_by(Lower("username"), "username")[offset : offset + page_size]
    return list(page_users), users.count()
