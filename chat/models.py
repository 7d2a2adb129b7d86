"""Persistent state: users, rooms, messages, and the live connections behind presence."""

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

MESSAGE_MAX_LENGTH = 500
ROOM_NAME_MAX_LENGTH = 255
CLIENT_ID_MAX_LENGTH = 64
EMOJI_MAX_LENGTH = 32


class User(AbstractUser):
    """A chat user; only `id` and `username` are ever exposed."""

    class Meta(AbstractUser.Meta):
        constraints = [
            # Case twins ("Alice", "alice") are one name to readers: the database refuses the second.
            models.UniqueConstraint(Lower("username"), name="chat_user_username_lower_unique"),
        ]


class RoomKind(models.TextChoices):
    """Who may see a room (api_docs/PROTOCOL.md §5)."""

    PUBLIC = "public"
    PRIVATE = "private"
    DIRECT = "direct"


class Role(models.TextChoices):
    """A member's role in a room (api_docs/PROTOCOL.md §5)."""

    OWNER = "owner"
    MODERATOR = "moderator"
    MEMBER = "member"


class Room(models.Model):
    """A persistent chat room with a host (its owner) and members."""

    name = models.CharField(max_length=ROOM_NAME_MAX_LENGTH, unique=True)
    host = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="hosted_rooms")
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="rooms", blank=True)
    kind = models.CharField(max_length=16, choices=RoomKind.choices, default=RoomKind.PUBLIC)
    # "<smaller user id>:<larger user id>" for a direct room, so a pair has at most one.
    direct_key = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    # The seq of the newest message ever posted; the row lock on it serialises posters.
    last_seq = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    # Not columns. Live state for §1's Room object, set by chat.core.selectors (room_get, room_list)
    # before a RoomSerializer reads them: the users present (§1 User dicts) and the newest message.
    current_users: list[dict[str, Any]]
    last_message: "Message | None"

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.name


class Message(models.Model):
    """A message in a room, numbered by `seq` within the room."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveBigIntegerField(editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages")
    text = models.CharField(max_length=MESSAGE_MAX_LENGTH)
    client_id = models.CharField(max_length=CLIENT_ID_MAX_LENGTH, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    # A plain id, not a foreign key: a reply keeps pointing at its target after the target is deleted.
    reply_to = models.PositiveBigIntegerField(null=True, blank=True)

    # Set by the selectors that read a page of messages (one query for the whole page);
    # MessageSerializer reads it, and only queries when it is missing.
    reaction_summary: list[dict[str, Any]]
    # Set by the message's event (chat.events.streams.message_event) to the §1 JSON text it
    # sent: the create_message response splices in the same text instead of encoding again.
    event_json: str

    class Meta:
        ordering = ["room", "seq"]
        constraints = [
            # Also the index behind "latest N" and "after seq" reads of one room. On PostgreSQL
            # it also carries the author (INCLUDE user_id, set by migration 0002_private_rooms, as
            # SQLite has no such constraints), so unread counts ("after seq, by others") are
            # index-only scans; a migration that alters this constraint must keep that.
            models.UniqueConstraint(fields=["room", "seq"], name="message_room_seq_unique"),
            models.UniqueConstraint(
                fields=["room", "user", "client_id"],
                condition=Q(client_id__isnull=False),
                name="message_room_user_client_id_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.room_id}#{self.seq}"


class Reaction(models.Model):
    """One user's emoji on one message."""

    # No index of its own: the unique constraint's index starts with the message.
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions", db_index=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reactions")
    emoji = models.CharField(max_length=EMOJI_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Also the index behind reading the reactions of a page of messages.
            models.UniqueConstraint(fields=["message", "user", "emoji"], name="reaction_message_user_emoji_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.message_id}:{self.emoji}:{self.user_id}"


class Connection(models.Model):
    """One open WebSocket connection, kept alive by its server process's heartbeat."""

    channel_name = models.CharField(max_length=200, primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="connections")
    # A fresh id per server process start, so a restarted process never revives old rows.
    server_id = models.CharField(max_length=64, db_index=True)
    seen_at = models.DateTimeField(db_index=True)


class Presence(models.Model):
    """A connection that joined a room and has not left it."""

    # Indexed by the constraint and the index below, which lead with them.
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="presences", db_index=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="presences", db_index=False)
    # The connection's user, copied: "is this user present in this room?" (every join asks)
    # is then one lookup in presence_room_user, however many are present and whatever
    # PostgreSQL's statistics say. Through the connection, with the tables analyzed while
    # nearly empty (after a restart), the planner walked every presence of the room for
    # each join: 1-16 ms of PostgreSQL per join in a room of 2,000 (bench/README.md,
    # session 8). No constraint: the presence goes with its connection, which goes with
    # its user, and a constraint would lock the user's row on every join.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "room"], name="presence_connection_room_unique")]
        indexes = [models.Index(fields=["room", "user"], name="presence_room_user")]


class Membership(models.Model):
    """A user's membership of a room: role, when they joined, and how far they have read."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(default=timezone.now)
    last_read_seq = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="membership_room_user_unique")]
        # The unique (room, user) index serves a room's members; this one a user's rooms.
        indexes = [models.Index(fields=["user", "room"], name="membership_user_room")]


class Ban(models.Model):
    """A user barred from joining, being added to or posting in a room until unbanned."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bans")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="ban_room_user_unique")]


class Server(models.Model):
    """A running server process, kept fresh by its heartbeat: its connections live as long as it does."""

    server_id = models.CharField(max_length=64, primary_key=True)
    seen_at = models.DateTimeField(db_index=True)
